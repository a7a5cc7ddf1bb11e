"""Android over adb, without a device: the exact adb command lines of a run, the parser of
Paddle Lite benchmark_bin's output (both generations), and the device checks."""
from __future__ import annotations

import ast
import json
import shlex
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from quantkit import sideenv
from quantkit.benchmark.remote.adb import (BenchmarkBinTiming, build_plan, device_problem,
                                    parse_adb_devices, parse_benchmark_output, run_over_adb)
from quantkit.benchmark.remote.hosts import HostProfile
from quantkit.benchmark.jobs import MeasureSettings, write_job
from quantkit.benchmark.remote.job import KIT_DIR, RemoteJobError, boot_code

SERIAL = "R5CT1234"
D = "/data/local/tmp/quantkit/job-abc"  # the remote folder of run "job-abc"
ADB = ("adb", "-s", SERIAL)


def _artifact(folder: Path, backend: str = "paddle-lite", threads: int = 4) -> Path:
    """An artifact folder as `convert` writes it (artifact.json + model), for the plan."""
    folder.mkdir(parents=True)
    model = "model.nb" if backend == "paddle-lite" else "model.pdmodel"
    (folder / model).write_bytes(b"\0" * 64)
    (folder / "artifact.json").write_text(json.dumps({
        "folder": ".", "target": "arm-lite-fp32", "backend": backend, "precision": "fp32",
        "files": [model], "settings": {
            "threads": threads,
            "inputs": [{"name": "image", "shape": [-1, 1, 28, 28], "dtype": "float32"}]}}))
    return folder


def _job(tmp_path: Path, threads=2, eval_set=False, backend="paddle-lite", **settings) -> Path:
    settings = {"batch_sizes": (1, 4), "warmup": 3, "iterations": 50, **settings}
    images = np.zeros((4, 1, 28, 28), np.float32)
    return write_job(tmp_path / "job", _artifact(tmp_path / "art", backend),
                     MeasureSettings(threads=threads, **settings), {"image": images},
                     {"image": images} if eval_set else None, embed_artifact=True,
                     opener="paddle-lite")


def _phone(**fields) -> HostProfile:
    values = {"name": "phone", "kind": "adb", "serial": SERIAL,
              "benchmark_bin": "/data/local/tmp/benchmark_bin"}
    values.update(fields)
    return HostProfile(**values)


# ------------------------------------------------------------------ plans

def test_benchmark_bin_plan_has_the_exact_adb_commands(tmp_path):
    job = _job(tmp_path)
    plan = build_plan(job, _phone(), "job-abc")
    assert plan.mode == "benchmark_bin" and plan.remote_dir == D
    assert plan.mkdir == (*ADB, "shell", f"mkdir -p {D}")
    assert plan.push == (*ADB, "push", str(job / "artifact" / "model.nb"), f"{D}/")
    assert plan.runs == tuple(
        (*ADB, "shell",
         f"cd {D} && /data/local/tmp/benchmark_bin --optimized_model_file={D}/model.nb "
         f"--backend=arm --input_shape={batch},1,28,28 --warmup=3 --repeats=50 --threads=2 "
         f"--power_mode=0 --result_path={D}/benchmark_b{batch}.txt")
        for batch in (1, 4))
    assert plan.pulls == tuple((*ADB, "pull", f"{D}/benchmark_b{batch}.txt",
                                str(job / f"benchmark_b{batch}.txt")) for batch in (1, 4))
    assert plan.cleanup == (*ADB, "shell", f"rm -rf {D}")
    assert plan.stop == ()


def test_legacy_benchmark_bin_takes_optimized_model_path_and_no_backend(tmp_path):
    job = _job(tmp_path, threads=None, batch_sizes=(1,))
    plan = build_plan(job, _phone(benchmark_bin_style="legacy",
                                  env={"LD_LIBRARY_PATH": "/data/local/tmp"}), "job-abc")
    assert plan.runs == ((*ADB, "shell",
                          f"cd {D} && export LD_LIBRARY_PATH=/data/local/tmp; "
                          f"/data/local/tmp/benchmark_bin --optimized_model_path={D}/model.nb "
                          "--input_shape=1,1,28,28 --warmup=3 --repeats=50 --threads=4 "
                          f"--power_mode=0 --result_path={D}/benchmark_b1.txt"),)
    # threads=4: the artifact's own setting when the job leaves threads open


