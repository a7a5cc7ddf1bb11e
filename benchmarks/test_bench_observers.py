"""Search observers (KL, mse, emd) vs Paddle core 2.6.2's own sampling code (pytest-benchmark).

Same data for both: the 20 quantized activations of MobileNetV1 (224x224, batch 1) as
synthetic ReLU-like tensors (the input image normal), 10 batches, ~4.4 M values a batch.
Core's members run its PTQ methods unbound on a stand-in `self`, as `quantize()` calls
them (PTQ = paddle/static/quantization/post_training_quantization.py):
KL is `_collect_activation_abs_min_max` per batch, `_init_sampling_act_histogram`,
`_sample_histogram` per batch, `_calculate_kl_hist_threshold` (-> `cal_kl_threshold`);
mse/emd are `_sample_mse` / `_sample_emd` per batch. Each group runs core first, then
quantkit, and quantkit's member records `ratio_to_core` (time / core's) and `speedup`.
Group "observer histogram" times the histogram accumulation alone (what 'hist' shares).

    pytest benchmarks/test_bench_observers.py --benchmark-only --benchmark-group-by=group
"""
from __future__ import annotations

import quantkit  # noqa: F401  (before paddle: zlib import-order segfault)

import statistics
import time
from types import SimpleNamespace

import numpy as np
import pytest

from quantkit.calibration.observers.search import OBSERVERS, KlObserver

BATCHES = 10
# (C, H, W) of the inputs of MobileNetV1's 14 convs + 13 depthwise convs + fc, 20 of them
SHAPES = [(3, 224, 224), (32, 112, 112), (32, 112, 112), (64, 112, 112), (64, 56, 56),
          (128, 56, 56), (128, 56, 56), (128, 56, 56), (128, 28, 28), (256, 28, 28),
          (256, 28, 28), (256, 28, 28), (256, 14, 14), (512, 14, 14), (512, 14, 14),
          (512, 14, 14), (512, 14, 14), (512, 7, 7), (1024, 7, 7), (1024, 1, 1)]
ENGINES = ("paddle-core", "quantkit")
ROUNDS = {("paddle-core", "KL"): 1, ("paddle-core", "mse"): 1, ("paddle-core", "emd"): 1}


@pytest.fixture(scope="module")
def activations() -> dict[str, list[np.ndarray]]:
    """name -> 10 float32 batches; ReLU-like with per-batch gain and rare outliers."""
    rng = np.random.default_rng(0)
    tensors = {}
    for index, shape in enumerate(SHAPES):
        batches = []
        for _ in range(BATCHES):
            x = rng.standard_normal((1, *shape), dtype=np.float32)
            if index:
                np.maximum(x, 0.0, out=x)
                x *= np.float32(rng.uniform(0.5, 2.0))
                flat = x.reshape(-1)
                k = int(rng.integers(0, 5))
                flat[rng.integers(0, flat.size, k)] = rng.uniform(4.0, 12.0, k)
            batches.append(x)
        tensors[f"act_{index}"] = batches
    return tensors


@pytest.fixture(scope="module")
def core_seconds() -> dict[str, float]:
    """algo -> core's median seconds, filled by the core member for quantkit's."""
    return {}


@pytest.fixture(scope="module")
def core_scales() -> dict[str, dict[str, float]]:
    return {}


