"""`package`: one converted target -> a release bundle folder and its reproducible .tar.gz.

A bundle is what a deployment host needs and nothing else: the model as converted, a
smoke input (and the outputs it gave where this machine can run the target), a README
that says how to load it with the target's own runtime, and `manifest.json` with every
file's sha256, the runtime settings, versions, provenance and measured numbers. It is
built in a staging folder and renamed into place, so a failed packaging leaves nothing.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from quantkit.atomic import confined, replaceable_output, staged_folder
from quantkit.errors import QuantkitError
from quantkit.files import (ARCHIVE_SUFFIX, ARTIFACT_RECORD, ARTIFACTS_DIR, PROFILE_RECORD,
                            RESULTS_FILE, RUN_RECORD, RUN_SCHEMA)
from quantkit.hashing import file_sha256
from quantkit.machine import library_versions, machine_facts
from quantkit.names import check_name
from quantkit.packaging import smoke
from quantkit.packaging.archive import write_archive
from quantkit.packaging.manifest import (BETWEEN_MACHINES, EVERY_PACKAGING, MODEL_DIR,
                                         README_FILE, SCHEMA, SMOKE_DIR, FileEntry, Manifest,
                                         SmokeRecord, Variation, pointer)
from quantkit.records import finite_json, read_json
from quantkit.targets.profile import Backend, Precision

# Paddle Lite opt writes its version as char[16] from a shorter std::string
# (model_parser.cc SaveModelNaive: writer.Write(version().c_str(), 16)): after the
# version text and its NUL the field holds whatever was in memory. Offsets are 0-based.
NB_VERSION_FIELD = (2, 18)  # after the uint16 meta version
NB_RULE = ("sha256 with the bytes of the .nb's 16-byte opt version field (offsets 2-17) "
           "after its NUL terminator zeroed, here offsets {start}-{end} (0-based)")
NB_REASON = ("Paddle Lite opt writes its version string into a 16-byte field (offsets 2-17) "
             "and leaves the bytes after the string's NUL uninitialised (stack memory): "
             "offsets {start}-{end} (0-based) here, which differ between two conversions of "
             "the same model (0-based offsets 11-14 were seen to change on x86-64 Linux; the "
             "rest of the range is the same uninitialised memory). sha256_stable zeroes the "
             "range and is reproducible")
LITE_RECORD_FIELDS = ("opt_command", "opt_path")  # absolute paths in a Lite artifact.json
ARTIFACT_RULE = ("sha256 of artifact.json as canonical JSON (sorted keys, compact) without "
                 "settings.opt_command and settings.opt_path")


@dataclass(frozen=True)
class _Source:
    """What is being packaged: an artifact folder, and the run folder around it if any."""

    artifact_dir: Path
    run_dir: Path | None


def package(source: Path, out_dir: Path, target: str | None = None,
            force: bool = False) -> Path:
    """Package a run folder's target (or one artifact folder) into `out_dir/<target>/`.

    Also writes `out_dir/<target>.tar.gz`, byte-identical for the same bundle folder.
    Returns the bundle folder. `force` replaces an existing bundle of that target.
    """
    from quantkit.targets.profile import profile_from_dict

    found = _resolve_source(Path(source), target)
    artifact = _checked_artifact(found.artifact_dir)
    if target is not None and artifact.target != target:
        raise QuantkitError(f"{found.artifact_dir} is an artifact of target "
                            f"'{artifact.target}', not '{target}': drop --target or give the "
                            f"artifact folder of '{target}'")
    profile_path = found.artifact_dir / PROFILE_RECORD
    profile_record = read_json(profile_path, "the target profile record")
    profile = profile_from_dict(profile_record, source=str(profile_path))
    out_dir = Path(out_dir)
    bundle_dir = replaceable_output(confined(out_dir, check_name(artifact.target, "target")),
                                    force, inputs=[found.artifact_dir])
    archive = confined(out_dir, f"{artifact.target}{ARCHIVE_SUFFIX}")
    if archive.exists() and not force:
        raise QuantkitError(f"bundle output exists: {archive} (pass --force / force=True to "
                            "replace it)")
    if archive.exists() and not archive.is_file():
        raise QuantkitError(f"--force replaces a bundle archive only: {archive} is not a file")
    provenance = _provenance(found, artifact.target, artifact.precision)

    partial_archive = archive.with_name(f".{archive.name}.partial-{os.getpid()}")
    try:
        with staged_folder(bundle_dir, replace=True) as staging:
            manifest = _fill_bundle(staging, artifact, profile, profile_record, provenance)
            manifest.save(staging)
            write_archive(staging, partial_archive, arcname=bundle_dir.name)
        partial_archive.replace(archive)  # the folder is published: publish its archive
    finally:
        partial_archive.unlink(missing_ok=True)
    return bundle_dir.absolute()


def _fill_bundle(staging: Path, artifact, profile, profile_record: dict,
                 provenance: dict[str, Any]) -> Manifest:
    """Copy the model, record the smoke check, write the README; the manifest to save."""
    from quantkit.packaging.readme import render_readme
    from quantkit.targets import adapter_for
    from quantkit.targets.artifact import Artifact

    model_dir = staging / MODEL_DIR
    model_dir.mkdir()
    for name in (*artifact.files, ARTIFACT_RECORD, PROFILE_RECORD):
        (model_dir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(artifact.folder / name, model_dir / name)
    staged = Artifact.load(model_dir)
    smoke_record, feeds = _record_smoke(staged, profile, staging / SMOKE_DIR,
                                        adapter_for(profile.backend))
    manifest = Manifest(
        schema=SCHEMA,
        created_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        target=artifact.target, backend=artifact.backend, precision=artifact.precision,
        device=profile.device, files={}, profile=profile_record,
        artifact_settings=finite_json(artifact.settings), versions=_versions(),
        packaged_on=finite_json(machine_facts()), smoke=smoke_record,
        non_deterministic=_variations(artifact), **provenance)
    # The README is rendered before the checksums exist, from fields equal for equal inputs.
    (staging / README_FILE).write_text(render_readme(manifest, artifact.files, feeds,
                                                     artifact.target))
    return replace(manifest, files=_hash_files(staging, artifact.backend))


# --- the source ------------------------------------------------------------------------

def _resolve_source(source: Path, target: str | None) -> _Source:
    """An artifact folder, or a run folder's artifacts/<target> (target needed if several)."""
    if not source.exists():
        raise QuantkitError(f"source not found: {source} (give a 'quantkit run' folder or an "
                            "artifact folder made by 'quantkit convert')")
    if (source / ARTIFACT_RECORD).is_file():
        return _Source(source.absolute(), None)
    if not (source / RUN_RECORD).is_file():
        raise QuantkitError(f"{source} is neither a run folder (no {RUN_RECORD}) nor an "
                            f"artifact folder (no {ARTIFACT_RECORD}): give what 'quantkit "
                            "run' or 'quantkit convert' wrote")
    available = sorted(path.parent.name for path in
                       (source / ARTIFACTS_DIR).glob(f"*/{ARTIFACT_RECORD}"))
    if not available:
        raise QuantkitError(f"run folder {source} has no converted artifacts in "
                            f"{source / ARTIFACTS_DIR} (did every conversion fail? see its "
                            f"{RESULTS_FILE})")
    if target is None:
        if len(available) > 1:
            raise QuantkitError(f"run folder {source} holds several targets "
                                f"({', '.join(available)}): pick one with --target / target=")
        target = available[0]
    if target not in available:
        raise QuantkitError(f"run folder {source} has no artifact for target '{target}' "
                            f"(it has: {', '.join(available)})")
    return _Source(confined(source / ARTIFACTS_DIR, check_name(target, "target")).absolute(),
                   source.absolute())


