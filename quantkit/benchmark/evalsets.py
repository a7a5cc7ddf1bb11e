"""The rows a benchmark scores every target on: MNIST, an .npz, or a folder of labelled images.

Every source ends as one `EvalSet` already checked against the model's feeds (shapes, dtypes,
row counts, finite values, label sanity), so a bad eval set fails before any target runs and
the runner only ever sees arrays it can feed as they are. Needs numpy only (Pillow for image
folders); never Paddle.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from quantkit.errors import QuantkitError
from quantkit.model_files import FeedSpec

MNIST_SPECS = {"mnist": "test", "mnist-test": "test", "mnist-train": "train"}
NPZ_INPUT_KEYS = ("x", "images", "inputs")  # accepted for a one-feed model
NPZ_LABEL_KEYS = ("labels", "y")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_SPEC_HINT = "pass 'mnist', an .npz file or a folder with one sub-folder of images per class"


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value
class EvalSet:
    """Checked eval rows: one array per model feed (N rows each) and optional int64 labels [N]."""

    name: str
    source: str
    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of names, dtypes, shapes and bytes: two runs scored the same rows iff equal."""
        digest = hashlib.sha256()
        arrays = sorted(self.inputs.items())
        if self.labels is not None:
            arrays.append(("\0labels", self.labels))
        for name, array in arrays:
            array = np.ascontiguousarray(array)
            digest.update(f"{name}|{array.dtype.str}|{array.shape}\n".encode())
            digest.update(array.tobytes())
        return "sha256:" + digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        """What results.json records about the eval set, so runs compare only on equal data."""
        return {
            "name": self.name,
            "source": self.source,
            "rows": self.rows,
            "labelled": self.labels is not None,
            "shapes": {name: list(array.shape) for name, array in self.inputs.items()},
            "dtypes": {name: str(array.dtype) for name, array in self.inputs.items()},
            "fingerprint": self.fingerprint,
        }


def load_eval_set(spec: str | Path, feeds: Sequence[FeedSpec], limit: int | None = None,
                  mean: float | Sequence[float] | None = None,
                  std: float | Sequence[float] | None = None) -> EvalSet:
    """Read `spec` and check it against the model's `feeds`; `limit` keeps the first rows.

    `mean`/`std` normalise image folders only (pixels scaled to [0, 1] first): MNIST comes
    normalised and an .npz is fed exactly as stored, so they are refused there.
    """
    feeds = tuple(feeds)
    if not feeds:
        raise QuantkitError("the model has no feeds: nothing to evaluate it on")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise QuantkitError(f"eval limit must be a positive number of rows, got {limit!r}")
    text = str(spec)
    # A real file or folder called 'mnist' is the user's data, not the built-in set.
    if text.lower() in MNIST_SPECS and not Path(text).exists():
        _refuse_normalisation(mean, std, f"'{text}'", "is already normalised to [-1, 1]")
        name, source, inputs, labels = _load_mnist(text.lower(), feeds, limit)
    else:
        path = Path(spec)
        if path.is_dir():
            name, source = path.name, str(path)
            inputs, labels = _load_image_folder(path, feeds, limit, mean, std)
        elif path.is_file() and path.suffix.lower() == ".npz":
            _refuse_normalisation(mean, std, str(path), "is fed exactly as stored")
            name, source = path.stem, str(path)
            inputs, labels = _load_npz(path, feeds)
        elif path.is_file():
            raise QuantkitError(f"eval set {path}: unsupported file type '{path.suffix}'; "
                                f"{_SPEC_HINT}")
        else:
            raise QuantkitError(f"eval set not found: {path}; {_SPEC_HINT}")
    inputs, labels = _check(inputs, labels, feeds, source, limit)
    return EvalSet(name=name, source=source, inputs=inputs, labels=labels)


def check_label_range(labels: np.ndarray, num_classes: int, source: str) -> None:
    """Refuse labels the model cannot predict: a model with C outputs predicts 0..C-1."""
    labels = np.asarray(labels)
    if labels.size and int(labels.max()) >= num_classes:
        largest = int(labels.max())
        raise QuantkitError(
            f"{source}: largest label is {largest} but the model has {num_classes} outputs "
            f"(classes 0..{num_classes - 1}); labels must be indices into the model's output")


