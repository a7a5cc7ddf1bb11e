"""The zoo's data sets (`zoo:NAME`): seeded calibration and held-out rows for PP-OCR.

Built here from what ships offline (scikit-image's photos and text pages, rendered text)
and preprocessed as PP-OCR does, so `load_dataset("zoo:ppocr-det-eval", ...)` gives a
checked Dataset with ground truth. Calibration and held-out sets never share a source
image or a seed, so a quantized model is scored on data its scales never saw.
"""
from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from quantkit.data.dataset import EVAL, DataRole, Dataset
from quantkit.data.feeds import FeedSpec, feeds_text
from quantkit.errors import QuantkitError
from quantkit.suggest import did_you_mean

DET_SIZE = 640  # default detector input side
CLS_KINDS = ("rendered", "page", "photo")  # classifier crops, in this order row by row


@dataclass(frozen=True)
class _Split:
    seed: int
    photos: tuple[str, ...]  # scikit-image images the detector sees whole
    backgrounds: tuple[str, ...]  # photos under rendered text, and the cls photo patches
    page_lines: int  # page.png's printed lines with this parity give the cls page crops


SPLITS = {
    "calib": _Split(seed=20241301, photos=("text.png", "astronaut.png", "chelsea.png",
                                           "camera.png"),
                    backgrounds=("astronaut.png", "chelsea.png", "camera.png", "grass.png"),
                    page_lines=0),
    "eval": _Split(seed=20241302, photos=("page.png", "coffee.png", "rocket.jpg",
                                          "motorcycle_left.png"),
                   backgrounds=("coffee.png", "rocket.jpg", "motorcycle_left.png",
                                "gravel.png"),
                   page_lines=1),
}
ROWS = {"det": {"calib": 16, "eval": 24}, "rec": {"calib": 64, "eval": 128},
        "cls": {"calib": 96, "eval": 192}}
TASKS = {"det": "detection", "rec": "recognition", "cls": "classification"}  # zoo.config.Task
SETS = tuple(f"ppocr-{task}-{split}" for task in ROWS for split in SPLITS)
_STREAMS = {"det": 1, "rec": 2, "cls": 3, "cls-pages": 4}  # independent seeds per use


