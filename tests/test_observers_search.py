"""mse, emd and KL observers against Paddle core 2.6.2's own code, on the same tensors.

Core's sampling methods are called unbound on a stand-in `self` (`core` fixture) with
`utils.load_variable_data` patched to hand over our tensors, so what runs is core's source:
post_training_quantization.py (PTQ) `_sample_mse` (760-812), `_sample_emd` (814-868),
`_collect_activation_abs_min_max` (1083-1105), `_init_sampling_act_histogram` (1107-1122),
`_sample_histogram` (985-996), `_calculate_kl_hist_threshold` (1124-1167), and
cal_kl_threshold.py's `cal_kl_threshold` (86-144).
"""
from __future__ import annotations

import quantkit  # noqa: F401  (before paddle: zlib import-order segfault)

from types import SimpleNamespace

import numpy as np
import pytest

from quantkit.calibration.observers.search import (HISTOGRAM_BINS, OBSERVERS, SEARCH_FRACTIONS,
                                                   ZERO_SCALE, EmdObserver, KlObserver,
                                                   MseObserver, kl_threshold)
from quantkit.errors import QuantkitError


def activations(seed: int, batches: int = 4, shape=(4, 16, 24, 24), shift: float = 0.0,
                outliers: bool = True):
    """ReLU-like batches: half-normal, a per-batch gain, a few large outliers."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(batches):
        x = np.maximum(rng.standard_normal(shape), 0.0) * rng.uniform(0.5, 2.0)
        if outliers:
            flat = x.reshape(-1)
            k = int(rng.integers(1, 20))
            flat[rng.integers(0, flat.size, k)] = rng.uniform(4.0, 15.0, k)
        out.append((x - shift).astype(np.float32))
    return out


def feed(observer, batches) -> object:
    """Run every pass of `observer` over `batches`, closing each pass."""
    for _ in range(observer.passes):
        for x in batches:
            observer.observe(x)
        if hasattr(observer, "end_pass"):
            observer.end_pass()
    return observer


@pytest.fixture
def core(monkeypatch):
    """Core's PTQ sampling methods, run on a stand-in `self` with one activation, 'act'."""
    from paddle.static.quantization import post_training_quantization as ptq

    tensors = {}
    monkeypatch.setattr(ptq.utils, "load_variable_data", lambda scope, name: tensors[name])
    monkeypatch.setattr(ptq._logger, "level", 40)

    def stand_in(algo, onnx_format=True, bins=HISTOGRAM_BINS):
        return SimpleNamespace(
            _algo=algo, _activation_bits=8, _onnx_format=onnx_format, _histogram_bins=bins,
            _scope=None, _weight_quantize_type="abs_max", _quantized_weight_var_name=[],
            _quantized_act_var_name=["act"], _quantized_threshold={},
            _quantized_var_threshold={}, _best_calibration_loss={}, _zero_size_var_names=set(),
            _sampling_act_abs_min_max={}, _sampling_act_histogram={})

    def search(algo, batches, onnx_format=True):
        """Core's mse or emd threshold and best loss over `batches`."""
        me = stand_in(algo, onnx_format)
        sample = {"mse": ptq.PostTrainingQuantization._sample_mse,
                  "emd": ptq.PostTrainingQuantization._sample_emd}[algo]
        for x in batches:
            tensors["act"] = x
            sample(me)
        return me._quantized_threshold["act"], float(me._best_calibration_loss["act"])

    def kl(batches, bins=HISTOGRAM_BINS):
        """Core's KL threshold and its (histogram, edges), both passes as in `quantize()`."""
        me = stand_in("KL", bins=bins)
        cls = ptq.PostTrainingQuantization
        for x in batches:
            tensors["act"] = x
            cls._collect_activation_abs_min_max(me)
        cls._init_sampling_act_histogram(me)
        for x in batches:
            tensors["act"] = x
            cls._sample_histogram(me)
        cls._calculate_kl_hist_threshold(me)
        return me._quantized_var_threshold["act"], me._sampling_act_histogram["act"]

    return SimpleNamespace(search=search, kl=kl)


# --- mse / emd -------------------------------------------------------------------------

def test_candidates_are_cores_35_fractions():
    # PTQ:790-797: s starts at 0.3 and grows by 0.02 while s <= 1.0; the accumulated float
    # passes 1.0 (1.0000000000000004), so s = 1.0 (max|x| itself) is never tried.
    assert len(SEARCH_FRACTIONS) == 35
    assert SEARCH_FRACTIONS[0] == 0.3 and 0.98 < SEARCH_FRACTIONS[-1] < 0.981