def _checked_artifact(folder: Path):
    from quantkit.targets.artifact import load_artifact

    if not (folder / PROFILE_RECORD).is_file():
        raise QuantkitError(f"{folder / PROFILE_RECORD} missing: the artifact was not made "
                            "by 'quantkit convert'; convert the model again")
    return load_artifact(folder)


def _provenance(found: _Source, target: str, precision: str) -> dict[str, Any]:
    """source, source_model, calibration and benchmark fields: from the run, or null."""
    if found.run_dir is None:
        return {"source": {"kind": "artifact",
                           "note": "packaged from a single artifact folder: no run record, so "
                                   "source_model, calibration and benchmark are null"},
                "source_model": None, "calibration": None, "benchmark": None}
    run_path = found.run_dir / RUN_RECORD
    run = read_json(run_path, "the run record")
    if not isinstance(run, dict) or run.get("schema") != RUN_SCHEMA:
        found_schema = run.get("schema") if isinstance(run, dict) else type(run).__name__
        raise QuantkitError(f"{run_path}: schema {found_schema!r} is not {RUN_SCHEMA!r} "
                            "(not a 'quantkit run' record)")
    for name in ("source_model", "calibration"):
        if not isinstance(run.get(name), dict):
            raise QuantkitError(f"{run_path}: field '{name}' missing or not an object; "
                                "re-run 'quantkit run'")
    notes = [f"packaged from run folder {found.run_dir.name} (run created "
             f"{run.get('created_utc', 'unknown')})"]
    calibration = run["calibration"] if precision == Precision.INT8 else None
    if calibration is None:
        notes.append("calibration is null: an fp32 target is converted from the FP32 model, "
                     "not the calibrated one")
    benchmark = _benchmark(found.run_dir / RESULTS_FILE, target)
    if benchmark is None:
        notes.append(f"benchmark is null: the run has no {RESULTS_FILE}")
    return {"source": {"kind": "run", "note": "; ".join(notes)},
            "source_model": finite_json(run["source_model"]),
            "calibration": finite_json(calibration), "benchmark": benchmark}


