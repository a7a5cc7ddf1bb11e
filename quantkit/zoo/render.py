"""Rendered text with known ground truth: detection pages and recognition lines.

Real OCR benchmarks cannot be downloaded here, and a quantized OCR model must be judged on
what it reads, so text is drawn with Pillow in the DejaVu fonts (Debian fonts-dejavu-core,
installed by scripts/install-system-deps.sh) where every word's box and string are known.
Everything is drawn from one seed: the same seed gives the same pixels.
"""
from __future__ import annotations

import functools
import math
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Collection

import numpy as np

from quantkit.errors import QuantkitError

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
         "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf")  # all of fonts-dejavu-core
PRINTABLE = frozenset(string.ascii_letters + string.digits + string.punctuation + " ")
WORDS = (
    "the of and to in is you that it he was for on are as with his they at be this have "
    "from or one had by word but not what all were we when your can said there use an each "
    "which she do how their if will up other about out many then them these so some her "
    "would make like him into time has look two more write go see number no way could people "
    "my than first water been call who oil its now find long down day did get come made may "
    "part open sale total price invoice receipt street station exit entrance parking hotel "
    "coffee menu ticket order paid cash change date phone email office market bank pharmacy "
    "north south east west road avenue bridge museum library school river garden center "
    "Monday Friday June August London Paris Berlin Tokyo Quantum Paddle Model Kernel").split()
PAGE_ITEMS = (6, 14)  # text items per detection page
PAGE_FONT_PX = (16, 60)  # text height range at a 640 px page (scaled with the page)
LINE_FONT_PX = (22, 44)
LINE_MAX_ASPECT = 320 / 48  # PP-OCR rec input: wider lines would be squeezed


@dataclass(frozen=True)
class Page:
    """A detection page: RGB pixels, one quad per text item (corners clockwise from the
    top-left of the text, [K, 4, 2] x/y pixels) and the items' strings."""

    image: np.ndarray
    quads: np.ndarray
    texts: tuple[str, ...]


@dataclass(frozen=True)
class Line:
    """A recognition line: RGB pixels of one text line and its string."""

    image: np.ndarray
    text: str


def font_path(name: str) -> Path:
    path = FONT_DIR / name
    if not path.is_file():
        raise QuantkitError(f"font missing: {path}; install Debian's fonts-dejavu-core "
                            "(scripts/install-system-deps.sh does, as root)")
    return path


@functools.lru_cache(maxsize=256)
def _font(name: str, size: int):
    from PIL import ImageFont

    return ImageFont.truetype(str(font_path(name)), size)


def random_text(rng: np.random.Generator, allowed: Collection[str] = PRINTABLE,
                words: int = 1) -> str:
    """`words` items, each a word (any case) or a number as printed text shows them
    (prices, dates, times, codes), keeping only `allowed` characters."""
    items = []
    for _ in range(words):
        kind = rng.random()
        if kind < 0.6:
            word = str(rng.choice(WORDS))
            style = rng.random()
            word = word.upper() if style < 0.2 else word.capitalize() if style < 0.5 else word
        elif kind < 0.7:
            word = f"{rng.integers(0, 10 ** int(rng.integers(1, 7)))}"
        elif kind < 0.8:
            word = f"${rng.integers(0, 1000)}.{rng.integers(0, 100):02d}"
        elif kind < 0.87:
            word = f"{rng.integers(1990, 2031)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}"
        elif kind < 0.93:
            word = f"{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}"
        else:
            letters = "".join(rng.choice(list(string.ascii_uppercase), 2))
            word = f"{letters}-{rng.integers(100, 10000)}"
        items.append(word)
    text = "".join(char for char in " ".join(items) if char in allowed).strip()
    return text or "0"


