"""Accuracy scoring on hand-computed examples: the task's metric, the drop vs FP32, and
agreement with the FP32 outputs."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from quantkit.benchmark.accuracy import measure_accuracy, resolve_task
from quantkit.benchmark.results import Accuracy
from quantkit.data.dataset import Dataset
from quantkit.zoo.config import Task
from quantkit.errors import QuantkitError
from quantkit.metrics import argmax_agreement, cosine_mean, max_abs_diff, top1


def agreement(outputs, reference):
    """The three FP32-agreement metrics a benchmark record holds."""
    return (argmax_agreement(outputs, reference), cosine_mean(outputs, reference),
            max_abs_diff(outputs, reference))

# argmax per row: 0, 1, 2, 0 -> three of four labels right
LOGITS = np.array([[2.0, 1.0, 0.0],
                   [0.0, 3.0, 1.0],
                   [1.0, 0.0, 5.0],
                   [4.0, 0.0, 0.0]], dtype=np.float32)
LABELS = np.array([0, 1, 2, 1], dtype=np.int64)

# row cosines: 1 (same), 0 (orthogonal), 1 (both zero), 3/(sqrt2*3) = 1/sqrt2
OUTPUTS = np.array([[3.0, 4.0], [0.0, 1.0], [0.0, 0.0], [1.0, 1.0]], dtype=np.float32)
REFERENCE = np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 0.0], [3.0, 0.0]], dtype=np.float32)
COSINE_MEAN = (1.0 + 0.0 + 1.0 + 1.0 / math.sqrt(2.0)) / 4.0  # 0.676776695...


def test_top1_counts_argmax_hits():
    assert top1(LOGITS, LABELS) == 0.75
    assert top1(LOGITS, LABELS.reshape(-1, 1)) == 0.75  # [N, 1] labels, as MNIST stores them
    assert top1(LOGITS[:, None, :], LABELS) == 0.75  # [N, 1, C] is squeezed
    assert top1(LOGITS, np.array([0, 1, 2, 0])) == 1.0


def test_agreement_hand_computed():
    argmax_agreement, cosine_mean, max_abs_diff = agreement(OUTPUTS, REFERENCE)
    assert argmax_agreement == 0.75  # row 1: argmax 1 vs 0
    assert cosine_mean == pytest.approx(COSINE_MEAN, abs=1e-12)
    assert max_abs_diff == 2.0  # row 3: |1 - 3|


def test_cosine_ignores_scale_and_identical_outputs_agree_fully():
    assert agreement(OUTPUTS, OUTPUTS) == (1.0, pytest.approx(1.0), 0.0)
    scaled = agreement(LOGITS * 2, LOGITS)
    assert scaled[0] == 1.0 and scaled[1] == pytest.approx(1.0)


def test_zero_rows_give_no_nan_and_no_warning():
    outputs = np.array([[0.0, 0.0], [0.0, 0.0]])
    reference = np.array([[0.0, 0.0], [1.0, 2.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, cosine_mean, _ = agreement(outputs, reference)
    assert cosine_mean == 0.5  # both zero -> 1, one zero -> 0


def test_non_finite_outputs_count_as_disagreeing_without_poisoning_the_mean():
    outputs = OUTPUTS.copy()
    outputs[1, 0] = np.nan
    outputs[3, 1] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, cosine_mean, max_abs_diff = agreement(outputs, REFERENCE)
    assert cosine_mean == pytest.approx(0.5)  # rows 0 and 2 agree, rows 1 and 3 count 0
    assert math.isnan(max_abs_diff) or math.isinf(max_abs_diff)


def test_outputs_with_more_dims_are_flattened_per_row():
    outputs = OUTPUTS.reshape(4, 1, 2, 1)
    assert agreement(outputs, REFERENCE.reshape(4, 1, 2, 1)) == agreement(OUTPUTS, REFERENCE)
    with pytest.raises(QuantkitError, match=r"\[N, C\].*\[4, 1, 2, 1\]"):
        top1(outputs, LABELS)


def test_agreement_refuses_other_shapes_naming_both():
    with pytest.raises(QuantkitError, match=r"\[4, 3\].*\[4, 2\]"):
        agreement(LOGITS, OUTPUTS)


def _rows(labels=None, truth=None, task=None, rows=4) -> Dataset:
    """An eval set of `rows` rows (the inputs do not matter to scoring)."""
    return Dataset(name="t", source="t.npz", inputs={"x": np.zeros((rows, 1), np.float32)},
                   labels=labels, truth=truth, extra={"task": task} if task else {})


def test_classification_with_labels_scores_top1_and_the_drop_vs_fp32():
    fp32 = measure_accuracy(LOGITS * 2, "classification", _rows(np.array([0, 1, 2, 0])))
    assert (fp32.metric, fp32.value, fp32.reference_value, fp32.drop_points) == \
        ("top1", 1.0, 1.0, 0.0)
    result = measure_accuracy(LOGITS, "classification", _rows(LABELS), LOGITS * 2, fp32)
    assert isinstance(result, Accuracy)
    assert result.rows == 4 and result.top1 == 0.75 and result.reference_value == 1.0
    assert result.drop_points == pytest.approx(25.0)  # positive: accuracy was lost
    assert result.metrics["argmax_agreement"] == 1.0
    assert result.label == "top-1 accuracy" and result.higher_is_better


def test_a_gain_is_a_negative_drop():
    fp32 = measure_accuracy(LOGITS, "classification", _rows(np.array([0, 0, 0, 0])))
    assert fp32.value == 0.5
    result = measure_accuracy(LOGITS, "classification", _rows(LABELS), LOGITS, fp32)
    assert result.drop_points == pytest.approx(-25.0)


def test_without_labels_classification_is_agreement_with_fp32():
    result = measure_accuracy(OUTPUTS, "classification", _rows(), REFERENCE,
                              measure_accuracy(REFERENCE, "classification", _rows()))
    assert result.top1 is None and result.metric in ("confident_agreement",
                                                     "argmax_agreement")
    assert result.drop_points == pytest.approx((1 - result.value) * 100)


def test_unknown_outputs_are_generic_closeness_never_an_argmax():
    assert resolve_task(None, _rows()) is Task.GENERIC
    fp32 = measure_accuracy(REFERENCE, resolve_task(None, _rows()), _rows())
    assert (fp32.metric, fp32.value, fp32.drop_points) == ("sqnr_db", None, 0.0)
    result = measure_accuracy(OUTPUTS, "generic", _rows(), REFERENCE, fp32)
    assert "argmax_agreement" not in result.metrics and "top1" not in result.metrics
    assert result.metrics["cosine"] == pytest.approx(COSINE_MEAN)
    assert result.metrics["max_abs_diff"] == 2.0
    assert result.drop_points == pytest.approx((1 - COSINE_MEAN) * 100)
    assert result.unit == "dB"


def test_detection_maps_are_scored_on_boxes_and_labels_are_ignored():
    maps = np.zeros((2, 1, 64, 64), np.float32)
    maps[:, :, 10:20, 10:40] = 0.9  # one text line per row
    shifted = np.roll(maps, 30, axis=2)  # the line moved: no box overlaps
    fp32 = measure_accuracy(maps, "detection", _rows(np.array([0, 1]), rows=2))
    assert fp32.metric == "box_f1_vs_fp32" and fp32.value == 1.0
    result = measure_accuracy(shifted, "detection", _rows(np.array([0, 1]), rows=2), maps,
                              fp32)
    assert result.metrics["box_f1_vs_fp32"] == 0.0 and result.drop_points == 100.0
    assert "top1" not in result.metrics and "argmax_agreement" not in result.metrics


def test_the_task_comes_from_the_option_then_the_zoo_set_then_the_labels():
    assert resolve_task("recognition", _rows(LABELS, task="detection")) is Task.RECOGNITION
    assert resolve_task(None, _rows(LABELS, task="detection")) is Task.DETECTION
    assert resolve_task(None, _rows(LABELS)) is Task.CLASSIFICATION
    with pytest.raises(QuantkitError, match="task"):
        resolve_task("segmentation", _rows())


def test_label_beyond_the_outputs_is_refused_naming_it():
    with pytest.raises(QuantkitError, match=r"my.npz: largest label is 7 .* 3 outputs"):
        measure_accuracy(LOGITS, "classification", _rows(np.array([0, 7, 1, 2])),
                         source="my.npz")


def test_bad_labels_and_shapes_are_refused():
    with pytest.raises(QuantkitError, match=r"labels have shape \[3\].*4 rows"):
        measure_accuracy(LOGITS, "classification", _rows(LABELS[:3]))
    with pytest.raises(QuantkitError, match="float64"):
        top1(LOGITS, LABELS.astype(np.float64))
    with pytest.raises(QuantkitError, match="must be >= 0"):
        top1(LOGITS, np.array([0, -1, 2, 0]))
    with pytest.raises(QuantkitError, match=r"\[4, 3\].*\[3, 3\]"):
        measure_accuracy(LOGITS, "classification", _rows(LABELS), LOGITS[:3])
