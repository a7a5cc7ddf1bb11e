"""Run a benchmark job on an Android device over adb.

Two ways to time on a phone: Paddle Lite's own `benchmark_bin` (a static binary already
on the device, the usual way; timing summary only, all-ones inputs, no eval outputs), or
quantkit's runner under a Python that `adb shell` may execute (a rooted phone; Termux's
Python is private to its app, so reach Termux over ssh instead). The exact adb command
lines are built first as an `AdbPlan` (a value tests can check without a device), then
executed.

benchmark_bin's flags and output follow Paddle Lite's sources: v2.10+ is
lite/api/tools/benchmark (benchmark.cc, utils/flags.cc; documented with sample output in
docs/performance/benchmark_tools.md), v2.0-2.9 is lite/api/benchmark.cc ("legacy").
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quantkit.benchmark.remote import job as remote_job
from quantkit.benchmark.remote.hosts import HostProfile
from quantkit.benchmark.remote.job import RemoteJobError, failed
from quantkit.benchmark.runner import write_result
from quantkit.files import ARTIFACT_RECORD, BENCH_INPUTS, EVAL_INPUTS, EVAL_OUTPUTS, JOB_RESULT_FILE

ADB = "adb"
BENCHMARK_BIN_TIMING = ("benchmark_bin: predictor->Run() only, inputs all 1.0 set once "
                        "before timing (no host copies)")
_STEP_MIN_S = 60.0


# ---------------------------------------------------------------- benchmark_bin output

@dataclass(frozen=True)
class BenchmarkBinTiming:
    """What benchmark_bin reports for one run: milliseconds per Run() and the device."""

    avg_ms: float
    min_ms: float
    max_ms: float
    first_ms: float | None = None  # v2.10+: the first timed run (after warm-up)
    init_ms: float | None = None  # v2.10+: predictor creation
    device: tuple[tuple[str, str], ...] = ()  # v2.10+ Android: getprop brand, model, ...
    version: str | None = None

    def summary(self) -> dict:
        record = {"avg_ms": self.avg_ms, "min_ms": self.min_ms, "max_ms": self.max_ms}
        if self.first_ms is not None:
            record["first_ms"] = self.first_ms
        if self.init_ms is not None:
            record["init_ms"] = self.init_ms
        return record


_NUMBER = r"([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
_PERF_LINE = re.compile(r"^\s*(init|first|min|max|avg)\s*=\s*" + _NUMBER, re.MULTILINE)
_LEGACY_LINE = re.compile(r"min\s*=\s*" + _NUMBER + r"\s+max\s*=\s*" + _NUMBER
                          + r"\s+average\s*=\s*" + _NUMBER)
_DEVICE_KEYS = {"Brand": "brand", "Device": "device", "Model": "model",
                "Android Version": "android_version", "Android API Level": "api_level"}


def parse_benchmark_output(text: str) -> BenchmarkBinTiming:
    """The latency summary in benchmark_bin's result file (or stdout), either version.

    v2.10+ ends with a "======= Perf Info =======" block ("Time(unit: ms):" then
    init/first/min/max/avg lines); v2.0-2.9 appends one line per run:
    "<model> min = X max = Y average = Z". With several runs in one file, the last wins.
    """
    blocks = text.split("======= Perf Info =======")
    if len(blocks) > 1:
        perf = blocks[-1].split("Memory Usage")[0]  # its init/peak lines are in MB
        values = {name: float(value) for name, value in _PERF_LINE.findall(perf)}
        missing = [name for name in ("min", "max", "avg") if name not in values]
        if missing:
            raise ValueError(f"benchmark_bin Perf Info block lacks {', '.join(missing)}: "
                             f"{perf.strip()[:200]!r}")
        device = tuple((_DEVICE_KEYS[key], value.strip())
                       for key, value in re.findall(r"^([A-Za-z ]+):[ \t]*(.*)$",
                                                    _section(text, "Device Info"), re.M)
                       if key in _DEVICE_KEYS)
        version = re.search(r"benchmark_bin version:\s*(\S+)", text)
        return BenchmarkBinTiming(values["avg"], values["min"], values["max"],
                                  values.get("first"), values.get("init"), device,
                                  version.group(1) if version else None)
    legacy = _LEGACY_LINE.findall(text)
    if legacy:
        low, high, average = (float(value) for value in legacy[-1])
        return BenchmarkBinTiming(average, low, high)
    raise ValueError("no benchmark_bin timing found (neither a '======= Perf Info ======='"
                     " block nor a 'min = .. max = .. average = ..' line): "
                     f"{text.strip()[-200:]!r}")


def _section(text: str, title: str) -> str:
    parts = text.split(f"======= {title} =======")
    return parts[-1].split("=======")[0] if len(parts) > 1 else ""


# ---------------------------------------------------------------- adb devices

def parse_adb_devices(text: str) -> dict[str, str]:
    """{serial: state} from `adb devices` (state: device, unauthorized, offline, ...)."""
    devices = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("*") or line.startswith("List of devices"):
            continue
        fields = line.split()
        if len(fields) >= 2:
            devices[fields[0]] = fields[1]
    return devices


def device_problem(devices: dict[str, str], serial: str) -> str | None:
    """Why the device `serial` cannot run a job now, or None when it can."""
    state = devices.get(serial)
    if state == "device":
        return None
    listed = ", ".join(f"{name} ({value})" for name, value in sorted(devices.items()))
    if state is None:
        return (f"Android device {serial} is not attached (adb devices lists: "
                f"{listed or 'nothing'}): plug it in with USB debugging on, or "
                f"`adb connect {serial}` for adb over Wi-Fi")
    if state == "unauthorized":
        return (f"Android device {serial} is unauthorized: accept the 'Allow USB "
                "debugging' prompt on the phone, then retry")
    return (f"Android device {serial} is {state}: reconnect it (adb reconnect, or replug "
            "the cable)")


# ---------------------------------------------------------------- the plan

@dataclass(frozen=True)
class AdbPlan:
    """Every adb command of one run, in order: mkdir, push, run(s), pull(s), cleanup."""

    mode: str  # "benchmark_bin" | "python"
    remote_dir: str
    mkdir: tuple[str, ...]
    push: tuple[str, ...]
    runs: tuple[tuple[str, ...], ...]  # benchmark_bin: one per batch size
    batch_sizes: tuple[int, ...]
    pulls: tuple[tuple[str, ...], ...]
    cleanup: tuple[str, ...]
    result_files: tuple[str, ...] = ()  # benchmark_bin: local name per batch size
    stop: tuple[str, ...] = ()  # python: kill a runner still going (after a timeout)


def _adb(host: HostProfile, *args: str) -> tuple[str, ...]:
    return (ADB, "-s", host.serial, *args)


def _shell_line(*words: str) -> str:
    return " ".join(shlex.quote(word) for word in words)


def _exports(env: dict[str, str]) -> str:
    return "".join(f"export {name}={shlex.quote(value)}; " for name, value in sorted(env.items()))


def _input_shapes(job_dir: Path, artifact: dict, batch: int) -> str:
    """benchmark_bin's --input_shape: "N,C,H,W" per input, ':' between inputs, in the
    model's input order (benchmark_bin feeds inputs by index)."""
    with np.load(job_dir / BENCH_INPUTS) as archive:
        shapes = {name: archive[name].shape[1:] for name in archive.files}
    order = [item["name"] for item in artifact.get("settings", {}).get("inputs", [])]
    names = [name for name in order if name in shapes] or list(shapes)
    return ":".join(",".join(str(d) for d in (batch, *shapes[name])) for name in names)


