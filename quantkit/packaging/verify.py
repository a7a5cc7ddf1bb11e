"""`verify`: is this bundle exactly what was packaged, and does the model still compute
what it computed then?

Integrity problems (a missing or malformed manifest, a changed, truncated, missing or
extra file) are refused with a QuantkitError naming every file at fault: nothing in a
damaged bundle should be loaded. The smoke run is a measurement, so its outcome is a
report: passed, failed (with the max abs diff), or skipped with the reason (e.g. an ARM
bundle checked on x86).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from quantkit.errors import QuantkitError
from quantkit.files import ARTIFACT_RECORD, PROFILE_RECORD
from quantkit.records import read_json
from quantkit.hashing import file_sha256
from quantkit.packaging import smoke as smoke_check
from quantkit.packaging.archive import ARCHIVE_SUFFIX, extract_archive
from quantkit.packaging.manifest import MANIFEST_FILE, MODEL_DIR, Manifest

SMOKE_PASSED, SMOKE_FAILED, SMOKE_SKIPPED, SMOKE_NOT_RUN = ("passed", "failed", "skipped",
                                                            "not run")


@dataclass(frozen=True)
class VerifyReport:
    """What verify checked and found; `ok` is False only when the smoke run failed."""

    bundle: Path
    target: str
    ok: bool
    files_checked: int
    smoke_status: str  # passed | failed | skipped | not run
    smoke_detail: str
    max_abs_diff: float | None = None
    messages: tuple[str, ...] = field(default_factory=tuple)

    def lines(self) -> list[str]:
        return [f"bundle {self.bundle} ({self.target})", *self.messages,
                f"smoke run: {self.smoke_status}: {self.smoke_detail}",
                "OK" if self.ok else "FAILED"]


def verify(bundle: Path, smoke: bool = True) -> VerifyReport:
    """Check a bundle folder or its .tar.gz against its manifest, then run the smoke check.

    `smoke=False` checks the files only (the smoke run needs the target's runtime).
    """
    bundle = Path(bundle)
    if not bundle.exists():
        raise QuantkitError(f"bundle not found: {bundle} (give a bundle folder or its "
                            f"{ARCHIVE_SUFFIX}, as 'quantkit package' writes them)")
    if bundle.is_dir():
        return _verify_folder(bundle, smoke, shown=bundle)
    if not bundle.name.endswith(ARCHIVE_SUFFIX):
        raise QuantkitError(f"{bundle} is a file but not a {ARCHIVE_SUFFIX} bundle archive: "
                            "give a bundle folder or its archive")
    with tempfile.TemporaryDirectory(prefix="quantkit-verify-") as scratch:
        root = extract_archive(bundle, Path(scratch))
        return _verify_folder(root, smoke, shown=bundle)


def check_files(root: Path, shown: Path | None = None) -> tuple[Manifest, int]:
    """Load the manifest and check every file against it; the manifest and files checked.

    Raises QuantkitError naming every changed, truncated, missing or extra file, and the
    bundle as the user named it (`shown`: the archive an extracted folder came from).
    """
    root = Path(root)
    shown = shown or root
    try:
        manifest = Manifest.load(root / MANIFEST_FILE)
    except QuantkitError as exc:
        raise QuantkitError(str(exc).replace(str(root), str(shown))) from None
    problems = []
    present = {}
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_symlink():
            problems.append(f"{name}: a symbolic link (bundles hold regular files only)")
        elif path.is_file() and name != MANIFEST_FILE:
            present[name] = path
    for name, entry in sorted(manifest.files.items()):
        path = present.pop(name, None)
        if path is None:
            problems.append(f"{name}: missing (listed in {MANIFEST_FILE}, not in the bundle)")
            continue
        size = path.stat().st_size
        digest = file_sha256(path)
        if size != entry.size:
            problems.append(f"{name}: size {size} bytes, expected {entry.size} "
                            f"({'truncated' if size < entry.size else 'grown'}; sha256 "
                            f"{digest}, expected {entry.sha256})")
        elif digest != entry.sha256:
            problems.append(f"{name}: sha256 {digest}, expected {entry.sha256} (changed)")
    problems += [f"{name}: extra file, not in {MANIFEST_FILE}" for name in sorted(present)]
    if problems:
        raise QuantkitError(f"bundle {shown} failed verification: " + "; ".join(problems)
                            + " (do not deploy it: package it again or fetch a good copy)")
    _check_records(root, manifest)
    return manifest, len(manifest.files)


def _check_records(root: Path, manifest: Manifest) -> None:
    """The manifest's target must be the one the (checksummed) model records name."""
    model = root / MODEL_DIR
    for name in (ARTIFACT_RECORD, PROFILE_RECORD):
        if f"{MODEL_DIR}/{name}" not in manifest.files:
            raise QuantkitError(f"{root / MANIFEST_FILE}: field 'files' lacks "
                                f"{MODEL_DIR}/{name}: not a quantkit bundle")
    artifact = read_json(model / ARTIFACT_RECORD, "artifact record")
    profile = read_json(model / PROFILE_RECORD, "target profile record")
    if not isinstance(artifact, dict) or not isinstance(profile, dict):
        raise QuantkitError(f"{root / MODEL_DIR}: artifact.json/profile.json are not records")
    checks = (("target", artifact.get("target")), ("backend", artifact.get("backend")),
              ("precision", artifact.get("precision")), ("target", profile.get("name")))
    for field_name, recorded in checks:
        if getattr(manifest, field_name) != recorded:
            raise QuantkitError(f"{root / MANIFEST_FILE}: field '{field_name}' is "
                                f"{getattr(manifest, field_name)!r} but the model records "
                                f"{recorded!r}: the manifest was edited; package it again")


def _verify_folder(root: Path, run_smoke: bool, shown: Path) -> VerifyReport:
    manifest, checked = check_files(root, shown)
    messages = (f"target {manifest.target}: {manifest.backend}, {manifest.precision}, "
                f"device {manifest.device}",
                f"{checked} files match {MANIFEST_FILE} (sha256 and size)")
    if not run_smoke:
        return VerifyReport(shown, manifest.target, True, checked, SMOKE_NOT_RUN,
                            "not requested (--no-smoke)", messages=messages)
    status, detail, diff = _smoke(root, manifest)
    return VerifyReport(shown, manifest.target, status != SMOKE_FAILED, checked, status,
                        detail, diff, messages)


def _smoke(root: Path, manifest: Manifest) -> tuple[str, str, float | None]:
    """Run the recorded input where this machine can; (status, detail, max abs diff)."""
    from quantkit.targets import adapter_for
    from quantkit.targets.convert import open_artifact
    from quantkit.targets.profile import profile_from_dict

    profile_path = root / MODEL_DIR / PROFILE_RECORD
    try:
        profile = profile_from_dict(read_json(profile_path, "target profile record"),
                                    source=str(profile_path))
        available = adapter_for(profile.backend).availability(profile)
    except (QuantkitError, ImportError) as exc:
        return SMOKE_SKIPPED, f"cannot tell whether this machine runs the target: {exc}", None
    if not available.can_run:
        return (SMOKE_SKIPPED, f"this machine cannot run {manifest.target}: "
                               f"{available.reason}; run 'quantkit verify' on the device", None)
    inputs = smoke_check.read_npz(root / manifest.smoke.input)
    try:
        outputs = open_artifact(root / MODEL_DIR).run(inputs)
    except QuantkitError as exc:
        return SMOKE_FAILED, f"the model did not run: {exc}", None
    if manifest.smoke.output is None:
        # Packaged where the target cannot run (an ARM .nb on x86): nothing to compare
        # with, but running it here on the device still proves the model loads and runs.
        finite = all(np.isfinite(output).all() for output in outputs)
        shapes = ", ".join(str(list(output.shape)) for output in outputs)
        return (SMOKE_PASSED if finite else SMOKE_FAILED,
                f"{available.reason}; ran with outputs {shapes}, "
                f"{'all finite' if finite else 'NOT all finite'}; no recorded output to "
                f"compare with ({manifest.smoke.reason})", None)
    recorded = smoke_check.read_npz(root / manifest.smoke.output)
    result = smoke_check.compare(outputs, recorded, manifest.smoke.tolerance)
    return (SMOKE_PASSED if result.matches else SMOKE_FAILED,
            f"{available.reason}; {result.detail}", result.max_abs_diff)
