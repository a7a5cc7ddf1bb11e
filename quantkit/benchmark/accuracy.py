"""How good one target's outputs are: top-1 against labels, agreement with the FP32 reference.

Pure numpy on outputs the runner already saved, so accuracy is scored the same way for
every backend and host, and can be recomputed from saved outputs without any runtime.
"""
from __future__ import annotations

import numpy as np

from quantkit.benchmark.evalsets import check_label_range
from quantkit.benchmark.results import Accuracy
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


def measure_accuracy(outputs: np.ndarray, labels: np.ndarray | None = None,
                     reference_outputs: np.ndarray | None = None,
                     reference_top1: float | None = None,
                     source: str = "eval set") -> Accuracy:
    """Everything the inputs allow: top-1 with labels, drop with a reference top-1 too,
    agreement with reference outputs. `source` names the eval set in errors."""
    outputs = np.asarray(outputs)
    if outputs.ndim == 0:
        raise QuantkitError(f"{source}: outputs are a scalar, not one row per eval row")
    accuracy = None
    if labels is not None:
        logits = _logits(outputs)
        labels = _label_vector(labels, logits.shape[0])
        check_label_range(labels, logits.shape[1], source)
        accuracy = top1(logits, labels)
    drop = None
    if accuracy is not None and reference_top1 is not None:
        drop = (float(reference_top1) - accuracy) * 100.0
    fields: dict[str, float] = {}
    if reference_outputs is not None:
        fields["argmax_agreement"], fields["cosine_mean"], fields["max_abs_diff"] = \
            agreement(outputs, reference_outputs)
    return Accuracy(rows=int(outputs.shape[0]), top1=accuracy,
                    reference_top1=None if reference_top1 is None else float(reference_top1),
                    drop_points=drop, **fields)


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
