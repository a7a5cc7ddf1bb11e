"""Sequence metrics for CTC text recognisers: greedy decoding, character error rate.

A recogniser outputs per-step class scores [N, T, C]; what a user reads is the decoded
text, so a quantized recogniser is judged by the characters it gets wrong.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from quantkit.errors import QuantkitError

BLANK = 0  # PP-OCR's CTC blank index


def step_scores(scores: np.ndarray) -> np.ndarray:
    """Scores as [N, T, C], or a refusal naming the shape."""
    scores = np.asarray(scores)
    if scores.ndim != 3 or 0 in scores.shape:
        raise QuantkitError(f"recognition outputs must be per-step scores [N, T, C], got "
                            f"shape {list(scores.shape)}")
    return scores


def ctc_greedy_decode(scores: np.ndarray, charset: Sequence[str]) -> list[str]:
    """Best class per step, repeats merged, blanks (index 0) dropped: one string per row."""
    scores = step_scores(scores)
    if scores.shape[2] != len(charset):
        raise QuantkitError(f"outputs have {scores.shape[2]} classes per step but the charset "
                            f"has {len(charset)} entries (blank first)")
    best = np.argmax(scores, axis=2)
    keep = np.ones_like(best, dtype=bool)
    keep[:, 1:] = best[:, 1:] != best[:, :-1]
    keep &= best != BLANK
    return ["".join(charset[index] for index in row[mask]) for row, mask in zip(best, keep)]


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions, each counting 1."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def char_error_rate(predicted: Sequence[str], truth: Sequence[str],
                    ignore_space: bool = False) -> float:
    """Total edits over total true characters. No true characters: 0.0 if nothing was
    predicted either, else the number of predicted characters (each one is an error).
    `ignore_space` drops spaces from both first, as PaddleOCR's RecMetric does by default."""
    if len(predicted) != len(truth):
        raise QuantkitError(f"{len(predicted)} predicted strings for {len(truth)} true ones")
    if ignore_space:
        predicted, truth = without_spaces(predicted), without_spaces(truth)
    edits = sum(edit_distance(p, t) for p, t in zip(predicted, truth))
    characters = sum(len(t) for t in truth)
    return edits / characters if characters else float(edits)


def without_spaces(texts: Sequence[str]) -> list[str]:
    return [text.replace(" ", "") for text in texts]


def step_agreement(outputs: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of (row, step) pairs whose best class is FP32's."""
    outputs, reference = step_scores(outputs), step_scores(reference)
    if outputs.shape != reference.shape:
        raise QuantkitError(f"outputs have shape {list(outputs.shape)} but the reference has "
                            f"{list(reference.shape)}")
    return float(np.mean(np.argmax(outputs, axis=2) == np.argmax(reference, axis=2)))
