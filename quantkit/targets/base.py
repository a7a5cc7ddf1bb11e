"""The one small interface every backend adapter implements.

An adapter turns a checked inference model into what its target runs (`prepare`), opens
a predictor on that artifact (`open_predictor`), and says whether this machine can run
it, and why not (`availability`).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from quantkit.model_files import InferenceModel
from quantkit.targets.profile import TargetProfile

ARTIFACT_MANIFEST = "artifact.json"


@dataclass(frozen=True)
class Availability:
    can_run: bool
    reason: str  # why not, or what it will run on


@dataclass(frozen=True)
class Artifact:
    """What a target runs: its files (relative to `folder`) and the settings that made it."""

    folder: Path
    target: str
    backend: str
    precision: str
    files: tuple[str, ...]
    settings: dict = field(default_factory=dict)  # backend recipe, serialisable

    @property
    def size_bytes(self) -> int:
        return sum((self.folder / name).stat().st_size for name in self.files)

    def save(self) -> None:
        record = asdict(self)
        record["folder"] = "."
        record["size_bytes"] = self.size_bytes
        (self.folder / ARTIFACT_MANIFEST).write_text(json.dumps(record, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> "Artifact":
        record = json.loads((folder / ARTIFACT_MANIFEST).read_text())
        record.pop("size_bytes", None)
        record["folder"] = folder
        record["files"] = tuple(record["files"])
        return cls(**record)


class Predictor(Protocol):
    input_names: Sequence[str]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs in the model's fetch order, as float numpy arrays."""


class Adapter(Protocol):
    backend: str

    def availability(self, profile: TargetProfile) -> Availability: ...

    def prepare(self, model: InferenceModel, profile: TargetProfile, out_dir: Path) -> Artifact:
        """Write the artifact's files into `out_dir` (a fresh staging folder)."""

    def open_predictor(self, artifact: Artifact, profile: TargetProfile) -> Predictor: ...


def is_quantized(model: InferenceModel) -> bool:
    """Holds quantize ops from PTQ (QDQ `quantize_linear` or old fake_quantize form)."""
    return any(op in ("quantize_linear", "dequantize_linear") or op.startswith("fake_")
               for op in model.op_types)


def is_qdq_format(model: InferenceModel) -> bool:
    return "quantize_linear" in model.op_types


PADDLE_MODEL_FILES = ("model.pdmodel", "model.pdiparams")


def copy_paddle_model(model: InferenceModel, profile: TargetProfile,
                      out_dir: Path) -> tuple[str, ...]:
    """Copy a model for a Paddle Inference target, refusing a precision mismatch.

    A quantized model under an FP32 profile would run its fake-quant ops in float
    (5-6x slower than FP32, DESIGN.md), so it is refused like the other adapters do.
    """
    import shutil

    from quantkit.errors import QuantkitError

    if is_quantized(model) and profile.precision == "fp32":
        raise QuantkitError(f"{model.model_file} is quantized and target {profile.name} is "
                            "FP32: convert the FP32 model instead")
    if model.params_file is None:
        raise QuantkitError(f"{model.model_dir}: parameters in separate files; re-save with "
                            "one params file (save_inference_model does by default)")
    shutil.copyfile(model.model_file, out_dir / PADDLE_MODEL_FILES[0])
    shutil.copyfile(model.params_file, out_dir / PADDLE_MODEL_FILES[1])
    return PADDLE_MODEL_FILES


def run_tool(command: list[str], timeout: float, what: str) -> str:
    """Run a converter that may abort the process (opt, paddle2onnx) in a subprocess."""
    import subprocess

    from quantkit.errors import QuantkitError

    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise QuantkitError(f"{what} timed out after {timeout:.0f} s") from None
    except FileNotFoundError:
        raise QuantkitError(f"{what} not found: {command[0]}") from None
    output = result.stdout + result.stderr
    if result.returncode != 0:
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        tail = " | ".join(lines[-3:]) or "no output"
        raise QuantkitError(f"{what} failed (exit {result.returncode}): {tail}")
    return output
