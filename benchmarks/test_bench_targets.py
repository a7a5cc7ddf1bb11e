"""Predictor latency of every shipped target this machine runs, batch 1 and 64 (pytest-benchmark).

One group per batch size ("latency, batch N"), so the targets compare side by side within
a run (`--benchmark-group-by=group`); compare within a run, never across runs on a noisy
machine. The samples come from quantkit's own timed loop (`measure.time_calls`, the one
`quantkit bench` and the remote runner use), so these numbers and quantkit's agree in
what they cover: `measure.TIMING_MODE`. Targets this machine cannot run are skipped with
the adapter's reason; so is a batch size a profile is not built for.

QUANTKIT_BENCH_SECONDS (default 3) sets the timed seconds per target and batch size.
"""
from __future__ import annotations

import math
import os
import statistics

import pytest

from quantkit.benchmark.measure import TIMING_MODE, time_calls
from quantkit.benchmark.stats import summarize
from quantkit.datasets import mnist
from quantkit.targets.convert import convert, open_artifact, target_statuses
from quantkit.targets.profile import shipped_profiles

BATCHES = (1, 64)
SECONDS = float(os.environ.get("QUANTKIT_BENCH_SECONDS", "3"))
WARMUP_SECONDS = 0.5  # oneDNN builds its primitives and ORT its arenas on the first calls
MIN_CALLS, MAX_CALLS = 5, 20_000


def time_with_quantkit(benchmark, call) -> list[float]:
    """Time `call` with `time_calls` and make pytest-benchmark report its per-call samples.

    pytest-benchmark has no public way to take samples measured elsewhere: the whole
    loop runs as its one pedantic round, then that round is swapped for the samples
    (`benchmark.stats` is None when benchmarks are disabled).
    """
    warmup = time_calls(call, warmup=1, duration_s=WARMUP_SECONDS)
    per_call = statistics.median(warmup)
    calls = min(MAX_CALLS, max(MIN_CALLS, math.ceil(SECONDS / per_call)))
    samples: list[float] = []
    benchmark.pedantic(lambda: samples.extend(time_calls(call, warmup=0, iterations=calls)),
                       rounds=1, iterations=1)
    if benchmark.stats is not None:
        benchmark.stats.stats.data[:] = samples
    return samples


@pytest.fixture(scope="module")
def statuses():
    """target name -> (profile, whether and on what this machine runs it)."""
    return {status.profile.name: status for status in target_statuses()}


@pytest.fixture(scope="module")
def artifacts(demo_models, tmp_path_factory):
    """target name -> converted artifact folder, converted on first use."""
    fp32_dir, int8_dir = demo_models
    root = tmp_path_factory.mktemp("bench-targets")
    converted = {}

    def folder(profile):
        if profile.name not in converted:
            source = int8_dir if profile.precision == "int8" else fp32_dir
            converted[profile.name] = convert(source, profile, root / profile.name).folder
        return converted[profile.name]

    return folder


@pytest.fixture(scope="module")
def predictors(artifacts):
    """target name -> open predictor (one per target, shared by its batch sizes)."""
    opened = {}

    def predictor(profile):
        if profile.name not in opened:
            opened[profile.name] = open_artifact(artifacts(profile))
        return opened[profile.name]

    return predictor


@pytest.mark.parametrize("target", [profile.name for profile in shipped_profiles()])
@pytest.mark.parametrize("batch", BATCHES)
def test_target_latency(benchmark, statuses, predictors, target, batch):
    profile, availability = statuses[target].profile, statuses[target].availability
    if not availability.can_run:
        pytest.skip(f"{target}: {availability.reason}")
    if batch not in profile.batch_sizes:
        pytest.skip(f"{target} is built for batch size(s) "
                    f"{', '.join(map(str, profile.batch_sizes))} only (its profile's "
                    "batch_sizes / input_shapes)")
    predictor = predictors(profile)
    feeds = {"image": mnist.load("test", limit=batch).images}
    (logits,) = predictor.run(feeds)
    assert logits.shape == (batch, 10), f"{target} returned shape {logits.shape}"
    benchmark.group = f"latency, batch {batch}"
    benchmark.extra_info.update(target=target, backend=profile.backend,
                                precision=profile.precision, batch=batch,
                                threads=profile.threads, runs_on=availability.reason,
                                timing=TIMING_MODE)
    stats = summarize(time_with_quantkit(benchmark, lambda: predictor.run(feeds)))
    benchmark.extra_info.update(p50_ms=stats.p50_ms, p90_ms=stats.p90_ms, cv=stats.cv,
                                noisy=stats.is_noisy,
                                samples_per_s=stats.throughput(batch))
