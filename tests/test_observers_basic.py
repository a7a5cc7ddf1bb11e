"""The basic observers against hand-computed values and against Paddle core 2.6.2's own code.

Core's statistics are methods of `PostTrainingQuantization`; they only read a few attributes
and tensors through `utils.load_variable_data(self._scope, name)`, so `_core()` builds the
object without running its (model-loading) constructor and hands it a dict-backed scope:
the numbers below are computed by core's real `_sample_*` code, not a transcription.
Line numbers refer to paddle/static/quantization/post_training_quantization.py.
"""
from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest

import quantkit  # noqa: F401  (before paddle: zlib import-order segfault)
from quantkit.calibration.observers import (
    EPSILON, REGISTRY, AbsMaxObserver, AvgObserver, HistObserver, MinMaxObserver, Observer,
    PerChannelAbsMaxObserver, TwoPassHistObserver, create_observer, weight_quant_axis)
from quantkit.calibration.observers.basic import hist_threshold
from quantkit.errors import QuantkitError

from paddle.static.quantization import utils as core_utils  # noqa: E402
from paddle.static.quantization.post_training_quantization import (  # noqa: E402
    PostTrainingQuantization)


# -- core, driven directly --------------------------------------------------------------

class _Tensor:
    def __init__(self, array):
        self.array = array

    def get_tensor(self):
        return self.array


class _Scope(dict):
    def find_var(self, name):
        return _Tensor(self[name])


def _core(algo="abs_max", percent=0.99999, bins=2048, weight_type="channel_wise_abs_max",
          weight_op=None):
    core = PostTrainingQuantization.__new__(PostTrainingQuantization)
    core.__dict__.update(
        _scope=_Scope(), _algo=algo, _hist_percent=percent, _histogram_bins=bins,
        _activation_bits=8, _weight_quantize_type=weight_type,
        _quantized_act_var_name={"act"} if weight_op is None else set(),
        _quantized_weight_var_name=set() if weight_op is None else {"w"},
        _weight_op_pairs={} if weight_op is None else {"w": weight_op},
        _quantized_threshold={}, _quantized_var_avg={}, _quantized_var_min={},
        _quantized_var_max={}, _zero_size_var_names=set(), _sampling_act_abs_min_max={},
        _sampling_act_histogram={}, _quantized_var_threshold={})
    return core


def core_act(algo, batches, percent=0.99999, bins=2048):
    """Core's activation result for `batches` of one tensor, as `quantize()` runs it."""
    core = _core(algo, percent, bins)

    def each_batch(step):
        for batch in batches:
            core._scope["act"] = batch
            step()

    if algo == "abs_max":
        each_batch(core._sample_abs_max)
        return core._quantized_threshold["act"]
    if algo == "avg":
        each_batch(core._sample_avg)
        return np.array(core._quantized_var_avg["act"]).mean()  # quantize(), lines 486-492
    if algo == "min_max":
        each_batch(core._sample_min_max)
        return core._quantized_var_min["act"], core._quantized_var_max["act"]
    assert algo == "hist"  # quantize(), lines 444-464 then 494-495
    each_batch(core._collect_activation_abs_min_max)
    core._init_sampling_act_histogram()
    each_batch(core._sample_histogram)
    core._calculate_kl_hist_threshold()
    return core._quantized_var_threshold["act"], core._sampling_act_histogram["act"][1]


def core_weight(weight, op_type, weight_type="channel_wise_abs_max"):
    core = _core(weight_type=weight_type, weight_op=op_type)
    core._scope["w"] = weight
    core._sample_abs_max()
    return core._quantized_threshold["w"]


def run(observer, batches):
    for batch in batches:
        observer.observe(batch)
    return observer.scale()


def run_two_pass(observer, batches):
    """The two-pass protocol: every batch, end_pass(), every batch again, end_pass()."""
    for _ in range(2):
        for batch in batches:
            observer.observe(batch)
        observer.end_pass()
    return observer.scale()


def activations(seed=0, n=12, shape=(4, 8, 6, 6)):
    """ReLU'd conv-like outputs whose spread varies by batch, plus a heavy right tail."""
    rng = np.random.default_rng(seed)
    return [np.maximum(rng.normal(0.2, 1.0 + 0.3 * i, shape), 0)
            * rng.lognormal(0.0, 0.3, shape[1:]).astype(np.float32) for i in range(n)]


# -- abs_max, avg, min_max --------------------------------------------------------------

