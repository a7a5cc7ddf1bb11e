"""One scoring entry point per task: the metrics that say what a model's output means.

A zoo entry names its task (`quantkit.zoo.config.Task`); `score` turns a target's outputs
(against FP32's, and against the ground truth) into named numbers, and `headline` names
the one a plot or table leads with. An argmax over pixels or time steps is never called
accuracy here: detection is scored on boxes, recognition on decoded text.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import numpy as np

from quantkit.errors import QuantkitError
from quantkit.metrics.classification import class_scores, label_vector, top1
from quantkit.metrics.dense import DBSettings, score_maps
from quantkit.metrics.generic import cosine_mean, max_abs_diff, sqnr_db
from quantkit.metrics.sequence import (char_error_rate, ctc_greedy_decode, step_agreement,
                                       without_spaces)
from quantkit.zoo.config import Task

CONFIDENT = 0.8  # FP32 max probability from which its answer counts as a confident one
PROBABILITY_TOLERANCE = 1e-3  # rows summing to 1 within this are taken as probabilities


class Headline(NamedTuple):
    metric: str  # a key of score()'s result
    label: str  # axis / column text
    higher_is_better: bool
    unit: str = "fraction"  # "fraction" (shown as %) or "dB"


def headline(task: Task | str, with_truth: bool = True) -> Headline:
    """The metric a plot or table shows for `task`: against the ground truth when the data
    has it (labels, boxes, strings), else against FP32."""
    task = _task(task)
    if task is Task.CLASSIFICATION:
        return (Headline("top1", "top-1 accuracy", True) if with_truth else
                Headline("confident_agreement", "agreement with FP32 where FP32 is "
                         f"confident (p >= {CONFIDENT})", True))
    if task is Task.DETECTION:
        return (Headline("box_f1_vs_truth", "box F1 vs ground truth (IoU >= 0.5)", True)
                if with_truth else Headline("box_f1_vs_fp32", "box F1 vs FP32's boxes", True))
    if task is Task.RECOGNITION:
        return (Headline("cer_vs_truth", "character error rate vs ground truth", False)
                if with_truth else Headline("cer_vs_fp32", "character error rate vs FP32's "
                                            "text", False))
    return Headline("sqnr_db", "SQNR vs FP32 (dB)", True, unit="dB")


# How far from FP32 a target is, in points, when there is no ground truth to compare both
# with: an agreement of 97% is 3 points away; a CER against FP32's text of 2% is 2 points.
# SQNR has no points: generic outputs take 1 - cosine similarity, in points.
_POINTS_FROM_FP32 = {
    "confident_agreement": lambda m: (1.0 - m["confident_agreement"]) * 100,
    "argmax_agreement": lambda m: (1.0 - m["argmax_agreement"]) * 100,
    "box_f1_vs_fp32": lambda m: (1.0 - m["box_f1_vs_fp32"]) * 100,
    "cer_vs_fp32": lambda m: m["cer_vs_fp32"] * 100,
    "sqnr_db": lambda m: (1.0 - m["cosine"]) * 100,
}


def drop_points(line: Headline, metrics: dict, reference_value: float | None = None
                ) -> float | None:
    """How much worse than FP32, in percentage points (> 0: worse).

    Against ground truth, the difference to FP32's own `reference_value`; against FP32
    (no truth), the distance to perfect agreement (`_POINTS_FROM_FP32`).
    """
    value = metrics.get(line.metric)
    if value is None:
        return None
    if line.metric in _POINTS_FROM_FP32 and reference_value is None:
        return float(_POINTS_FROM_FP32[line.metric](metrics))
    if reference_value is None:
        return None
    sign = 1.0 if line.higher_is_better else -1.0
    return float((reference_value - value) * sign * 100)


def choose_headline(task: Task | str, metrics: dict, with_truth: bool) -> Headline:
    """`headline`, falling back to plain agreement when FP32 was confident on no row."""
    line = headline(task, with_truth)
    if line.metric == "confident_agreement" and line.metric not in metrics:
        return Headline("argmax_agreement", "agreement with FP32's top class", True)
    return line


def fp32_drop(task: Task | str, truth: Sequence | None = None,
              labels: np.ndarray | None = None, *, charset: Sequence[str] | None = None,
              db: DBSettings | None = None) -> Callable[[np.ndarray, np.ndarray], float]:
    """drop(outputs, fp32_outputs): points of `task`'s headline metric lost against FP32,
    as bench reports it: against the ground truth when there is any (FP32's own value on
    the same rows is the reference), else the distance from FP32's outputs. An accuracy
    budget checks this drop (`quantkit.calibration.budget`)."""
    task = _task(task)
    with_truth = labels is not None or (truth is not None
                                        and any(item is not None for item in truth))
    truth = truth if with_truth and task not in (Task.CLASSIFICATION, Task.GENERIC) else None

    def drop(outputs: np.ndarray, reference: np.ndarray) -> float:
        metrics = score(task, outputs, reference, truth, labels, charset=charset, db=db)
        line = choose_headline(task, metrics, with_truth)
        reference_value = (score(task, reference, reference, truth, labels, charset=charset,
                                 db=db).get(line.metric) if with_truth else None)
        points = drop_points(line, metrics, reference_value)
        if points is None:
            raise QuantkitError(f"{task} outputs give no {line.metric} to budget on")
        return points

    return drop


def score(task: Task | str, outputs: np.ndarray, reference: np.ndarray | None = None,
          truth: Sequence | None = None, labels: np.ndarray | None = None, *,
          charset: Sequence[str] | None = None, db: DBSettings | None = None
          ) -> dict[str, float]:
    """Every metric of `task` the inputs allow; `reference` is FP32's outputs for the rows.

    classification: top1 (labels); argmax_agreement, confident_agreement (rows where FP32's
      max probability >= 0.8; left out if there are none), confident_rows,
      mean_abs_prob_diff (reference). Scores that are not probabilities are softmaxed.
    detection (maps [N, 1, H, W]): see `quantkit.metrics.dense.score_maps`; `db` defaults
      to PP-OCR's DB settings, truth is one [K, 4, 2] per row (None: unknown).
    recognition ([N, T, C]): step_agreement, cer_vs_fp32, line_agreement (reference);
      cer_vs_truth, line_accuracy (truth strings), spaces ignored; `charset` defaults to
      PP-OCR's.
    every task, with reference: sqnr_db, cosine, max_abs_diff (generic has only these).
    """
    task = _task(task)
    outputs = np.asarray(outputs)
    if reference is None and truth is None and labels is None:
        raise QuantkitError(f"nothing to score {task} outputs against: pass FP32's outputs "
                            "(reference), ground truth or labels")
    if reference is not None:
        reference = np.asarray(reference)
        if reference.shape != outputs.shape:
            raise QuantkitError(f"outputs have shape {list(outputs.shape)} but FP32's have "
                                f"{list(reference.shape)}; both must come from the same rows")
    if labels is not None and task is not Task.CLASSIFICATION:
        raise QuantkitError(f"labels are class indices, which {task} outputs are not; pass "
                            "the ground truth as truth")
    if truth is not None and task in (Task.CLASSIFICATION, Task.GENERIC):
        raise QuantkitError(f"{task} outputs are scored against labels or FP32's outputs, "
                            "not truth")
    if truth is not None and len(truth) != outputs.shape[0]:
        raise QuantkitError(f"{len(truth)} ground-truth entries for {outputs.shape[0]} output "
                            "rows: give one per row")
    if task is Task.GENERIC and reference is None:
        raise QuantkitError("generic outputs are scored against FP32's outputs only: pass "
                            "reference")
    # closeness to FP32 is worth knowing whatever the task (how far INT8 moved the numbers)
    result = {} if reference is None else {
        "sqnr_db": sqnr_db(outputs, reference), "cosine": cosine_mean(outputs, reference),
        "max_abs_diff": max_abs_diff(outputs, reference)}
    if task is Task.CLASSIFICATION:
        result.update(_classification(outputs, reference, labels))
    elif task is Task.DETECTION:
        if db is None:
            from quantkit.zoo.ppocr import db_settings

            db = db_settings()
        result.update(score_maps(outputs, db, reference, truth))
    elif task is Task.RECOGNITION:
        result.update(_recognition(outputs, reference, truth, charset))
    return result


def _task(task: Task | str) -> Task:
    return task if isinstance(task, Task) else Task.parse(task, "task")


def probabilities(scores: np.ndarray, like: np.ndarray | None = None) -> np.ndarray:
    """[N, C] class probabilities: `scores` as they are if `like` (default: scores) holds
    probabilities (in [0, 1], rows summing to 1), else softmaxed."""
    scores = class_scores(scores).astype(np.float64)
    like = scores if like is None else class_scores(like).astype(np.float64)
    if (like.min() >= 0 and like.max() <= 1
            and np.allclose(like.sum(axis=1), 1.0, atol=PROBABILITY_TOLERANCE)):
        return scores
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _classification(outputs, reference, labels) -> dict[str, float]:
    scores = class_scores(outputs)
    result: dict[str, float] = {}
    if labels is not None:
        result["top1"] = top1(scores, label_vector(labels, scores.shape[0]))
    if reference is not None:
        # One decision for both, taken on FP32's: the same kind of output either way.
        p_ref = probabilities(reference)
        p_out = probabilities(scores, like=reference)
        same = np.argmax(p_out, axis=1) == np.argmax(p_ref, axis=1)
        confident = p_ref.max(axis=1) >= CONFIDENT
        result["argmax_agreement"] = float(np.mean(same))
        result["confident_rows"] = float(np.mean(confident))
        if confident.any():
            result["confident_agreement"] = float(np.mean(same[confident]))
        result["mean_abs_prob_diff"] = float(np.mean(np.abs(p_out - p_ref)))
    return result


def _recognition(outputs, reference, truth, charset) -> dict[str, float]:
    """Texts compared without spaces, as PaddleOCR's RecMetric: the model's leading and
    trailing spaces (from a crop's margin) and word gaps are layout, not characters."""
    if charset is None:
        from quantkit.zoo.ppocr import charset as ppocr_charset

        charset = ppocr_charset()
    texts = without_spaces(ctc_greedy_decode(outputs, charset))
    result: dict[str, float] = {}
    if reference is not None:
        fp32_texts = without_spaces(ctc_greedy_decode(reference, charset))
        result["step_agreement"] = step_agreement(outputs, reference)
        result["cer_vs_fp32"] = char_error_rate(texts, fp32_texts)
        result["line_agreement"] = _same_fraction(texts, fp32_texts)
    if truth is not None:
        known = [index for index, text in enumerate(truth) if text is not None]
        if known:
            expected = without_spaces([str(truth[i]) for i in known])
            predicted = [texts[i] for i in known]
            result["cer_vs_truth"] = char_error_rate(predicted, expected)
            result["line_accuracy"] = _same_fraction(predicted, expected)
    return result


def _same_fraction(texts: Sequence[str], others: Sequence[str]) -> float:
    return float(np.mean([a == b for a, b in zip(texts, others)]))