@pytest.mark.parametrize("onnx_format", [True, False])
@pytest.mark.parametrize("algo", ["mse", "emd"])
def test_search_matches_core(core, algo, onnx_format):
    for seed in (1, 2):
        # without onnx_format core clips to [0, scale]: shift so negatives exist too
        batches = activations(seed, shift=0.0 if onnx_format else 0.3)
        expected, core_loss = core.search(algo, batches, onnx_format)
        observer = feed(OBSERVERS[algo](onnx_format=onnx_format), batches)
        assert observer.scale() == expected
        # core sums in float32 over the whole tensor; emd's loss is a small difference
        assert observer.best_loss == pytest.approx(core_loss, rel=1e-6 if algo == "mse" else 3e-3)


def test_mse_hand_computed():
    # One value 1.0: every candidate s < 1 clips it to s, loss (1 - s)^2, least at s = 0.98.
    observer = MseObserver()
    observer.observe(np.array([1.0], np.float32))
    assert observer.scale() == SEARCH_FRACTIONS[-1]
    assert observer.best_loss == pytest.approx((1 - 0.98) ** 2, rel=1e-4)
    # Core keeps the candidate with the least loss on its own batch over all batches: a
    # later batch with a larger max|x| but a worse best loss does not move the scale.
    observer.observe(np.array([4.0, 0.5], np.float32))
    assert observer.scale() == SEARCH_FRACTIONS[-1]


def test_emd_hand_computed():
    # One value 1.0: both std are 0, the loss is |1 - s|, least at s = 0.98.
    observer = EmdObserver()
    observer.observe(np.array([[1.0]], np.float32))
    assert observer.scale() == SEARCH_FRACTIONS[-1]
    assert observer.best_loss == pytest.approx(0.02, rel=1e-5)


@pytest.mark.parametrize("algo", ["mse", "emd"])
def test_search_all_zero(core, algo):
    zeros = np.zeros((2, 3, 4, 4), np.float32)
    with np.errstate(all="raise"):
        observer = feed(OBSERVERS[algo](), [zeros])
    assert observer.scale() == SEARCH_FRACTIONS[-1] * ZERO_SCALE > 0
    assert observer.scale() == core.search(algo, [zeros])[0]
    # Core's quirk, reproduced: a zero batch has loss 0, beats every real batch, and the
    # scale collapses to ~1e-8 (PTQ:786-812 keep the least loss over batches).
    batches = activations(3, batches=2) + [zeros]
    assert feed(OBSERVERS[algo](), batches).scale() == core.search(algo, batches)[0] < 1e-7


# --- KL --------------------------------------------------------------------------------

def test_kl_search_equals_core_on_small_histograms():
    from paddle.static.quantization.cal_kl_threshold import cal_kl_threshold

    rng = np.random.default_rng(0)
    for bins in (260, 400, 513, 700):
        for bits in (4, 8):
            decay = rng.poisson(60 * np.exp(-np.arange(bins) / rng.uniform(20, 200)))
            sparse = rng.integers(0, 6, bins) * (rng.random(bins) < 0.4)
            for hist in (decay, sparse, decay * (rng.random(bins) < 0.5)):
                width = rng.uniform(1e-3, 1.0)
                assert kl_threshold(hist, width, bits) == cal_kl_threshold(hist, width, bits)


def test_kl_search_hand_computed():
    from paddle.static.quantization.cal_kl_threshold import cal_kl_threshold

    # bits=2: one level, Q is hist[:i] spread evenly over its non-empty bins. Candidates
    # i = 2, 3, 4; at i = 3, P = [2, 2, 1+1] and Q = [5/3] * 3 are proportional: KL = 0.
    hist = np.array([2, 2, 1, 1, 0])
    assert kl_threshold(hist, 0.5, bits=2) == cal_kl_threshold(hist, 0.5, 2) == 3.5 * 0.5
    # No candidate has a non-empty last bin: core falls back to the last non-empty bin at
    # or below the starting candidate, here bin 0.
    hist = np.array([5, 0, 0, 0, 0, 0, 3])
    assert kl_threshold(hist, 2.0) == cal_kl_threshold(hist, 2.0, 8) == 0.5 * 2.0


def test_kl_two_pass_equals_core_mobilenet_sized(core):
    # One activation at core's 2048 bins, no outliers so that the upper half of the
    # histogram (core's candidates) is dense: ~2 s of core's Python loops.
    batches = activations(4, batches=3, shape=(2, 32, 56, 56), outliers=False)
    expected, (hist, edges) = core.kl(batches)
    observer = feed(KlObserver(two_pass=True), batches)
    mine, width = observer.histogram()
    np.testing.assert_array_equal(mine, hist)
    assert width == edges[1] - edges[0]
    assert observer.scale() == expected


