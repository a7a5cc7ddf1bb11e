"""Where data sets come from: built-in MNIST, an .npz, a folder of labelled images, or a
model-zoo set (`zoo:NAME`, built by `quantkit.zoo.datasets`).

`load_dataset(spec, feeds, role)` reads one and returns a checked `Dataset`, so bad data
fails before any calibration or target runs. Needs numpy only (Pillow for image folders);
never Paddle. `role` says what the data is for, so messages use the user's words
("calibration data" and --calib-limit, or "eval set" and --eval-limit).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from quantkit.data.dataset import EVAL, DataRole, Dataset
from quantkit.data.feeds import FeedSpec, feeds_text, shape_text
from quantkit.errors import QuantkitError
from quantkit.zoo.config import ZOO_DATA

MNIST_SPECS = {"mnist": "test", "mnist-test": "test", "mnist-train": "train"}
NPZ_INPUT_KEYS = ("x", "images", "inputs")  # accepted for a one-feed model
NPZ_LABEL_KEYS = ("labels", "y")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def load_dataset(spec: str | Path, feeds: Sequence[FeedSpec], role: DataRole = EVAL,
                 limit: int | None = None, mean: float | Sequence[float] | None = None,
                 std: float | Sequence[float] | None = None) -> Dataset:
    """Read `spec` and check it against the model's `feeds`; `limit` keeps the first rows.

    `mean`/`std` normalise image folders only (pixels scaled to [0, 1] first): MNIST comes
    normalised, an .npz is fed exactly as stored and zoo sets are preprocessed as their
    models expect, so they are refused there.
    """
    feeds = tuple(feeds)
    if not feeds:
        raise QuantkitError(f"the model has no feeds: no {role.noun} can be fed to it")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise QuantkitError(f"{role.limit_flag} must be a positive number of rows, got "
                            f"{limit!r}")
    text = str(spec)
    hint = (f"pass 'mnist', an .npz file, a folder with one sub-folder of images per class "
            f"or {ZOO_DATA}NAME as {role.data_flag}")
    # A real file or folder called 'mnist' is the user's data, not the built-in set.
    if text.lower() in MNIST_SPECS and not Path(text).exists():
        _refuse_normalisation(mean, std, f"'{text}'", "is already normalised to [-1, 1]", role)
        return _load_mnist(text.lower(), feeds, limit, role)
    if text.startswith(ZOO_DATA) and not Path(text).exists():
        _refuse_normalisation(mean, std, f"'{text}'", "is preprocessed as its model expects",
                              role)
        from quantkit.zoo.datasets import zoo_dataset  # deferred: renders and decodes images

        return zoo_dataset(text[len(ZOO_DATA):], feeds, role, limit=limit)
    path = Path(spec)
    if path.is_dir():
        return _load_image_folder(path, feeds, limit, mean, std, role)
    if path.is_file() and path.suffix.lower() == ".npz":
        _refuse_normalisation(mean, std, str(path), "is fed exactly as stored", role)
        inputs, labels = _load_npz(path, feeds, role)
        return Dataset.checked(path.stem, str(path), inputs, labels, feeds, limit,
                               where=f"{role.noun} {path}")
    if path.is_file():
        raise QuantkitError(f"{role.noun} {path}: unsupported file type '{path.suffix}'; "
                            f"{hint}")
    raise QuantkitError(f"{role.noun} not found: {path}; {hint}")


def _refuse_normalisation(mean, std, what: str, why: str, role: DataRole) -> None:
    if mean is not None or std is not None:
        raise QuantkitError(f"--mean/--std apply to image folders only: {role.noun} {what} "
                            f"{why}; drop --mean/--std")


def _load_mnist(spec: str, feeds: tuple[FeedSpec, ...], limit: int | None,
                role: DataRole) -> Dataset:
    from quantkit.datasets import mnist

    expected = (-1, *mnist.IMAGE_SHAPE)
    feed = feeds[0]
    fits = (len(feeds) == 1 and len(feed.shape) == len(expected)
            and all(d in (-1, e) for d, e in zip(feed.shape[1:], expected[1:]))
            and np.dtype(feed.dtype).kind == "f")
    if not fits:
        raise QuantkitError(
            f"{role.noun} '{spec}' gives images [N, 1, 28, 28] float32 for a model with one "
            f"such feed, but this model's feeds are {feeds_text(feeds)}; pass an .npz or an "
            "image folder that matches them")
    split = MNIST_SPECS[spec]
    try:
        data = mnist.load(split, limit)
    except FileNotFoundError as exc:
        raise QuantkitError(str(exc)) from None
    return Dataset.checked(f"mnist-{split}", f"quantkit.datasets.mnist ({split} split)",
                           {feed.name: data.images}, data.labels.reshape(-1), feeds,
                           where=f"{role.noun} '{spec}'")


def _load_npz(path: Path, feeds: tuple[FeedSpec, ...], role: DataRole):
    import zipfile

    where = f"{role.noun} {path}"
    if path.stat().st_size == 0:
        raise QuantkitError(f"{where} is an empty file (0 bytes), not an .npz; save it with "
                            "numpy.savez(path, x=inputs, labels=labels)")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise QuantkitError(f"{where} is not a readable .npz ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise QuantkitError(f"{where} is a single .npy array, not an .npz; save it with "
                            "numpy.savez(path, x=inputs, labels=labels)")
    with archive:
        found = list(archive.files)
        feed_names = [feed.name for feed in feeds]
        label_keys = [key for key in NPZ_LABEL_KEYS if key in found and key not in feed_names]
        if len(label_keys) > 1:
            raise QuantkitError(f"{where} holds both 'labels' and 'y': keep one")
        if all(name in found for name in feed_names):
            mapping = {name: name for name in feed_names}
        else:
            aliases = [key for key in NPZ_INPUT_KEYS if key in found]
            if len(feeds) == 1 and len(aliases) == 1:
                mapping = {feed_names[0]: aliases[0]}
            else:
                raise QuantkitError(_npz_keys_message(where, found, feed_names))
        unknown = sorted(set(found) - set(mapping.values()) - set(label_keys))
        if unknown:
            raise QuantkitError(_npz_keys_message(where, found, feed_names))

        def read(key: str) -> np.ndarray:
            try:
                return archive[key]
            except ValueError as exc:  # object arrays need pickle, which stays off
                raise QuantkitError(f"{where}: array '{key}' cannot be read without pickle "
                                    f"({exc}); save plain numeric arrays") from None
            except (OSError, EOFError, zipfile.BadZipFile) as exc:
                raise QuantkitError(f"{where}: array '{key}' is damaged ({exc})") from None

        inputs = {feed: read(key) for feed, key in mapping.items()}
        labels = read(label_keys[0]) if label_keys else None
    return inputs, labels


def _npz_keys_message(where: str, found: list[str], feed_names: list[str]) -> str:
    expected = ", ".join(repr(name) for name in feed_names)
    if len(feed_names) == 1:
        expected += " (or one of " + ", ".join(repr(k) for k in NPZ_INPUT_KEYS) + ")"
    return (f"{where} holds arrays {', '.join(repr(k) for k in found) or 'none'}; expected "
            f"{expected} for the model's feeds, plus optional labels under 'labels' or 'y'")


def _load_image_folder(folder: Path, feeds: tuple[FeedSpec, ...], limit: int | None,
                       mean, std, role: DataRole) -> Dataset:
    """Images [N, C, H, W] float32 and labels, the classes interleaved round-robin.

    Interleaving (class 0's first image, class 1's first, ..., then each one's second) keeps
    every class in the first rows, so `limit` samples all classes instead of class 0 only.
    """
    where = f"{role.noun} folder {folder}"
    if len(feeds) != 1:
        raise QuantkitError(f"an image folder feeds one input but the model has feeds "
                            f"{feeds_text(feeds)}; pass an .npz with one array per feed")
    feed = feeds[0]
    channels, height, width = _image_geometry(feed)
    if np.dtype(feed.dtype).kind != "f":
        raise QuantkitError(f"feed '{feed.name}' is {feed.dtype}, but an image folder gives "
                            "float images; pass an .npz with the feed's dtype")
    scale = _normalisation(mean, std, channels)
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        if any(_is_image(p) for p in folder.iterdir()):
            raise QuantkitError(f"{where} holds images but no class sub-folders: put each "
                                "class's images in its own sub-folder")
        raise QuantkitError(f"{where} is empty: it needs one sub-folder of images per class")
    class_labels = _class_labels(folder, [p.name for p in classes], where)
    files = [sorted(p for p in directory.iterdir() if _is_image(p)) for directory in classes]
    order = [(class_labels[c], files[c][i]) for i in range(max(map(len, files)))
             for c in range(len(classes)) if i < len(files[c])][:limit]
    if not order:
        raise QuantkitError(f"{where} has class sub-folders but no images in them (looked "
                            f"for {', '.join(IMAGE_SUFFIXES)})")
    mode = "L" if channels == 1 else "RGB"
    images = np.empty((len(order), channels, height, width), dtype=np.float32)
    for row, (_, path) in enumerate(order):
        images[row] = _read_image(path, mode, width, height)
    if scale is not None:
        images = ((images - scale[0]) / scale[1]).astype(np.float32)
    labels = np.array([label for label, _ in order], dtype=np.int64)
    names = {name: label for name, label in zip((p.name for p in classes), class_labels)}
    return Dataset.checked(folder.name, str(folder), {feed.name: images}, labels, feeds,
                           where=where, classes=names)


def _class_labels(folder: Path, names: list[str], where: str) -> list[int]:
    """Class numbers from the sub-folder names: all numeric, or all named (sorted order).

    A mix is refused: one stray non-numeric folder would otherwise renumber every class
    by position and silently score against the wrong labels.
    """
    numeric = [name.isascii() and name.isdigit() for name in names]
    if all(numeric):
        labels = [int(name) for name in names]
        if len(set(labels)) != len(labels):
            raise QuantkitError(f"{where}: class sub-folders {', '.join(names)} name the same "
                                "class number twice (e.g. '1' and '01'); merge them")
        return labels
    if any(numeric):
        odd = [name for name, is_number in zip(names, numeric) if not is_number]
        raise QuantkitError(f"{where}: class sub-folders mix numbers and names ("
                            f"{', '.join(repr(n) for n in odd[:5])} are not numbers): name "
                            "every class folder by its class index, or none of them")
    warnings.warn(f"{where}: class folders are names, so labels are their sorted positions ("
                  + ", ".join(f"{name}={index}" for index, name in enumerate(names[:6]))
                  + (", ..." if len(names) > 6 else "") + "); rename them 0, 1, ... if the "
                  "model's class indices differ", stacklevel=4)
    return list(range(len(names)))


def _image_geometry(feed: FeedSpec) -> tuple[int, int, int]:
    if len(feed.shape) != 4:
        raise QuantkitError(f"feed '{feed.name}' has shape {shape_text(feed.shape)}, not an "
                            "image batch [N, C, H, W]; pass an .npz instead of an image folder")
    channels, height, width = feed.shape[1:]
    if channels not in (1, 3):
        raise QuantkitError(f"feed '{feed.name}' has shape {shape_text(feed.shape)}: an image "
                            "folder needs 1 or 3 channels fixed in the model (NCHW); pass an "
                            ".npz instead")
    if height <= 0 or width <= 0:
        raise QuantkitError(f"feed '{feed.name}' has shape {shape_text(feed.shape)}: its height "
                            "and width are not fixed in the model, so images cannot be resized "
                            "to them; pass an .npz with the inputs already sized")
    return channels, height, width


def _normalisation(mean, std, channels: int):
    """(mean, std) as [C,1,1] arrays, or None when neither is given."""
    if mean is None and std is None:
        return None
    values = []
    wanted = "1 value" if channels == 1 else f"1 or {channels} values (one per channel)"
    for label, given, default in (("mean", mean, 0.0), ("std", std, 1.0)):
        array = np.atleast_1d(np.asarray(default if given is None else given, dtype=np.float64))
        if array.ndim != 1 or array.size not in (1, channels):
            raise QuantkitError(f"--{label} needs {wanted} for this model's {channels}-channel "
                                f"input, got {array.size}")
        if not np.isfinite(array).all():
            raise QuantkitError(f"--{label} values must be finite numbers, got "
                                f"{list(array)}")
        values.append(np.broadcast_to(array.astype(np.float32), (channels,))
                      .reshape(channels, 1, 1))
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
