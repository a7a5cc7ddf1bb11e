"""`convert`: a checked model + a target profile -> the artifact that target runs.

The artifact folder holds the model files, `artifact.json` (files, settings, size) and
`profile.json` (the profile as loaded), built in a staging folder and renamed at the end.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from quantkit.atomic import staged_folder
from quantkit.errors import QuantkitError
from quantkit.model_files import check_inference_model
from quantkit.targets import adapter_for
from quantkit.targets.base import ARTIFACT_MANIFEST, Artifact, Availability
from quantkit.targets.profile import TargetProfile, load_profile, shipped_profiles

PROFILE_RECORD = "profile.json"


def resolve_profile(target: str | Path | TargetProfile) -> TargetProfile:
    return target if isinstance(target, TargetProfile) else load_profile(target)


def convert(model_dir: str | Path, target: str | Path | TargetProfile, out: str | Path,
            force: bool = False, model_filename: str | None = None,
            params_filename: str | None = None) -> Artifact:
    """Convert the model in `model_dir` for `target` into the new folder `out`."""
    profile = resolve_profile(target)
    model = check_inference_model(model_dir, model_filename, params_filename)
    out = Path(out)
    if out.exists() and not force:
        raise QuantkitError(f"output folder exists: {out} (pass --force / force=True to "
                            "replace it)")
    adapter = adapter_for(profile.backend)
    with staged_folder(out, replace=True) as staging:
        artifact = adapter.prepare(model, profile, staging)
        artifact.save()
        (staging / PROFILE_RECORD).write_text(json.dumps(profile.to_dict(), indent=2) + "\n")
    return Artifact.load(out.absolute())


def load_artifact(folder: str | Path) -> Artifact:
    """The artifact in `folder` (absolute), refusing a folder `convert` did not make."""
    folder = Path(folder).absolute()
    if not (folder / ARTIFACT_MANIFEST).is_file():
        raise QuantkitError(f"not a quantkit artifact: {folder} has no {ARTIFACT_MANIFEST} "
                            "(make one with 'quantkit convert')")
    return Artifact.load(folder)


def artifact_profile(folder: str | Path) -> TargetProfile:
    """The target profile an artifact was converted with (its profile.json)."""
    from quantkit.targets.profile import profile_from_dict

    path = Path(folder) / PROFILE_RECORD
    return profile_from_dict(json.loads(path.read_text()), source=str(path))


def open_artifact(folder: str | Path, threads: int | None = None):
    """A predictor on a converted artifact, with the settings it was converted with.

    `threads` overrides the profile's thread count (benchmarks sweep it).
    """
    import dataclasses

    artifact = load_artifact(folder)
    profile = artifact_profile(artifact.folder)
    if threads is not None:
        if threads < 1:
            raise QuantkitError(f"threads must be >= 1 (got {threads})")
        profile = dataclasses.replace(profile, threads=threads)
    return adapter_for(artifact.backend).open_predictor(artifact, profile)


@dataclass(frozen=True)
class TargetStatus:
    profile: TargetProfile
    availability: Availability


def target_statuses() -> list[TargetStatus]:
    """Every shipped profile and whether this machine can run it (and why not)."""
    statuses = []
    for profile in shipped_profiles():
        try:
            availability = adapter_for(profile.backend).availability(profile)
        except Exception as exc:  # noqa: BLE001 - a broken runtime is a reason, not a crash
            availability = Availability(False, f"adapter failed to load: {exc}")
        statuses.append(TargetStatus(profile, availability))
    return statuses
