"""Atomic output folders: build beside the destination, then move into place.

A failed run leaves no half-written model behind; a successful one replaces the files
it writes and nothing else.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def staged_folder(destination: str | Path, replace: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `destination`; publish it on success.

    If `destination` does not exist the staged folder is renamed to it (one atomic
    rename). If it exists, each staged file replaces its namesake inside it, or with
    `replace=True` the whole folder is swapped for the staged one.
    """
    destination = Path(destination).absolute()
    first_created = _first_missing_ancestor(destination.parent)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.partial-",
                                    dir=destination.parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700; publish with normal rights
    published = False
    try:
        yield staging
        if replace and destination.exists():
            _swap(staging, destination)
        else:
            _publish(staging, destination)
        published = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not published and first_created is not None:
            shutil.rmtree(first_created, ignore_errors=True)


def _first_missing_ancestor(folder: Path) -> Path | None:
    missing = None
    while not folder.exists():
        missing, folder = folder, folder.parent
    return missing


def _swap(staging: Path, destination: Path) -> None:
    retired = destination.with_name(f".{destination.name}.old-{os.getpid()}")
    os.rename(destination, retired)
    os.rename(staging, destination)
    shutil.rmtree(retired, ignore_errors=True)


def _publish(staging: Path, destination: Path) -> None:
    if not destination.exists():
        os.rename(staging, destination)
        return
    for item in sorted(staging.rglob("*")):
        target = destination / item.relative_to(staging)
        if item.is_dir():
            target.mkdir(exist_ok=True)
        else:
            os.replace(item, target)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` to write to; moved onto `path` only on success."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