def build_plan(job_dir: Path, host: HostProfile, run_name: str) -> AdbPlan:
    """The adb commands that run the job in `job_dir` on `host` in `workdir/run_name`."""
    job_dir = Path(job_dir)
    job = remote_job.read_job(job_dir)
    remote_dir = f"{host.workdir.rstrip('/')}/{run_name}"
    quoted_dir = shlex.quote(remote_dir)
    mkdir = _adb(host, "shell", f"mkdir -p {quoted_dir}")
    cleanup = _adb(host, "shell", f"rm -rf {quoted_dir}")
    batch_sizes = tuple(int(b) for b in job["batch_sizes"])
    if host.benchmark_bin:
        return _benchmark_bin_plan(job_dir, job, host, remote_dir, mkdir, cleanup,
                                   batch_sizes)
    files = remote_job.job_files(job_dir)
    env = {**remote_job.thread_env(job), **host.env}
    run = _adb(host, "shell", remote_job.runner_script(host.python, remote_dir, env,
                                                       host.opener))
    pulls = [_adb(host, "pull", f"{remote_dir}/{JOB_RESULT_FILE}", str(job_dir / JOB_RESULT_FILE))]
    if (job_dir / EVAL_INPUTS).is_file():
        pulls.append(_adb(host, "pull", f"{remote_dir}/{EVAL_OUTPUTS}",
                          str(job_dir / EVAL_OUTPUTS)))
    pid_file = shlex.quote(f"{remote_dir}/{remote_job.PID_FILE}")
    stop = _adb(host, "shell", f"if [ -f {pid_file} ]; then kill -9 \"$(cat {pid_file})\"; fi")
    return AdbPlan("python", remote_dir, mkdir,
                   _adb(host, "push", *[str(path) for path in files], remote_dir + "/"),
                   (run,), batch_sizes, tuple(pulls), cleanup, stop=stop)


