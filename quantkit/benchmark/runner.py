"""Measure one artifact inside this process: what a local subprocess or a remote host runs.

    python -m quantkit.benchmark.runner JOB_DIR      (here, one process per target)
    python runner.py JOB_DIR                         (a remote copy, next to measure.py)

Reads JOB_DIR/job.json, writes JOB_DIR/result.json and, with an eval set, the first
output of every eval row to JOB_DIR/eval_outputs.npy. It needs only numpy and the
artifact's runtime: with quantkit installed it opens the artifact through quantkit's
adapter (same settings as `convert`); without it, it opens a Paddle Lite `.nb` directly
(an ARM board with just the paddlelite wheel).
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a copied script: measure.py sits beside it
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import measure  # type: ignore[no-redef]
else:
    from quantkit.benchmark import measure

JOB_FILE = "job.json"
RESULT_FILE = "result.json"
BENCH_INPUTS = "bench_inputs.npz"
EVAL_INPUTS = "eval_inputs.npz"
EVAL_OUTPUTS = "eval_outputs.npy"
OPENERS = ("auto", "quantkit", "paddle-lite")


class JobError(Exception):
    """A job that cannot run as written (bad settings, missing files, no runtime)."""


def open_predictor(artifact_dir: Path, opener: str, threads: int | None):
    """(predictor with .run(feeds) -> list of arrays, name of the opener used)."""
    if opener not in OPENERS:
        raise JobError(f"unknown opener {opener!r}: choose one of {', '.join(OPENERS)}")
    if opener in ("auto", "quantkit"):
        try:
            from quantkit.targets.convert import open_artifact
        except ImportError:
            if opener == "quantkit":
                raise JobError("quantkit is not installed on this host (pip install it, or "
                               "use opener 'paddle-lite' for a .nb)") from None
        else:
            return open_artifact(artifact_dir, threads=threads), "quantkit"
    return _LitePredictor.open(artifact_dir, threads), "paddle-lite"


class _LitePredictor:
    """A Paddle Lite `.nb` through the paddlelite wheel only (no quantkit on the host)."""

    def __init__(self, predictor, dtypes: dict[str, str]) -> None:
        self._predictor = predictor
        self._dtypes = dtypes
        self.input_names = tuple(predictor.get_input_names())

    @classmethod
    def open(cls, artifact_dir: Path, threads: int | None) -> "_LitePredictor":
        record = json.loads((artifact_dir / "artifact.json").read_text())
        if record.get("backend") != "paddle-lite":
            raise JobError(f"{artifact_dir}: backend {record.get('backend')!r} needs quantkit "
                           "on this host (only a Paddle Lite .nb runs without it)")
        model = artifact_dir / record["files"][0]
        if not model.is_file() or model.stat().st_size == 0:
            raise JobError(f"model file missing or empty: {model}")
        try:
            from paddlelite.lite import MobileConfig, PowerMode, create_paddle_predictor
        except ImportError as exc:
            raise JobError(f"paddlelite is not importable by {sys.executable}: {exc} "
                           "(pip install paddlelite on this host)") from None
        config = MobileConfig()
        config.set_model_from_file(str(model))
        settings = record.get("settings", {})
        wanted = threads or settings.get("threads")
        if wanted and hasattr(config, "set_threads"):  # ARM builds; x86 builds lack it
            config.set_threads(int(wanted))
        if hasattr(config, "set_power_mode"):
            config.set_power_mode(PowerMode.LITE_POWER_HIGH)
        dtypes = {item["name"]: item["dtype"] for item in settings.get("inputs", [])}
        return cls(create_paddle_predictor(config), dtypes)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        for name in self.input_names:
            array = np.ascontiguousarray(feeds[name], dtype=self._dtypes.get(name, "float32"))
            self._predictor.get_input_by_name(name).from_numpy(array)
        self._predictor.run()
        return [np.array(self._predictor.get_output_by_name(name).numpy(), copy=True)
                for name in self._predictor.get_output_names()]


def _rows(arrays: dict[str, np.ndarray], start: int, stop: int) -> dict[str, np.ndarray]:
    return {name: np.ascontiguousarray(array[start:stop]) for name, array in arrays.items()}


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
        feeds = _rows(bench, 0, batch)
        print(f"batch {batch}: warm-up {job['warmup']}, timing", file=sys.stderr, flush=True)
        timings[str(batch)] = measure.time_calls(
            lambda: predictor.run(feeds), warmup=job["warmup"],
            iterations=job.get("iterations"), duration_s=job.get("duration_s"))
    eval_outputs = None
    if (job_dir / EVAL_INPUTS).is_file():
        arrays = _load_inputs(job_dir / EVAL_INPUTS)
        rows, step = min(len(array) for array in arrays.values()), int(job.get("eval_batch", 64))
        print(f"eval: {rows} rows", file=sys.stderr, flush=True)
        outputs = [predictor.run(_rows(arrays, start, start + step))[0]
                   for start in range(0, rows, step)]
        np.save(job_dir / EVAL_OUTPUTS, np.concatenate(outputs).astype(np.float32))
        eval_outputs = EVAL_OUTPUTS
    return {"status": "ok", "opener": opener, "timing_mode": measure.TIMING_MODE,
            "timings_s": timings, "eval_outputs": eval_outputs,
            "peak_rss_bytes": measure.peak_rss_bytes(), "machine": measure.machine_facts()}


def write_result(job_dir: Path, record: dict) -> None:
    """Write result.json whole or not at all (a reader never sees half a file)."""
    partial = job_dir / (RESULT_FILE + ".partial")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(partial, job_dir / RESULT_FILE)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: runner.py JOB_DIR", file=sys.stderr)
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
