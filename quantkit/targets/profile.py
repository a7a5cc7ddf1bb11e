"""Target profiles: what a hardware target runs, as one frozen, printable, diffable value.

A profile is a TOML file in `targets/` (or any path). Loading validates every key: an
unknown key or a bad value is rejected with the key named.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from quantkit.choices import Choice
from quantkit.errors import QuantkitError
from quantkit.names import check_name
from quantkit.suggest import did_you_mean, refuse_unknown_keys


class Backend(Choice):
    PADDLE_LITE = "paddle-lite"
    PADDLE_INFERENCE = "paddle-inference"
    PADDLE3_INFERENCE = "paddle3-inference"  # Paddle Inference 3.x, in the paddle3 side env
    TENSORRT = "tensorrt"
    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"


class Precision(Choice):
    INT8 = "int8"
    FP32 = "fp32"


DEVICES = ("cpu", "gpu", "arm")
# Shipped in the wheel as package data; the repository's top-level `targets/` links here.
PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


@dataclass(frozen=True)
class InputRange:
    """Shape range of one input for dynamic-shape engines (TensorRT)."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


@dataclass(frozen=True)
class TargetProfile:
    """One deployment target: backend, precision and the settings that produced its numbers.

    `options` holds backend-specific settings (e.g. TensorRT workspace, Paddle Lite
    valid_targets); each adapter validates its own keys.
    """

    name: str
    backend: Backend
    precision: Precision
    description: str = ""
    device: str = "cpu"  # cpu | gpu | arm
    tuned_for: str = ""  # the ISA / device the settings were chosen for
    threads: int = 1
    batch_sizes: tuple[int, ...] = (1,)
    input_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    dynamic_shapes: Mapping[str, InputRange] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""  # the file it was loaded from, for messages

    def __post_init__(self) -> None:
        where = f" in {self.source}" if self.source else ""
        check_name(self.name, "target name", self.source or "the profile")
        object.__setattr__(self, "backend", Backend.parse(self.backend, "backend", where))
        object.__setattr__(self, "precision", Precision.parse(self.precision, "precision",
                                                              where))
        if self.device not in DEVICES:
            raise QuantkitError(f"bad value for 'device'{where}: {self.device!r} (choose one "
                                f"of {', '.join(DEVICES)})")
        for key in ("description", "tuned_for"):
            if not isinstance(getattr(self, key), str):
                raise QuantkitError(f"bad value for '{key}'{where}: {getattr(self, key)!r} "
                                    "(a string)")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) \
                or not 1 <= self.threads <= 1024:
            raise QuantkitError(f"bad value for 'threads'{where}: {self.threads!r} "
                                "(a whole number from 1 to 1024)")
        if not self.batch_sizes or any(isinstance(b, bool) or not isinstance(b, int)
                                       or not 1 <= b <= MAX_BATCH for b in self.batch_sizes):
            raise QuantkitError(f"bad value for 'batch_sizes'{where}: "
                                f"{list(self.batch_sizes)!r} (whole numbers from 1 to "
                                f"{MAX_BATCH})")

    @property
    def where(self) -> str:
        """" in FILE" (or " of target NAME") for messages about this profile's settings."""
        return f" in {self.source}" if self.source else f" of target '{self.name}'"

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("source")
        return data


_KEYS = {f.name for f in dataclasses.fields(TargetProfile)} - {"source"}
MAX_BATCH = 65536  # rows per call; larger sizes are typos, and their inputs would not fit


def profile_from_dict(data: Mapping[str, Any], source: str = "") -> TargetProfile:
    """Validate a parsed TOML table into a TargetProfile, naming any unknown key."""
    where = f" in {source}" if source else ""
    if not isinstance(data, Mapping):
        raise QuantkitError(f"not a target profile{where}: a table of keys is expected, got "
                            f"{type(data).__name__}")
    refuse_unknown_keys(data, _KEYS, "key", where)
    for required in ("name", "backend", "precision"):
        if required not in data:
            raise QuantkitError(f"missing key '{required}'{where}")
    values = dict(data)
    values["batch_sizes"] = tuple(_ints(values.get("batch_sizes", [1]), "batch_sizes", where))
    values["input_shapes"] = {feed: tuple(_ints(shape, f"input_shapes.{feed}", where))
                              for feed, shape in _table(values.get("input_shapes", {}),
                                                        "input_shapes", where).items()}
    ranges = {}
    for feed, spec in _table(values.get("dynamic_shapes", {}), "dynamic_shapes", where).items():
        if not isinstance(spec, Mapping) or set(spec) != {"min", "opt", "max"}:
            raise QuantkitError(f"bad value for 'dynamic_shapes.{feed}'{where}: needs "
                                "exactly min, opt and max shapes")
        ranges[feed] = InputRange(*(tuple(_ints(spec[key], f"dynamic_shapes.{feed}.{key}",
                                                where)) for key in ("min", "opt", "max")))
    values["dynamic_shapes"] = ranges
    values["options"] = dict(_table(values.get("options", {}), "options", where))
    return TargetProfile(source=source, **values)


def _table(value: Any, key: str, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise QuantkitError(f"bad value for '{key}'{where}: {value!r} (a [{key}] table)")
    return value


def _ints(value: Any, key: str, where: str) -> list[int]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, int)
                                              and not isinstance(item, bool) for item in value):
        raise QuantkitError(f"bad value for '{key}'{where}: {value!r} (a list of whole "
                            "numbers)")
    return value


def load_profile(name_or_path: str | Path) -> TargetProfile:
    """A shipped profile by name (`intel-onednn-int8`) or a TOML file by path."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    path = Path(name_or_path)
    if path.suffix != ".toml":
        check_name(str(name_or_path), "target", "--targets (a shipped profile name, or a "
                   "path ending in .toml)")
        path = PROFILES_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            known = sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))
            raise QuantkitError(f"unknown target '{name_or_path}'"
                                f"{did_you_mean(name_or_path, known)}; known targets: "
                                f"{', '.join(known)}")
    if not path.is_file():
        raise QuantkitError(f"profile file not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise QuantkitError(f"profile {path} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise QuantkitError(f"cannot read profile {path}: "
                            f"{getattr(exc, 'strerror', None) or exc}") from None
    return profile_from_dict(data, source=str(path))


def shipped_profiles() -> list[TargetProfile]:
    return [load_profile(path) for path in sorted(PROFILES_DIR.glob("*.toml"))]