def zoo_dataset(name: str, feeds: Sequence[FeedSpec], role: DataRole = EVAL,
                size: int | None = None, limit: int | None = None) -> Dataset:
    """The zoo set `name` (one of SETS) for a one-feed PP-OCR model; its first `limit` rows.

    `size` is the detector input side (a multiple of 32, default 640); recognition
    (3x48x320) and classification (3x48x192) rows have PP-OCR's fixed input shapes.
    Truth: det, one [K, 4, 2] quad array per rendered page (None for a photo, whose text
    is unknown); rec, the line's string; cls, labels 0 (upright) / 1 (turned 180).
    """
    where = f"{role.noun} zoo:{name}"
    if name not in SETS:
        raise QuantkitError(f"unknown zoo data set '{name}'{did_you_mean(name, SETS)}: "
                            f"choose one of {', '.join(SETS)}")
    task, split = name.split("-")[1:]
    if len(feeds) != 1:
        raise QuantkitError(f"{where} feeds one image input, but the model has feeds "
                            f"{feeds_text(feeds)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise QuantkitError(f"{where}: limit must be a positive number of rows, got {limit!r}")
    rows = ROWS[task][split] if limit is None else min(limit, ROWS[task][split])
    if task != "det" and size is not None:
        raise QuantkitError(f"{where}: size sets the detector's input side only; "
                            f"{task} rows have PP-OCR's fixed input shape")
    labels = truth = None
    extra = {"zoo": name, "seed": SPLITS[split].seed, "task": TASKS[task]}
    if task == "det":
        size = DET_SIZE if size is None else size
        images, truth = _det_rows(SPLITS[split], rows, size)
        extra["size"] = size
    elif task == "rec":
        images, truth = _rec_rows(SPLITS[split], rows)
    else:
        images, labels = _cls_rows(SPLITS[split], rows)
        extra["kinds"] = {kind: cls_kinds(rows).count(kind) for kind in CLS_KINDS}
    return Dataset.checked(name, f"zoo:{name}", {feeds[0].name: images}, labels, feeds,
                           where=where, truth=truth, extra=extra)


def cls_kinds(rows: int) -> tuple[str, ...]:
    """What each classifier row is: a rendered text crop, a page.png crop or a photo patch."""
    return tuple(CLS_KINDS[row % len(CLS_KINDS)] for row in range(rows))


def _row_seed(split: _Split, stream: str, row: int) -> int:
    return int(np.random.SeedSequence([split.seed, _STREAMS[stream], row]).generate_state(1)[0])


def _allowed() -> frozenset[str]:
    from quantkit.zoo.ppocr import charset

    return frozenset(charset()[1:])  # what the recogniser can output: no blank


# --- detection: whole photos and rendered pages --------------------------------------------

def _det_rows(split: _Split, rows: int, size: int):
    """Every fourth row (from the third) a photo while photos last, else a rendered page;
    pages alternate between a plain background and one of the split's photos."""
    from quantkit.zoo import ppocr, render

    images, truth = [], []
    photos, pages = iter(split.photos), 0
    for row in range(rows):
        photo = next(photos, None) if row % 4 == 2 else None
        if photo is not None:
            array, _ = ppocr.det_preprocess(ppocr.to_bgr(shipped_image(photo)), size)
            images.append(array)
            truth.append(None)
            continue
        background = None if pages % 2 == 0 else \
            shipped_image(split.backgrounds[(pages // 2) % len(split.backgrounds)])
        page = render.render_page(_row_seed(split, "det", row), size, background, _allowed())
        array, (scale_y, scale_x) = ppocr.det_preprocess(ppocr.to_bgr(page.image), size)
        images.append(array)
        truth.append(page.quads * np.array([scale_x, scale_y], dtype=np.float32))
        pages += 1
    return np.stack(images), truth


# --- recognition: rendered lines ------------------------------------------------------------

def _rec_rows(split: _Split, rows: int):
    """Lines on plain backgrounds, every third one on a patch of the split's photos."""
    from quantkit.zoo import ppocr, render

    images, texts = [], []
    for row in range(rows):
        background = shipped_image(split.backgrounds[row // 3 % len(split.backgrounds)]) \
            if row % 3 == 1 else None
        line = render.render_line(_row_seed(split, "rec", row), background, _allowed())
        images.append(ppocr.rec_preprocess(ppocr.to_bgr(line.image)))
        texts.append(line.text)
    return np.stack(images), texts


# --- classification: mixed crops, half turned by 180 degrees -------------------------------

def _cls_rows(split: _Split, rows: int):
    """Row r is a crop of kind cls_kinds()[r], turned by 180 degrees when (r // 3) is odd
    (label 1): each kind is half upright, half turned."""
    from quantkit.zoo import ppocr

    rendered = _rendered_crops(split)
    images, labels = [], []
    for row, kind in enumerate(cls_kinds(rows)):
        rng = np.random.default_rng(_row_seed(split, "cls", row))
        if kind == "rendered":
            crop = next(rendered)
        elif kind == "page":
            crop = _page_crop(rng, split)
        else:
            crop = _photo_patch(rng, shipped_image(split.backgrounds[row // 3 %
                                                                     len(split.backgrounds)]))
        label = (row // len(CLS_KINDS)) % 2
        if label:
            crop = crop[::-1, ::-1]
        images.append(ppocr.cls_preprocess(ppocr.to_bgr(np.ascontiguousarray(crop))))
        labels.append(label)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def _rendered_crops(split: _Split) -> Iterator[np.ndarray]:
    """Detector-like crops around each text item of rendered pages, page after page."""
    from quantkit.zoo import render

    for index in itertools.count():
        seed = _row_seed(split, "cls-pages", index)
        background = None if index % 2 == 0 else \
            shipped_image(split.backgrounds[(index // 2) % len(split.backgrounds)])
        page = render.render_page(seed, DET_SIZE, background, _allowed())
        rng = np.random.default_rng(seed)
        for quad in page.quads:
            left, top = quad.min(axis=0)
            right, bottom = quad.max(axis=0)
            yield _window(rng, page.image, top, bottom, left, right)


def _page_crop(rng: np.random.Generator, split: _Split) -> np.ndarray:
    """A window over one of page.png's printed lines (this split's half of them)."""
    lines = _page_lines()[split.page_lines::2]
    top, bottom, left, right = lines[int(rng.integers(len(lines)))]
    return _window(rng, shipped_image("page.png"), top, bottom, left, right)


@functools.lru_cache(maxsize=1)
def _page_lines() -> tuple[tuple[int, int, int, int], ...]:
    from quantkit.datasets.text_crops import _text_lines

    return tuple(_text_lines(shipped_image("page.png")))


def _window(rng: np.random.Generator, image: np.ndarray, top: float, bottom: float,
            left: float, right: float) -> np.ndarray:
    """A crop around the line box (top, bottom, left, right) as PP-OCR cuts a detector's
    box: a margin of 0-20% of the height above and below, 0-25% at the ends, and for long
    text sometimes only a stretch of it (aspect 2 or more)."""
    height = bottom - top
    width = right - left
    if width > 4 * height and rng.random() < 0.5:
        stretch = width * rng.uniform(max(0.3, 2 * height / width), 1.0)
        left += rng.uniform(0, width - stretch)
        right = left + stretch
    above, below = (height * rng.uniform(0.0, 0.2) for _ in range(2))
    ends = height * rng.uniform(0, 0.25)
    y0, y1 = max(0, math.floor(top - above)), min(image.shape[0], math.ceil(bottom + below))
    x0, x1 = max(0, math.floor(left - ends)), min(image.shape[1], math.ceil(right + ends))
    return image[y0:y1, x0:x1]


def _photo_patch(rng: np.random.Generator, photo: np.ndarray) -> np.ndarray:
    """A random strip of a photo, shaped like a text line (height 16-120 px, aspect 1.5-8)."""
    h, w = photo.shape[:2]
    height = int(min(h, round(math.exp(rng.uniform(math.log(16), math.log(120))))))
    width = int(min(w, round(height * rng.uniform(1.5, 8))))
    y, x = int(rng.integers(0, h - height + 1)), int(rng.integers(0, w - width + 1))
    return photo[y:y + height, x:x + width]


@functools.lru_cache(maxsize=None)
def shipped_image(name: str) -> np.ndarray:
    """An image of scikit-image's data folder as shipped (gray, RGB or RGBA uint8), decoded
    once per process and read-only."""
    from quantkit.datasets.text_crops import _decode_png, _package_dir

    path = _package_dir("skimage", "scikit-image") / "data" / name
    if not path.is_file():
        raise QuantkitError(f"image missing from scikit-image: {path} (reinstall scikit-image)")
    image = np.array(_decode_png(path))
    image.flags.writeable = False
    return image