def test_abs_max_by_hand():
    assert run(AbsMaxObserver(), [np.array([[1.0, -3.0], [2.0, 0.0]]),
                                  np.array([-0.5, 2.5])]) == 3.0


def test_avg_by_hand():
    # batch 1 rows' max|x|: 4, 2 -> 3; batch 2 (one row): 1 -> mean of batch means = 2
    assert run(AvgObserver(), [np.array([[1.0, -4.0], [2.0, 0.0]]),
                               np.array([[-1.0, 0.5, 0.0]])]) == 2.0


def test_min_max_by_hand():
    observer = MinMaxObserver()
    assert run(observer, [np.array([-1.0, 2.0]), np.array([[-5.0, 0.5]])]) == 5.0
    assert (observer.min_value, observer.max_value) == (-5.0, 2.0)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_abs_max_avg_min_max_match_core(dtype):
    rng = np.random.default_rng(1)
    batches = [(rng.normal(0.5, 2.0, (n, 3, 5)) - 1).astype(dtype) for n in (4, 4, 4, 1)]
    assert run(AbsMaxObserver(), batches) == core_act("abs_max", batches)
    # a short last batch weighs as much as a full one, in core and here; core averages in
    # the tensor's dtype (float16 rounds), quantkit in float64
    assert run(AvgObserver(), batches) == pytest.approx(core_act("avg", batches),
                                                        rel=4 * np.finfo(dtype).eps)
    observer = MinMaxObserver()
    observer_scale = run(observer, batches)
    low, high = core_act("min_max", batches)
    assert (observer.min_value, observer.max_value) == (low, high)
    assert observer_scale == max(-low, high) == core_act("abs_max", batches)


def test_avg_of_a_1d_tensor_is_mean_abs_like_core():
    batches = [np.array([1.0, -3.0, 2.0]), np.array([-4.0])]
    assert run(AvgObserver(), batches) == core_act("avg", batches) == (2.0 + 4.0) / 2


def test_avg_survives_the_0d_tensor_that_crashes_core():
    """Core's `var_tensor.reshape(var_tensor.shape[0], -1)` (line 904) on shape ()."""
    batches = [np.array(-2.0, dtype=np.float32), np.array(4.0, dtype=np.float32)]
    with pytest.raises(IndexError, match="tuple index out of range"):
        core_act("avg", batches)
    assert run(AvgObserver(), batches) == 3.0


# -- per-channel weights ----------------------------------------------------------------

def test_weight_axes_are_cores():
    assert {op for op in ("conv2d", "depthwise_conv2d", "conv2d_transpose", "mul", "matmul",
                          "matmul_v2") if weight_quant_axis(op) == 1} \
        == set(core_utils._channelwise_quant_axis1_ops)


@pytest.mark.parametrize("op_type, shape", [
    ("conv2d", (8, 3, 3, 3)), ("depthwise_conv2d", (6, 1, 3, 3)),
    ("conv2d_transpose", (3, 5, 3, 3)), ("mul", (16, 7)), ("matmul_v2", (16, 7))])
def test_per_channel_weights_match_core(op_type, shape):
    weight = np.random.default_rng(2).normal(0, 0.1, shape).astype(np.float32)
    scales = run(PerChannelAbsMaxObserver(axis=weight_quant_axis(op_type)), [weight])
    expected = core_weight(weight, op_type)
    assert scales.shape == (len(expected),) and scales.tolist() == expected
    assert run(AbsMaxObserver(), [weight]) == core_weight(weight, op_type, "abs_max")


def test_per_channel_by_hand_and_zero_channel():
    weight = np.array([[1.0, -2.0], [0.0, 0.0], [3.0, 0.5]])  # [out=3, in=2] for axis 0
    np.testing.assert_array_equal(run(PerChannelAbsMaxObserver(0), [weight]),
                                  [2.0, EPSILON, 3.0])
    np.testing.assert_array_equal(run(PerChannelAbsMaxObserver(1), [weight]), [3.0, 2.0])
    assert core_weight(weight, "conv2d") == [2.0, 0.0, 3.0]  # core stores 0.0


def test_per_channel_refuses_a_changed_channel_count():
    observer = PerChannelAbsMaxObserver(axis=0, name="conv1.w")
    observer.observe(np.ones((4, 2)))
    with pytest.raises(QuantkitError, match="'conv1.w': batch 1 has 3 channels"):
        observer.observe(np.ones((3, 2)))


# -- hist -------------------------------------------------------------------------------