def _benchmark_bin_plan(job_dir: Path, job: dict, host: HostProfile, remote_dir: str,
                        mkdir: tuple[str, ...], cleanup: tuple[str, ...],
                        batch_sizes: tuple[int, ...]) -> AdbPlan:
    artifact_ref = Path(job["artifact"])
    artifact_dir = artifact_ref if artifact_ref.is_absolute() else job_dir / artifact_ref
    record = json.loads((artifact_dir / ARTIFACT_RECORD).read_text())
    if record.get("backend") != "paddle-lite":
        raise RemoteJobError(f"benchmark_bin on host '{host.name}' runs Paddle Lite .nb "
                             f"files only; {artifact_dir} is a {record.get('backend')} "
                             "artifact (unset benchmark_bin and set python to use the "
                             "runner instead)")
    if job.get("iterations") is None:
        raise RemoteJobError(f"benchmark_bin on host '{host.name}' runs a fixed count: "
                             "measure with iterations, not a duration")
    model = record["files"][0]
    threads = job.get("threads") or record.get("settings", {}).get("threads") or 1
    remote_model = f"{remote_dir}/{model}"
    runs, pulls, results = [], [], []
    for batch in batch_sizes:
        result = f"benchmark_b{batch}.txt"
        flags = [f"--input_shape={_input_shapes(job_dir, record, batch)}",
                 f"--warmup={int(job['warmup'])}", f"--repeats={int(job['iterations'])}",
                 f"--threads={int(threads)}", "--power_mode=0",
                 f"--result_path={remote_dir}/{result}"]
        if host.benchmark_bin_style == "legacy":
            flags.insert(0, f"--optimized_model_path={remote_model}")
        else:
            flags[:0] = [f"--optimized_model_file={remote_model}",
                         f"--backend={host.benchmark_backend}"]
        line = (f"cd {shlex.quote(remote_dir)} && {_exports(dict(host.env))}"
                + _shell_line(host.benchmark_bin, *flags))
        runs.append(_adb(host, "shell", line))
        pulls.append(_adb(host, "pull", f"{remote_dir}/{result}", str(job_dir / result)))
        results.append(result)
    push = _adb(host, "push", str(artifact_dir / model), remote_dir + "/")
    return AdbPlan("benchmark_bin", remote_dir, mkdir, push, tuple(runs), batch_sizes,
                   tuple(pulls), cleanup, tuple(results))


# ---------------------------------------------------------------- running it

class _Stop(Exception):
    def __init__(self, record: dict) -> None:
        super().__init__(record["error"])
        self.record = record


def _call(argv: tuple[str, ...], stage: str, timeout: float,
          where: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=max(timeout, 1.0))
    except subprocess.TimeoutExpired:
        raise _Stop(failed(f"timed out after {timeout:.0f} s during {stage} on {where} "
                           "(raise timeout_s)", stage)) from None


def _tail(text: str) -> str:
    return " | ".join(line.strip() for line in text.splitlines()[-3:] if line.strip())