def render_page(seed: int, size: int = 640, background: np.ndarray | None = None,
                allowed: Collection[str] = PRINTABLE) -> Page:
    """A size x size page of 6-14 text items (1-3 words or a number each) of many sizes,
    small rotations, on a plain background or on a random crop of `background` (an RGB or
    gray photo), with light blur and noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    canvas = Image.fromarray(_page_background(rng, size, background))
    scale = size / 640
    placed: list[np.ndarray] = []
    texts: list[str] = []
    for _ in range(int(rng.integers(PAGE_ITEMS[0], PAGE_ITEMS[1] + 1))):
        text = random_text(rng, allowed, words=int(rng.choice([1, 1, 2, 3])))
        height = _log_uniform(rng, *PAGE_FONT_PX) * scale
        angle = float(rng.uniform(-8, 8)) if rng.random() < 0.6 else 0.0
        patch, quad = _text_patch(text, _font(str(rng.choice(FONTS)), max(8, round(height))),
                                  angle)
        spot = _free_spot(rng, patch.size, quad, placed, size, margin=0.8 * height)
        if spot is None:
            continue
        x, y = spot
        quad = quad + (x, y)
        patch = _tinted(patch, _ink_colour(rng, canvas, quad))
        canvas.paste(patch, (x, y), patch)
        placed.append(quad)
        texts.append(text)
    image = _degrade(rng, canvas)
    quads = np.array(placed, dtype=np.float32).reshape(-1, 4, 2)
    return Page(image, quads, tuple(texts))


def render_line(seed: int, background: np.ndarray | None = None,
                allowed: Collection[str] = PRINTABLE) -> Line:
    """One text line (1-4 items, as many as fit a PP-OCR rec input without squeezing), cut
    as a detector's crop would be: some margin, a slight skew, light blur and noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    font = _font(str(rng.choice(FONTS)), round(_log_uniform(rng, *LINE_FONT_PX)))
    margin_y = font.size * rng.uniform(0.15, 0.45)
    margin_x = font.size * rng.uniform(0.05, 0.4)
    text = random_text(rng, allowed)
    for _ in range(int(rng.integers(0, 4))):
        longer = f"{text} {random_text(rng, allowed)}"
        width = font.getlength(longer) + 2 * margin_x
        if width > LINE_MAX_ASPECT * (font.size * 1.2 + 2 * margin_y):
            break
        text = longer
    patch, quad = _text_patch(text, font, float(rng.uniform(-2, 2)))
    left, top = quad.min(axis=0)
    right, bottom = quad.max(axis=0)
    box = (int(left - margin_x), int(top - margin_y), int(math.ceil(right + margin_x)),
           int(math.ceil(bottom + margin_y)))
    width, height = box[2] - box[0], box[3] - box[1]
    canvas = Image.fromarray(_page_background(rng, max(width, height), background)
                             ).crop((0, 0, width, height))
    patch = _tinted(patch, _ink_colour(rng, canvas, quad - box[:2]))
    canvas.paste(patch, (-box[0], -box[1]), patch)
    return Line(_degrade(rng, canvas), text)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _text_patch(text: str, font, angle: float):
    """White-on-transparent text turned by `angle` degrees, and the quad of its line box
    (clockwise from the text's own top-left) in the patch's pixels.

    The box spans the ink from left to right and the font's line from ascent to descent,
    as text renderers label lines and as PP-OCR's detector boxes them: an ink-tight box
    of "acorn" would be x-height only (measured: FP32's boxes are a median 1.4x taller
    than ink boxes, and 0.8 IoU with line boxes).
    """
    from PIL import Image, ImageDraw

    pad = font.size
    width = int(font.getlength(text)) + 2 * pad
    mask = Image.new("L", (width, font.size * 2 + 2 * pad), 0)
    ImageDraw.Draw(mask).text((pad, pad), text, font=font, fill=255)  # ascent's top at pad
    ys, xs = np.nonzero(np.asarray(mask))
    top, bottom = min(pad, ys.min()), max(pad + sum(font.getmetrics()), ys.max() + 1)
    corners = np.array([[xs.min(), top], [xs.max() + 1, top], [xs.max() + 1, bottom],
                        [xs.min(), bottom]], np.float64)
    rotated = mask.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    # PIL turns counter-clockwise about the centre, then shifts by the grown canvas.
    theta = math.radians(angle)
    centre = np.array(mask.size) / 2
    turn = np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])
    quad = (corners - centre) @ turn.T + np.array(rotated.size) / 2
    patch = Image.new("LA", rotated.size, 255)
    patch.putalpha(rotated)
    return patch.convert("RGBA"), quad


def _tinted(patch, colour: tuple[int, int, int]):
    from PIL import Image

    tinted = Image.new("RGBA", patch.size, (*colour, 255))
    tinted.putalpha(patch.getchannel("A"))
    return tinted


def _free_spot(rng, patch_size, quad, placed, size, margin, tries: int = 30):
    """Top-left corner where the quad's box (grown by `margin`) meets no placed box."""
    low, high = quad.min(axis=0), quad.max(axis=0)
    for _ in range(tries):
        x = int(rng.integers(-int(low[0]), max(1 - int(low[0]), size - int(high[0]))))
        y = int(rng.integers(-int(low[1]), max(1 - int(low[1]), size - int(high[1]))))
        box = np.concatenate([low + (x, y) - margin, high + (x, y) + margin])
        if box[0] + margin < 0 or box[1] + margin < 0 or box[2] - margin > size \
                or box[3] - margin > size:
            continue
        if all(box[2] <= other[:, 0].min() or box[0] >= other[:, 0].max()
               or box[3] <= other[:, 1].min() or box[1] >= other[:, 1].max()
               for other in placed):
            return x, y
    return None


def _page_background(rng: np.random.Generator, size: int,
                     photo: np.ndarray | None) -> np.ndarray:
    """size x size RGB: a random 60-100% crop of the photo, else a plain light or dark fill
    (sometimes a gentle gradient)."""
    from PIL import Image

    if photo is not None:
        photo = np.asarray(photo)
        photo = np.repeat(photo[:, :, None], 3, axis=2) if photo.ndim == 2 else photo[..., :3]
        h, w = photo.shape[:2]
        side = int(min(h, w) * rng.uniform(0.6, 1.0))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(np.ascontiguousarray(photo[y:y + side, x:x + side]))
        return np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR))
    light = rng.random() < 0.8
    base = rng.uniform(190, 255, 3) if light else rng.uniform(0, 70, 3)
    ramp = np.linspace(0, rng.uniform(-25, 25), size)[:, None, None] if rng.random() < 0.4 else 0
    pixels = np.broadcast_to(base + ramp, (size, size, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _ink_colour(rng: np.random.Generator, canvas, quad: np.ndarray) -> tuple[int, int, int]:
    """Dark ink on light ground, light on dark: the mean brightness under the text decides."""
    left, top = np.floor(quad.min(axis=0)).astype(int)
    right, bottom = np.ceil(quad.max(axis=0)).astype(int)
    region = np.asarray(canvas.crop((left, top, right, bottom)).convert("L"), dtype=np.float64)
    if region.mean() >= 128:
        return tuple(int(v) for v in rng.uniform(0, 90, 3))
    return tuple(int(v) for v in rng.uniform(200, 255, 3))


def _degrade(rng: np.random.Generator, canvas) -> np.ndarray:
    """Light Gaussian blur (sometimes) and pixel noise, as a scan or a photo has."""
    from PIL import ImageFilter

    if rng.random() < 0.6:
        canvas = canvas.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.1))))
    pixels = np.asarray(canvas.convert("RGB"), dtype=np.float32)
    pixels += rng.standard_normal(pixels.shape, dtype=np.float32) * rng.uniform(1, 6)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
