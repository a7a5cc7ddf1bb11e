"""Accuracy scoring on hand-computed examples: top-1, drop, agreement with the FP32 outputs."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from quantkit.benchmark.accuracy import measure_accuracy
from quantkit.benchmark.results import Accuracy
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


def test_measure_accuracy_fills_everything_it_can():
    result = measure_accuracy(LOGITS, LABELS, reference_outputs=LOGITS * 2,
                              reference_top1=1.0)
    assert isinstance(result, Accuracy)
    assert result.rows == 4 and result.top1 == 0.75 and result.reference_top1 == 1.0
    assert result.drop_points == pytest.approx(25.0)  # positive: accuracy was lost
    assert result.argmax_agreement == 1.0 and result.cosine_mean == pytest.approx(1.0)
    assert result.max_abs_diff == 5.0  # row 2: |10 - 5|


def test_measure_accuracy_gain_is_negative_drop():
    assert measure_accuracy(LOGITS, LABELS, reference_top1=0.5).drop_points == \
        pytest.approx(-25.0)


def test_measure_accuracy_leaves_unknowns_empty():
    assert measure_accuracy(LOGITS) == Accuracy(rows=4)
    labels_only = measure_accuracy(LOGITS, LABELS)
    assert (labels_only.top1, labels_only.drop_points, labels_only.cosine_mean) == \
        (0.75, None, None)
    reference_only = measure_accuracy(OUTPUTS, reference_outputs=REFERENCE)
    assert reference_only.top1 is None
    assert reference_only.cosine_mean == pytest.approx(COSINE_MEAN)
    # a reference top-1 without labels gives no drop
    assert measure_accuracy(LOGITS, reference_top1=0.9).drop_points is None


def test_label_beyond_the_outputs_is_refused_naming_it():
    with pytest.raises(QuantkitError, match=r"my.npz: largest label is 7 .* 3 outputs"):
        measure_accuracy(LOGITS, np.array([0, 7, 1, 2]), source="my.npz")


def test_bad_labels_and_shapes_are_refused():
    with pytest.raises(QuantkitError, match=r"labels have shape \[3\].*4 rows"):
        measure_accuracy(LOGITS, LABELS[:3])
    with pytest.raises(QuantkitError, match="float64"):
        top1(LOGITS, LABELS.astype(np.float64))
    with pytest.raises(QuantkitError, match="must be >= 0"):
        top1(LOGITS, np.array([0, -1, 2, 0]))
    with pytest.raises(QuantkitError, match=r"FP32 reference has \[3, 3\]"):
        measure_accuracy(LOGITS, LABELS, reference_outputs=LOGITS[:3])