@pytest.mark.parametrize("seed, shift", [(5, 0.0), (6, 0.0), (7, -0.25)])
def test_kl_two_pass_equals_core(core, seed, shift):
    # 512 bins keep core's loops fast; shift=-0.25 makes min|x| > 0, where core's
    # threshold ignores the histogram's start (KLT:144): reproduced, not fixed.
    batches = activations(seed, shift=shift)
    expected, (hist, _) = core.kl(batches, bins=512)
    observer = feed(KlObserver(two_pass=True, bins=512), batches)
    np.testing.assert_array_equal(observer.histogram()[0], hist)
    assert observer.scale() == expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("low", [0.0, 0.2])
def test_kl_two_pass_counts_like_numpy_on_edges(dtype, low):
    # Values on and next to every edge, zeros, and values outside pass 1's range (core's
    # np.histogram drops them): each must land where np.histogram(|x|, bins=edges) puts it.
    observer = KlObserver(two_pass=True, bins=64)
    observer.observe(np.array([low, -3.3], dtype))
    observer.end_pass()
    edges = observer.edges
    rng = np.random.default_rng(9)
    values = np.concatenate([edges, -edges, np.nextafter(edges, 0), np.nextafter(edges, 9),
                             rng.uniform(-4, 4, 5000), np.zeros(50)]).astype(dtype)
    observer.observe(values)
    expected = np.histogram(np.abs(values), bins=edges)[0]
    np.testing.assert_array_equal(observer.histogram()[0], expected)


def test_kl_two_pass_from_zero_is_cores_search_on_bins_from_zero():
    from paddle.static.quantization.cal_kl_threshold import cal_kl_threshold

    batches = activations(7, shift=-0.25)  # min|x| = 0.25: core's offset would apply
    observer = feed(KlObserver(two_pass=True, from_zero=True, bins=512), batches)
    values = np.abs(np.concatenate([x.ravel() for x in batches])).astype(np.float64)
    hist, edges = np.histogram(values, bins=512, range=(0.0, values.max()))
    np.testing.assert_array_equal(observer.histogram()[0], hist)
    assert observer.scale() == cal_kl_threshold(hist, edges[1] - edges[0], 8)


def test_kl_all_zero(core):
    zeros = np.zeros((2, 8, 5, 5), np.float32)
    assert feed(KlObserver(two_pass=False), [zeros, zeros]).scale() == ZERO_SCALE
    assert feed(KlObserver(two_pass=True, from_zero=True), [zeros]).scale() == ZERO_SCALE
    # Core widens the empty range to [-0.5, 0.5]: its threshold is ~0.5, reproduced.
    expected, _ = core.kl([zeros, zeros], bins=512)
    assert feed(KlObserver(two_pass=True, bins=512), [zeros, zeros]).scale() == expected > 0


def test_kl_one_pass_on_cores_grid_when_first_batch_holds_the_max():
    rng = np.random.default_rng(8)
    x = np.maximum(rng.standard_normal(300_000), 0.0).astype(np.float32)
    observer = KlObserver(two_pass=False)
    observer.observe(x)
    observer.observe(x[:1000] * 0.5)  # smaller: no growth
    hist, width = observer.histogram()
    both = np.concatenate([x, x[:1000] * 0.5])
    core_hist, edges = np.histogram(both.astype(np.float64), bins=HISTOGRAM_BINS,
                                    range=(0.0, float(x.max())))
    assert width == edges[1] - edges[0]
    # same grid; only values within float32 rounding of an edge may land one bin over
    assert np.abs(hist - core_hist).sum() <= 1e-4 * both.size
    assert observer.scale() == kl_threshold(core_hist, width)


def test_kl_one_pass_growth_merges_bins_exactly():
    fine = HISTOGRAM_BINS * 32
    # dyadic values in the middle of fine bins, and max 1.0: no rounding anywhere
    small = np.append((np.arange(0, fine, 7) + 0.5) / fine, 1.0)
    large = np.array([3.0, 2.5, 1.25, 0.0])
    observer = KlObserver(two_pass=False)
    observer.observe(small.astype(np.float32))
    assert observer.top == 1.0
    observer.observe(large)
    assert observer.top == 4.0  # doubled twice, so fine bins merge 4 to 1
    everything = np.concatenate([small, large])
    index = np.minimum((everything * fine / 4.0).astype(np.int64), fine - 1)
    # 1.0 was the old top, counted in the (closed) last bin below it: it stays there
    index[small.size - 1] -= 1
    np.testing.assert_array_equal(observer.counts, np.bincount(index, minlength=fine))