def _benchmark(path: Path, target: str) -> dict[str, Any] | None:
    from quantkit.benchmark.results import BenchResults

    if not path.is_file():
        return None
    results = BenchResults.load(path)
    return finite_json({"results_created_utc": results.created_utc,
                    "eval_set": results.eval_set, "reference": results.reference,
                    "records": [record.to_dict() for record in results.records
                                if record.target == target]})


# --- smoke check -----------------------------------------------------------------------

def _record_smoke(artifact, profile, folder: Path, adapter):
    """Write smoke/input.npz and, where this machine runs the target, smoke/output.npz."""
    from quantkit.targets.artifact import artifact_feeds
    from quantkit.targets.convert import open_artifact

    feeds = artifact_feeds(artifact)
    inputs = smoke.smoke_inputs(feeds, profile.input_shapes)
    folder.mkdir()
    smoke.write_npz(folder / smoke.INPUT_FILE, inputs)
    available = adapter.availability(profile)
    output = None
    if available.can_run:
        outputs = open_artifact(artifact.folder).run(inputs)
        smoke.write_npz(folder / smoke.OUTPUT_FILE, smoke.output_arrays(outputs))
        output = f"{SMOKE_DIR}/{smoke.OUTPUT_FILE}"
        reason = f"recorded on the packaging machine: {available.reason}"
    else:
        reason = (f"the packaging machine cannot run {profile.name}: {available.reason}; run "
                  "'quantkit verify' on the target device to check the model runs")
    record = SmokeRecord(input=f"{SMOKE_DIR}/{smoke.INPUT_FILE}", output=output,
                         reason=reason, seed=smoke.SEED, rows=smoke.ROWS,
                         tolerance=smoke.tolerance_for(profile.precision))
    return record, feeds


# --- checksums and what may vary ------------------------------------------------------

