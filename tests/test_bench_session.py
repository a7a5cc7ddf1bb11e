"""`bench` end to end on the small Paddle 3 test CNN: isolation, skips, interrupts, accuracy."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import quantkit  # noqa: F401 - before paddle (zlib)
from quantkit.benchmark.jobs import MeasureSettings, child_environment
from quantkit.benchmark.results import BenchResults
from quantkit.benchmark.session import BenchPlan, bench, find_artifacts
from quantkit.files import RESULTS_FILE
from quantkit.errors import QuantkitError
from quantkit.targets.convert import convert

TINY_MODEL = Path(__file__).parent / "data" / "paddle3"
FAST = MeasureSettings(batch_sizes=(1, 4), warmup=2, iterations=20, timeout_s=120)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bench-artifacts")
    made = {name: convert(TINY_MODEL, name, root / name).folder
            for name in ("intel-cpu-fp32", "x86-lite-fp32", "onnxruntime-fp32", "arm-lite-fp32")}
    broken = root / "broken-lite"  # a real backend crash: Paddle Lite aborts on a bad .nb
    shutil.copytree(made["x86-lite-fp32"], broken)
    (broken / "model.nb").write_bytes(os.urandom(4096))
    record = json.loads((broken / "artifact.json").read_text())
    record["target"] = "broken-lite"
    (broken / "artifact.json").write_text(json.dumps(record))
    made["broken-lite"] = broken
    return made


def by_target(results: BenchResults) -> dict[str, list]:
    grouped: dict[str, list] = {}
    for record in results.records:
        grouped.setdefault(record.target, []).append(record)
    return grouped


def test_a_crashing_backend_leaves_the_other_targets_results(artifacts, tmp_path):
    plan = BenchPlan([artifacts["x86-lite-fp32"], artifacts["broken-lite"],
                      artifacts["intel-cpu-fp32"]], FAST)
    results = bench(plan, tmp_path)
    grouped = by_target(results)
    (crashed,) = grouped["broken-lite"]
    assert crashed.status == "crashed"
    assert "SIGABRT" in crashed.error and "model format cannot be recognized" in crashed.error
    for target in ("x86-lite-fp32", "intel-cpu-fp32"):
        assert [r.status for r in grouped[target]] == ["ok", "ok"]
        assert [r.batch_size for r in grouped[target]] == [1, 4]
        assert all(r.latency_ms["iterations"] == 20 and r.latency_ms["p50_ms"] > 0
                   for r in grouped[target])
        assert all(r.peak_rss_bytes > 20e6 for r in grouped[target])  # a real process
    saved = BenchResults.load(tmp_path / RESULTS_FILE)
    assert [r.target for r in saved.records] == [r.target for r in results.records]


def test_target_this_machine_cannot_run_is_skipped_with_the_way_to_run_it(artifacts):
    results = bench(BenchPlan([artifacts["arm-lite-fp32"]], FAST))
    (record,) = results.records
    assert record.status == "skipped"
    assert "cannot run here" in record.error and "--remote HOST" in record.error
    assert record.size_bytes > 0


def test_ctrl_c_keeps_the_finished_targets(artifacts, tmp_path):
    def interrupt_second(message: str) -> None:
        if message.startswith("[2/"):
            raise KeyboardInterrupt

    plan = BenchPlan([artifacts["intel-cpu-fp32"], artifacts["onnxruntime-fp32"],
                      artifacts["x86-lite-fp32"]], FAST)
    with pytest.raises(KeyboardInterrupt):
        bench(plan, tmp_path, interrupt_second)
    saved = BenchResults.load(tmp_path / RESULTS_FILE)
    assert saved.interrupted
    statuses = {r.target: r.status for r in saved.records}
    assert statuses == {"intel-cpu-fp32": "ok", "onnxruntime-fp32": "interrupted",
                        "x86-lite-fp32": "interrupted"}


def test_accuracy_and_agreement_against_the_fp32_reference(artifacts, tmp_path):
    from quantkit.data.sources import load_dataset
    from quantkit.model_files import check_inference_model

    rng = np.random.default_rng(3)
    images = rng.standard_normal((40, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, 40)
    np.savez(tmp_path / "eval.npz", image=images, labels=labels)
    feeds = check_inference_model(TINY_MODEL).feeds
    eval_set = load_dataset(tmp_path / "eval.npz", feeds)
    plan = BenchPlan([artifacts["onnxruntime-fp32"], artifacts["x86-lite-fp32"]], FAST,
                     eval_set=eval_set, reference=artifacts["intel-cpu-fp32"])
    results = bench(plan)
    grouped = by_target(results)
    assert list(grouped) == ["intel-cpu-fp32", "onnxruntime-fp32", "x86-lite-fp32"]
    base = grouped["intel-cpu-fp32"][0].accuracy
    assert base.rows == 40 and base.drop_points == 0.0 and base.metric == "top1"
    from quantkit.targets.convert import open_artifact

    (logits,) = open_artifact(artifacts["intel-cpu-fp32"]).run({"image": images})
    assert base.top1 == pytest.approx(float((logits.argmax(1) == labels).mean()))
    for target in ("onnxruntime-fp32", "x86-lite-fp32"):
        accuracy = grouped[target][0].accuracy
        assert accuracy.metrics["argmax_agreement"] == 1.0
        assert accuracy.metrics["cosine"] == pytest.approx(1.0, abs=1e-6)
        assert 0 < accuracy.metrics["max_abs_diff"] < 1e-3  # other kernels, same FP32 model
        assert accuracy.drop_points == pytest.approx(0.0)
        assert accuracy.reference_value == base.value
        assert grouped[target][0].size_ratio == pytest.approx(
            grouped[target][0].size_bytes / grouped["intel-cpu-fp32"][0].size_bytes)


def test_find_artifacts_in_a_run_folder_and_by_target(artifacts):
    root = artifacts["intel-cpu-fp32"].parent
    found = find_artifacts([root])
    assert {p.name for p in found} >= {"intel-cpu-fp32", "x86-lite-fp32", "broken-lite"}
    assert find_artifacts([root], ["x86-lite-fp32"]) == [artifacts["x86-lite-fp32"]]
    with pytest.raises(QuantkitError, match="no artifact for target.*nvidia"):
        find_artifacts([root], ["nvidia-trt-int8"])
    with pytest.raises(QuantkitError, match="not found"):
        find_artifacts([root / "missing"])


def test_zero_iterations_and_bad_batch_sizes_are_refused():
    with pytest.raises(QuantkitError, match="zero timed runs"):
        MeasureSettings(iterations=0)
    with pytest.raises(QuantkitError, match="batch sizes .* must be whole numbers from 1"):
        MeasureSettings(batch_sizes=(1, 0))
    with pytest.raises(QuantkitError, match="not both"):
        MeasureSettings(iterations=10, duration_s=1.0)


def test_thread_settings_go_to_the_child_only():
    before = os.environ.get("OMP_NUM_THREADS")
    env = child_environment(3)
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3"
    assert os.environ.get("OMP_NUM_THREADS") == before


def test_benchmark_bin_summary_becomes_records_without_percentiles(artifacts):
    import jsonschema

    from quantkit.benchmark.results import SCHEMA_FILE
    from quantkit.benchmark.session import records_for
    from quantkit.targets.artifact import load_artifact

    artifact = load_artifact(artifacts["arm-lite-fp32"])
    result = {"status": "ok", "opener": "benchmark_bin", "timings_s": {},
              "latency_summary_ms": {"1": {"avg_ms": 4.0, "min_ms": 3.5, "max_ms": 6.0}},
              "host": "phone", "machine": {"hostname": "phone", "arch": "arm"}}
    (record,) = records_for(artifact, result, None, BenchPlan([artifact.folder], FAST), None)
    assert record.latency_ms == {"iterations": 20, "min_ms": 3.5, "mean_ms": 4.0,
                                 "max_ms": 6.0}
    assert record.throughput_sps == pytest.approx(250.0)
    assert record.host == "phone" and "no percentiles" in record.warnings[0]
    document = BenchResults(records=[record]).to_dict()
    jsonschema.validate(document, json.loads(SCHEMA_FILE.read_text()))