# --- sources ---------------------------------------------------------------------------------

def _refuse_normalisation(mean, std, what: str, why: str) -> None:
    if mean is not None or std is not None:
        raise QuantkitError(f"--mean/--std apply to image folders only: eval set {what} {why}; "
                            "drop --mean/--std")


def _load_mnist(spec: str, feeds: tuple[FeedSpec, ...], limit: int | None):
    from quantkit.datasets import mnist

    expected = (-1, *mnist.IMAGE_SHAPE)
    feed = feeds[0]
    fits = (len(feeds) == 1 and len(feed.shape) == len(expected)
            and all(d in (-1, e) for d, e in zip(feed.shape[1:], expected[1:]))
            and _is_float(feed.dtype))
    if not fits:
        raise QuantkitError(
            f"eval set '{spec}' gives images [N, 1, 28, 28] float32 for a model with one such "
            f"feed, but this model's feeds are {_feeds_text(feeds)}; pass an .npz or an image "
            "folder that matches them")
    split = MNIST_SPECS[spec]
    try:
        data = mnist.load(split, limit)
    except FileNotFoundError as exc:
        raise QuantkitError(str(exc)) from None
    return (f"mnist-{split}", f"quantkit.datasets.mnist ({split} split)",
            {feed.name: data.images}, data.labels.reshape(-1))


def _load_npz(path: Path, feeds: tuple[FeedSpec, ...]):
    import zipfile

    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise QuantkitError(f"eval set {path} is not a readable .npz ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise QuantkitError(f"eval set {path} is a single .npy array, not an .npz; save it "
                            "with numpy.savez(path, x=inputs, labels=labels)")
    with archive:
        found = list(archive.files)
        feed_names = [feed.name for feed in feeds]
        label_keys = [key for key in NPZ_LABEL_KEYS if key in found and key not in feed_names]
        if len(label_keys) > 1:
            raise QuantkitError(f"eval set {path} holds both 'labels' and 'y': keep one")
        if all(name in found for name in feed_names):
            mapping = {name: name for name in feed_names}
        else:
            aliases = [key for key in NPZ_INPUT_KEYS if key in found]
            if len(feeds) == 1 and len(aliases) == 1:
                mapping = {feed_names[0]: aliases[0]}
            else:
                raise QuantkitError(_npz_keys_message(path, found, feed_names))
        unknown = sorted(set(found) - set(mapping.values()) - set(label_keys))
        if unknown:
            raise QuantkitError(_npz_keys_message(path, found, feed_names))

        def read(key: str) -> np.ndarray:
            try:
                return archive[key]
            except ValueError as exc:  # object arrays need pickle, which stays off
                raise QuantkitError(f"eval set {path}: array '{key}' cannot be read without "
                                    f"pickle ({exc}); save plain numeric arrays") from None

        inputs = {feed: read(key) for feed, key in mapping.items()}
        labels = read(label_keys[0]) if label_keys else None
    return inputs, labels


def _npz_keys_message(path: Path, found: list[str], feed_names: list[str]) -> str:
    expected = ", ".join(repr(name) for name in feed_names)
    if len(feed_names) == 1:
        expected += " (or one of " + ", ".join(repr(k) for k in NPZ_INPUT_KEYS) + ")"
    return (f"eval set {path} holds arrays {', '.join(repr(k) for k in found) or 'none'}; "
            f"expected {expected} for the model's feeds, plus optional labels under "
            "'labels' or 'y'")


