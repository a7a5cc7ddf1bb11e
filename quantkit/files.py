"""The names of the files and folders quantkit writes and reads, in one place.

A run folder, an artifact, a benchmark job and a release bundle are read by other stages
(and other machines) than the one that wrote them; every reader and writer takes the names
from here, so a rename cannot leave one side behind. Standard library only: the benchmark
runner ships this module to remote hosts.
"""
from __future__ import annotations

import os
from pathlib import Path

# An artifact folder (`quantkit convert`): the model files plus these two records.
ARTIFACT_RECORD = "artifact.json"  # files, backend recipe, size
PROFILE_RECORD = "profile.json"  # the target profile as loaded
PADDLE_MODEL_FILE = "model.pdmodel"  # what Paddle-format artifacts and calibration write
PADDLE_PARAMS_FILE = "model.pdiparams"
LITE_MODEL_FILE = "model.nb"
ONNX_MODEL_FILE = "model.onnx"

# A Paddle 3 PIR model's legacy translation (quantkit.pir.cache), and every model made from
# it (the calibrated folder, artifacts): where it came from and how it was checked.
PIR_SOURCE_RECORD = "pir_source.json"

# A run folder (`quantkit run`).
RUN_RECORD = "run.json"  # what the run was made from: model hashes, calibration, data
RUN_SCHEMA = "quantkit.run/1"
CALIBRATED_DIR = "calibrated"
ARTIFACTS_DIR = "artifacts"
BUNDLES_DIR = "bundles"
BUDGET_RECORD = "budget.json"  # every trial of an accuracy budget (inside calibrated/)

# Benchmark results and their views (`quantkit bench`, `run`, `report`).
RESULTS_FILE = "results.json"
REPORT_FILES = {"json": RESULTS_FILE, "csv": "results.csv", "markdown": "results.md",
                "latency_vs_accuracy": "latency_vs_accuracy.png", "size": "size.png"}

# A benchmark job folder: what the runner reads and writes, here or on a remote host.
JOB_FILE = "job.json"
JOB_RESULT_FILE = "result.json"
BENCH_INPUTS = "bench_inputs.npz"
EVAL_INPUTS = "eval_inputs.npz"
EVAL_OUTPUTS = "eval_outputs.npy"
EMBEDDED_ARTIFACT = "artifact"  # the artifact copied into a job sent to another machine

# A release bundle (`quantkit package`).
BUNDLE_MANIFEST = "manifest.json"
BUNDLE_MODEL_DIR = "model"
BUNDLE_SMOKE_DIR = "smoke"
BUNDLE_README = "README.md"
ARCHIVE_SUFFIX = ".tar.gz"

# The records that mark a folder as quantkit's own (what `--force` may replace).
QUANTKIT_RECORDS = (ARTIFACT_RECORD, RUN_RECORD, BUNDLE_MANIFEST, RESULTS_FILE)


def user_cache(*parts: str) -> Path:
    """$QUANTKIT_CACHE (else ~/.cache/quantkit) joined with `parts`: kept across runs and
    checkouts (PIR translations, side environments)."""
    root = os.environ.get("QUANTKIT_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "quantkit"
    return base.absolute().joinpath(*parts)
