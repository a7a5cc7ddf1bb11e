"""Classification metrics: top-1 against labels, argmax agreement with the FP32 outputs."""
from __future__ import annotations

import numpy as np

from quantkit.errors import QuantkitError


def class_scores(outputs: np.ndarray) -> np.ndarray:
    """Outputs as [N, C] class scores ([N, 1, C] is squeezed), or a refusal."""
    outputs = np.asarray(outputs)
    if outputs.ndim == 3 and outputs.shape[1] == 1:
        outputs = outputs[:, 0, :]
    if outputs.ndim != 2 or outputs.shape[0] == 0 or outputs.shape[1] == 0:
        raise QuantkitError(f"top-1 needs class scores of shape [N, C] (or [N, 1, C]); the "
                            f"model's first output has shape {list(outputs.shape)}")
    return outputs


def label_vector(labels: np.ndarray, rows: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or labels.shape[0] != rows:
        raise QuantkitError(f"labels have shape {list(labels.shape)} but the outputs have "
                            f"{rows} rows; expected labels [{rows}]")
    if labels.dtype.kind not in "iu":
        raise QuantkitError(f"labels are {labels.dtype}; expected integer class indices")
    if labels.size and labels.min() < 0:
        raise QuantkitError(f"labels hold {int(labels.min())}; class indices must be >= 0")
    return labels


def top1(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose highest score is the label."""
    scores = class_scores(outputs)
    return float(np.mean(np.argmax(scores, axis=1) == label_vector(labels, scores.shape[0])))


def argmax_agreement(outputs: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of rows whose highest output is FP32's highest (rows compared flattened)."""
    rows = np.asarray(outputs).shape[0]
    a = np.asarray(outputs).reshape(rows, -1)
    b = np.asarray(reference).reshape(rows, -1)
    return float(np.mean(np.argmax(a, axis=1) == np.argmax(b, axis=1)))