def _load_image_folder(folder: Path, feeds: tuple[FeedSpec, ...], limit: int | None,
                       mean, std):
    """Images [N, C, H, W] float32 and labels, the classes interleaved round-robin.

    Interleaving (class 0's first image, class 1's first, ..., then each one's second) keeps
    every class in the first rows, so `limit` samples all classes instead of class 0 only.
    """
    if len(feeds) != 1:
        raise QuantkitError(f"an image folder feeds one input but the model has feeds "
                            f"{_feeds_text(feeds)}; pass an .npz with one array per feed")
    feed = feeds[0]
    channels, height, width = _image_geometry(feed)
    if not _is_float(feed.dtype):
        raise QuantkitError(f"feed '{feed.name}' is {feed.dtype}, but an image folder gives "
                            "float images; pass an .npz with the feed's dtype")
    scale = _normalisation(mean, std, channels)
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        if any(_is_image(p) for p in folder.iterdir()):
            raise QuantkitError(f"eval folder {folder} holds images but no class sub-folders: "
                                "put each class's images in its own sub-folder")
        raise QuantkitError(f"eval folder {folder} is empty: it needs one sub-folder of images "
                            "per class")
    names = [p.name for p in classes]
    by_number = all(name.isascii() and name.isdigit() for name in names)
    class_labels = [int(name) if by_number else index for index, name in enumerate(names)]
    if len(set(class_labels)) != len(class_labels):
        raise QuantkitError(f"eval folder {folder}: class sub-folders {', '.join(names)} name "
                            "the same class number twice (e.g. '1' and '01'); merge them")
    files = [sorted(p for p in directory.iterdir() if _is_image(p)) for directory in classes]
    order = [(class_labels[c], files[c][i]) for i in range(max(map(len, files)))
             for c in range(len(classes)) if i < len(files[c])][:limit]
    if not order:
        raise QuantkitError(f"eval folder {folder} has class sub-folders but no images in "
                            f"them (looked for {', '.join(IMAGE_SUFFIXES)})")
    mode = "L" if channels == 1 else "RGB"
    images = np.empty((len(order), channels, height, width), dtype=np.float32)
    for row, (_, path) in enumerate(order):
        images[row] = _read_image(path, mode, width, height)
    if scale is not None:
        images = ((images - scale[0]) / scale[1]).astype(np.float32)
    labels = np.array([label for label, _ in order], dtype=np.int64)
    return {feed.name: images}, labels


def _image_geometry(feed: FeedSpec) -> tuple[int, int, int]:
    if len(feed.shape) != 4:
        raise QuantkitError(f"feed '{feed.name}' has shape {_shape(feed.shape)}, not an image "
                            "batch [N, C, H, W]; pass an .npz instead of an image folder")
    channels, height, width = feed.shape[1:]
    if channels not in (1, 3):
        raise QuantkitError(f"feed '{feed.name}' has shape {_shape(feed.shape)}: an image "
                            "folder needs 1 or 3 channels fixed in the model (NCHW); pass an "
                            ".npz instead")
    if height <= 0 or width <= 0:
        raise QuantkitError(f"feed '{feed.name}' has shape {_shape(feed.shape)}: its height and "
                            "width are not fixed in the model, so images cannot be resized to "
                            "them; pass an .npz with the inputs already sized")
    return channels, height, width


def _normalisation(mean, std, channels: int):
    """(mean, std) as [C,1,1] arrays, or None when neither is given."""
    if mean is None and std is None:
        return None
    values = []
    for label, given, default in (("mean", mean, 0.0), ("std", std, 1.0)):
        array = np.atleast_1d(np.asarray(default if given is None else given, dtype=np.float32))
        if array.ndim != 1 or array.size not in (1, channels):
            raise QuantkitError(f"--{label} needs 1 or {channels} values (one per channel), "
                                f"got {array.size}")
        values.append(np.broadcast_to(array, (channels,)).reshape(channels, 1, 1))
    if not np.all(values[1] > 0):
        raise QuantkitError(f"--std values must be positive, got {std}")
    return values[0], values[1]


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and \
        not path.name.startswith(".")


def _read_image(path: Path, mode: str, width: int, height: int) -> np.ndarray:
    """One image as [C, H, W] float32 in [0, 1]."""
    from PIL import Image  # deferred: only image folders need Pillow

    bilinear = getattr(Image, "Resampling", Image).BILINEAR
    try:
        with Image.open(path) as image:
            image = image.convert(mode)
            if image.size != (width, height):
                image = image.resize((width, height), bilinear)
            pixels = np.asarray(image, dtype=np.float32) / 255.0
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise QuantkitError(f"cannot read image {path} ({exc}); remove or replace it") from None
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


# --- checks ----------------------------------------------------------------------------------

