"""The one small interface every backend adapter implements, and what adapters share.

An adapter turns a checked inference model into what its target runs (`prepare`), opens
a predictor on that artifact (`open_predictor`), and says whether this machine can run
it, and why not (`availability`).
"""
from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence

import numpy as np

from quantkit.errors import QuantkitError
from quantkit.files import PADDLE_MODEL_FILE, PADDLE_PARAMS_FILE
from quantkit.model_files import InferenceModel
from quantkit.targets.profile import Precision, TargetProfile

if TYPE_CHECKING:
    from quantkit.targets.artifact import Artifact


@dataclass(frozen=True)
class Availability:
    can_run: bool
    reason: str  # why not, or what it will run on


class Predictor(Protocol):
    input_names: Sequence[str]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs in the model's fetch order, as float numpy arrays."""


class Adapter(Protocol):
    backend: str

    def availability(self, profile: TargetProfile) -> Availability: ...

    def prepare(self, model: InferenceModel, profile: TargetProfile, out_dir: Path
                ) -> "Artifact":
        """Write the artifact's files into `out_dir` (a fresh staging folder)."""

    def open_predictor(self, artifact: "Artifact", profile: TargetProfile) -> Predictor: ...


PADDLE_MODEL_FILES = (PADDLE_MODEL_FILE, PADDLE_PARAMS_FILE)


def copy_paddle_model(model: InferenceModel, profile: TargetProfile,
                      out_dir: Path) -> tuple[str, ...]:
    """Copy a model for a Paddle Inference target, refusing a precision mismatch.

    A quantized model under an FP32 profile would run its fake-quant ops in float
    (5-6x slower than FP32, docs/measured-facts.md), so it is refused like the other
    adapters do.
    """
    import shutil

    if model.quantized and profile.precision == Precision.FP32:
        raise QuantkitError(f"{model.model_file} is quantized and target {profile.name} is "
                            "FP32: convert the FP32 model instead")
    if model.params_file is None:
        raise QuantkitError(f"{model.model_dir}: parameters in separate files; re-save with "
                            "one params file (save_inference_model does by default)")
    shutil.copyfile(model.model_file, out_dir / PADDLE_MODEL_FILES[0])
    shutil.copyfile(model.params_file, out_dir / PADDLE_MODEL_FILES[1])
    return PADDLE_MODEL_FILES


def run_tool(command: list[str], timeout: float, what: str) -> str:
    """Run a converter that may abort the process (opt, paddle2onnx) in a subprocess.

    It gets its own process group, killed whole if this process is interrupted (Ctrl-C,
    SIGTERM) or the tool times out, so no converter is left writing after we are gone.
    """
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, start_new_session=True)
    except FileNotFoundError:
        raise QuantkitError(f"{what} not found: {command[0]}") from None
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        raise QuantkitError(f"{what} timed out after {timeout:.0f} s") from None
    except BaseException:
        kill_group(process)
        raise
    output = stdout + stderr
    if process.returncode != 0:
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        tail = " | ".join(lines[-3:]) or "no output"
        raise QuantkitError(f"{what} failed (exit {process.returncode}): {tail}")
    return output


def kill_group(process: subprocess.Popen) -> None:
    """Kill a child started with start_new_session=True and everything it started."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
