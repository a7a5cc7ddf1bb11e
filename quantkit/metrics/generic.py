"""Metrics for any output: how close a target's outputs are to the FP32 reference's."""
from __future__ import annotations

import math

import numpy as np

from quantkit.errors import QuantkitError

SQNR_CAP_DB = 150.0  # identical outputs: a finite number JSON can hold


def paired_rows(outputs: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64 [N, values]; refuses shapes that do not come from the same rows."""
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
    return a, b


def cosine_mean(outputs: np.ndarray, reference: np.ndarray) -> float:
    """Mean per-row cosine similarity: 1 where both rows are all zero, 0 where only one is
    or where a row holds NaN/Inf (an overflowing target shares nothing with FP32)."""
    a, b = paired_rows(outputs, reference)
    finite = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    with np.errstate(invalid="ignore", over="ignore"):
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        dots = np.einsum("ij,ij->i", a, b)
    both_zero = ~a.any(axis=1) & ~b.any(axis=1)
    cosine = np.divide(dots, norms, out=np.where(both_zero, 1.0, 0.0),
                       where=finite & (norms > 0))
    return float(np.mean(cosine))


def max_abs_diff(outputs: np.ndarray, reference: np.ndarray) -> float:
    a, b = paired_rows(outputs, reference)
    with np.errstate(invalid="ignore", over="ignore"):
        return float(np.max(np.abs(a - b)))


def sqnr_db(outputs: np.ndarray, reference: np.ndarray) -> float:
    """10 log10(signal power / error power) of `outputs` against `reference`, capped."""
    reference = np.asarray(reference, np.float64)
    noise = float(np.sum((np.asarray(outputs, np.float64) - reference) ** 2))
    signal = float(np.sum(reference ** 2))
    if noise == 0.0 or signal == 0.0:
        return SQNR_CAP_DB if noise == 0.0 else -SQNR_CAP_DB
    if not math.isfinite(noise):
        return -SQNR_CAP_DB
    return float(min(SQNR_CAP_DB, 10.0 * math.log10(signal / noise)))