def test_kl_one_pass_grid_is_bounded():
    for seed in range(6):
        batches = activations(10 + seed, batches=5, shape=(3, 8, 20, 20))
        observer = feed(KlObserver(two_pass=False), batches)
        hist, width = observer.histogram()
        top = max(float(np.abs(x).max()) for x in batches)
        assert hist.sum() == sum(x.size for x in batches)
        assert len(hist) <= HISTOGRAM_BINS and hist[-1] > 0
        # less than 6.25% wider than core's bins, ending within one bin above max|x|
        assert top / HISTOGRAM_BINS < width < top / HISTOGRAM_BINS * 1.0625
        assert (len(hist) - 1) * width <= top <= len(hist) * width
        # inside core's search window, from half the range up to max|x| (capped there)
        assert (len(hist) - 1) // 2 * width <= observer.scale() <= top


# --- shared behaviour ------------------------------------------------------------------

OBSERVER_CASES = [(MseObserver, {}), (EmdObserver, {}), (KlObserver, {}),
                  (KlObserver, {"two_pass": True})]


@pytest.mark.parametrize("cls, options", OBSERVER_CASES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused_naming_the_batch(cls, options, bad):
    observer = cls(name="conv2d_1.tmp_0", **options)
    good = activations(0, batches=1, shape=(2, 4, 4))[0]
    observer.observe(good)
    poisoned = good.copy()
    poisoned[1, 2, 3] = bad
    with pytest.raises(QuantkitError, match=r"'conv2d_1.tmp_0': batch 1 \(0-based\).*NaN or Inf"):
        observer.observe(poisoned)


@pytest.mark.parametrize("cls, options", OBSERVER_CASES)
def test_empty_tensors_are_skipped(cls, options):
    empty = np.zeros((0, 16), np.float32)
    nothing = feed(cls(**options), [empty, empty])
    assert not nothing.has_data
    with pytest.raises(QuantkitError, match="no values observed"):
        nothing.scale()
    batches = activations(1, batches=2, shape=(4, 8, 8))
    with_empty = feed(cls(**options), [batches[0], empty, batches[1]])
    assert with_empty.has_data
    assert with_empty.scale() == feed(cls(**options), batches).scale()


@pytest.mark.parametrize("cls, options", OBSERVER_CASES)
def test_dtypes(cls, options):
    integers = np.arange(-20, 100).reshape(4, 30)
    assert feed(cls(**options), [integers]).scale() == feed(
        cls(**options), [integers.astype(np.float64)]).scale()
    with pytest.raises(QuantkitError, match="complex128"):
        cls(**options).observe(np.ones(3, complex))


@pytest.mark.parametrize("cls, options", OBSERVER_CASES)
def test_state_size_does_not_grow_with_batches(cls, options):
    def state(observer):
        return sorted((key, value.nbytes) for key, value in vars(observer).items()
                      if isinstance(value, np.ndarray))

    batches = activations(2, batches=20, shape=(2, 8, 6, 6))
    few, many = feed(cls(**options), batches[:2]), feed(cls(**options), batches)
    assert state(few) == state(many)
    assert len(vars(few)) == len(vars(many))


def test_two_pass_needs_both_passes_closed():
    observer = KlObserver(two_pass=True)
    observer.observe(np.ones(10, np.float32))
    with pytest.raises(QuantkitError, match="end_pass"):
        observer.scale()


def test_factory_table():
    assert set(OBSERVERS) == {"mse", "emd", "KL"}
    assert OBSERVERS["mse"]().passes == OBSERVERS["emd"]().passes == 1
    assert KlObserver().passes == 2  # default: core's two passes, core's thresholds
    assert KlObserver(two_pass=False).passes == 1


def test_factory_builds_these_observers():
    observers = pytest.importorskip("quantkit.calibration.observers")
    if not hasattr(observers, "create_observer"):
        pytest.skip("quantkit.calibration.observers has no factory yet")
    mse = observers.create_observer("mse", bits=8, onnx_format=False, name="t")
    assert isinstance(mse, MseObserver) and isinstance(mse, observers.Observer)
    kl = observers.create_observer("KL", two_pass=True)
    assert isinstance(kl, KlObserver) and isinstance(kl, observers.TwoPassObserver)
    assert isinstance(observers.create_observer("emd"), EmdObserver)
