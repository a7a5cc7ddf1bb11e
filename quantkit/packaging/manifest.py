"""`manifest.json` of a release bundle: what is in it, what made it, and what may vary.

A manifest is the one file of a bundle that is not checksummed (it holds the checksums),
so loading it is strict: malformed JSON, a wrong schema, a missing or unknown field and a
wrongly typed value are all refused with the file and the field named. Two packagings of
the same inputs give equal manifests except the fields listed in `non_deterministic`;
`Manifest.comparable()` masks exactly those, so a reproducibility check is one `==`.
"""
from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping

from quantkit.atomic import write_text_atomic
from quantkit.errors import QuantkitError
from quantkit.files import BUNDLE_MANIFEST, BUNDLE_MODEL_DIR, BUNDLE_README, BUNDLE_SMOKE_DIR
from quantkit.names import check_name

SCHEMA = "quantkit.bundle/1"
MANIFEST_FILE = BUNDLE_MANIFEST
MODEL_DIR = BUNDLE_MODEL_DIR
SMOKE_DIR = BUNDLE_SMOKE_DIR
README_FILE = BUNDLE_README
# Scopes of a non-deterministic field: it differs between any two packagings, or only
# between packagings on different machines (equal when repeated on one machine).
EVERY_PACKAGING = "every-packaging"
BETWEEN_MACHINES = "between-machines"
SCOPES = (EVERY_PACKAGING, BETWEEN_MACHINES)
SOURCE_KINDS = ("run", "artifact")
MASKED = "<non-deterministic>"


@dataclass(frozen=True)
class FileEntry:
    """Checksum of one bundle file; `sha256_stable` hashes it with its varying part masked."""

    sha256: str
    size: int
    sha256_stable: str | None = None
    stable_rule: str | None = None  # how sha256_stable was computed, for a human

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"sha256": self.sha256, "size": self.size}
        if self.sha256_stable is not None:
            record["sha256_stable"] = self.sha256_stable
            record["stable_rule"] = self.stable_rule
        return record


@dataclass(frozen=True)
class Tolerance:
    """Allowed |got - recorded| <= atol_fraction * (max - min of recorded) + rtol * |recorded|.

    Scaled by the recorded outputs' range so one rule fits logits, probabilities and boxes;
    the fractions depend on the precision only, so they are equal on every machine.
    """

    rtol: float
    atol_fraction: float
    basis: str


@dataclass(frozen=True)
class SmokeRecord:
    """The smoke check: one seeded input batch and, if it ran here, the outputs it gave."""

    input: str
    output: str | None
    reason: str  # why the output was or was not recorded
    seed: int
    rows: int
    tolerance: Tolerance


@dataclass(frozen=True)
class Variation:
    """A manifest field that legitimately differs between packagings of the same inputs."""

    pointer: str  # RFC 6901 JSON pointer into manifest.json, e.g. /files/model~1model.nb/sha256
    scope: str  # EVERY_PACKAGING or BETWEEN_MACHINES
    reason: str


