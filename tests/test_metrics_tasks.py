"""score(task, ...) and headline(task) on small outputs with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from quantkit.errors import QuantkitError
from quantkit.metrics.dense import DBSettings
from quantkit.metrics.tasks import Headline, fp32_drop, headline, probabilities, score
from quantkit.zoo.config import Task

FP32 = np.array([[0.9, 0.1], [0.2, 0.8], [0.55, 0.45], [0.05, 0.95]])
INT8 = np.array([[0.85, 0.15], [0.6, 0.4], [0.45, 0.55], [0.1, 0.9]])


def test_classification_agreement_where_fp32_is_confident_and_mean_dp():
    result = score(Task.CLASSIFICATION, INT8, FP32, labels=np.array([0, 1, 1, 1]))
    assert result["top1"] == 0.75  # rows 0, 2, 3 right
    assert result["argmax_agreement"] == 0.5  # rows 1 and 2 flipped
    assert result["confident_rows"] == 0.75  # row 2 (0.55) is not confident
    assert result["confident_agreement"] == pytest.approx(2 / 3)  # row 1 flipped among 3
    assert result["mean_abs_prob_diff"] == pytest.approx(np.mean([0.05, 0.4, 0.1, 0.05]))
    unsure = score("classification", INT8[2:3], FP32[2:3])
    assert "confident_agreement" not in unsure and unsure["confident_rows"] == 0.0


def test_logits_are_softmaxed_before_probabilities_are_compared():
    logits = np.log(FP32) + 3.0  # the same probabilities, shifted logits
    np.testing.assert_allclose(probabilities(logits), FP32)
    np.testing.assert_allclose(probabilities(FP32), FP32)
    result = score("classification", np.log(INT8), logits)
    assert result["mean_abs_prob_diff"] == pytest.approx(np.mean([0.05, 0.4, 0.1, 0.05]))


def test_detection_scores_boxes_not_pixels():
    db = DBSettings(0.3, 0.5, 100, 1.6, True)
    maps = np.zeros((2, 1, 64, 96), np.float32)
    maps[0, 0, 20:36, 10:80] = 0.9
    shifted = np.roll(maps, 2, axis=3)
    truth = [np.array([[[8, 17], [82, 17], [82, 39], [8, 39]]], np.float32), None]
    result = score("detection", shifted, maps, truth=truth, db=db)
    assert 0.85 < result["map_iou"] < 1.0
    assert result["box_f1_vs_fp32"] == 1.0 and result["box_f1_vs_truth"] == 1.0
    assert not any("argmax" in name or "top1" in name for name in result)


def test_recognition_decodes_then_compares_text():
    charset = ("blank", "a", "b", " ")
    steps = [[1, 0, 2, 2], [3, 1, 1, 0]]  # "ab", " a"
    wrong = [[1, 0, 1, 2], [3, 1, 1, 0]]  # "ab" with one step off -> "aab"
    scores = np.eye(4, dtype=np.float32)[steps]
    result = score(Task.RECOGNITION, np.eye(4, dtype=np.float32)[wrong], scores,
                   truth=["ab", "a"], charset=charset)
    assert result["step_agreement"] == pytest.approx(7 / 8)
    assert result["cer_vs_fp32"] == pytest.approx(1 / 3)  # one insertion over "ab" + "a"
    assert result["cer_vs_truth"] == pytest.approx(1 / 3)
    assert result["line_agreement"] == 0.5 and result["line_accuracy"] == 0.5
    exact = score("recognition", scores, truth=["ab", "a"], charset=charset)
    assert exact == {"cer_vs_truth": 0.0, "line_accuracy": 1.0}  # spaces ignored


def test_generic_closeness_to_fp32():
    reference = np.array([[1.0, -2.0, 3.0]])
    result = score("generic", reference + 0.01, reference)
    assert result["max_abs_diff"] == pytest.approx(0.01)
    assert result["cosine"] > 0.9999 and 40 < result["sqnr_db"] < 50


def test_refusals():
    with pytest.raises(QuantkitError, match="nothing to score"):
        score("classification", FP32)
    with pytest.raises(QuantkitError, match="labels are class indices"):
        score("detection", np.zeros((1, 1, 8, 8)), labels=np.array([0]))
    with pytest.raises(QuantkitError, match="same rows"):
        score("generic", FP32, FP32[:2])
    with pytest.raises(QuantkitError, match="one per row"):
        score("recognition", np.zeros((2, 3, 4)), truth=["a"], charset="_abc")
    with pytest.raises(QuantkitError, match="unknown task 'ocr'"):
        score("ocr", FP32, FP32)


def test_headlines():
    assert headline("classification") == Headline("top1", "top-1 accuracy", True)
    assert headline(Task.CLASSIFICATION, with_truth=False).metric == "confident_agreement"
    assert headline("detection").metric == "box_f1_vs_truth"
    assert headline("detection", with_truth=False).metric == "box_f1_vs_fp32"
    metric, _, higher, unit = headline("recognition")
    assert (metric, higher) == ("cer_vs_truth", False)
    assert headline("generic") == Headline("sqnr_db", "SQNR vs FP32 (dB)", True, "dB")


def test_the_budget_drop_of_a_recogniser_is_its_cer_not_an_argmax():
    """One wrong step of eight moves CER vs the truth by 1/3 (34 points), not 1/8."""
    charset = ("blank", "a", "b", " ")
    fp32 = np.eye(4, dtype=np.float32)[[[1, 0, 2, 2], [3, 1, 1, 0]]]  # "ab", " a": both right
    int8 = np.eye(4, dtype=np.float32)[[[1, 0, 1, 2], [3, 1, 1, 0]]]  # "aab", " a"
    with_truth = fp32_drop("recognition", ["ab", "a"], charset=charset)
    assert with_truth(int8, fp32) == pytest.approx(100 / 3)
    assert with_truth(fp32, fp32) == 0.0
    assert fp32_drop("recognition", charset=charset)(int8, fp32) == pytest.approx(100 / 3)
    maps = np.zeros((1, 1, 64, 96), np.float32)
    maps[0, 0, 20:36, 10:80] = 0.9
    db = DBSettings(0.3, 0.5, 100, 1.6, True)
    assert fp32_drop("detection", db=db)(np.zeros_like(maps), maps) == 100.0  # box lost
