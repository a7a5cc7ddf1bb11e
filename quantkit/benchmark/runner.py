"""Measure one artifact inside this process: what a local subprocess or a remote host runs.

    python -m quantkit.benchmark.runner JOB_DIR

Reads JOB_DIR/job.json, writes JOB_DIR/result.json and, with an eval set, the first
output of every eval row to JOB_DIR/eval_outputs.npy. It needs numpy and the artifact's
runtime. A Paddle Lite `.nb` and a Paddle 3 artifact open through
`quantkit.targets.standalone` alone, so a board with just the paddlelite wheel, or a side
environment (quantkit.sideenv), runs them from the runner kit (`quantkit.kit`); every
other backend opens through the installed quantkit's adapter, with the settings it was
converted with.
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import numpy as np

from quantkit.benchmark import measure
from quantkit.errors import QuantkitError
from quantkit.evaluation import predict_rows
from quantkit.files import (BENCH_INPUTS, EVAL_INPUTS, EVAL_OUTPUTS,
                            JOB_FILE, JOB_RESULT_FILE)
from quantkit.machine import machine_facts
from quantkit.targets import standalone

OPENERS = ("auto", "quantkit", "paddle-lite")


class JobError(Exception):
    """A job that cannot run as written (bad settings, missing files, no runtime)."""


def open_predictor(artifact_dir: Path, opener: str, threads: int | None):
    """(predictor with .run(feeds) -> list of arrays, name of the opener used)."""
    if opener not in OPENERS:
        raise JobError(f"unknown opener {opener!r}: choose one of {', '.join(OPENERS)}")
    try:
        record = standalone.artifact_record(artifact_dir)
    except QuantkitError as exc:
        raise JobError(str(exc)) from None
    backend = record.get("backend")
    if opener == "paddle-lite" and backend != standalone.LITE_BACKEND:
        raise JobError(f"{artifact_dir}: backend {backend!r} is not a Paddle "
                       "Lite .nb (opener 'paddle-lite' runs only those)")
    if opener == "paddle-lite" or (opener == "auto"
                                   and backend in standalone.STANDALONE_BACKENDS):
        try:
            return (standalone.open_standalone(artifact_dir, record, threads),
                    "paddle-lite" if backend == standalone.LITE_BACKEND else backend)
        except QuantkitError as exc:
            raise JobError(str(exc)) from None
    try:
        from quantkit.targets.convert import open_artifact
    except ImportError:
        raise JobError(f"{artifact_dir}: backend {backend!r} needs quantkit "
                       "installed on this host (only a Paddle Lite .nb runs without it)"
                       ) from None
    return open_artifact(artifact_dir, threads=threads), "quantkit"


def _load_inputs(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as archive:
        return {name: archive[name] for name in archive.files}


def run_job(job_dir: Path) -> dict:
    """Run the job in `job_dir`; the result record (also written to result.json)."""
    job = json.loads((job_dir / JOB_FILE).read_text())
    artifact_dir = Path(job["artifact"])
    if not artifact_dir.is_absolute():
        artifact_dir = job_dir / artifact_dir
    predictor, opener = open_predictor(artifact_dir, job.get("opener", "auto"),
                                       job.get("threads"))
    bench = _load_inputs(job_dir / BENCH_INPUTS)
    available = min(len(array) for array in bench.values())
    timings = {}
    for batch in job["batch_sizes"]:
        if batch > available:
            raise JobError(f"batch size {batch} needs {batch} input rows; "
                           f"{BENCH_INPUTS} has {available}")
        feeds = {name: np.ascontiguousarray(array[:batch]) for name, array in bench.items()}
        print(f"batch {batch}: warm-up {job['warmup']}, timing", file=sys.stderr, flush=True)
        timings[str(batch)] = measure.time_calls(
            lambda: predictor.run(feeds), warmup=job["warmup"],
            iterations=job.get("iterations"), duration_s=job.get("duration_s"))
    eval_outputs = None
    if (job_dir / EVAL_INPUTS).is_file():
        arrays = _load_inputs(job_dir / EVAL_INPUTS)
        print(f"eval: {min(len(a) for a in arrays.values())} rows", file=sys.stderr,
              flush=True)
        outputs = predict_rows(predictor.run, arrays, int(job.get("eval_batch", 64)))
        np.save(job_dir / EVAL_OUTPUTS, outputs[0].astype(np.float32))
        eval_outputs = EVAL_OUTPUTS
    return {"status": "ok", "opener": opener, "timing_mode": measure.TIMING_MODE,
            "timings_s": timings, "eval_outputs": eval_outputs,
            "peak_rss_bytes": measure.peak_rss_bytes(), "machine": machine_facts()}


def write_result(job_dir: Path, record: dict) -> None:
    """Write result.json whole or not at all (a reader never sees half a file)."""
    partial = job_dir / (JOB_RESULT_FILE + ".partial")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(partial, job_dir / JOB_RESULT_FILE)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m quantkit.benchmark.runner JOB_DIR", file=sys.stderr)
        return 2
    job_dir = Path(argv[0])
    try:
        record = run_job(job_dir)
    except JobError as exc:
        record = {"status": "failed", "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - a backend failure becomes this target's result
        detail = traceback.format_exc(limit=3).strip().splitlines()
        record = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                  "traceback": detail[-6:]}
    record.setdefault("peak_rss_bytes", measure.peak_rss_bytes())
    write_result(job_dir, record)
    return 0 if record["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