def test_python_plan_pushes_the_job_and_runner_and_pulls_the_result(tmp_path):
    job = _job(tmp_path, eval_set=True)
    python = "/data/data/com.termux/files/usr/bin/python"
    plan = build_plan(job, _phone(benchmark_bin="", python=python, workdir="/sdcard/qk/"),
                      "job-abc")
    d = "/sdcard/qk/job-abc"
    assert plan.mode == "python" and plan.remote_dir == d
    assert plan.push == (*ADB, "push", str(job / "job.json"), str(job / "bench_inputs.npz"),
                         str(job / "artifact"), str(job / "eval_inputs.npz"),
                         str(job / KIT_DIR), f"{d}/")
    [run] = plan.runs
    assert run[:4] == (*ADB, "shell")
    assert run[4].startswith(f"cd {d} || exit 97; export GLOG_minloglevel=2; "
                             "export MKL_NUM_THREADS=2; export OMP_NUM_THREADS=2; ")
    # The phone's own quantkit if it has one, else the modules shipped in kit/.
    boot = boot_code("auto")
    assert "import quantkit.targets.convert" in boot and "sys.path.insert(0, 'kit')" in boot
    assert f"{python} -c {shlex.quote(boot)} {d} & echo $! > runner.pid; wait $!" in run[4]
    assert plan.pulls == ((*ADB, "pull", f"{d}/result.json", str(job / "result.json")),
                          (*ADB, "pull", f"{d}/eval_outputs.npy",
                           str(job / "eval_outputs.npy")))
    assert plan.stop == (*ADB, "shell", f"if [ -f {d}/runner.pid ]; then kill -9 "
                                        f"\"$(cat {d}/runner.pid)\"; fi")


def test_benchmark_bin_refuses_what_it_cannot_run(tmp_path):
    with pytest.raises(RemoteJobError, match="runs a fixed count: measure with iterations"):
        build_plan(_job(tmp_path / "a", iterations=None, duration_s=2.0), _phone(), "r")
    with pytest.raises(RemoteJobError, match="runs Paddle Lite .nb files only; .* is a "
                                             "paddle-inference artifact"):
        build_plan(_job(tmp_path / "b", backend="paddle-inference"), _phone(), "r")


# ------------------------------------------------------------------ benchmark_bin output

# Paddle Lite v2.10+ benchmark_bin on Android: the sample printed in Paddle-Lite's
# docs/performance/benchmark_tools.md ("在 Android 上运行性能测试", a Xiaomi MI 9), with
# the Memory Usage block benchmark.cc adds under --enable_memory_profile.
V210_SAMPLE = """\
======= Opt Info =======
Load paddle model from inference.pdmodel and inference.pdiparams
Save optimized model to .nb

======= Device Info =======
Brand: Xiaomi
Device: cepheus
Model: MI 9
Android Version: 10
Android API Level: 29

======= Model Info =======
optimized_model_file: .nb
input_data_path:
input_shape: 1,3,224,224
output tensor num: 1
--- output tensor 0 ---
output shape(NCHW): 1 1000
output tensor 0 elem num: 1000
output tensor 0 mean value: 0.001
output tensor 0 standard deviation: 0.00219647

======= Runtime Info =======
benchmark_bin version: acf6614
threads: 1
power_mode: 0
warmup: 10
repeats: 20
result_path:

======= Backend Info =======
backend: arm
cpu precision: fp32

======= Perf Info =======
Time(unit: ms):
init  = 15.305
first = 43.670
min   = 32.577
max   = 32.895
avg   = 32.723

Memory Usage(unit: MB):
init  = 3.1
peak  = 21.7
"""


def test_parses_the_v210_perf_block_and_device_info():
    timing = parse_benchmark_output(V210_SAMPLE)
    assert timing == BenchmarkBinTiming(
        avg_ms=32.723, min_ms=32.577, max_ms=32.895, first_ms=43.670, init_ms=15.305,
        device=(("brand", "Xiaomi"), ("device", "cepheus"), ("model", "MI 9"),
                ("android_version", "10"), ("api_level", "29")), version="acf6614")
    assert timing.summary() == {"avg_ms": 32.723, "min_ms": 32.577, "max_ms": 32.895,
                                "first_ms": 43.670, "init_ms": 15.305}