@dataclass(frozen=True)
class Manifest:
    """Everything a deployment needs to trust and reproduce a bundle, as one value."""

    schema: str
    created_utc: str
    target: str
    backend: str
    precision: str
    device: str
    files: Mapping[str, FileEntry]  # bundle-relative posix path -> checksum (not manifest.json)
    profile: dict[str, Any]  # the target profile as converted (model/profile.json)
    artifact_settings: dict[str, Any]  # the backend recipe (model/artifact.json "settings")
    source: dict[str, Any]  # {"kind": "run" | "artifact", "note": ...}
    source_model: dict[str, Any] | None  # run.json's source model hashes (null: no run)
    calibration: dict[str, Any] | None  # run.json's calibration settings + data fingerprint
    benchmark: dict[str, Any] | None  # {"eval_set", "records"} of this target (null: no run)
    versions: dict[str, str | None]
    packaged_on: dict[str, Any]  # measure.machine_facts() of the packaging machine
    smoke: SmokeRecord
    non_deterministic: tuple[Variation, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["files"] = {name: entry.to_dict() for name, entry in sorted(self.files.items())}
        record["non_deterministic"] = [asdict(item) for item in self.non_deterministic]
        return record

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    def save(self, folder: Path) -> Path:
        return write_text_atomic(Path(folder) / MANIFEST_FILE, self.to_json())

    def comparable(self, between_machines: bool = True) -> dict[str, Any]:
        """The manifest with its documented non-deterministic fields masked.

        Equal for two packagings of the same inputs. `between_machines=False` masks only
        what differs on every packaging, for packagings repeated on one machine.
        """
        record = self.to_dict()
        for item in self.non_deterministic:
            if between_machines or item.scope == EVERY_PACKAGING:
                _mask(record, item.pointer)
        return record

    @classmethod
    def load(cls, path: Path) -> "Manifest":
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise QuantkitError(f"{path} not found: not a quantkit bundle (make one with "
                                "'quantkit package')") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise QuantkitError(f"{path}: cannot read it ({exc})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise QuantkitError(f"{path}: not valid JSON (line {exc.lineno} column "
                                f"{exc.colno}: {exc.msg}); the bundle is damaged, package "
                                "it again") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: Any, where: str = MANIFEST_FILE) -> "Manifest":
        """Validate parsed JSON into a Manifest, naming the first bad field."""
        if not isinstance(data, dict):
            raise QuantkitError(f"{where}: expected a JSON object, found "
                                f"{type(data).__name__}")
        schema = data.get("schema")
        if schema != SCHEMA:
            raise QuantkitError(f"{where}: field 'schema' is {schema!r}, expected {SCHEMA!r} "
                                "(not a quantkit bundle manifest, or made by another version)")
        values = _check_fields(data, _MANIFEST_FIELDS, where, "")
        check_name(values["target"], "field 'target'", where)
        files = values["files"]
        values["files"] = {name: FileEntry(**_check_fields(entry, _FILE_FIELDS, where,
                                                            f"files.{name}."))
                           for name, entry in sorted(files.items())}
        for name in values["files"]:
            _check_bundle_path(name, where)
        smoke = _check_fields(values["smoke"], _SMOKE_FIELDS, where, "smoke.")
        smoke["tolerance"] = Tolerance(**_check_fields(smoke["tolerance"], _TOLERANCE_FIELDS,
                                                       where, "smoke.tolerance."))
        values["smoke"] = SmokeRecord(**smoke)
        for name in ("input", "output"):
            named = smoke[name]
            if named is not None and named not in values["files"]:
                raise QuantkitError(f"{where}: field 'smoke.{name}' names {named!r}, which "
                                    "is not in 'files'")
        variations = []
        for index, item in enumerate(values["non_deterministic"]):
            item = _check_fields(item, _VARIATION_FIELDS, where, f"non_deterministic[{index}].")
            if not item["pointer"].startswith("/"):
                raise QuantkitError(f"{where}: field 'non_deterministic[{index}].pointer' "
                                    f"must be a JSON pointer starting with '/', found "
                                    f"{item['pointer']!r}")
            if item["scope"] not in SCOPES:
                raise QuantkitError(f"{where}: field 'non_deterministic[{index}].scope' is "
                                    f"{item['scope']!r}, expected one of {', '.join(SCOPES)}")
            variations.append(Variation(**item))
        values["non_deterministic"] = tuple(variations)
        if values["source"].get("kind") not in SOURCE_KINDS:
            raise QuantkitError(f"{where}: field 'source.kind' must be one of "
                                f"{', '.join(SOURCE_KINDS)}, found "
                                f"{values['source'].get('kind')!r}")
        return cls(**values)


def pointer(*keys: str) -> str:
    """An RFC 6901 JSON pointer: '/' and '~' inside a key are escaped (~1, ~0)."""
    return "".join("/" + key.replace("~", "~0").replace("/", "~1") for key in keys)


def _mask(record: dict[str, Any], where: str) -> None:
    keys = [part.replace("~1", "/").replace("~0", "~") for part in where.split("/")[1:]]
    node: Any = record
    for key in keys[:-1]:
        if not isinstance(node, dict) or key not in node:
            return  # absent in this manifest (e.g. no output recorded): nothing to mask
        node = node[key]
    if isinstance(node, dict) and keys:
        node[keys[-1]] = MASKED  # also where absent: one machine recorded it, another not


def _check_bundle_path(name: str, where: str) -> None:
    """A files key must stay inside the bundle: relative, no '..', not the manifest."""
    parts = PurePosixPath(name).parts
    if (not name or name.startswith("/") or "\\" in name or ".." in parts
            or name == MANIFEST_FILE or PurePosixPath(name).as_posix() != name):
        raise QuantkitError(f"{where}: field 'files' has a bad path {name!r} (a relative "
                            "path inside the bundle, without '..')")


# --- field checks ---------------------------------------------------------------------

@dataclass(frozen=True)
class _Kind:
    """What a field must hold: a test and the words the error message uses for it."""

    test: Callable[[Any], bool]
    words: str


def _optional(kind: _Kind) -> _Kind:
    return _Kind(lambda value: value is None or kind.test(value), f"null or {kind.words}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_STR = _Kind(lambda v: isinstance(v, str), "a string")
_INT = _Kind(_is_int, "an integer")
_SIZE = _Kind(lambda v: _is_int(v) and v >= 0, "a non-negative integer")
_NUMBER = _Kind(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number")
_OBJECT = _Kind(lambda v: isinstance(v, dict), "an object")
_LIST = _Kind(lambda v: isinstance(v, list), "a list")
_SHA256 = _Kind(lambda v: isinstance(v, str) and len(v) == 64
                and all(c in "0123456789abcdef" for c in v), "64 lowercase hex digits")
_VERSIONS = _Kind(lambda v: isinstance(v, dict)
                  and all(x is None or isinstance(x, str) for x in v.values()),
                  "an object of version strings or nulls")

# field -> (kind, required)
_MANIFEST_FIELDS = {
    "schema": (_STR, True), "created_utc": (_STR, True), "target": (_STR, True),
    "backend": (_STR, True), "precision": (_STR, True), "device": (_STR, True),
    "files": (_OBJECT, True), "profile": (_OBJECT, True),
    "artifact_settings": (_OBJECT, True), "source": (_OBJECT, True),
    "source_model": (_optional(_OBJECT), True), "calibration": (_optional(_OBJECT), True),
    "benchmark": (_optional(_OBJECT), True), "versions": (_VERSIONS, True),
    "packaged_on": (_OBJECT, True), "smoke": (_OBJECT, True),
    "non_deterministic": (_LIST, True)}
_FILE_FIELDS = {"sha256": (_SHA256, True), "size": (_SIZE, True),
                "sha256_stable": (_optional(_SHA256), False),
                "stable_rule": (_optional(_STR), False)}
_SMOKE_FIELDS = {"input": (_STR, True), "output": (_optional(_STR), True),
                 "reason": (_STR, True), "seed": (_INT, True), "rows": (_INT, True),
                 "tolerance": (_OBJECT, True)}
_TOLERANCE_FIELDS = {"rtol": (_NUMBER, True), "atol_fraction": (_NUMBER, True),
                     "basis": (_STR, True)}
_VARIATION_FIELDS = {"pointer": (_STR, True), "scope": (_STR, True), "reason": (_STR, True)}


def _check_fields(data: Any, spec: Mapping[str, tuple[_Kind, bool]], where: str,
                  prefix: str) -> dict[str, Any]:
    """The fields of `data` per `spec`, or a QuantkitError naming the field at fault."""
    if not isinstance(data, dict):
        raise QuantkitError(f"{where}: field '{prefix.rstrip('.')}' must be an object, "
                            f"found {json.dumps(data)[:60]}")
    unknown = sorted(set(data) - set(spec))
    if unknown:
        raise QuantkitError(f"{where}: unknown field '{prefix}{unknown[0]}' (known: "
                            f"{', '.join(spec)})")
    values = {}
    for name, (kind, required) in spec.items():
        if name not in data:
            if required:
                raise QuantkitError(f"{where}: missing field '{prefix}{name}'")
            continue
        if not kind.test(data[name]):
            raise QuantkitError(f"{where}: field '{prefix}{name}' must be {kind.words}, "
                                f"found {json.dumps(data[name])[:60]}")
        values[name] = copy.deepcopy(data[name])
    return values
