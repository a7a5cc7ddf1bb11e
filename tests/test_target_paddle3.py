"""paddle3-onednn-int8: the calibrated model in Paddle Inference 3.3.1 (paddle3 side env).

The artifact is the oneDNN adapter's; the predictor runs in a worker in the side env, so
these tests check the runtime really is Paddle 3, that its oneDNN INT8 kernels run (on
the host's ISA and on AVX2's), and that it keeps the FP32 model's accuracy.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from kernels import AVX2, onednn_isas

from quantkit import sideenv
from quantkit.benchmark.jobs import MeasureSettings, run_local, write_job
from quantkit.targets.convert import convert, open_artifact
from quantkit.targets.profile import load_profile

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def artifacts(trained_model_dir, quantized_model_dir, tmp_path_factory):
    sideenv.require("paddle3")  # make test installs it: a missing env is a failure here
    root = tmp_path_factory.mktemp("paddle3")
    return {"fp32": convert(trained_model_dir, "intel-onednn-fp32", root / "fp32"),
            "int8": convert(quantized_model_dir, "paddle3-onednn-int8", root / "int8"),
            "int8-2.6": convert(quantized_model_dir, "intel-onednn-int8", root / "int8-2.6")}


def _worker(folder, monkeypatch, isa, verbose=False):
    if isa == AVX2:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    if verbose:
        monkeypatch.setenv("ONEDNN_VERBOSE", "1")
    return open_artifact(folder)


def _top1(predictor, data) -> float:
    hits = 0
    for start in range(0, len(data), 500):
        (logits,) = predictor.run({"image": data.images[start:start + 500]})
        hits += int((logits.argmax(1) == data.labels[start:start + 500, 0]).sum())
    return hits / len(data)


def test_artifact_is_the_onednn_one_with_the_paddle3_backend(artifacts):
    int8, onednn = artifacts["int8"], artifacts["int8-2.6"]
    assert (int8.backend, int8.precision) == ("paddle3-inference", "int8")
    assert int8.settings["paddle"] == "3.3.1"
    assert int8.settings["recipe"] == onednn.settings["recipe"]
    for name in int8.files:  # the same model files, float weights restored alike
        assert (int8.folder / name).read_bytes() == (onednn.folder / name).read_bytes()


@pytest.mark.parametrize("isa", onednn_isas())
def test_int8_keeps_top1_within_half_a_point(artifacts, mnist_test_slice, monkeypatch, isa):
    fp32 = _top1(open_artifact(artifacts["fp32"].folder), mnist_test_slice)
    int8 = _top1(_worker(artifacts["int8"].folder, monkeypatch, isa), mnist_test_slice)
    assert fp32 > 0.9
    assert abs(int8 - fp32) <= 0.005, (fp32, int8)


@pytest.mark.parametrize("isa", onednn_isas())
def test_int8_kernels_run_in_paddle3(artifacts, mnist_test_slice, monkeypatch, isa):
    predictor = _worker(artifacts["int8"].folder, monkeypatch, isa, verbose=True)
    predictor.run({"image": mnist_test_slice.images[:4]})
    executed = [line for line in predictor.log_text().splitlines()
                if line.startswith("onednn_verbose") and ",exec," in line]
    # oneDNN 3 (Paddle 3) writes src:u8, oneDNN 2 (Paddle 2.6) src_u8
    int8_convs = [line for line in executed if ",convolution," in line and
                  re.search(r"src[_:][us]8", line)]
    assert len(int8_convs) >= 27, executed[:5]  # every conv of MobileNetV1
    if isa == AVX2:
        assert not [line for line in int8_convs if "avx512" in line], int8_convs[:3]


def test_a_benchmark_job_runs_in_the_paddle3_side_env(artifacts, mnist_test_slice, tmp_path):
    settings = MeasureSettings(batch_sizes=(1,), warmup=1, iterations=3)
    images = mnist_test_slice.images[:8]
    job = write_job(tmp_path / "job", artifacts["int8"].folder, settings, {"image": images},
                    {"image": images})
    result = run_local(job, settings)
    assert result["status"] == "ok", result
    assert result["opener"] == "paddle3-inference"
    assert result["machine"]["libraries"]["paddlepaddle"] == "3.3.1"
    assert len(result["timings_s"]["1"]) == 3
    (expected,) = open_artifact(artifacts["int8"].folder).run({"image": images})
    np.testing.assert_allclose(np.load(job / "eval_outputs.npy"), expected, atol=1e-5)


def test_without_the_side_env_it_says_how_to_make_it(artifacts, monkeypatch, tmp_path):
    monkeypatch.setenv(sideenv.ENVS_VARIABLE, str(tmp_path / "no-envs"))
    profile = load_profile("paddle3-onednn-int8")
    from quantkit.targets import adapter_for

    available = adapter_for(profile.backend).availability(profile)
    assert not available.can_run
    assert "quantkit env install paddle3" in available.reason
    with pytest.raises(Exception, match="quantkit env install paddle3"):
        open_artifact(artifacts["int8"].folder)