def test_the_last_run_wins_when_results_were_appended():
    second = V210_SAMPLE.replace("avg   = 32.723", "avg   = 30.001")
    assert parse_benchmark_output(V210_SAMPLE + "\n" + second).avg_ms == 30.001


def test_parses_the_legacy_result_line():
    # lite/api/benchmark.cc (v2.0-2.9) appends to --result_path: ofs.precision(5) <<
    # fixed << left << setw(30) << model_name << "min = " << setw(12) << min << "max = "
    # << setw(12) << max << "average = " << setw(12) << avg << endl
    def line(name, low, high, average):
        return f"{name:<30}min = {low:<12.5f}max = {high:<12.5f}average = {average:<12.5f}\n"

    text = line("mobilenet_v1", 33.10144, 35.87109, 33.97417) + \
        line("mobilenet_v1", 31.0, 32.5, 31.75)
    timing = parse_benchmark_output(text)
    assert (timing.avg_ms, timing.min_ms, timing.max_ms) == (31.75, 31.0, 32.5)
    assert timing.first_ms is None and timing.device == ()


@pytest.mark.parametrize("text", ["", "Must set --backend option!\n",
                                  "======= Perf Info =======\nTime(unit: ms):\ninit  = 1.0\n"])
def test_output_without_a_timing_is_an_error(text):
    with pytest.raises(ValueError, match="benchmark_bin"):
        parse_benchmark_output(text)


# ------------------------------------------------------------------ devices

def test_adb_devices_listing_and_what_each_state_means():
    listing = ("* daemon not running; starting now at tcp:5037\n"
               "* daemon started successfully\nList of devices attached\n"
               "emulator-5554\tdevice\nR5CT1234\tunauthorized\n192.168.1.7:5555\toffline\n\n")
    devices = parse_adb_devices(listing)
    assert devices == {"emulator-5554": "device", "R5CT1234": "unauthorized",
                       "192.168.1.7:5555": "offline"}
    assert device_problem(devices, "emulator-5554") is None
    assert "accept the 'Allow USB debugging' prompt" in device_problem(devices, "R5CT1234")
    assert "is offline: reconnect it" in device_problem(devices, "192.168.1.7:5555")
    missing = device_problem(devices, "XYZ")
    assert missing.startswith("Android device XYZ is not attached (adb devices lists: "
                              "192.168.1.7:5555 (offline), R5CT1234 (unauthorized), "
                              "emulator-5554 (device))")


