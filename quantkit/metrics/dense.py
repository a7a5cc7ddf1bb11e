"""Dense-map metrics for text detectors: binary-map IoU, PP-OCR's DB boxes, box matching.

A DB detector outputs a probability map per image; what a user gets is the boxes PP-OCR's
`DBPostProcess` draws from it, so a quantized detector is judged on those boxes (against
FP32's and against ground truth), not on an argmax over pixels. cv2, pyclipper and shapely
are imported where used.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from quantkit.errors import QuantkitError

SCORE_MODES = ("fast", "slow")  # DBPostProcess: box score over the min-area box / contour


@dataclass(frozen=True)
class DBSettings:
    """DBPostProcess's parameters (`quantkit.zoo.ppocr.db_settings()` reads rapidocr's)."""

    thresh: float  # probability above which a pixel is text
    box_thresh: float  # minimum mean probability inside a box
    max_candidates: int  # contours looked at per map
    unclip_ratio: float  # how far a box is grown back (DB shrinks text regions in training)
    use_dilation: bool  # dilate the bitmap with a 2x2 kernel first
    score_mode: str = "fast"
    min_size: int = 3  # DBPostProcess.min_size (in rapidocr's code, not its config)

    def __post_init__(self):
        if self.score_mode not in SCORE_MODES:
            raise QuantkitError(f"DB score_mode must be one of {', '.join(SCORE_MODES)}, got "
                                f"{self.score_mode!r}")


def binary_map_iou(maps: np.ndarray, reference: np.ndarray, threshold: float) -> float:
    """IoU of the pixels above `threshold`, pooled over all rows; 1.0 when neither has any."""
    maps, reference = np.asarray(maps), np.asarray(reference)
    if maps.shape != reference.shape:
        raise QuantkitError(f"maps have shape {list(maps.shape)} but the reference has "
                            f"{list(reference.shape)}; both must come from the same rows")
    a, b = maps > threshold, reference > threshold
    union = int(np.count_nonzero(a | b))
    return 1.0 if union == 0 else int(np.count_nonzero(a & b)) / union


def prob_map(output: np.ndarray) -> np.ndarray:
    """One image's map as [H, W] float32 (a [1, H, W] DB output is squeezed)."""
    output = np.asarray(output, dtype=np.float32)
    if output.ndim == 3 and output.shape[0] == 1:
        output = output[0]
    if output.ndim != 2:
        raise QuantkitError(f"a detection map is [H, W] or [1, H, W], got shape "
                            f"{list(output.shape)}")
    return output


def db_boxes(prob: np.ndarray, settings: DBSettings) -> np.ndarray:
    """The text boxes PP-OCR draws from one probability map: [K, 4, 2] float32 corners.

    rapidocr's `DBPostProcess` and `TextDetector.filter_tag_det_res`: bitmap > thresh
    (dilated if set), contours, min-area boxes of at least `min_size`, mean probability
    >= box_thresh, unclip by area * ratio / perimeter, min-area box again, rounded and
    clipped to the map, corners clockwise from top-left, boxes of 3 px or less dropped.
    Coordinates are the map's pixels (the model input's, for a DB head).
    """
    import cv2

    prob = prob_map(prob)
    height, width = prob.shape
    bitmap = (prob > settings.thresh).astype(np.uint8)
    if settings.use_dilation:
        bitmap = cv2.dilate(bitmap, np.ones((2, 2), np.uint8))
    contours = cv2.findContours(bitmap * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)[-2]
    boxes = []
    for contour in contours[:settings.max_candidates]:
        points, side = _mini_box(contour)
        if side < settings.min_size:
            continue
        outline = points if settings.score_mode == "fast" else contour.reshape(-1, 2)
        if _mean_inside(prob, outline) < settings.box_thresh:
            continue
        expanded = _unclip(points, settings.unclip_ratio)
        if expanded is None:
            continue
        box, side = _mini_box(expanded)
        if side < settings.min_size + 2:
            continue
        box[:, 0] = np.clip(np.round(box[:, 0]), 0, width)
        box[:, 1] = np.clip(np.round(box[:, 1]), 0, height)
        box = _clockwise(box.astype(np.int32).astype(np.float32))
        box[:, 0] = np.clip(box[:, 0], 0, width - 1)
        box[:, 1] = np.clip(box[:, 1], 0, height - 1)
        if int(np.linalg.norm(box[0] - box[1])) <= 3 or int(np.linalg.norm(box[0] - box[3])) <= 3:
            continue
        boxes.append(box)
    return np.array(boxes, dtype=np.float32).reshape(-1, 4, 2)


