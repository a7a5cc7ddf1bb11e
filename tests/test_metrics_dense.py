"""Detection metrics on hand-made maps and boxes with known answers, and DB post-processing
against rapidocr's own DBPostProcess (the code the models ship with)."""
from __future__ import annotations

import quantkit  # noqa: F401  - zlib before paddle (rapidocr's module imports it)
import cv2  # noqa: F401  - before paddle
import numpy as np
import pytest

from quantkit.errors import QuantkitError
from quantkit.metrics.dense import (DBSettings, binary_map_iou, box_match, db_boxes, iou_matrix,
                                    pooled_match, precision_recall_f1, score_maps)

DB = DBSettings(thresh=0.3, box_thresh=0.5, max_candidates=1000, unclip_ratio=1.6,
                use_dilation=True)


def _rect(x0, y0, x1, y1) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def test_binary_map_iou_pools_the_rows():
    maps = np.zeros((2, 1, 4, 4), np.float32)
    reference = np.zeros_like(maps)
    maps[0, 0, :2] = 0.9  # 8 pixels
    reference[0, 0, 1:3] = 0.9  # 8 pixels, 4 shared
    maps[1, 0, 3, :2] = 0.9  # 2 pixels, none shared
    assert binary_map_iou(maps, reference, 0.3) == pytest.approx(4 / 14)
    assert binary_map_iou(maps, maps, 0.3) == 1.0
    assert binary_map_iou(maps, reference, 0.95) == 1.0  # neither has a pixel above: equal
    assert binary_map_iou(maps, np.ones_like(maps) * 0.9, 0.3) == pytest.approx(10 / 32)
    with pytest.raises(QuantkitError, match="same rows"):
        binary_map_iou(maps, reference[:1], 0.3)


def test_polygon_iou_and_greedy_one_to_one_matching():
    a, b = _rect(0, 0, 10, 10), _rect(5, 0, 15, 10)
    assert iou_matrix([a], [b])[0, 0] == pytest.approx(50 / 150)
    turned = np.array([[5, 0], [10, 5], [5, 10], [0, 5]], np.float64)  # a's inscribed diamond
    assert iou_matrix([turned], [a])[0, 0] == pytest.approx(0.5)
    assert box_match([a], [b], iou_threshold=0.3) == (1.0, 1.0, 1.0)
    assert box_match([a], [b]) == (0.0, 0.0, 0.0)
    # Two predictions on one true box: one match, the other a false positive.
    precision, recall, f1 = box_match([a, _rect(0, 0, 10, 9)], [a])
    assert (precision, recall, f1) == pytest.approx((0.5, 1.0, 2 / 3))
    # Greedy by IoU: the best pair is taken first, the second prediction finds its own box.
    p, r, _ = box_match([_rect(0, 0, 10, 10), _rect(4, 0, 14, 10)],
                        [_rect(3, 0, 13, 10), _rect(0, 0, 9, 10)])
    assert (p, r) == (1.0, 1.0)


def test_empty_cases_are_defined():
    none = np.zeros((0, 4, 2))
    assert box_match(none, none) == (1.0, 1.0, 1.0)
    assert box_match([_rect(0, 0, 5, 5)], none) == (0.0, 1.0, 0.0)
    assert box_match(none, [_rect(0, 0, 5, 5)]) == (1.0, 0.0, 0.0)
    assert precision_recall_f1(0, 0, 0) == (1.0, 1.0, 1.0)
    assert pooled_match([none, [_rect(0, 0, 5, 5)]], [none, [_rect(0, 0, 5, 5)]]) == \
        (1.0, 1.0, 1.0)
    with pytest.raises(QuantkitError, match=r"\[K, 4, 2\]"):
        box_match(np.zeros((2, 3)), none)


def _blob_map() -> np.ndarray:
    prob = np.zeros((100, 200), np.float32)
    prob[20:40, 30:130] = 0.9  # a text line
    prob[60:90, 150:190] = 0.4  # above thresh, but its mean is under box_thresh
    prob[70:72, 10:12] = 0.9  # under min_size
    prob[80:100, 120:140] = 0.8  # touching the bottom edge: clipped to the map
    return prob


def test_db_boxes_finds_grows_and_filters_like_pp_ocr():
    boxes = db_boxes(_blob_map(), DB)
    assert boxes.shape == (2, 4, 2) and boxes.dtype == np.float32
    line = boxes[np.argmin(boxes[:, :, 1].min(axis=1))]
    # The line (x 30..129, y 20..39; 100 x 20 px after dilation) grows by
    # area * 1.6 / perimeter = 2000 * 1.6 / 240 ~ 13.3 px on every side.
    (x0, y0), (x1, y1) = line.min(axis=0), line.max(axis=0)
    assert 15 <= x0 <= 18 and 141 <= x1 <= 145 and 5 <= y0 <= 8 and 51 <= y1 <= 55, line
    assert (boxes[:, :, 0] <= 199).all() and (boxes[:, :, 1] <= 99).all() and boxes.min() >= 0
    assert db_boxes(np.zeros((1, 32, 32), np.float32), DB).shape == (0, 4, 2)


def test_db_boxes_equal_rapidocrs_postprocess_on_random_maps():
    """The same boxes as rapidocr's DBPostProcess + TextDetector.filter_tag_det_res."""
    from rapidocr_paddle.ch_ppocr_det.text_detect import TextDetector
    from rapidocr_paddle.ch_ppocr_det.utils import DBPostProcess

    detector = object.__new__(TextDetector)  # its filter only, no predictor
    rng = np.random.default_rng(7)
    for settings in (DB, DBSettings(0.3, 0.6, 1000, 1.5, False, "slow")):
        post = DBPostProcess(thresh=settings.thresh, box_thresh=settings.box_thresh,
                             max_candidates=settings.max_candidates,
                             unclip_ratio=settings.unclip_ratio,
                             use_dilation=settings.use_dilation, score_mode=settings.score_mode)
        for _ in range(6):
            noise = rng.random((40, 60)).astype(np.float32)
            prob = cv2.resize(cv2.GaussianBlur(noise, (0, 0), 1.5), (240, 160))
            prob = np.clip((prob - prob.mean()) * 12 + 0.1, 0, 1).astype(np.float32)
            expected, _ = post(prob[None, None], prob.shape)
            expected = detector.filter_tag_det_res(expected, prob.shape)
            got = db_boxes(prob, settings)
            assert len(got) > 0
            np.testing.assert_array_equal(got, np.asarray(expected).reshape(-1, 4, 2))


def test_score_maps_against_fp32_and_truth():
    maps = np.stack([_blob_map(), np.zeros((100, 200), np.float32)])[:, None]
    fp32 = score_maps(maps, DB, reference=maps)
    assert fp32["map_iou"] == 1.0 and fp32["mean_abs_prob_diff"] == 0.0
    assert (fp32["box_precision_vs_fp32"], fp32["box_recall_vs_fp32"],
            fp32["box_f1_vs_fp32"]) == (1.0, 1.0, 1.0)
    truth = [np.array([_rect(16, 6, 144, 54)]), None]  # the second row's boxes are unknown
    found = score_maps(maps, DB, truth=truth)
    assert found["box_recall_vs_truth"] == 1.0 and found["box_precision_vs_truth"] == 0.5
    assert "map_iou" not in found
    assert "box_f1_vs_truth" not in score_maps(maps, DB, truth=[None, None])
    with pytest.raises(QuantkitError, match="one per row"):
        score_maps(maps, DB, truth=truth[:1])
    with pytest.raises(QuantkitError, match="score_mode"):
        DBSettings(0.3, 0.5, 10, 1.5, False, "exact")