def test_hist_by_hand_and_core_formula():
    # |x| = 0,1,2,3,4 in 4 bins of width 1 over [0, 4]: counts 1,1,1,2; shares .2 .4 .6 1
    observer = HistObserver(bins=4, percent=0.5)
    assert run(observer, [np.array([0.0, -1.0, 2.0, 3.0, -4.0])]) == 2.5  # bin 2's centre
    np.testing.assert_array_equal(observer.counts, [1, 1, 1, 2])
    core = _core(percent=0.5)
    assert core._get_hist_scaling_factor(observer.counts, np.linspace(0, 4, 5)) == 2.5


def test_hist_regrowth_merges_bins_exactly():
    observer = HistObserver(bins=4, percent=0.5)
    observer.observe(np.array([0.0, 1.0, 2.0, 3.0, 4.0]))  # top 4: counts 1 1 1 2
    observer.observe(np.array([6.0]))  # top 8, old pairs merge: 2 3 0 0; 6 -> bin 3
    np.testing.assert_array_equal(observer.counts, [2, 3, 0, 1])
    assert (observer.top, observer.regrowths) == (8.0, 1)
    assert observer.scale() == 3.0  # shares 2/6, 5/6: bin 1, centre 1.5 * width 2
    observer.observe(np.array([-30.0]))  # needs x4: top 32 = 4 bins of 8, all old in bin 0
    np.testing.assert_array_equal(observer.counts, [6, 0, 0, 1])
    assert observer.top == 32.0


def test_hist_from_a_first_batch_holding_the_max_is_cores_exactly():
    batches = activations()
    batches.insert(0, batches.pop(int(np.argmax([b.max() for b in batches]))))
    observer = HistObserver()
    assert run(observer, batches) == core_act("hist", batches)[0]
    assert observer.regrowths == 0


@pytest.mark.parametrize("percent", [0.99999, 0.999, 0.99])
def test_one_pass_hist_stays_within_the_bin_bound_of_core(percent):
    """|T - T_core| <= (w + w_core) / 2 + core's range start, whatever the batch order.

    Both thresholds are bin centres of the bin holding the same order statistic of |x|;
    core's bins start at the abs min, but its T is measured from 0 (line 1487).
    """
    shape = (4, 16, 16, 16)  # 180k values: the 0.99999 quantile is not simply the max
    batches = activations(seed=3, n=10, shape=shape) + [np.random.default_rng(4).standard_t(
        3, shape).astype(np.float32)]  # signed, heavy-tailed, no exact zeros
    core_threshold, core_edges = core_act("hist", batches, percent=percent)
    core_width, core_start = core_edges[1] - core_edges[0], core_edges[0]
    rng = np.random.default_rng(5)
    ascending = list(np.argsort([b.max() for b in batches]))  # the most regrowths
    grown = 0
    for order in [ascending] + [rng.permutation(len(batches)) for _ in range(8)]:
        observer = HistObserver(percent=percent)
        threshold = run(observer, [batches[i] for i in order])
        grown += observer.regrowths > 0
        assert observer.bin_width <= 2 * core_width * (1 + 1e-12)
        bound = (observer.bin_width + core_width) / 2 + core_start
        assert abs(threshold - core_threshold) <= bound * (1 + 1e-9), (order, threshold)
    assert grown  # the bound was exercised with coarser bins, not only the exact case


def _offset_batches(seed):
    """|x| never near 0: core's bins start at the abs min (its offset quirk applies)."""
    rng = np.random.default_rng(seed)
    return [rng.normal(5.0, 1.0 + i, (4, 50)) * rng.choice([-1, 1], (4, 50)) + 0.0
            for i in range(4)]