def _mini_box(contour: np.ndarray) -> tuple[np.ndarray, float]:
    """The min-area rectangle's corners (DBPostProcess.get_mini_boxes order) and short side."""
    import cv2

    rect = cv2.minAreaRect(np.asarray(contour, dtype=np.float32).reshape(-1, 1, 2))
    points = sorted(cv2.boxPoints(rect).tolist(), key=lambda point: point[0])
    first, fourth = (0, 1) if points[1][1] > points[0][1] else (1, 0)
    second, third = (2, 3) if points[3][1] > points[2][1] else (3, 2)
    corners = np.array([points[first], points[second], points[third], points[fourth]],
                       dtype=np.float32)
    return corners, min(rect[1])


def _mean_inside(prob: np.ndarray, outline: np.ndarray) -> float:
    """Mean probability inside a polygon (DBPostProcess.box_score_fast / _slow)."""
    import cv2

    height, width = prob.shape
    outline = np.asarray(outline, dtype=np.float64).copy()
    xmin, ymin = (int(np.clip(np.floor(outline[:, axis].min()), 0, limit - 1))
                  for axis, limit in ((0, width), (1, height)))
    xmax, ymax = (int(np.clip(np.ceil(outline[:, axis].max()), 0, limit - 1))
                  for axis, limit in ((0, width), (1, height)))
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    outline -= (xmin, ymin)
    cv2.fillPoly(mask, outline.reshape(1, -1, 2).astype(np.int32), 1)
    return cv2.mean(prob[ymin:ymax + 1, xmin:xmax + 1], mask)[0]


def _unclip(box: np.ndarray, ratio: float) -> np.ndarray | None:
    """The box grown by area * ratio / perimeter (None if that splits it, as PaddleOCR)."""
    import pyclipper
    from shapely.geometry import Polygon

    polygon = Polygon(box)
    if polygon.length == 0:
        return None
    offset = pyclipper.PyclipperOffset()
    offset.AddPath([tuple(point) for point in box.tolist()], pyclipper.JT_ROUND,
                   pyclipper.ET_CLOSEDPOLYGON)
    paths = offset.Execute(polygon.area * ratio / polygon.length)
    if len(paths) != 1:
        return None
    return np.array(paths[0], dtype=np.float32).reshape(-1, 1, 2)


def _clockwise(box: np.ndarray) -> np.ndarray:
    """Corners as top-left, top-right, bottom-right, bottom-left (order_points_clockwise)."""
    by_x = box[np.argsort(box[:, 0], kind="stable")]
    left = by_x[:2][np.argsort(by_x[:2, 1], kind="stable")]
    right = by_x[2:][np.argsort(by_x[2:, 1], kind="stable")]
    return np.array([left[0], right[0], right[1], left[1]], dtype=np.float32)


def quads(boxes) -> np.ndarray:
    """Boxes as a [K, 4, 2] float64 array of corner points (K may be 0)."""
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        return array.reshape(0, 4, 2)
    if array.ndim != 3 or array.shape[1:] != (4, 2):
        raise QuantkitError(f"boxes must be [K, 4, 2] corner points, got shape "
                            f"{list(array.shape)}")
    return array


