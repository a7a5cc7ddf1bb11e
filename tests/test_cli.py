"""The `quantkit` console script, run as a user would."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

QUANTKIT = str(Path(sys.executable).with_name("quantkit"))


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([QUANTKIT, *args], capture_output=True, text=True, timeout=timeout)


def test_help_lists_demo():
    result = _run("--help")
    assert result.returncode == 0 and "demo" in result.stdout


@pytest.mark.slow
def test_short_demo_writes_both_models_and_the_table(tmp_path):
    out = tmp_path / "demo"
    result = _run("demo", "--scale", "0.25", "--steps", "40", "--eval-limit", "500",
                  "--algo", "abs_max", "--out", str(out), "--json", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "FP32" in result.stdout and "INT8 (abs_max)" in result.stdout
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["eval_images"] == 500
    assert 0.0 <= record["int8_top1"] <= 1.0 and 0.0 <= record["fp32_top1"] <= 1.0
    assert record["int8_bytes"] < record["fp32_bytes"]  # onnx_format stores int8 weights
    assert (out / "fp32" / "fp32.pdmodel").is_file() and (out / "int8" / "model.pdmodel").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging left


def test_demo_bad_algo_is_one_line_exit_2(tmp_path):
    result = _run("demo", "--steps", "1", "--algo", "nope", "--out", str(tmp_path / "d"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown algo 'nope'")


def test_targets_lists_every_profile_with_a_verdict():
    result = _run("targets")
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("intel-onednn-int8", "nvidia-trt-int8", "arm-lite-int8", "onnxruntime-int8"):
        assert name in result.stdout
    assert "paddlepaddle-gpu" in result.stdout  # why the TensorRT target cannot run here


def test_doctor_reports_versions_and_isa():
    result = _run("doctor")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "paddlepaddle" in result.stdout and "2.6.2" in result.stdout
    assert "cpu int8 path" in result.stdout


def test_convert_unknown_target_is_one_line(tmp_path):
    result = _run("convert", str(tmp_path), "--target", "intel-onednn-in8",
                  "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: unknown target 'intel-onednn-in8' (did you mean 'intel-onednn-int8'?)")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_convert_from_the_command_line(trained_model_dir, tmp_path):
    out = tmp_path / "fp32"
    result = _run("convert", str(trained_model_dir), "--target", "intel-onednn-fp32",
                  "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "intel-onednn-fp32" in result.stdout and (out / "artifact.json").is_file()
    again = _run("convert", str(trained_model_dir), "--target", "intel-onednn-fp32",
                 "--out", str(out))
    assert again.returncode == 2 and "--force" in again.stderr
    forced = _run("convert", str(trained_model_dir), "--target", "intel-onednn-fp32",
                  "--out", str(out), "--force")
    assert forced.returncode == 0, forced.stderr[-2000:]
