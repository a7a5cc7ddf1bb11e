"""What a server serves: the model's inputs, a description, and a way to open predictors.

The server only sees a `ModelSource`, so it serves a release bundle (through
`quantkit.packaging`, which verifies checksums) or a bare artifact folder alike.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from quantkit.errors import QuantkitError
from quantkit.records import read_json
from quantkit.files import (ARCHIVE_SUFFIX as BUNDLE_ARCHIVE_SUFFIX,
                            ARTIFACT_RECORD as ARTIFACT_MANIFEST, BUNDLE_MANIFEST, PROFILE_RECORD)
from quantkit.data.feeds import FeedSpec
from quantkit.targets.base import Predictor

# What /v1/metadata shows of a bundle manifest: provenance, not every checksum.
MANIFEST_SUMMARY_KEYS = ("schema", "created_utc", "target", "backend", "precision", "device",
                         "source", "source_model", "versions")


@dataclass(frozen=True)
class ModelSource:
    """A servable model: `open_predictor()` is called once per pool worker."""

    feeds: tuple[FeedSpec, ...]
    metadata: dict[str, Any]
    open_predictor: Callable[[], Predictor] = field(compare=False)

    @property
    def name(self) -> str:
        return str(self.metadata.get("target", "model"))


def source_from_path(path: str | Path, threads: int | None = None,
                     extract_to: str | Path | None = None) -> ModelSource:
    """A bundle (folder with manifest.json, or its .tar.gz) or an artifact folder.

    A bundle's checksums are verified first; an archive is extracted into `extract_to`
    (default: a new temporary folder, kept). Refuses a model this machine cannot run (an
    ARM or TensorRT target) with the reason, before any predictor is opened.
    """
    path = Path(path)
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise QuantkitError(f"bad value for 'threads' (--threads): {threads!r} (a positive "
                            "integer, or leave it out to use the target profile's)")
    if path.is_file() and path.name.endswith(BUNDLE_ARCHIVE_SUFFIX):
        return _bundle_source(path, threads, extract_to)
    if not path.is_dir():
        raise QuantkitError(f"no such bundle folder: {path} (give a bundle folder, its "
                            f"{BUNDLE_ARCHIVE_SUFFIX}, or an artifact folder)")
    if (path / BUNDLE_MANIFEST).is_file():
        return _bundle_source(path, threads, None)
    if (path / ARTIFACT_MANIFEST).is_file():
        return _artifact_source(path, threads)
    raise QuantkitError(f"{path} is neither a release bundle (no {BUNDLE_MANIFEST}) nor an "
                        f"artifact folder (no {ARTIFACT_MANIFEST}): point at a folder "
                        "'quantkit package' or 'quantkit convert' made")


def _artifact_source(folder: Path, threads: int | None) -> ModelSource:
    from quantkit.targets.artifact import artifact_feeds, load_artifact
    from quantkit.targets.convert import open_artifact

    profile = _runnable_profile(folder, what=str(folder))
    artifact = load_artifact(folder)
    metadata = {
        "source": "artifact", "path": str(folder.absolute()), "target": artifact.target,
        "backend": artifact.backend, "precision": artifact.precision,
        "threads": threads or profile.threads, "size_bytes": artifact.size_bytes,
    }
    return ModelSource(artifact_feeds(artifact), metadata,
                       functools.partial(open_artifact, folder, threads))


def _bundle_source(root: Path, threads: int | None,
                   extract_to: str | Path | None) -> ModelSource:
    from quantkit.packaging import load_bundle, open_bundle_predictor

    loaded = load_bundle(root, extract_to=extract_to)  # checksums first; a .tar.gz extracted
    profile = _runnable_profile(Path(loaded.model_dir), what=f"bundle {root}")
    manifest = loaded.manifest
    summary = {key: value for key, value in manifest.to_dict().items()
               if key in MANIFEST_SUMMARY_KEYS}
    metadata = {
        "source": "bundle", "path": str(root.absolute()), "target": manifest.target,
        "backend": manifest.backend, "precision": manifest.precision,
        "threads": threads or profile.threads, "versions": summary.get("versions"),
        "manifest": summary,
    }
    return ModelSource(tuple(loaded.feeds), metadata,
                       functools.partial(open_bundle_predictor, loaded, threads=threads))


def _runnable_profile(folder: Path, what: str):
    """The artifact's recorded profile, if this machine can run it; else why not."""
    from quantkit.targets import adapter_for
    from quantkit.targets.profile import profile_from_dict

    record = folder / PROFILE_RECORD
    if not record.is_file():
        raise QuantkitError(f"cannot serve {what}: {record} is missing (re-make the artifact "
                            "with 'quantkit convert')")
    profile = profile_from_dict(read_json(record, "target profile record"), source=str(record))
    try:
        availability = adapter_for(profile.backend).availability(profile)
    except QuantkitError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken runtime is a reason, not a crash
        raise QuantkitError(f"cannot serve {what}: the {profile.backend} runtime failed to "
                            f"load: {exc}") from None
    if not availability.can_run:
        raise QuantkitError(f"cannot serve {what}: target {profile.name} does not run on this "
                            f"machine: {availability.reason}")
    return profile
