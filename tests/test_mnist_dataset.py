"""The offline MNIST: real data, the tutorial's shapes and normalisation, no download."""
from __future__ import annotations

import numpy as np
import pytest

from quantkit.datasets import mnist


def test_splits_have_the_real_sizes_and_shapes():
    train, test = mnist.load("train"), mnist.load("test")
    assert len(train) == 60000 and len(test) == 10000
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == np.float32
    assert test.labels.shape == (10000, 1) and test.labels.dtype == np.int64
    assert set(np.unique(test.labels)) == set(range(10))
    # every class is present in realistic proportion (MNIST's rarest digit is ~9%)
    assert np.bincount(test.labels[:, 0]).min() > 800


def test_normalisation_matches_transform_normalize_127_5():
    images = mnist.load("test", limit=100).images
    assert images.min() == -1.0 and images.max() == 1.0
    # pixels are bytes: (p - 127.5) / 127.5 takes 256 distinct values at most
    recovered = images * 127.5 + 127.5
    assert np.allclose(recovered, np.rint(recovered), atol=1e-4)


def test_reader_creators_mirror_paddle_dataset_mnist():
    reader = mnist.test()
    first = next(iter(reader()))
    image, label = first
    assert image.shape == (784,) and image.dtype == np.float32 and isinstance(label, int)
    np.testing.assert_array_equal(image.reshape(1, 28, 28), mnist.load("test", 1).images[0])
    assert sum(1 for _ in mnist.train()()) == 60000


def test_paddle_dataset_face():
    dataset = mnist.MNIST(mode="test", limit=5)
    assert len(dataset) == 5
    image, label = dataset[3]
    assert image.shape == (1, 28, 28) and label.shape == (1,)


def test_unknown_split_is_named():
    with pytest.raises(ValueError, match="unknown MNIST split 'valid'"):
        mnist.load("valid")


def test_loads_when_paddle_was_imported_first():
    """Paddle's bundled zlib used to make gzip segfault (inflateReset2) after `import paddle`."""
    import subprocess
    import sys

    code = ("import paddle\nfrom quantkit.datasets import mnist\n"
            "print(len(mnist.load('test', limit=3)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-1000:]
    assert result.stdout.strip().splitlines()[-1] == "3"