def _check(inputs: dict[str, np.ndarray], labels, feeds: tuple[FeedSpec, ...], source: str,
           limit: int | None):
    """Rows agree, shapes and dtypes fit the feeds, values are finite, labels are indices."""
    inputs = {name: np.asarray(array) for name, array in inputs.items()}
    for feed in feeds:
        if inputs[feed.name].ndim == 0:
            raise QuantkitError(f"feed '{feed.name}': {source} gives a scalar, not rows; "
                                f"the model expects {_shape(feed.shape)}")
    counts = {f"feed '{name}'": array.shape[0] for name, array in inputs.items()}
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim == 0:
            raise QuantkitError(f"{source}: labels are a scalar; give one label per row ([N])")
        counts["labels"] = labels.shape[0]
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{what} has {count}" for what, count in counts.items())
        raise QuantkitError(f"{source}: row counts differ ({listed}); every feed and the "
                            "labels need the same number of rows")
    if next(iter(counts.values())) == 0:
        raise QuantkitError(f"{source} has zero rows: nothing to evaluate")
    inputs = {name: array[:limit] for name, array in inputs.items()}
    checked = {feed.name: _check_feed(inputs[feed.name], feed, source) for feed in feeds}
    if labels is not None:
        labels = _check_labels(labels[:limit], source)
    return checked, labels


def _check_feed(array: np.ndarray, feed: FeedSpec, source: str) -> np.ndarray:
    # Axis 0 is the row axis: the runner batches rows, so a fixed batch size in the model
    # (often 1) does not constrain how many rows the eval set has.
    if array.ndim != len(feed.shape) or any(
            d != -1 and d != n for d, n in zip(feed.shape[1:], array.shape[1:])):
        raise QuantkitError(
            f"feed '{feed.name}': {source} gives shape {_shape(array.shape)} but the model "
            f"expects {_shape(feed.shape)} (-1: any size); reshape the eval data to match")
    target = np.dtype(feed.dtype)
    kind, want = array.dtype.kind, target.kind
    fits = (kind == "f" and want == "f") or (kind in "iu" and want in "iu") or \
        (kind == "b" and want == "b")
    if not fits:
        hint = (" (scale and normalise integer pixels to float yourself, or use an image "
                "folder with --mean/--std)" if want == "f" and kind in "iu" else "")
        raise QuantkitError(f"feed '{feed.name}': {source} gives {array.dtype} data but the "
                            f"model expects {target}{hint}")
    if kind in "iu" and array.size and array.dtype != target:
        info = np.iinfo(target)
        low, high = int(array.min()), int(array.max())
        if low < info.min or high > info.max:
            raise QuantkitError(f"feed '{feed.name}': {source} holds values {low}..{high} "
                                f"that do not fit the model's {target}")
    with np.errstate(over="ignore"):  # float64 beyond float32 becomes Inf, reported below
        array = np.ascontiguousarray(array, dtype=target)
    if want == "f":
        bad = ~np.isfinite(array.reshape(array.shape[0], -1)).all(axis=1)
        if bad.any():
            rows = np.flatnonzero(bad)
            more = f" and {len(rows) - 1} more rows" if len(rows) > 1 else ""
            raise QuantkitError(f"feed '{feed.name}': {source} has NaN or Inf in row "
                                f"{int(rows[0])}{more} (after casting to {target}); fix or "
                                "drop those rows")
    return array


def _check_labels(labels: np.ndarray, source: str) -> np.ndarray:
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise QuantkitError(f"{source}: labels have shape {_shape(labels.shape)}; expected "
                            "[N] or [N, 1] class indices")
    if labels.dtype.kind == "f":
        integral = np.isfinite(labels) & (labels == np.round(labels))
        if not integral.all():
            row = int(np.flatnonzero(~integral)[0])
            raise QuantkitError(f"{source}: label in row {row} is {labels[row]!r}, not a whole "
                                "number; labels must be class indices")
    elif labels.dtype.kind not in "iu":
        raise QuantkitError(f"{source}: labels are {labels.dtype}; expected integer class "
                            "indices")
    if labels.size and labels.min() < 0:
        row = int(np.argmin(labels))
        raise QuantkitError(f"{source}: label in row {row} is {labels[row]}; class indices "
                            "must be >= 0")
    return np.ascontiguousarray(labels, dtype=np.int64)


def _is_float(dtype: str) -> bool:
    return np.dtype(dtype).kind == "f"


def _shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def _feeds_text(feeds: Sequence[FeedSpec]) -> str:
    return ", ".join(f"'{feed.name}' {_shape(feed.shape)} {feed.dtype}" for feed in feeds)