@pytest.mark.parametrize("data", ["relu", "offset"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_two_pass_hist_is_cores_bit_for_bit(dtype, data):
    batches = activations(seed=7, n=5) if data == "relu" else _offset_batches(6)
    batches = [b.astype(dtype) for b in batches]
    core_threshold, core_edges = core_act("hist", batches)
    observer = TwoPassHistObserver()
    assert run_two_pass(observer, batches) == core_threshold
    np.testing.assert_array_equal(observer.edges, core_edges)
    assert observer.passes == 2 and observer.dropped == 0
    assert (core_edges[0] == 0.0) == (data == "relu")


def test_two_pass_hist_drops_values_outside_the_range_pass_like_core():
    observer = TwoPassHistObserver(bins=4)
    observer.observe(np.array([1.0, 2.0]))
    observer.end_pass()
    observer.observe(np.array([5.0]))
    with pytest.raises(QuantkitError, match="needs both passes .* \\(1 closed\\)"):
        observer.scale()
    observer.end_pass()
    assert observer.dropped == 1
    with pytest.raises(QuantkitError, match="feed both passes the same batches"):
        observer.scale()


def test_two_pass_from_zero_equals_one_pass_at_the_same_top():
    batches = activations(seed=8, n=4)
    batches.insert(0, batches.pop(int(np.argmax([b.max() for b in batches]))))
    assert run_two_pass(TwoPassHistObserver(from_zero=True), batches) \
        == run(HistObserver(), batches)


def test_hist_of_a_constant_tensor_core_offset_bug():
    """Core: range (100, 100) widens to (99.5, 100.5); T = 1024.5/2048, measured from 0."""
    batches = [np.full((2, 8), -100.0, dtype=np.float32)]
    core_threshold = core_act("hist", batches)[0]
    assert core_threshold == pytest.approx(0.5, abs=1e-3)
    assert run_two_pass(TwoPassHistObserver(), batches) == core_threshold  # faithful
    assert run_two_pass(TwoPassHistObserver(from_zero=True), batches) \
        == pytest.approx(100.0, rel=1e-3)
    assert run(HistObserver(), batches) == pytest.approx(100.0, rel=1e-3)


def test_hist_percent_one_never_gives_the_negative_core_threshold():
    counts, edges = np.ones(10, dtype=np.int64), np.linspace(0.0, 1.0, 11)
    assert np.cumsum(counts / 10.0)[-1] < 1.0  # float rounding: 1.0 is never reached
    assert _core(percent=1.0)._get_hist_scaling_factor(counts, edges) == pytest.approx(-0.05)
    assert hist_threshold(counts, 0.1, 1.0) == pytest.approx(0.95)


# -- edge cases shared by all -----------------------------------------------------------

ALL = {"abs_max": AbsMaxObserver, "avg": AvgObserver, "min_max": MinMaxObserver,
       "hist": HistObserver, "per_channel": lambda: PerChannelAbsMaxObserver(axis=1),
       "two_pass_hist": lambda: TwoPassHistObserver(from_zero=True)}


def _feed(observer, batches):
    if observer.passes == 2:
        return run_two_pass(observer, batches)
    return run(observer, batches)


@pytest.mark.parametrize("kind", ALL)
def test_all_zero_tensors_get_epsilon(kind):
    observer = ALL[kind]()
    scale = _feed(observer, [np.zeros((2, 3), np.float32), np.zeros((1, 3), np.float32)])
    assert np.all(np.asarray(scale) == EPSILON)


def test_all_zero_in_core():
    batches = [np.zeros((2, 3), np.float32)]
    assert core_act("abs_max", batches) == 0.0  # a zero scale: we store EPSILON instead
    assert core_act("hist", batches)[0] == pytest.approx(0.5, abs=1e-3)  # numpy's widening
    assert run_two_pass(TwoPassHistObserver(), batches) == core_act("hist", batches)[0]


def test_hist_zeros_before_the_first_nonzero_batch_are_counted():
    observer = HistObserver(bins=4, percent=0.5)
    run(observer, [np.zeros(5), np.array([4.0])])
    np.testing.assert_array_equal(observer.counts, [5, 0, 0, 1])
    assert observer.scale() == 0.5


@pytest.mark.parametrize("kind", ALL)
@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (-np.inf, "Inf")])
def test_nan_and_inf_are_refused_naming_the_batch(kind, bad, word):
    observer = ALL[kind]()
    observer.name = "relu_3.tmp_0"
    good = [np.array([[1.0, -2.0], [0.5, 0.0]]), np.array([[3.0, 1.0]])]
    poisoned = np.array([[1.0, bad]])
    if observer.passes == 2:
        with pytest.raises(QuantkitError, match=f"'relu_3.tmp_0': pass-1 batch 2 .*{word}"):
            for batch in good + [poisoned]:
                observer.observe(batch)
        observer.end_pass()
        observer.observe(good[0])
        with pytest.raises(QuantkitError, match=f"pass-2 batch 1 .*{word}"):
            observer.observe(poisoned)
        return
    before = run(observer, good)
    with pytest.raises(QuantkitError, match=f"'relu_3.tmp_0': batch 2 \\(0-based.*{word}"):
        observer.observe(poisoned)
    np.testing.assert_array_equal(observer.scale(), before)  # the bad batch left no trace


