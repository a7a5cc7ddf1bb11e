"""Eval sets from MNIST, .npz files and image folders, checked against the model's feeds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import quantkit  # noqa: F401  (before anything that may import paddle: zlib order)
from quantkit.data import Dataset, check_label_range
from quantkit.data.sources import load_dataset
from quantkit.errors import QuantkitError
from quantkit.data import FeedSpec

IMAGE = FeedSpec("image", (-1, 1, 28, 28), "float32")
PAIR = (FeedSpec("dense", (-1, 3), "float32"), FeedSpec("ids", (-1, 5), "int64"))
REPO = Path(__file__).resolve().parents[1]


def _images(rows: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (rows, 1, 28, 28)).astype(np.float32)


def _npz(tmp_path: Path, name: str = "eval.npz", **arrays) -> Path:
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def _png(path: Path, value, size=(10, 12), mode: str = "L") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)


# --- .npz ------------------------------------------------------------------------------------

def test_npz_by_feed_name_is_cast_and_labels_flattened(tmp_path):
    images = _images().astype(np.float64)
    labels = np.array([[0], [1], [2], [3], [4], [5]])
    eval_set = load_dataset(_npz(tmp_path, image=images, labels=labels), [IMAGE])
    assert isinstance(eval_set, Dataset) and eval_set.rows == 6
    assert eval_set.name == "eval" and eval_set.source == str(tmp_path / "eval.npz")
    assert eval_set.inputs["image"].dtype == np.float32
    np.testing.assert_array_equal(eval_set.inputs["image"], images.astype(np.float32))
    assert eval_set.labels.dtype == np.int64
    assert eval_set.labels.tolist() == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("input_key, label_key", [("x", "y"), ("images", "labels"),
                                                  ("inputs", None)])
def test_npz_aliases_for_a_one_feed_model(tmp_path, input_key, label_key):
    arrays = {input_key: _images()}
    if label_key:
        arrays[label_key] = np.arange(6, dtype=np.int32)
    eval_set = load_dataset(_npz(tmp_path, **arrays), [IMAGE])
    assert list(eval_set.inputs) == ["image"]
    assert (eval_set.labels is None) == (label_key is None)


def test_npz_multi_feed_casts_integers_and_float_labels_that_are_whole(tmp_path):
    path = _npz(tmp_path, dense=np.ones((4, 3), np.float32),
                ids=np.arange(20, dtype=np.int32).reshape(4, 5),
                labels=np.array([1.0, 0.0, 2.0, 1.0]))
    eval_set = load_dataset(path, PAIR)
    assert eval_set.inputs["ids"].dtype == np.int64
    assert eval_set.labels.dtype == np.int64 and eval_set.labels.tolist() == [1, 0, 2, 1]


def test_npz_unknown_keys_list_found_and_expected(tmp_path):
    with pytest.raises(QuantkitError, match=r"holds arrays 'pixels', 'target'; expected "
                                            r"'image' \(or one of 'x'"):
        load_dataset(_npz(tmp_path, pixels=_images(), target=np.zeros(6)), [IMAGE])
    with pytest.raises(QuantkitError, match=r"'image', 'extra'; expected 'image'"):
        load_dataset(_npz(tmp_path, image=_images(), extra=np.zeros(6)), [IMAGE])
    with pytest.raises(QuantkitError, match=r"expected 'dense', 'ids' for"):
        load_dataset(_npz(tmp_path, x=np.ones((4, 3))), PAIR)  # no alias with two feeds


def test_npz_that_is_not_an_archive_names_the_file(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"not a zip file")
    with pytest.raises(QuantkitError, match="broken.npz is not a readable .npz"):
        load_dataset(path, [IMAGE])


def test_missing_and_unsupported_specs(tmp_path):
    with pytest.raises(QuantkitError, match="eval set not found: .*nowhere.npz"):
        load_dataset(tmp_path / "nowhere.npz", [IMAGE])
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(QuantkitError, match=r"data.csv: unsupported file type '.csv'"):
        load_dataset(tmp_path / "data.csv", [IMAGE])


# --- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(6, 784), (6, 3, 28, 28), (6, 1, 32, 32)])
def test_shape_mismatch_names_feed_and_both_shapes(tmp_path, shape):
    path = _npz(tmp_path, x=np.zeros(shape, np.float32))
    expected = r"input 'image' has shape \[" + ", ".join(map(str, shape)) + \
        r"\], the model expects \[-1, 1, 28, 28\]"
    with pytest.raises(QuantkitError, match=expected):
        load_dataset(path, [IMAGE])


def test_dynamic_axes_match_anything_and_batch_axis_is_rows(tmp_path):
    dynamic = FeedSpec("image", (-1, 1, -1, -1), "float32")
    assert load_dataset(_npz(tmp_path, x=np.zeros((3, 1, 5, 7), np.float32)),
                         [dynamic]).rows == 3
    batch_one = FeedSpec("image", (1, 1, 28, 28), "float32")  # exported with batch 1
    assert load_dataset(_npz(tmp_path, x=_images(4)), [batch_one]).rows == 4


def test_dtypes_follow_the_one_set_of_input_rules(tmp_path):
    """The data layer's rules (quantkit.data.feeds), as for calibration batches and
    requests: integers widen into a float feed, whole-number floats fit an integer feed,
    fractions, out-of-range integers and bools into numbers are refused, naming the input."""
    pixels = load_dataset(_npz(tmp_path, x=np.full((2, 1, 28, 28), 7, np.uint8)), [IMAGE])
    assert pixels.inputs["image"].dtype == np.float32 and pixels.inputs["image"].max() == 7
    ids = load_dataset(_npz(tmp_path, dense=np.ones((2, 3), np.float32),
                            ids=np.ones((2, 5), np.float32)), PAIR)
    assert ids.inputs["ids"].dtype == np.int64
    with pytest.raises(QuantkitError, match=r"input 'ids' is int64: it takes whole numbers, "
                                            r"got 1.5"):
        load_dataset(_npz(tmp_path, dense=np.ones((2, 3), np.float32),
                          ids=np.full((2, 5), 1.5, np.float32)), PAIR)
    narrow = FeedSpec("ids", (-1, 2), "int32")
    with pytest.raises(QuantkitError, match=r"input 'ids' holds values 0..4294967296 outside "
                                            r"the int32 range"):
        load_dataset(_npz(tmp_path, x=np.array([[0, 2 ** 32]], np.int64)), [narrow])
    with pytest.raises(QuantkitError, match=r"input 'image' holds true/false values"):
        load_dataset(_npz(tmp_path, x=np.zeros((2, 1, 28, 28), bool)), [IMAGE])


def test_row_counts_must_agree(tmp_path):
    with pytest.raises(QuantkitError, match=r"row counts differ \(input 'dense' has 4, "
                                            r"input 'ids' has 3\)"):
        load_dataset(_npz(tmp_path, dense=np.ones((4, 3), np.float32),
                           ids=np.ones((3, 5), np.int64)), PAIR)
    with pytest.raises(QuantkitError, match=r"input 'image' has 6, labels has 5"):
        load_dataset(_npz(tmp_path, x=_images(), y=np.zeros(5, np.int64)), [IMAGE])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_name_feed_and_first_bad_row(tmp_path, bad):
    images = _images()
    images[2, 0, 5, 5] = bad
    images[4, 0, 0, 0] = bad
    with pytest.raises(QuantkitError, match=r"input 'image' contains (NaN|Inf) in row 2 and 1 "
                                            r"more row"):
        load_dataset(_npz(tmp_path, x=images), [IMAGE])


def test_float64_beyond_float32_overflows_and_is_caught(tmp_path):
    images = _images().astype(np.float64)
    images[3, 0, 0, 0] = 1e39
    with pytest.raises(QuantkitError, match=r"Inf in row 3 \(a value too large for float32\)"):
        load_dataset(_npz(tmp_path, x=images), [IMAGE])


@pytest.mark.parametrize("labels, message", [
    (np.array([0, 1, 1.5, 0, 0, 0]), r"label in row 2 is 1.5, not a whole number"),
    (np.array([0, 1, 2, np.nan, 0, 0]), r"label in row 3 is nan"),
    (np.array([0, 1, 2, 0, -3, 0]), r"label in row 4 is -3; class indices must be >= 0"),
    (np.zeros((6, 2), np.int64), r"labels have shape \[6, 2\]"),
    (np.array([True] * 6), r"labels are bool"),
])
def test_bad_labels_are_refused(tmp_path, labels, message):
    with pytest.raises(QuantkitError, match=message):
        load_dataset(_npz(tmp_path, x=_images(), labels=labels), [IMAGE])


def test_zero_rows_and_bad_limits(tmp_path):
    with pytest.raises(QuantkitError, match="has zero rows"):
        load_dataset(_npz(tmp_path, x=np.zeros((0, 1, 28, 28), np.float32)), [IMAGE])
    for limit in (0, -1, 2.5):
        with pytest.raises(QuantkitError, match="--eval-limit must be a positive"):
            load_dataset(_npz(tmp_path, x=_images()), [IMAGE], limit=limit)


def test_limit_takes_the_first_rows_and_skips_bad_ones_beyond(tmp_path):
    images = _images()
    images[5] = np.nan  # outside the limit: never fed, so not an error
    eval_set = load_dataset(_npz(tmp_path, x=images, y=np.arange(6)), [IMAGE], limit=3)
    assert eval_set.rows == 3 and eval_set.labels.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(eval_set.inputs["image"], images[:3])


def test_mean_std_are_refused_for_npz(tmp_path):
    with pytest.raises(QuantkitError, match="--mean/--std apply to image folders only"):
        load_dataset(_npz(tmp_path, x=_images()), [IMAGE], mean=0.5, std=0.5)


def test_check_label_range_names_largest_label():
    check_label_range(np.array([0, 9, 3]), 10, "set.npz")
    with pytest.raises(QuantkitError, match=r"set.npz: largest label is 12 .* 10 outputs "
                                            r"\(classes 0..9\)"):
        check_label_range(np.array([0, 12, 10]), 10, "set.npz")


# --- fingerprint -----------------------------------------------------------------------------

def test_fingerprint_is_stable_and_sensitive(tmp_path):
    images, labels = _images(), np.arange(6)
    first = load_dataset(_npz(tmp_path, "a.npz", x=images, y=labels), [IMAGE])
    again = load_dataset(_npz(tmp_path, "b.npz", image=images.astype(np.float64),
                               labels=labels.astype(np.int32)), [IMAGE])
    assert first.fingerprint == again.fingerprint  # same rows after the cast to the feeds
    assert first.fingerprint.startswith("sha256:") and len(first.fingerprint) == 7 + 64
    changed = images.copy()
    changed[4, 0, 27, 3] += 0.01  # one pixel
    assert load_dataset(_npz(tmp_path, "c.npz", x=changed, y=labels), [IMAGE]).fingerprint \
        != first.fingerprint
    relabelled = load_dataset(_npz(tmp_path, "d.npz", x=images, y=labels[::-1]), [IMAGE])
    assert relabelled.fingerprint != first.fingerprint
    unlabelled = load_dataset(_npz(tmp_path, "e.npz", x=images), [IMAGE])
    assert unlabelled.fingerprint != first.fingerprint


def test_describe_is_what_results_json_records(tmp_path):
    eval_set = load_dataset(_npz(tmp_path, x=_images(), y=np.arange(6)), [IMAGE])
    described = eval_set.describe()
    assert described == {"name": "eval", "source": str(tmp_path / "eval.npz"), "rows": 6,
                         "labelled": True, "shapes": {"image": [6, 1, 28, 28]},
                         "dtypes": {"image": "float32"},
                         "fingerprint": eval_set.fingerprint}
    import json

    json.dumps(described)  # plain JSON types only


# --- image folders ---------------------------------------------------------------------------

def test_folder_two_classes_values_after_mean_std(tmp_path):
    for index in range(3):
        _png(tmp_path / "set" / "cat" / f"{index}.png", 0)
        _png(tmp_path / "set" / "dog" / f"{index}.png", 255)
    (tmp_path / "set" / "dog" / "notes.txt").write_text("not an image, ignored")
    eval_set = load_dataset(tmp_path / "set", [IMAGE], mean=0.5, std=0.5)
    images = eval_set.inputs["image"]
    assert images.shape == (6, 1, 28, 28) and images.dtype == np.float32
    assert eval_set.labels.tolist() == [0, 1, 0, 1, 0, 1]  # sorted names, classes interleaved
    assert np.all(images[0::2] == -1.0) and np.all(images[1::2] == 1.0)
    assert eval_set.name == "set"
    limited = load_dataset(tmp_path / "set", [IMAGE], limit=2)
    assert limited.labels.tolist() == [0, 1]  # every class in the first rows
    assert np.all(limited.inputs["image"][1] == 1.0)  # no mean/std: [0, 1]


def test_folder_with_integer_class_names_uses_them(tmp_path):
    _png(tmp_path / "set" / "7" / "a.png", 128)
    _png(tmp_path / "set" / "3" / "b.jpg", 128)
    eval_set = load_dataset(tmp_path / "set", [IMAGE])
    assert sorted(eval_set.labels.tolist()) == [3, 7]


def test_folder_rgb_per_channel_mean_std_and_grey_converted(tmp_path):
    from PIL import Image

    rgb = FeedSpec("pixels", (-1, 3, 8, 8), "float32")
    pixels = np.zeros((8, 8, 3), np.uint8)
    pixels[:4] = (255, 0, 51)  # top half
    pixels[4:] = (0, 255, 0)  # bottom half
    (tmp_path / "set" / "a").mkdir(parents=True)
    Image.fromarray(pixels, "RGB").save(tmp_path / "set" / "a" / "halves.png")
    _png(tmp_path / "set" / "b" / "grey.bmp", 102, size=(8, 8))  # L image into RGB feed
    eval_set = load_dataset(tmp_path / "set", [rgb], mean=[0.5, 0.0, 0.2], std=[0.5, 1.0, 0.1])
    images = eval_set.inputs["pixels"]
    assert images.shape == (2, 3, 8, 8)
    expected = np.empty((3, 8, 8), np.float32)  # NCHW: one plane per channel
    expected[:, :4] = np.array([1.0, 0.0, 0.0])[:, None, None]  # ((1, 0, .2) - mean) / std
    expected[:, 4:] = np.array([-1.0, 1.0, -2.0])[:, None, None]
    np.testing.assert_allclose(images[0], expected, atol=1e-5)
    np.testing.assert_allclose(images[1, :, 4, 4], [-0.2, 0.4, 2.0], atol=1e-5)
    with pytest.raises(QuantkitError, match="--mean needs 1 or 3 values"):
        load_dataset(tmp_path / "set", [rgb], mean=[0.5, 0.5], std=0.5)
    with pytest.raises(QuantkitError, match="--std values must be positive"):
        load_dataset(tmp_path / "set", [rgb], std=0)


def test_folder_resizes_bilinear(tmp_path):
    from PIL import Image

    gradient = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))  # 16x16, left to right
    (tmp_path / "set" / "a").mkdir(parents=True)
    Image.fromarray(gradient, "L").save(tmp_path / "set" / "a" / "g.png")
    image = load_dataset(tmp_path / "set", [IMAGE]).inputs["image"][0, 0]
    expected = np.asarray(Image.fromarray(gradient, "L").resize((28, 28), Image.BILINEAR),
                          dtype=np.float32) / 255.0
    np.testing.assert_allclose(image, expected, atol=1e-6)
    assert np.all(np.diff(image[14]) >= 0) and image[14, 0] < 0.1 < 0.9 < image[14, -1]


def test_unreadable_image_is_named(tmp_path):
    _png(tmp_path / "set" / "a" / "good.png", 10)
    (tmp_path / "set" / "a" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(QuantkitError, match=r"cannot read image .*broken.png"):
        load_dataset(tmp_path / "set", [IMAGE])


def test_empty_and_flat_folders_are_explained(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(QuantkitError, match="eval set folder .*empty is empty"):
        load_dataset(tmp_path / "empty", [IMAGE])
    _png(tmp_path / "flat" / "a.png", 10)
    with pytest.raises(QuantkitError, match="holds images but no class sub-folders"):
        load_dataset(tmp_path / "flat", [IMAGE])
    (tmp_path / "hollow" / "cat").mkdir(parents=True)
    with pytest.raises(QuantkitError, match="no images in them"):
        load_dataset(tmp_path / "hollow", [IMAGE])


@pytest.mark.parametrize("feeds, message", [
    ([FeedSpec("image", (-1, 3, -1, -1), "float32")],
     r"feed 'image' has shape \[-1, 3, -1, -1\].*not fixed.*pass an .npz"),
    ([FeedSpec("image", (-1, -1, 28, 28), "float32")], r"feed 'image'.*1 or 3 channels"),
    ([FeedSpec("tokens", (-1, 128), "int64")], r"feed 'tokens'.*not an image batch"),
    ([FeedSpec("image", (-1, 1, 28, 28), "uint8")], r"feed 'image' is uint8"),
    (list(PAIR), r"feeds one input but the model has feeds 'dense' \[-1, 3\] float32, 'ids'"),
])
def test_folder_refused_for_feeds_it_cannot_fill(tmp_path, feeds, message):
    _png(tmp_path / "set" / "a" / "x.png", 10)
    with pytest.raises(QuantkitError, match=message):
        load_dataset(tmp_path / "set", feeds)


# --- MNIST -----------------------------------------------------------------------------------

def test_mnist_for_the_real_test_model():
    from quantkit.model_files import check_inference_model

    feeds = check_inference_model(REPO / "tests" / "data" / "paddle3").feeds
    eval_set = load_dataset("mnist", feeds, limit=500)
    images = eval_set.inputs["image"]
    assert images.shape == (500, 1, 28, 28) and images.dtype == np.float32
    assert images.min() == -1.0 and images.max() == 1.0
    assert eval_set.labels.shape == (500,) and eval_set.labels.dtype == np.int64
    assert set(eval_set.labels.tolist()) == set(range(10))
    assert eval_set.describe()["name"] == "mnist-test"
    from quantkit.datasets import mnist

    np.testing.assert_array_equal(eval_set.labels, mnist.load("test", 500).labels[:, 0])
    train = load_dataset("mnist-train", feeds, limit=10)
    assert train.rows == 10 and train.fingerprint != load_dataset("mnist", feeds,
                                                                   limit=10).fingerprint


@pytest.mark.parametrize("feeds", [
    [FeedSpec("data", (-1, 3, 224, 224), "float32")],
    [FeedSpec("data", (-1, 784), "float32")],
    [FeedSpec("data", (-1, 1, 28, 28), "int64")],
    [FeedSpec("data", (-1, 1, 28, 28), "float32"), FeedSpec("mask", (-1, 1), "float32")],
])
def test_mnist_refused_for_incompatible_feeds(feeds):
    with pytest.raises(QuantkitError, match=r"eval set 'mnist' gives images \[N, 1, 28, 28\].*"
                                            r"feeds are 'data' \[-1, "):
        load_dataset("mnist", feeds, limit=5)


def test_mnist_refuses_mean_std():
    with pytest.raises(QuantkitError, match="already normalised"):
        load_dataset("mnist", [IMAGE], mean=0.5)