def test_run_without_adb_or_without_the_device_is_a_failed_record(tmp_path, monkeypatch):
    job = _job(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = run_over_adb(job, _phone(), timeout_s=30)
    assert result["status"] == "failed" and result["stage"] == "connect"
    assert result["error"].startswith("adb not found on PATH, needed for host 'phone' "
                                      f"(adb:{SERIAL})")
    fake = tmp_path / "bin" / "adb"  # an adb that lists another phone only
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n[ \"$1\" = devices ] && "
                    "printf 'List of devices attached\\nemulator-5554\\tdevice\\n\\n'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    result = run_over_adb(job, _phone(), timeout_s=30)
    assert result["status"] == "failed"
    assert result["error"].startswith(f"Android device {SERIAL} is not attached (adb "
                                      "devices lists: emulator-5554 (device))")


# ------------------------------------------------------------------ execution, stand-in adb

# A stand-in `adb` that runs "device" commands on this machine: shell -> sh -c, push/pull
# -> copies, and the device's folders are ordinary local folders. It checks that
# run_over_adb executes its plan in order and reads back what the device wrote; it is no
# evidence about real phones (see docs/remote-boards.md).
FAKE_ADB = '''#!{python}
import os, shutil, subprocess, sys
args = sys.argv[1:]
with open({log!r}, "a") as log:
    log.write(repr(args) + "\\n")
if args == ["devices"]:
    print("List of devices attached\\n{serial}\\tdevice\\n")
    sys.exit(0)
assert args[:2] == ["-s", "{serial}"], args
command, rest = args[2], args[3:]
if command == "shell":
    sys.exit(subprocess.run(["sh", "-c", " ".join(rest)]).returncode)
if command == "push":
    *sources, target = rest
    for source in sources:
        destination = os.path.join(target, os.path.basename(source.rstrip("/")))
        (shutil.copytree if os.path.isdir(source) else shutil.copy)(source, destination)
    sys.exit(0)
if command == "pull":
    source, target = rest
    if not os.path.exists(source):
        sys.exit("adb: error: failed to stat remote object '%s'" % source)
    shutil.copy(source, target)
    sys.exit(0)
sys.exit("unknown adb command %r" % command)
'''

# A stand-in benchmark_bin: writes the v2.10 sample to --result_path, records its flags.
FAKE_BENCHMARK_BIN = '''#!{python}
import sys
flags = dict(arg[2:].split("=", 1) for arg in sys.argv[1:])
with open({log!r}, "a") as log:
    log.write(repr(sys.argv[1:]) + "\\n")
with open(flags["result_path"], "a") as out:
    out.write({sample!r}.replace("input_shape: 1,3,224,224",
                                 "input_shape: " + flags["input_shape"]))
'''


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "adb.log"
    script = bin_dir / "adb"
    script.write_text(FAKE_ADB.format(python=sys.executable, log=str(log), serial=SERIAL))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_benchmark_bin_run_executes_the_plan_and_summarises_each_batch(tmp_path, fake_adb):
    device = tmp_path / "device"
    bin_log = tmp_path / "benchmark_bin.log"
    binary = tmp_path / "benchmark_bin"
    binary.write_text(FAKE_BENCHMARK_BIN.format(python=sys.executable, log=str(bin_log),
                                                sample=V210_SAMPLE))
    binary.chmod(0o755)
    job = _job(tmp_path)
    result = run_over_adb(job, _phone(benchmark_bin=str(binary), workdir=str(device)), 60)
    assert result["status"] == "ok", result
    assert result["opener"] == "benchmark_bin" and result["timings_s"] == {}
    assert result["latency_summary_ms"]["1"] == {"avg_ms": 32.723, "min_ms": 32.577,
                                                 "max_ms": 32.895, "first_ms": 43.67,
                                                 "init_ms": 15.305}
    assert set(result["latency_summary_ms"]) == {"1", "4"}
    assert result["machine"]["model"] == "MI 9"
    assert json.loads((job / "result.json").read_text()) == result
    runs = [ast.literal_eval(line) for line in bin_log.read_text().splitlines()]
    assert [flag for flag in runs[1] if flag.startswith("--input_shape")] == [
        "--input_shape=4,1,28,28"]
    assert list(device.iterdir()) == []  # the run's folder was removed
    commands = [ast.literal_eval(line)[2] for line in fake_adb.read_text().splitlines()[1:]]
    assert commands == ["shell", "push", "shell", "shell", "pull", "pull", "shell"]


@pytest.fixture(scope="module")
def lite_artifact(tmp_path_factory) -> Path:
    import quantkit  # noqa: F401  - before paddle
    from quantkit.targets.convert import convert

    model = Path(__file__).resolve().parent / "data" / "paddle3"
    return convert(model, "x86-lite-fp32", tmp_path_factory.mktemp("lite") / "nb").folder


def test_python_runner_over_adb_brings_back_timings_and_eval_outputs(tmp_path, fake_adb,
                                                                     lite_artifact):
    from quantkit.targets.convert import open_artifact

    images = np.load(Path(__file__).resolve().parent / "data" / "paddle3" /
                     "reference.npz")["images"]
    job = write_job(tmp_path / "job", lite_artifact,
                    MeasureSettings(batch_sizes=(1,), warmup=1, iterations=5),
                    {"image": images}, {"image": images}, embed_artifact=True,
                    opener="paddle-lite")
    device = tmp_path / "device"
    board_python = str(sideenv.require("lite"))  # numpy + paddlelite, no quantkit
    host = _phone(benchmark_bin="", python=board_python, workdir=str(device))
    result = run_over_adb(job, host, 60)
    assert result["status"] == "ok", result
    assert result["opener"] == "paddle-lite" and len(result["timings_s"]["1"]) == 5
    np.testing.assert_allclose(np.load(job / "eval_outputs.npy"),
                               open_artifact(lite_artifact).run({"image": images})[0],
                               rtol=1e-5, atol=1e-6)
    assert list(device.iterdir()) == []
    missing = run_over_adb(job, _phone(benchmark_bin="", python="/no/python",
                                       workdir=str(device)), 60)
    assert missing["status"] == "failed"
    assert missing["error"].startswith(f"remote python /no/python not found on adb:{SERIAL}")
    assert list(device.iterdir()) == []
