"""Output metrics shared by benchmarks and calibration: top-1 and agreement with FP32.

Pure numpy; they live outside `benchmark/` so calibration (sensitivity, budgets) can score
outputs without reaching down the chain into the benchmark package.
"""
from __future__ import annotations

import numpy as np

from quantkit.errors import QuantkitError


def top1(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose highest output is the label (outputs [N, C] or [N, 1, C])."""
    logits = _logits(outputs)
    labels = _label_vector(labels, logits.shape[0])
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def agreement(outputs: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    """(argmax agreement, mean cosine, max |difference|) of outputs against the FP32 reference.

    Rows are compared flattened. Cosine is 1 where both rows are all zero (identical) and 0
    where only one is, or where a row holds NaN/Inf (an overflowing target shares nothing
    with FP32), so the mean never turns NaN; max_abs_diff then reports the NaN/Inf itself.
    """
    outputs, reference = np.asarray(outputs), np.asarray(reference)
    if outputs.shape != reference.shape:
        raise QuantkitError(f"outputs have shape {list(outputs.shape)} but the FP32 reference "
                            f"has {list(reference.shape)}; both must come from the same eval "
                            "rows and output")
    if outputs.ndim == 0 or outputs.shape[0] == 0:
        raise QuantkitError(f"no output rows to compare (shape {list(outputs.shape)})")
    rows = outputs.shape[0]
    a = outputs.reshape(rows, -1).astype(np.float64)
    b = reference.reshape(rows, -1).astype(np.float64)
    if a.shape[1] == 0:
        raise QuantkitError(f"outputs of shape {list(outputs.shape)} hold no values per row")
    argmax_agreement = float(np.mean(np.argmax(a, axis=1) == np.argmax(b, axis=1)))
    finite = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    with np.errstate(invalid="ignore", over="ignore"):
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        dots = np.einsum("ij,ij->i", a, b)
        max_abs_diff = float(np.max(np.abs(a - b)))
    both_zero = ~a.any(axis=1) & ~b.any(axis=1)
    cosine = np.divide(dots, norms, out=np.where(both_zero, 1.0, 0.0),
                       where=finite & (norms > 0))
    return argmax_agreement, float(np.mean(cosine)), max_abs_diff


def _logits(outputs: np.ndarray) -> np.ndarray:
    outputs = np.asarray(outputs)
    if outputs.ndim == 3 and outputs.shape[1] == 1:
        outputs = outputs[:, 0, :]
    if outputs.ndim != 2 or outputs.shape[0] == 0 or outputs.shape[1] == 0:
        raise QuantkitError(f"top-1 needs class scores of shape [N, C] (or [N, 1, C]); the "
                            f"model's first output has shape {list(outputs.shape)}")
    return outputs


def _label_vector(labels: np.ndarray, rows: int) -> np.ndarray:
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
