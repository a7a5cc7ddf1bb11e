"""The one timed loop and its statistics, on a synthetic predictor with known timings."""
from __future__ import annotations

import numpy as np
import pytest

from quantkit.benchmark.measure import time_calls
from quantkit.machine import parse_cpuinfo
from quantkit.benchmark.stats import HIGH_CV, summarize
from quantkit.errors import QuantkitError


class SyntheticPredictor:
    """Each call 'takes' the next duration on a fake clock; counts its calls."""

    def __init__(self, durations_s):
        self.durations = list(durations_s)
        self.now = 0.0
        self.calls = 0

    def clock(self) -> float:
        return self.now

    def run(self) -> None:
        self.now += self.durations[self.calls % len(self.durations)]
        self.calls += 1


def test_warmup_calls_are_not_timed_and_samples_are_exact():
    warmup = [5.0, 5.0, 5.0]  # slow first calls (primitive creation) must not be counted
    timed = [0.001 * k for k in range(1, 101)]
    predictor = SyntheticPredictor(warmup + timed)
    samples = time_calls(predictor.run, warmup=3, iterations=100, clock=predictor.clock)
    assert predictor.calls == 103
    assert samples == pytest.approx(timed)


def test_statistics_of_known_timings():
    stats = summarize([0.001 * k for k in range(1, 101)])  # 1..100 ms
    assert stats.iterations == 100
    assert stats.min_ms == pytest.approx(1.0)
    assert stats.max_ms == pytest.approx(100.0)
    assert stats.mean_ms == pytest.approx(50.5)
    # numpy's linear interpolation: rank q*(n-1) between sorted samples
    assert stats.p50_ms == pytest.approx(50.5)
    assert stats.p90_ms == pytest.approx(90.1)
    assert stats.p99_ms == pytest.approx(99.01)
    assert stats.std_ms == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert stats.cv == pytest.approx(stats.std_ms / 50.5)
    assert stats.throughput(64) == pytest.approx(64 / 0.0505)
    assert stats.is_noisy  # 1..100 ms spreads far beyond HIGH_CV


def test_steady_timings_are_not_noisy_and_one_outlier_shows_in_p99_only():
    samples = [0.002] * 99 + [0.2]
    stats = summarize(samples)
    assert stats.p50_ms == pytest.approx(2.0)
    assert stats.p90_ms == pytest.approx(2.0)
    assert stats.max_ms == pytest.approx(200.0)
    assert stats.p99_ms == pytest.approx(2.0 + 0.01 * 198.0)  # interpolated toward the outlier
    assert not summarize([0.002] * 50).is_noisy
    assert summarize([0.002] * 50).cv == 0.0
    assert HIGH_CV < stats.cv


def test_duration_mode_stops_after_the_deadline():
    predictor = SyntheticPredictor([0.010])
    samples = time_calls(predictor.run, warmup=2, duration_s=0.095, clock=predictor.clock)
    assert len(samples) == 10  # the 10th call crosses 0.095 s after the deadline was set
    assert predictor.calls == 12


def test_duration_mode_times_at_least_one_call_of_a_slow_predictor():
    predictor = SyntheticPredictor([3.0])
    assert time_calls(predictor.run, warmup=0, duration_s=0.5, clock=predictor.clock) == [3.0]


@pytest.mark.parametrize("kwargs, message", [
    ({"iterations": 0}, "iterations must be >= 1"),
    ({"duration_s": 0.0}, "duration_s must be > 0"),
    ({}, "give iterations or duration_s"),
    ({"iterations": 5, "warmup": -1}, "warmup must be >= 0"),
])
def test_bad_loop_settings_are_refused(kwargs, message):
    kwargs.setdefault("warmup", 0)
    with pytest.raises(ValueError, match=message):
        time_calls(lambda: None, **kwargs)


def test_no_samples_is_an_error_not_a_nan():
    with pytest.raises(QuantkitError, match="no timed iterations"):
        summarize([])
    with pytest.raises(QuantkitError, match="finite"):
        summarize([0.001, float("nan")])


def test_cpuinfo_x86_and_arm():
    x86 = "processor : 0\nmodel name : Intel(R) Xeon(R) CPU\nflags : fpu avx2 fma\n"
    assert parse_cpuinfo(x86) == ("Intel(R) Xeon(R) CPU", frozenset({"fpu", "avx2", "fma"}))
    arm = "processor : 0\nFeatures : fp asimd asimddp\nHardware : Qualcomm SM8250\n"
    assert parse_cpuinfo(arm) == ("Qualcomm SM8250", frozenset({"fp", "asimd", "asimddp"}))
