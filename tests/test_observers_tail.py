"""hist's pass 2 skipped on the upper tail: the same threshold as core's two passes, or pass 2."""
import numpy as np
import pytest

from quantkit.calibration.observers import TwoPassHistObserver

RNG = np.random.default_rng(7)
DATA = {
    "relu": [np.maximum(RNG.normal(0.2, 1 + 0.3 * i, (2, 16, 40, 40)), 0).astype(np.float32)
             for i in range(6)],
    "gauss": [RNG.normal(0, 1, (2, 8, 40, 40)).astype(np.float32) for _ in range(6)],
    "saturated": [np.clip(RNG.normal(0.9, 0.3, (2, 50000)), 0, 1).astype(np.float32)
                  for _ in range(4)],
    "heavy": [RNG.standard_cauchy((4, 1000)).astype(np.float32) for _ in range(5)],
    "sparse": [((RNG.random((2, 10000)) > 0.999) * RNG.random((2, 10000))).astype(np.float32)
               for _ in range(4)],
    "growing": [RNG.normal(0, 0.1 * (i + 1) ** 3, (1, 20000)).astype(np.float32)
                for i in range(6)],
    "tiny": [RNG.normal(size=(3, 3)).astype(np.float32) for _ in range(3)],
    "constant": [np.full((2, 3), 2.0, np.float32)],
}


def _threshold(batches, percent, from_zero, feed_pass_two):
    observer = TwoPassHistObserver(percent=percent, from_zero=from_zero)
    for batch in batches:
        observer.observe(batch)
    observer.end_pass()
    skipped = not observer.needs_second_pass and not feed_pass_two
    if not skipped:
        for batch in batches:
            observer.observe(batch)
    observer.end_pass()
    return observer.scale(), skipped


@pytest.mark.parametrize("percent", [0.9999, 0.99, 0.999999, 1.0])
@pytest.mark.parametrize("from_zero", [False, True])
@pytest.mark.parametrize("kind", sorted(DATA))
def test_skipping_pass_two_never_changes_the_threshold(kind, percent, from_zero):
    both, _ = _threshold(DATA[kind], percent, from_zero, feed_pass_two=True)
    tail_only, _ = _threshold(DATA[kind], percent, from_zero, feed_pass_two=False)
    assert tail_only == both


@pytest.mark.parametrize("kind", ["relu", "gauss", "saturated", "tiny"])
def test_activations_like_a_conv_nets_need_no_second_pass_at_hist_default(kind):
    assert _threshold(DATA[kind], 0.9999, False, feed_pass_two=False)[1]


def test_a_share_on_a_count_boundary_reads_the_data_again():
    """240000 values, 0.9999: the bin whose cumulative count is 239976 = need exactly, where
    only core's float cumsum can say which bin wins: pass 2 decides, not the tail."""
    batches = [RNG.normal(0, 10.0 / (i + 1) ** 3, (1, 20000)).astype(np.float32)
               for i in range(12)]
    observer = TwoPassHistObserver(percent=0.9999)
    for batch in batches:
        observer.observe(batch)
    observer.end_pass()
    counts = np.histogram(np.abs(np.concatenate(batches).astype(np.float64)),
                          bins=observer.edges)[0]
    assert 239976 in np.cumsum(counts)  # the premise: a cumulative count hits need exactly
    assert observer.needs_second_pass