def _hash_files(folder: Path, backend: str) -> dict[str, FileEntry]:
    """sha256 + size of every file in the bundle, with a stable hash where bytes vary."""
    entries = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            raise QuantkitError(f"{path} is a symbolic link: bundles hold regular files only")
        if not path.is_file():
            continue
        name = path.relative_to(folder).as_posix()
        entry = FileEntry(sha256=file_sha256(path), size=path.stat().st_size)
        if path.suffix == ".nb":
            stable, start, end = nb_stable_sha256(path)
            entry = replace(entry, sha256_stable=stable,
                            stable_rule=NB_RULE.format(start=start, end=end))
        elif name == f"{MODEL_DIR}/{ARTIFACT_RECORD}" and backend == Backend.PADDLE_LITE:
            entry = replace(entry, sha256_stable=lite_record_stable_sha256(path),
                            stable_rule=ARTIFACT_RULE)
        entries[name] = entry
    return entries


def nb_masked_range(data: bytes) -> tuple[int, int]:
    """[start, end) of the .nb version field's bytes after its NUL (uninitialised memory)."""
    start, end = NB_VERSION_FIELD
    field = data[start:end]
    nul = field.find(b"\0")
    return (start + nul + 1, end) if nul >= 0 else (end, end)


def nb_stable_sha256(path: Path) -> tuple[str, int, int]:
    """sha256 of a .nb with its uninitialised version bytes zeroed, and the range zeroed."""
    data = bytearray(Path(path).read_bytes())
    start, end = nb_masked_range(bytes(data))
    data[start:end] = bytes(end - start)
    return hashlib.sha256(data).hexdigest(), start, end - 1


def lite_record_stable_sha256(path: Path) -> str:
    record = json.loads(Path(path).read_text())
    settings = dict(record.get("settings") or {})
    for key in LITE_RECORD_FIELDS:
        settings.pop(key, None)
    record["settings"] = settings
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _variations(artifact) -> tuple[Variation, ...]:
    """Every manifest field that may differ between two packagings of the same inputs."""
    items = [
        Variation("/created_utc", EVERY_PACKAGING, "the UTC time of packaging"),
        Variation("/packaged_on", BETWEEN_MACHINES,
                  "the packaging machine: hostname, CPU, cores, OS, library versions"),
        Variation(pointer("files", f"{SMOKE_DIR}/{smoke.OUTPUT_FILE}"), BETWEEN_MACHINES,
                  "outputs computed on the packaging machine (absent where it cannot run the "
                  "target); bit-identical when repeated on one machine, other CPUs round "
                  "differently: verify compares them by /smoke/tolerance"),
        Variation("/smoke/output", BETWEEN_MACHINES,
                  "null where the packaging machine cannot run the target"),
        Variation("/smoke/reason", BETWEEN_MACHINES,
                  "names what the packaging machine runs the target on, or why it cannot"),
    ]
    for name in artifact.files:
        if name.endswith(".nb"):
            data = (artifact.folder / name).read_bytes()
            start, end = nb_masked_range(data)
            items.append(Variation(
                pointer("files", f"{MODEL_DIR}/{name}", "sha256"), EVERY_PACKAGING,
                NB_REASON.format(start=start, end=end - 1)))
    if artifact.backend == Backend.PADDLE_LITE:
        record = f"{MODEL_DIR}/{ARTIFACT_RECORD}"
        items += [
            Variation("/artifact_settings/opt_path", BETWEEN_MACHINES,
                      "absolute path of the opt binary on the converting machine"),
            Variation(pointer("files", record, "sha256"), BETWEEN_MACHINES,
                      "artifact.json holds settings.opt_path (see /artifact_settings/"
                      "opt_path); sha256_stable hashes it without the path fields"),
            Variation(pointer("files", record, "size"), BETWEEN_MACHINES,
                      "settings.opt_path can differ in length between machines"),
        ]
    return tuple(items)


# --- small helpers ---------------------------------------------------------------------

def _versions() -> dict[str, str | None]:
    """This Python's libraries; a runtime it lacks (paddlelite) from its side env's pin."""
    from quantkit import sideenv

    versions = {"python": platform.python_version(), **library_versions(include_missing=True)}
    for name, version in sideenv.runtime_versions().items():
        if name in versions and versions[name] is None:
            versions[name] = version
    return versions
