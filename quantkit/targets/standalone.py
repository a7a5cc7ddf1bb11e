"""Open an artifact with nothing but its runtime: what side environments and boards run.

A Paddle Lite `.nb` (paddlelite only) and a paddle3-onednn-int8 artifact (Paddle 3 only)
are opened here from their `artifact.json`, without quantkit's adapters and their
dependencies; the benchmark runner and the predictor worker use this inside the lite and
paddle3 side environments (quantkit.sideenv) and on ARM boards (quantkit.kit ships it).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from quantkit.errors import QuantkitError
from quantkit.files import ARTIFACT_RECORD, PADDLE_MODEL_FILE, PADDLE_PARAMS_FILE

# Backend names as quantkit.targets.profile.Backend spells them (tests/test_kit.py).
LITE_BACKEND = "paddle-lite"
PADDLE3_BACKEND = "paddle3-inference"
STANDALONE_BACKENDS = (LITE_BACKEND, PADDLE3_BACKEND)


class RuntimeMissing(QuantkitError):
    """This interpreter lacks the artifact's runtime (the message says what to install)."""


def artifact_record(artifact_dir: Path) -> dict:
    """The artifact.json of `artifact_dir`, or a one-line error naming the file."""
    path = Path(artifact_dir) / ARTIFACT_RECORD
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise QuantkitError(f"{path}: unreadable ({exc})") from None
    if not isinstance(record, dict):
        raise QuantkitError(f"{path}: not an artifact record")
    return record


def open_standalone(artifact_dir: Path, record: dict, threads: int | None):
    """A predictor (.run(feeds) -> list of arrays) on a standalone backend's artifact."""
    backend = record.get("backend")
    settings = record.get("settings") or {}
    if backend == LITE_BACKEND:
        return _open_lite(Path(artifact_dir), record, settings, threads)
    if backend == PADDLE3_BACKEND:
        return _open_paddle3(Path(artifact_dir), settings, threads)
    raise QuantkitError(f"{artifact_dir}: backend {backend!r} needs quantkit installed here "
                        f"(only {', '.join(STANDALONE_BACKENDS)} run without it)")


def _open_lite(artifact_dir: Path, record: dict, settings: dict, threads: int | None):
    try:
        from quantkit.targets.lite_runtime import open_lite
        dtypes = {item["name"]: item["dtype"] for item in settings.get("inputs", [])}
        return open_lite(artifact_dir / record["files"][0], threads or settings.get("threads"),
                         dtypes)
    except ImportError as exc:
        raise RuntimeMissing(f"paddlelite is not importable by {sys.executable}: {exc} "
                             "(pip install paddlelite on this host)") from None


def _open_paddle3(artifact_dir: Path, settings: dict, threads: int | None):
    try:
        import paddle
    except ImportError as exc:
        raise RuntimeMissing(f"paddle is not importable by {sys.executable}: {exc} "
                             "(quantkit env install paddle3)") from None
    if not paddle.__version__.startswith("3."):
        raise RuntimeMissing(f"{artifact_dir} is a Paddle 3 target; {sys.executable} has "
                             f"Paddle {paddle.__version__} (quantkit env install paddle3)")
    from dataclasses import replace

    from quantkit.targets.paddle_runtime import OneDnnRecipe, create_predictor

    recipe = OneDnnRecipe.from_record(settings.get("recipe") or {},
                                      str(artifact_dir / ARTIFACT_RECORD))
    if threads:
        recipe = replace(recipe, threads=int(threads))
    return create_predictor(artifact_dir / PADDLE_MODEL_FILE,
                            artifact_dir / PADDLE_PARAMS_FILE, recipe.apply)
