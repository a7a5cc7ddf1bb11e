"""Open a verified bundle for serving: the stable face the HTTP server builds on.

`load_bundle` checks every checksum before it hands out a path, so a server never loads
a changed or truncated model; `open_bundle_predictor` opens the model with the settings
recorded in the bundle (the same ones its numbers were measured with).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from quantkit.errors import QuantkitError
from quantkit.data.feeds import FeedSpec
from quantkit.packaging.archive import ARCHIVE_SUFFIX, extract_archive
from quantkit.packaging.manifest import MODEL_DIR, Manifest
from quantkit.packaging.verify import check_files


@dataclass(frozen=True)
class LoadedBundle:
    """A bundle whose files matched its manifest when loaded."""

    root: Path  # the bundle folder (for an archive: where it was extracted)
    manifest: Manifest
    model_dir: Path  # root / "model": the artifact folder open_artifact() takes
    feeds: tuple[FeedSpec, ...]  # the model's inputs (-1: any size on that axis)


def load_bundle(bundle: str | Path, extract_to: str | Path | None = None) -> LoadedBundle:
    """Verify the checksums of a bundle folder (or .tar.gz) and describe what it serves.

    An archive is extracted into the empty folder `extract_to`, or into a new temporary
    folder that the caller owns (a server keeps it for its lifetime). The smoke run is
    not repeated here: `quantkit verify` does that.
    """
    from quantkit.targets.artifact import artifact_feeds
    from quantkit.targets.artifact import Artifact

    bundle = Path(bundle)
    shown = bundle
    if not bundle.exists():
        raise QuantkitError(f"bundle not found: {bundle} (give a bundle folder or its "
                            f"{ARCHIVE_SUFFIX}, as 'quantkit package' writes them)")
    if bundle.is_file():
        if not bundle.name.endswith(ARCHIVE_SUFFIX):
            raise QuantkitError(f"{bundle} is a file but not a {ARCHIVE_SUFFIX} bundle "
                                "archive: give a bundle folder or its archive")
        into = Path(extract_to) if extract_to is not None else Path(
            tempfile.mkdtemp(prefix="quantkit-bundle-"))
        into.mkdir(parents=True, exist_ok=True)
        if any(into.iterdir()):
            raise QuantkitError(f"extract_to folder is not empty: {into} (give an empty or "
                                "new folder)")
        bundle = extract_archive(bundle, into)
    root = bundle.absolute()
    manifest, _ = check_files(root, shown=shown)
    model_dir = root / MODEL_DIR
    feeds = tuple(artifact_feeds(Artifact.load(model_dir)))
    return LoadedBundle(root=root, manifest=manifest, model_dir=model_dir, feeds=feeds)


def open_bundle_predictor(loaded: LoadedBundle, threads: int | None = None):
    """A predictor (`.input_names`, `.run({name: array}) -> list[np.ndarray]`) on the bundle.

    `threads` overrides the profile's thread count. Raises QuantkitError where this
    machine cannot run the target (the reason names what it needs).
    """
    from quantkit.targets.convert import open_artifact

    return open_artifact(loaded.model_dir, threads=threads)
