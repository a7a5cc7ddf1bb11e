"""The zoo's data sets: shapes and dtypes the models take, ground truth per row, seeded,
calibration and held-out sets disjoint, and reachable as zoo:NAME through load_dataset."""
from __future__ import annotations

import numpy as np
import pytest

from quantkit.data import CALIBRATION, EVAL, FeedError, FeedSpec
from quantkit.data.sources import load_dataset
from quantkit.errors import QuantkitError
from quantkit.zoo import datasets
from quantkit.zoo.datasets import zoo_dataset

DET = (FeedSpec("x", (-1, 3, -1, -1), "float32"),)  # the PP-OCR models' own feeds
REC = (FeedSpec("x", (-1, 3, 48, -1), "float32"),)
CLS = (FeedSpec("x", (-1, 3, -1, -1), "float32"),)
SMALL = 128  # detector side for these tests (the zoo's default is 640)


def test_detection_rows_and_truth():
    data = zoo_dataset("ppocr-det-eval", DET, EVAL, size=SMALL, limit=7)
    images = data.inputs["x"]
    assert images.shape == (7, 3, SMALL, SMALL) and images.dtype == np.float32
    assert images.min() >= -1 and images.max() <= 1
    assert data.labels is None and len(data.truth) == data.rows == 7
    photos = [index for index, truth in enumerate(data.truth) if truth is None]
    assert photos == [2, 6]  # the split's photos (text unknown) between rendered pages
    for truth in data.truth:
        if truth is not None:
            assert truth.ndim == 3 and truth.shape[1:] == (4, 2) and len(truth)
            assert truth.min() >= 0 and truth.max() <= SMALL
    assert data.extra["size"] == SMALL and data.describe()["source"] == "zoo:ppocr-det-eval"


def test_recognition_rows_are_lines_with_their_strings():
    from quantkit.zoo.ppocr import charset

    data = zoo_dataset("ppocr-rec-calib", REC, CALIBRATION, limit=9)
    assert data.inputs["x"].shape == (9, 3, 48, 320) and data.inputs["x"].dtype == np.float32
    assert len(data.truth) == 9 and all(isinstance(text, str) and text for text in data.truth)
    assert set("".join(data.truth)) <= set(charset()[1:])
    # Lines are padded on the right with zeros, as PP-OCR pads them.
    assert (data.inputs["x"][:, :, :, -1] == 0).mean() > 0.5


def test_classification_rows_mix_kinds_and_turn_half():
    data = zoo_dataset("ppocr-cls-eval", CLS, EVAL, limit=24)
    assert data.inputs["x"].shape == (24, 3, 48, 192) and data.inputs["x"].dtype == np.float32
    assert data.labels.dtype == np.int64 and data.labels.tolist() == [0, 0, 0, 1, 1, 1] * 4
    assert data.truth is None
    kinds = datasets.cls_kinds(24)
    assert kinds[:3] == datasets.CLS_KINDS and data.extra["kinds"] == {k: 8 for k in
                                                                       datasets.CLS_KINDS}


def test_seeded_and_a_limit_is_a_prefix():
    small = zoo_dataset("ppocr-cls-calib", CLS, CALIBRATION, limit=6)
    more = zoo_dataset("ppocr-cls-calib", CLS, CALIBRATION, limit=12)
    np.testing.assert_array_equal(small.inputs["x"], more.inputs["x"][:6])
    again = zoo_dataset("ppocr-det-calib", DET, CALIBRATION, size=SMALL, limit=3)
    first = zoo_dataset("ppocr-det-calib", DET, CALIBRATION, size=SMALL, limit=3)
    assert again.fingerprint == first.fingerprint
    np.testing.assert_array_equal(again.truth[0], first.truth[0])


@pytest.mark.parametrize("task, feeds, size", [("det", DET, SMALL), ("rec", REC, None),
                                               ("cls", CLS, None)])
def test_calibration_and_eval_sets_are_disjoint(task, feeds, size):
    calib = zoo_dataset(f"ppocr-{task}-calib", feeds, CALIBRATION, size=size, limit=6)
    heldout = zoo_dataset(f"ppocr-{task}-eval", feeds, EVAL, size=size, limit=6)
    a = calib.inputs["x"].reshape(6, -1)
    b = heldout.inputs["x"].reshape(6, -1)
    assert not any(np.array_equal(row, other) for row in a for other in b)
    if task == "rec":
        assert not set(calib.truth) & set(heldout.truth)


def test_the_splits_share_no_source_image():
    calib, heldout = datasets.SPLITS["calib"], datasets.SPLITS["eval"]
    assert not (set(calib.photos) | set(calib.backgrounds)) & \
        (set(heldout.photos) | set(heldout.backgrounds))
    assert calib.seed != heldout.seed and calib.page_lines != heldout.page_lines


def test_load_dataset_reads_zoo_specs():
    data = load_dataset("zoo:ppocr-cls-eval", CLS, EVAL, limit=5)
    assert data.rows == 5 and data.name == "ppocr-cls-eval"
    with pytest.raises(QuantkitError, match="did you mean 'ppocr-rec-eval'"):
        load_dataset("zoo:ppocr-rec-evl", REC)
    with pytest.raises(QuantkitError, match="--mean/--std apply to image folders only"):
        load_dataset("zoo:ppocr-cls-eval", CLS, mean=0.5)


def test_refusals_name_the_set():
    with pytest.raises(QuantkitError, match="fixed input shape"):
        zoo_dataset("ppocr-rec-eval", REC, size=320)
    with pytest.raises(QuantkitError, match="one image input"):
        zoo_dataset("ppocr-cls-eval", CLS * 2)
    with pytest.raises(QuantkitError, match="positive number of rows"):
        zoo_dataset("ppocr-cls-eval", CLS, limit=0)
    fixed = (FeedSpec("x", (-1, 3, 48, 100), "float32"),)
    with pytest.raises(FeedError, match="eval set zoo:ppocr-rec-eval.*48, 320"):
        zoo_dataset("ppocr-rec-eval", fixed, EVAL, limit=2)
