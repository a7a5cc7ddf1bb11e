"""The three PaddleSlim data forms become one stream of feed dicts (no Paddle needed)."""
from __future__ import annotations

import numpy as np
import pytest

from quantkit.data.readers import choose_source
from quantkit.errors import QuantkitError
from quantkit.data import FeedSpec

FEEDS = (FeedSpec("image", (-1, 1, 28, 28), "float32"),)


def _samples():
    for index in range(10):
        yield np.full(784, index, dtype=np.float64), index  # flat image + label, like MNIST


def test_sample_generator_is_batched_reshaped_and_cast():
    batches = list(choose_source(FEEDS, sample_generator=_samples, batch_size=4))
    assert len(batches) == 2  # 10 samples, batches of 4, short last batch dropped
    assert batches[0]["image"].shape == (4, 1, 28, 28)
    assert batches[0]["image"].dtype == np.float32
    assert batches[1]["image"][0, 0, 0, 0] == 4
    assert list(batches[0]) == ["image"]  # the label field is not fed


def test_batch_nums_limits_and_stream_is_reiterable():
    source = choose_source(FEEDS, sample_generator=_samples, batch_size=2, batch_nums=3)
    assert len(list(source)) == 3 and len(list(source)) == 3


def test_batch_generator_accepts_tuples_and_dicts():
    def tuples():
        yield np.zeros((3, 1, 28, 28)), np.zeros((3, 1))

    def dicts():
        yield {"image": np.ones((2, 1, 28, 28))}

    assert next(iter(choose_source(FEEDS, batch_generator=tuples)))["image"].shape[0] == 3
    assert next(iter(choose_source(FEEDS, batch_generator=dicts)))["image"].shape[0] == 2


def test_one_shot_iterator_is_kept_for_a_second_pass():
    loader = iter([[np.zeros((2, 1, 28, 28))] for _ in range(3)])
    source = choose_source(FEEDS, data_loader=loader)
    assert len(list(source)) == 3 and len(list(source)) == 3


def test_static_dataloader_style_list_of_dicts():
    source = choose_source(FEEDS, data_loader=lambda: iter([[{"image": np.zeros((2, 784))}]]))
    assert next(iter(source))["image"].shape == (2, 1, 28, 28)


def test_wrong_shape_names_the_feed_and_both_shapes():
    def bad():
        yield np.zeros((2, 3, 32, 32))

    with pytest.raises(QuantkitError, match=r"calibration batch 0: input 'image' has shape "
                                            r"\[2, 3, 32, 32\], the model expects "
                                            r"\[-1, 1, 28, 28\]"):
        list(choose_source(FEEDS, batch_generator=bad))


def test_exactly_one_data_form():
    with pytest.raises(QuantkitError, match="exactly one of"):
        choose_source(FEEDS)
    with pytest.raises(QuantkitError, match="got sample_generator, batch_generator"):
        choose_source(FEEDS, sample_generator=_samples, batch_generator=_samples)


def test_missing_feed_in_dict_is_named():
    with pytest.raises(QuantkitError, match="no value for feed image"):
        list(choose_source(FEEDS, batch_generator=lambda: iter([{"x": np.zeros(1)}])))