def run_over_adb(job_dir: Path, host: HostProfile, timeout_s: float) -> dict:
    """Run the job on the Android device `host.serial`; the result record.

    Needs `adb` on PATH and the device attached and authorized; otherwise a failed record
    says which. With benchmark_bin the record has `latency_summary_ms` per batch size
    (benchmark_bin reports avg/min/max, not each run) and empty `timings_s`.
    """
    if host.kind != "adb":
        return failed(f"host '{host.name}' is kind {host.kind!r}, not adb", "connect")
    if shutil.which(ADB) is None:
        return failed(f"adb not found on PATH, needed for host '{host.name}' "
                      f"({host.where}): install Android platform-tools (Debian: apt-get "
                      "install adb) and check `adb devices` lists the phone", "connect")
    job_dir = Path(job_dir)
    deadline = time.monotonic() + timeout_s
    try:
        listing = _call((ADB, "devices"), "connect", 30.0, host.where)
        problem = device_problem(parse_adb_devices(listing.stdout), host.serial)
        if problem:
            return failed(problem, "connect")
        plan = build_plan(job_dir, host, remote_job.run_name(job_dir))
    except RemoteJobError as exc:
        return failed(str(exc), "prepare")
    except _Stop as exc:
        return exc.record
    remote_job.clear_outputs(job_dir)
    for name in plan.result_files:
        (job_dir / name).unlink(missing_ok=True)

    def left(stage: str) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Stop(failed(f"timed out after {timeout_s:g} s on {host.where} before "
                               f"{stage} (raise timeout_s)", stage))
        return remaining

    try:
        done = _call(plan.mkdir, "connect", min(left("connect"), 60.0), host.where)
        if done.returncode != 0:
            return failed(f"cannot create {plan.remote_dir} on {host.where}: "
                          f"{_tail(done.stderr + done.stdout)} (set 'workdir' to a "
                          "writable folder, e.g. /data/local/tmp/quantkit)", "connect")
        finished = False
        try:
            record = _execute(plan, job_dir, host, left)
            finished = True
            return record
        finally:
            _cleanup(plan, host, kill_runner=not finished)
    except _Stop as exc:
        return exc.record


def _cleanup(plan: AdbPlan, host: HostProfile, kill_runner: bool) -> None:
    """Best effort: a device that vanished mid-run must not hide the run's own error."""
    for command in ((plan.stop,) if kill_runner and plan.stop else ()) + (plan.cleanup,):
        try:
            _call(command, "cleanup", 60.0, host.where)
        except _Stop:
            return


def _execute(plan: AdbPlan, job_dir: Path, host: HostProfile, left) -> dict:
    done = _call(plan.push, "upload", max(left("upload"), _STEP_MIN_S), host.where)
    if done.returncode != 0:
        return failed(f"adb push to {host.where}:{plan.remote_dir} failed: "
                      f"{_tail(done.stderr + done.stdout)}", "upload")
    outputs = []
    for run in plan.runs:
        outputs.append(_call(run, "run", left("run"), host.where))
    for pull in plan.pulls:  # a missing file is explained below, from the run's output
        _call(pull, "download", max(left("download"), _STEP_MIN_S), host.where)
    if plan.mode == "python":
        run = outputs[0]
        return remote_job.remote_run_result(job_dir, run.returncode, run.stderr,
                                            host.python, host.where)
    return _benchmark_bin_result(plan, job_dir, host, outputs)


def _benchmark_bin_result(plan: AdbPlan, job_dir: Path, host: HostProfile,
                          outputs: list[subprocess.CompletedProcess]) -> dict:
    summaries, timing = {}, None
    for batch, name, run in zip(plan.batch_sizes, plan.result_files, outputs):
        path = job_dir / name
        text = path.read_text(errors="replace") if path.is_file() else run.stdout
        try:
            timing = parse_benchmark_output(text)
        except ValueError as exc:
            return failed(f"benchmark_bin {host.benchmark_bin} on {host.where} gave no "
                          f"timing for batch {batch} (exit {run.returncode}: "
                          f"{_tail(run.stderr) or exc}); check the path, its flags style "
                          f"('benchmark_bin_style' = {host.benchmark_bin_style!r}) and that "
                          "it was built for this phone's ABI", "run")
        summaries[str(batch)] = timing.summary()
    machine = {"hostname": host.where, "arch": "arm", **dict(timing.device)}
    if timing.version:
        machine["benchmark_bin_version"] = timing.version
    record = {"status": "ok", "opener": "benchmark_bin", "timing_mode": BENCHMARK_BIN_TIMING,
              "timings_s": {}, "latency_summary_ms": summaries,
              "eval_outputs": None, "peak_rss_bytes": None, "machine": machine}
    write_result(job_dir, record)  # like a runner's: the job folder holds its result
    return record