def iou_matrix(pred, truth) -> np.ndarray:
    """Polygon IoU of every predicted box with every true box: [K_pred, K_truth]."""
    import shapely

    pred, truth = quads(pred), quads(truth)
    if not len(pred) or not len(truth):
        return np.zeros((len(pred), len(truth)))
    a = shapely.make_valid(shapely.polygons(pred))[:, None]
    b = shapely.make_valid(shapely.polygons(truth))[None, :]
    inter = shapely.area(shapely.intersection(a, b))
    union = shapely.area(a) + shapely.area(b) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_count(pred, truth, iou_threshold: float = 0.5) -> int:
    """Pairs matched one-to-one, greedily by highest IoU, among pairs with IoU >= threshold."""
    ious = iou_matrix(pred, truth)
    rows, cols = np.nonzero(ious >= iou_threshold)
    order = np.argsort(-ious[rows, cols], kind="stable")
    used_pred, used_truth = set(), set()
    for index in order:
        p, t = int(rows[index]), int(cols[index])
        if p not in used_pred and t not in used_truth:
            used_pred.add(p)
            used_truth.add(t)
    return len(used_pred)


def precision_recall_f1(matched: int, predicted: int, expected: int) -> tuple[float, float, float]:
    """From counts. Nothing predicted: precision 1; nothing expected: recall 1 (so no truth
    and no predictions scores 1, 1, 1); F1 is 0 when either is 0."""
    precision = matched / predicted if predicted else 1.0
    recall = matched / expected if expected else 1.0
    total = precision + recall
    return precision, recall, (2 * precision * recall / total if total else 0.0)


def box_match(pred, truth, iou_threshold: float = 0.5) -> tuple[float, float, float]:
    """Precision, recall, F1 of one image's predicted boxes against its true boxes."""
    return precision_recall_f1(match_count(pred, truth, iou_threshold), len(quads(pred)),
                               len(quads(truth)))


def pooled_match(predicted: Sequence, expected: Sequence,
                 iou_threshold: float = 0.5) -> tuple[float, float, float]:
    """Precision, recall, F1 over many images, from their summed counts (as ICDAR's)."""
    matched = sum(match_count(p, t, iou_threshold) for p, t in zip(predicted, expected))
    return precision_recall_f1(matched, sum(len(quads(p)) for p in predicted),
                               sum(len(quads(t)) for t in expected))


def score_maps(maps: np.ndarray, settings: DBSettings, reference: np.ndarray | None = None,
               truth: Sequence | None = None, iou_threshold: float = 0.5) -> dict[str, float]:
    """A batch of maps [N, 1, H, W] (or [N, H, W]) against FP32's maps and true boxes.

    With `reference`: map_iou at the DB threshold, mean_abs_prob_diff, and box precision /
    recall / F1 with FP32's boxes as the truth (`*_vs_fp32`). With `truth` (one [K, 4, 2]
    per row, None where a row's boxes are unknown): `*_vs_truth` over the known rows.
    """
    maps = np.asarray(maps)
    if maps.ndim not in (3, 4) or maps.shape[0] == 0:
        raise QuantkitError(f"detection outputs must be maps [N, 1, H, W] or [N, H, W], got "
                            f"shape {list(maps.shape)}")
    boxes = [db_boxes(row, settings) for row in maps]
    scores: dict[str, float] = {}
    if reference is not None:
        reference = np.asarray(reference)
        scores["map_iou"] = binary_map_iou(maps, reference, settings.thresh)
        scores["mean_abs_prob_diff"] = float(np.mean(np.abs(maps.astype(np.float64)
                                                            - reference)))
        fp32 = [db_boxes(row, settings) for row in reference]
        _add_prf(scores, "vs_fp32", pooled_match(boxes, fp32, iou_threshold))
    if truth is not None:
        if len(truth) != len(maps):
            raise QuantkitError(f"{len(truth)} ground-truth entries for {len(maps)} maps: "
                                "give one per row (None where unknown)")
        known = [index for index, row in enumerate(truth) if row is not None]
        if known:
            _add_prf(scores, "vs_truth", pooled_match([boxes[i] for i in known],
                                                      [truth[i] for i in known], iou_threshold))
    return scores


def _add_prf(scores: dict[str, float], suffix: str, prf: tuple[float, float, float]) -> None:
    for name, value in zip(("box_precision", "box_recall", "box_f1"), prf):
        scores[f"{name}_{suffix}"] = float(value)
