"""`convert`: a checked model + a target profile -> the artifact that target runs.

The artifact folder (see `quantkit.targets.artifact`) is built in a staging folder and
renamed at the end, so a failed conversion leaves nothing behind.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from quantkit.atomic import replaceable_output, staged_folder
from quantkit.errors import QuantkitError
from quantkit.files import PROFILE_RECORD
from quantkit.model_files import check_inference_model
from quantkit.targets import adapter_for
from quantkit.targets.artifact import Artifact, artifact_profile, load_artifact
from quantkit.targets.base import Availability, Predictor
from quantkit.targets.profile import TargetProfile, load_profile, shipped_profiles


def resolve_profile(target: str | Path | TargetProfile) -> TargetProfile:
    return target if isinstance(target, TargetProfile) else load_profile(target)


def convert(model_dir: str | Path, target: str | Path | TargetProfile, out: str | Path,
            force: bool = False, model_filename: str | None = None,
            params_filename: str | None = None) -> Artifact:
    """Convert the model in `model_dir` for `target` into the new folder `out`."""
    profile = resolve_profile(target)
    model = check_inference_model(model_dir, model_filename, params_filename)
    out = replaceable_output(out, force, inputs=[model.given_dir])
    adapter = adapter_for(profile.backend)
    with staged_folder(out, replace=True) as staging:
        artifact = adapter.prepare(model, profile, staging)
        dataclasses.replace(artifact, pir_source=model.pir_source).save()
        (staging / PROFILE_RECORD).write_text(json.dumps(profile.to_dict(), indent=2) + "\n")
    return Artifact.load(out.absolute())


def open_artifact(folder: str | Path, threads: int | None = None) -> Predictor:
    """A predictor on a converted artifact, with the settings it was converted with.

    `threads` overrides the profile's thread count (benchmarks sweep it).
    """
    artifact = load_artifact(folder)
    profile = artifact_profile(artifact.folder)
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise QuantkitError(f"threads must be a whole number >= 1 (got {threads!r})")
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
