"""An artifact: what `convert` made for one target, as a record beside the model files.

The folder holds the model files, `artifact.json` (files, the backend recipe, size) and
`profile.json` (the profile it was converted with). Everything that reads an artifact
(benchmarks, packaging, serving, remote runners) loads it through here, so a folder that
`convert` did not make, or a record that was edited into nonsense, is refused the same way.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from quantkit.data.feeds import FeedSpec
from quantkit.errors import QuantkitError
from quantkit.files import ARTIFACT_RECORD, PROFILE_RECORD
from quantkit.names import check_name
from quantkit.records import read_json, write_json
from quantkit.targets.profile import Backend, Precision, TargetProfile, profile_from_dict


@dataclass(frozen=True)
class Artifact:
    """What a target runs: its files (relative to `folder`) and the settings that made it."""

    folder: Path
    target: str
    backend: Backend
    precision: Precision
    files: tuple[str, ...]
    settings: dict = field(default_factory=dict)  # backend recipe, serialisable
    pir_source: dict | None = None  # the Paddle 3 PIR model it was translated from

    @property
    def size_bytes(self) -> int:
        return sum((self.folder / name).stat().st_size for name in self.files)

    def save(self) -> None:
        record = asdict(self)
        record["folder"] = "."
        record["size_bytes"] = self.size_bytes
        write_json(self.folder / ARTIFACT_RECORD, record)

    @classmethod
    def load(cls, folder: Path) -> "Artifact":
        path = Path(folder) / ARTIFACT_RECORD
        record = read_json(path, "artifact record")
        if not isinstance(record, dict):
            raise QuantkitError(f"{path}: not an artifact record (a JSON object is expected)")
        problems = [key for key in ("target", "backend", "precision", "files")
                    if key not in record]
        if problems:
            raise QuantkitError(f"{path}: not an artifact record (missing "
                                f"{', '.join(problems)}); convert the model again")
        where = str(path)
        files = record["files"]
        if not isinstance(files, list) or not files or not all(
                isinstance(name, str) for name in files):
            raise QuantkitError(f"{path}: 'files' must be a list of file names")
        for name in files:
            check_name(name, "artifact file name", where)
        settings = record.get("settings", {})
        if not isinstance(settings, dict):
            raise QuantkitError(f"{path}: 'settings' must be an object")
        return cls(folder=Path(folder), target=check_name(record["target"], "target", where),
                   backend=Backend.parse(record["backend"], "backend", f" in {where}"),
                   precision=Precision.parse(record["precision"], "precision",
                                             f" in {where}"),
                   files=tuple(files), settings=settings,
                   pir_source=record.get("pir_source")
                   if isinstance(record.get("pir_source"), dict) else None)


def load_artifact(folder: str | Path) -> Artifact:
    """The artifact in `folder` (absolute), refusing a folder `convert` did not make."""
    folder = Path(folder).absolute()
    if not (folder / ARTIFACT_RECORD).is_file():
        raise QuantkitError(f"not a quantkit artifact: {folder} has no {ARTIFACT_RECORD} "
                            "(make one with 'quantkit convert')")
    artifact = Artifact.load(folder)
    missing = [name for name in artifact.files if not (folder / name).is_file()]
    if missing:
        raise QuantkitError(f"artifact file missing: {folder / missing[0]} (listed in "
                            f"{ARTIFACT_RECORD}); convert the model again")
    return artifact


def artifact_profile(folder: str | Path) -> TargetProfile:
    """The target profile an artifact was converted with (its profile.json)."""
    path = Path(folder) / PROFILE_RECORD
    return profile_from_dict(read_json(path, "target profile record"), source=str(path))


def artifact_feeds(artifact: Artifact) -> tuple[FeedSpec, ...]:
    """Feed specs of a converted artifact: Lite records them, Paddle/ONNX files hold them."""
    recorded = artifact.settings.get("inputs")
    if recorded:
        try:
            return tuple(FeedSpec(str(item["name"]), tuple(int(d) for d in item["shape"]),
                                  str(np.dtype(item["dtype"]))) for item in recorded)
        except (KeyError, TypeError, ValueError):
            raise QuantkitError(f"{artifact.folder / ARTIFACT_RECORD}: 'settings.inputs' is "
                                "malformed; convert the model again") from None
    for name in artifact.files:
        if name.endswith(".pdmodel"):
            from quantkit.model_files import check_inference_model

            params = next((other for other in artifact.files if other.endswith(".pdiparams")),
                          None)
            return check_inference_model(artifact.folder, name, params).feeds
        if name.endswith(".onnx"):
            return onnx_feeds(artifact.folder / name)
    raise QuantkitError(f"{artifact.folder}: cannot tell the model's inputs from "
                        f"{', '.join(artifact.files)}")


def onnx_feeds(path: Path) -> tuple[FeedSpec, ...]:
    """The graph inputs of an ONNX file (initializers excluded), refusing a corrupt file."""
    import onnx
    from onnx import helper

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # noqa: BLE001 - protobuf decode errors have many types
        raise QuantkitError(f"{path} is not a readable ONNX model ({type(exc).__name__}); "
                            "convert the model again") from None
    constants = {item.name for item in graph.initializer}
    feeds = []
    for value in graph.input:
        if value.name in constants:
            continue
        tensor = value.type.tensor_type
        shape = tuple(dim.dim_value if dim.HasField("dim_value") else -1
                      for dim in tensor.shape.dim)
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type)).name
        feeds.append(FeedSpec(value.name, shape, dtype))
    if not feeds:
        raise QuantkitError(f"{path} declares no inputs: convert the model again")
    return tuple(feeds)
