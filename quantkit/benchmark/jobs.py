"""A measurement job on disk, and running it in its own process on this machine.

A job folder holds `job.json` (settings), the inputs to time (`bench_inputs.npz`), an
optional eval set (`eval_inputs.npz`) and, for remote hosts, the artifact itself. The
same `runner.py` executes it here (one subprocess per target, so a crashing backend or
its thread settings cannot reach the others) or on a remote host.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from quantkit.errors import QuantkitError
from quantkit.files import (ARTIFACT_RECORD, BENCH_INPUTS, EMBEDDED_ARTIFACT, EVAL_INPUTS,
                            JOB_FILE, JOB_RESULT_FILE)
from quantkit.targets.base import kill_group
from quantkit.targets.side_runtime import python_for


@dataclass(frozen=True)
class MeasureSettings:
    """How every target is timed (the same for all, so results compare)."""

    batch_sizes: tuple[int, ...] = (1,)
    threads: int | None = None  # None: each target profile's own thread count
    warmup: int = 10
    iterations: int | None = 100
    duration_s: float | None = None  # time-boxed instead of a fixed count
    eval_batch: int = 64
    timeout_s: float = 1800.0  # per target process

    def __post_init__(self) -> None:
        from quantkit.cli_types import MAX_BATCH

        if not self.batch_sizes or any(not _whole(b) or not 1 <= b <= MAX_BATCH
                                       for b in self.batch_sizes):
            raise QuantkitError(f"batch sizes (--batch-sizes) must be whole numbers from 1 to "
                                f"{MAX_BATCH} (got {list(self.batch_sizes)})")
        if len(set(self.batch_sizes)) != len(self.batch_sizes):
            raise QuantkitError(f"batch sizes (--batch-sizes) list a size twice: "
                                f"{list(self.batch_sizes)}")
        if self.iterations is not None and self.duration_s is not None:
            raise QuantkitError("give --iterations or --duration, not both")
        if self.iterations is None and self.duration_s is None:
            raise QuantkitError("give --iterations or --duration")
        if self.iterations is not None and (not _whole(self.iterations) or self.iterations < 1):
            raise QuantkitError(f"--iterations must be a whole number >= 1 (got "
                                f"{self.iterations!r}): zero timed runs measure nothing")
        for flag, value in (("--duration", self.duration_s), ("--timeout", self.timeout_s)):
            if value is not None and not (_number(value) and value > 0):
                raise QuantkitError(f"{flag} must be a finite number of seconds > 0 (got "
                                    f"{value!r})")
        if not _whole(self.warmup) or self.warmup < 0:
            raise QuantkitError(f"--warmup must be a whole number >= 0 (got {self.warmup!r})")
        if self.threads is not None and (not _whole(self.threads) or self.threads < 1):
            raise QuantkitError(f"--threads must be a whole number >= 1 (got "
                                f"{self.threads!r})")
        if not _whole(self.eval_batch) or self.eval_batch < 1:
            raise QuantkitError(f"eval batch must be >= 1 (got {self.eval_batch!r})")

    def to_dict(self) -> dict:
        record = asdict(self)
        record["batch_sizes"] = list(self.batch_sizes)
        return record


def write_job(job_dir: Path, artifact_dir: Path, settings: MeasureSettings,
              bench_inputs: Mapping[str, np.ndarray],
              eval_inputs: Mapping[str, np.ndarray] | None = None,
              embed_artifact: bool = False, opener: str = "auto") -> Path:
    """Create `job_dir` for one artifact. Embed the artifact for a remote host."""
    job_dir.mkdir(parents=True, exist_ok=False)
    artifact = Path(artifact_dir).absolute()
    if embed_artifact:
        shutil.copytree(artifact, job_dir / EMBEDDED_ARTIFACT)
        artifact_ref = EMBEDDED_ARTIFACT
    else:
        artifact_ref = str(artifact)
    np.savez(job_dir / BENCH_INPUTS, **bench_inputs)
    if eval_inputs is not None:
        np.savez(job_dir / EVAL_INPUTS, **eval_inputs)
    job = {"artifact": artifact_ref, "opener": opener,
           **{key: value for key, value in settings.to_dict().items() if key != "timeout_s"}}
    (job_dir / JOB_FILE).write_text(json.dumps(job, indent=2) + "\n")
    return job_dir


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def child_environment(threads: int | None) -> dict[str, str]:
    """This process's environment for a target process, with its thread count pinned."""
    env = dict(os.environ)
    env.setdefault("GLOG_minloglevel", "2")
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(threads)
    return env


POLL_S = 0.2  # how often a wait looks at the Ctrl-C flag


def run_local(job_dir: Path, settings: MeasureSettings,
              should_stop: Callable[[], bool] = lambda: False) -> dict:
    """Run the job in a fresh Python process; a crash becomes a 'crashed' record.

    The runner gets its own session, so a Ctrl-C reaches this process only; when
    `should_stop()` turns true the runner is killed and KeyboardInterrupt raised. A
    backend whose runtime lives in a side environment (Paddle Lite, Paddle 3) is run by
    that environment's python from the runner kit.
    """
    try:
        launch = python_for(_job_backend(job_dir), child_environment(settings.threads))
    except QuantkitError as exc:
        return {"status": "failed", "error": str(exc)}
    command = [launch.python, "-m", "quantkit.benchmark.runner", str(Path(job_dir).absolute())]
    process = subprocess.Popen(command, env=launch.env, cwd=launch.cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + settings.timeout_s
    try:
        while True:
            try:
                _, stderr = process.communicate(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                if should_stop():
                    raise KeyboardInterrupt from None
                if time.monotonic() > deadline:
                    kill_group(process)
                    return {"status": "failed", "error": f"timed out after "
                            f"{settings.timeout_s:.0f} s (raise --timeout)"}
    except KeyboardInterrupt:
        kill_group(process)
        raise
    return read_result(job_dir, process.returncode, stderr)


def _job_backend(job_dir: Path) -> str | None:
    """The backend of the artifact a job times (None if unreadable: the runner says why)."""
    try:
        artifact = Path(json.loads((job_dir / JOB_FILE).read_text())["artifact"])
        if not artifact.is_absolute():
            artifact = job_dir / artifact
        return json.loads((artifact / ARTIFACT_RECORD).read_text()).get("backend")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def read_result(job_dir: Path, returncode: int, stderr: str) -> dict:
    """The runner's result.json, or a record of how the process died without one."""
    result_file = job_dir / JOB_RESULT_FILE
    if result_file.is_file():
        return json.loads(result_file.read_text())
    tail = " | ".join(line.strip() for line in stderr.splitlines()[-3:] if line.strip())
    if returncode < 0:
        try:
            how = f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"killed by signal {-returncode}"
    else:
        how = f"exited with code {returncode} without a result"
    return {"status": "crashed", "error": f"{how}" + (f": {tail}" if tail else "")}
