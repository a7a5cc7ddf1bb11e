"""`quantkit run`, the headline command, on the demo's trained MobileNetV1 (real CLI)."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from quantkit.benchmark.results import BenchResults

QUANTKIT = [sys.executable, "-m", "quantkit.cli"]
TARGETS = "intel-onednn-int8,onnxruntime-int8,x86-lite-fp32,arm-lite-int8"


@pytest.mark.slow
def test_run_calibrates_converts_benchmarks_and_reports(trained_model_dir, tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(
        QUANTKIT + ["run", str(trained_model_dir), "--model-filename", "fp32.pdmodel",
                    "--params-filename", "fp32.pdiparams", "--calib", "mnist-train",
                    "--calib-limit", "320", "--targets", TARGETS, "--eval", "mnist",
                    "--eval-limit", "1000", "--batch-sizes", "1,8", "--iterations", "20",
                    "--warmup", "3", "--package", "--out", str(out)],
        capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = BenchResults.load(out / "results.json")
    records = {(r.target, r.batch_size): r for r in results.records}
    statuses = {r.target: r.status for r in results.records}
    assert statuses == {"intel-cpu-fp32": "ok", "intel-onednn-int8": "ok",
                        "onnxruntime-int8": "ok", "x86-lite-fp32": "ok",
                        "arm-lite-int8": "skipped"}
    fp32 = records[("intel-cpu-fp32", 1)]
    assert fp32.accuracy.top1 > 0.93 and fp32.accuracy.rows == 1000
    for target in ("intel-onednn-int8", "onnxruntime-int8"):
        record = records[(target, 8)]
        assert record.precision == "int8"
        assert abs(record.accuracy.drop_points) < 1.5  # hist PTQ on a trained model
        assert record.accuracy.metrics["argmax_agreement"] > 0.97
        assert record.size_ratio < 0.4  # int8 weights
        assert record.latency_ms["iterations"] == 20
        assert record.throughput_sps == pytest.approx(8000 / record.latency_ms["mean_ms"])
    lite = records[("x86-lite-fp32", 1)]
    assert lite.accuracy.metrics["argmax_agreement"] == 1.0 and lite.accuracy.drop_points == 0.0
    assert "cannot run here" in records[("arm-lite-int8", None)].error
    assert (out / "calibrated" / "model.pdmodel").is_file()
    assert (out / "artifacts" / "arm-lite-int8" / "model.nb").is_file()
    for name in ("results.csv", "results.md", "latency_vs_accuracy.png", "size.png"):
        assert (out / name).stat().st_size > 100, name
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == len(results.records)
    assert "intel-onednn-int8" in done.stdout and "p99" in done.stdout
    settings = json.loads((out / "results.json").read_text())["settings"]
    assert settings["calibration"]["algo"] == "hist"
    import hashlib

    run_record = json.loads((out / "run.json").read_text())
    params = run_record["source_model"]["files"]["fp32.pdiparams"]
    assert params["sha256"] == hashlib.sha256(
        (trained_model_dir / "fp32.pdiparams").read_bytes()).hexdigest()
    data = run_record["calibration"]["data"]
    assert data["rows"] == 320 and data["fingerprint"].startswith("sha256:")
    assert run_record["calibration"]["batch_nums"] == 10
    # --package: a verified bundle per requested target, carrying its own measurements
    from quantkit.packaging import Manifest, verify

    bundles = sorted(p.name for p in (out / "bundles").iterdir())
    assert bundles == sorted([*TARGETS.split(","), *(t + ".tar.gz" for t in TARGETS.split(","))])
    report = verify(out / "bundles" / "intel-onednn-int8.tar.gz")
    assert report.ok and report.smoke_status == "passed"
    manifest = Manifest.load(out / "bundles" / "intel-onednn-int8" / "manifest.json")
    assert manifest.source_model["files"]["fp32.pdiparams"]["sha256"] == params["sha256"]
    assert {r["batch_size"] for r in manifest.benchmark["records"]} == {1, 8}
    skipped = verify(out / "bundles" / "arm-lite-int8")
    assert skipped.ok and skipped.smoke_status == "skipped"


def test_run_refuses_an_unknown_target_before_any_work(trained_model_dir, tmp_path):
    done = subprocess.run(
        QUANTKIT + ["run", str(trained_model_dir), "--model-filename", "fp32.pdmodel",
                    "--params-filename", "fp32.pdiparams", "--calib", "mnist-train",
                    "--targets", "intel-onednn-int8,no-such-target", "--out",
                    str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "no-such-target" in done.stderr
    assert not (tmp_path / "run").exists()


def test_bench_refuses_zero_iterations(tmp_path):
    model = Path(__file__).parent / "data" / "paddle3"
    subprocess.run(QUANTKIT + ["convert", str(model), "-t", "intel-cpu-fp32", "--out",
                               str(tmp_path / "a")], check=True, capture_output=True)
    done = subprocess.run(QUANTKIT + ["bench", str(tmp_path / "a"), "--iterations", "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "'--iterations': 0 is out of range" in done.stderr


def test_ctrl_c_on_bench_keeps_finished_targets_and_exits_130(tmp_path):
    import signal
    import time

    model = Path(__file__).parent / "data" / "paddle3"
    for target in ("intel-cpu-fp32", "onnxruntime-fp32"):
        subprocess.run(QUANTKIT + ["convert", str(model), "-t", target, "--out",
                                   str(tmp_path / "arts" / target)], check=True,
                       capture_output=True)
    out = tmp_path / "bench"
    process = subprocess.Popen(
        QUANTKIT + ["bench", str(tmp_path / "arts"), "--duration", "3", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A shell without job control starts background jobs with SIGINT ignored, and
        # Python then keeps ignoring it: give the CLI the disposition a terminal gives.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (out / "results.json").is_file():  # the first target finished
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)  # Ctrl-C while the second target runs
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted; results finished so far are in" in stderr
    results = BenchResults.load(out / "results.json")
    assert results.interrupted
    assert {r.target: r.status for r in results.records} == {
        "intel-cpu-fp32": "ok", "onnxruntime-fp32": "interrupted"}


def test_run_that_fails_in_calibration_leaves_no_run_folder(tmp_path):
    from quantkit.errors import QuantkitError
    from quantkit.pipeline import run

    model = Path(__file__).parent / "data" / "paddle3"
    with pytest.raises(QuantkitError, match="INT8 targets need calibration data"):
        run(model, None, ["intel-onednn-int8"], tmp_path / "run")
    assert not (tmp_path / "run").exists()  # not even run.json
