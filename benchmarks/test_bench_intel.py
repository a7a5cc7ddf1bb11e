"""oneDNN INT8 vs FP32 predictor latency, side by side in one run (pytest-benchmark).

Noisy machines: compare within a run (`--benchmark-group-by=group`), never across runs.
"""
from __future__ import annotations

import pytest

from quantkit.datasets import mnist
from quantkit.targets.convert import convert, open_artifact

TARGETS = ("intel-cpu-fp32", "intel-onednn-fp32", "intel-onednn-int8")


@pytest.fixture(scope="module")
def predictors(demo_models, tmp_path_factory):
    fp32_dir, int8_dir = demo_models
    root = tmp_path_factory.mktemp("bench-intel")
    return {name: open_artifact(convert(int8_dir if "int8" in name else fp32_dir, name,
                                        root / name).folder) for name in TARGETS}


@pytest.mark.parametrize("batch", [1, 64])
@pytest.mark.parametrize("target", TARGETS)
def test_predictor_latency(benchmark, predictors, target, batch):
    images = mnist.load("test", limit=batch).images
    predictor = predictors[target]
    predictor.run({"image": images})  # warm-up: oneDNN builds its primitives
    benchmark.group = f"MobileNetV1 x0.5, batch {batch}"
    benchmark.extra_info.update(target=target, batch=batch)
    benchmark.pedantic(predictor.run, args=({"image": images},), rounds=30 if batch == 1 else 10,
                       iterations=1, warmup_rounds=2)
