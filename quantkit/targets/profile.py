"""Target profiles: what a hardware target runs, as one frozen, printable, diffable value.

A profile is a TOML file in `targets/` (or any path). Loading validates every key: an
unknown key or a bad value is rejected with the key named.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from quantkit.errors import QuantkitError

BACKENDS = ("paddle-lite", "paddle-inference", "tensorrt", "onnxruntime")
PRECISIONS = ("int8", "fp32")
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
    backend: str
    precision: str
    description: str = ""
    device: str = "cpu"  # cpu | gpu | arm
    threads: int = 1
    batch_sizes: tuple[int, ...] = (1,)
    input_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    dynamic_shapes: Mapping[str, InputRange] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""  # the file it was loaded from, for messages

    def __post_init__(self) -> None:
        where = f" in {self.source}" if self.source else ""
        if self.backend not in BACKENDS:
            raise QuantkitError(f"bad value for 'backend'{where}: {self.backend!r} "
                                f"(choose one of {', '.join(BACKENDS)})")
        if self.precision not in PRECISIONS:
            raise QuantkitError(f"bad value for 'precision'{where}: {self.precision!r} "
                                f"(choose one of {', '.join(PRECISIONS)})")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise QuantkitError(f"bad value for 'threads'{where}: {self.threads!r} "
                                "(a positive integer)")
        if not self.batch_sizes or any(not isinstance(b, int) or b < 1
                                       for b in self.batch_sizes):
            raise QuantkitError(f"bad value for 'batch_sizes'{where}: "
                                f"{list(self.batch_sizes)!r} (positive integers)")

    def backend_options(self, known: set[str]) -> dict[str, Any]:
        """The `[options]` table, refusing keys the backend's adapter does not know."""
        unknown = sorted(set(self.options) - known)
        if unknown:
            raise QuantkitError(f"unknown option '{unknown[0]}' for backend {self.backend} in "
                                f"{self.source or self.name} (known: "
                                f"{', '.join(sorted(known))})")
        return dict(self.options)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("source")
        return data


_KEYS = {f.name for f in dataclasses.fields(TargetProfile)} - {"source"}


def profile_from_dict(data: Mapping[str, Any], source: str = "") -> TargetProfile:
    """Validate a parsed TOML table into a TargetProfile, naming any unknown key."""
    where = f" in {source}" if source else ""
    for key in data:
        if key not in _KEYS:
            close = difflib.get_close_matches(key, sorted(_KEYS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise QuantkitError(f"unknown key '{key}'{where}{hint}")
    for required in ("name", "backend", "precision"):
        if required not in data:
            raise QuantkitError(f"missing key '{required}'{where}")
    values = dict(data)
    values["batch_sizes"] = tuple(values.get("batch_sizes", (1,)))
    values["input_shapes"] = {k: tuple(v) for k, v in values.get("input_shapes", {}).items()}
    ranges = {}
    for feed, spec in values.get("dynamic_shapes", {}).items():
        if not isinstance(spec, Mapping) or set(spec) != {"min", "opt", "max"}:
            raise QuantkitError(f"bad value for 'dynamic_shapes.{feed}'{where}: needs "
                                "exactly min, opt and max shapes")
        ranges[feed] = InputRange(tuple(spec["min"]), tuple(spec["opt"]), tuple(spec["max"]))
    values["dynamic_shapes"] = ranges
    values["options"] = dict(values.get("options", {}))
    return TargetProfile(source=source, **values)


def load_profile(name_or_path: str | Path) -> TargetProfile:
    """A shipped profile by name (`intel-onednn-int8`) or a TOML file by path."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = PROFILES_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            known = sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))
            close = difflib.get_close_matches(str(name_or_path), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise QuantkitError(f"unknown target '{name_or_path}'{hint}; known targets: "
                                f"{', '.join(known)}")
    if not path.is_file():
        raise QuantkitError(f"profile file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise QuantkitError(f"profile {path} is not valid TOML: {exc}") from None
    return profile_from_dict(data, source=str(path))


def shipped_profiles() -> list[TargetProfile]:
    return [load_profile(path) for path in sorted(PROFILES_DIR.glob("*.toml"))]