@pytest.mark.parametrize("kind", ALL)
def test_empty_batches_are_skipped_and_counted(kind):
    empty = np.zeros((0, 2), np.float32)
    observer = ALL[kind]()
    with pytest.raises(QuantkitError, match="no values observed in 2 batch"):
        _feed(observer, [empty, empty])  # core skips such a tensor (_zero_size_var_names)
    assert not observer.has_data
    observer = ALL[kind]()
    full = _feed(observer, [np.array([[1.0, -2.0]]), empty])
    assert observer.has_data and observer.batches == 2 and np.all(np.asarray(full) > 0)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int32])
@pytest.mark.parametrize("make", [AbsMaxObserver, AvgObserver, MinMaxObserver, HistObserver,
                                  lambda: PerChannelAbsMaxObserver(axis=1)])
def test_dtypes_agree_with_float32(make, dtype):
    batches = [np.array([[1.0, -2.0, 3.5], [0.0, 4.0, -8.0]]), np.array([[16.0, -0.5, 2.0]])]
    if dtype == np.int32:
        batches = [np.round(b) for b in batches]
    np.testing.assert_array_equal(run(make(), [b.astype(dtype) for b in batches]),
                                  run(make(), [b.astype(np.float32) for b in batches]))


def test_batch_order_does_not_matter_where_it_should_not():
    batches = activations(seed=9, n=6, shape=(3, 4, 5))
    for make, exact in [(AbsMaxObserver, True), (MinMaxObserver, True),
                        (lambda: PerChannelAbsMaxObserver(axis=1), True),
                        (TwoPassHistObserver, True), (AvgObserver, False)]:
        results = [_feed(make(), [batches[i] for i in order]) for order in
                   itertools.islice(itertools.permutations(range(len(batches))), 0, 720, 97)]
        for result in results[1:]:
            if exact:
                np.testing.assert_array_equal(result, results[0])
            else:
                assert result == pytest.approx(results[0], rel=1e-12)


@pytest.mark.parametrize("kind", ALL)
def test_state_size_does_not_grow_with_the_batch_count(kind):
    observer_factory = ALL[kind]
    rng = np.random.default_rng(10)
    batches = [rng.normal(0, 1 + i % 7, (2, 16)) for i in range(1000)]
    sizes = []
    for count in (10, 1000):
        observer = observer_factory()
        _feed(observer, batches[:count])
        sizes.append(len(pickle.dumps(observer)))
    assert abs(sizes[1] - sizes[0]) <= 16  # only integer counters may need more bytes


# -- the factory ------------------------------------------------------------------------

def test_factory_builds_each_basic_observer_with_options():
    assert isinstance(create_observer("abs_max"), AbsMaxObserver)
    hist = create_observer("hist", bins=512, percent=0.999, name="x")
    assert (hist.bins, hist.percent, hist.name) == (512, 0.999, "x")
    # "hist" is what calibration runs (core's exact two passes); the one-pass variant has
    # its own name, so the factory and the engine never disagree on what "hist" means.
    assert isinstance(hist, TwoPassHistObserver) and hist.passes == 2
    assert isinstance(create_observer("hist-one-pass"), HistObserver)
    assert create_observer("channel_wise_abs_max", axis=1).axis == 1
    for name in ("abs_max", "avg", "min_max", "hist-one-pass"):
        assert isinstance(REGISTRY[name](), Observer) and REGISTRY[name].passes == 1


@pytest.mark.parametrize("algo, hint", [("histo", "did you mean 'hist'"),
                                        ("kl", "did you mean 'KL'"),
                                        ("absmax", "did you mean 'abs_max'"),
                                        ("percentile", "known: abs_max, avg")])
def test_factory_refuses_unknown_algorithms_with_close_matches(algo, hint):
    with pytest.raises(QuantkitError, match=f"unknown calibration algorithm '{algo}'.*{hint}"):
        create_observer(algo)


def test_factory_refuses_unknown_options():
    with pytest.raises(QuantkitError, match="'hist' .*rejects options \\['bin'\\]"):
        create_observer("hist", bin=10)
    with pytest.raises(QuantkitError, match="bins must be a positive integer"):
        create_observer("hist", bins=0)
    with pytest.raises(QuantkitError, match="percent must be in"):
        create_observer("hist", percent=1.5)


def test_factory_reaches_the_search_observers_lazily():
    try:
        import quantkit.calibration.observers.search  # noqa: F401
    except ImportError:
        with pytest.raises(QuantkitError, match="observers.search"):
            create_observer("mse")
    else:
        for name in ("mse", "emd", "KL"):
            assert isinstance(create_observer(name), Observer)