def _run_core(algo: str, tensors: dict[str, list[np.ndarray]], hist_only=False) -> dict:
    from paddle.static.quantization import post_training_quantization as ptq

    cls = ptq.PostTrainingQuantization
    current = {}
    me = SimpleNamespace(
        _algo=algo, _activation_bits=8, _onnx_format=True, _histogram_bins=2048, _scope=None,
        _weight_quantize_type="abs_max", _quantized_weight_var_name=[],
        _quantized_act_var_name=list(tensors), _quantized_threshold={},
        _quantized_var_threshold={}, _best_calibration_loss={}, _zero_size_var_names=set(),
        _sampling_act_abs_min_max={}, _sampling_act_histogram={})
    saved_load, saved_level = ptq.utils.load_variable_data, ptq._logger.level
    ptq.utils.load_variable_data = lambda scope, name: current[name]
    ptq._logger.setLevel(40)
    try:
        def each_batch(method):
            for b in range(BATCHES):
                current.update((name, batches[b]) for name, batches in tensors.items())
                method(me)

        if algo == "KL":  # quantize(): PTQ:444-463, then 465-484 and 495-496
            each_batch(cls._collect_activation_abs_min_max)
            cls._init_sampling_act_histogram(me)
            each_batch(cls._sample_histogram)
            if hist_only:
                return {}
            cls._calculate_kl_hist_threshold(me)
            return dict(me._quantized_var_threshold)
        each_batch(cls._sample_mse if algo == "mse" else cls._sample_emd)
        return dict(me._quantized_threshold)
    finally:
        ptq.utils.load_variable_data = saved_load
        ptq._logger.setLevel(saved_level)


def _run_quantkit(algo: str, tensors: dict[str, list[np.ndarray]], hist_only=False,
                  two_pass=True) -> dict:
    """The engine's order: a pass over the batches, every tensor per batch."""
    if algo == "KL":
        observers = {name: KlObserver(two_pass=two_pass, name=name) for name in tensors}
    else:
        observers = {name: OBSERVERS[algo](name=name) for name in tensors}
    passes = next(iter(observers.values())).passes
    for _ in range(passes):
        for b in range(BATCHES):
            for name, batches in tensors.items():
                observers[name].observe(batches[b])
        for observer in observers.values():
            getattr(observer, "end_pass", lambda: None)()
    if hist_only:
        return {}
    return {name: observer.scale() for name, observer in observers.items()}


def _bench(benchmark, core_seconds, core_scales, algo, engine, run, *, check=True):
    group = "observer histogram" if algo == "histogram" else f"observer {algo}"
    rounds = ROUNDS.get((engine, algo), 3)
    seconds, results = [], []

    def once():
        started = time.perf_counter()
        results.append(run())
        seconds.append(time.perf_counter() - started)

    benchmark.group = group
    benchmark.extra_info.update(engine=engine, algo=algo, tensors=len(SHAPES), batches=BATCHES,
                                values_per_batch=int(sum(np.prod(s) for s in SHAPES)))
    benchmark.pedantic(once, rounds=rounds, iterations=1)
    median = statistics.median(seconds)
    benchmark.extra_info.update(seconds=median)
    if engine == "paddle-core":
        core_seconds[algo], core_scales[algo] = median, results[-1]
    elif algo in core_seconds:  # absent when only the quantkit member was selected (-k)
        benchmark.extra_info.update(core_seconds=core_seconds[algo],
                                    ratio_to_core=median / core_seconds[algo],
                                    speedup=core_seconds[algo] / median)
        if check:  # same thresholds as core on the same data
            assert results[-1] == core_scales[algo]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("algo", ["KL", "mse", "emd"])
def test_observer_time(benchmark, activations, core_seconds, core_scales, algo, engine):
    if engine == "paddle-core":
        run = lambda: _run_core(algo, activations)  # noqa: E731
    else:
        run = lambda: _run_quantkit(algo, activations)  # noqa: E731
    _bench(benchmark, core_seconds, core_scales, algo, engine, run)


def test_observer_time_kl_one_pass(benchmark, activations, core_seconds, core_scales):
    """KL with the growing one-pass histogram: one pass less; thresholds close, not equal."""
    run = lambda: _run_quantkit("KL", activations, two_pass=False)  # noqa: E731
    _bench(benchmark, core_seconds, core_scales, "KL", "quantkit-one-pass", run, check=False)


@pytest.mark.parametrize("engine", ENGINES)
def test_histogram_time(benchmark, activations, core_seconds, core_scales, engine):
    """Both passes of KL's histogram (min/max, then counts), without the KL search."""
    if engine == "paddle-core":
        run = lambda: _run_core("KL", activations, hist_only=True)  # noqa: E731
    else:
        run = lambda: _run_quantkit("KL", activations, hist_only=True)  # noqa: E731
    _bench(benchmark, core_seconds, core_scales, "histogram", engine, run, check=False)
