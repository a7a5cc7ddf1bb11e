"""Output folders: built beside the destination, moved into place, never outside `--out`.

A failed or interrupted run leaves no half-written model behind; a successful one replaces
the files it writes and nothing else. `replaceable_output` is the one rule for `--force`,
and `confined` the one way to put a name read from a file under an output folder.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from quantkit.errors import QuantkitError
from quantkit.files import QUANTKIT_RECORDS


@contextlib.contextmanager
def staged_folder(destination: str | Path, replace: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `destination`; publish it on success.

    If `destination` does not exist the staged folder is renamed to it (one atomic
    rename). If it exists, each staged file replaces its namesake inside it, or with
    `replace=True` the whole folder is swapped for the staged one. On any failure (an
    exception, Ctrl-C, SIGTERM turned into SystemExit) the staging folder and any parent
    folders this call created are removed.
    """
    destination = Path(destination).absolute()
    first_created = _first_missing_ancestor(destination.parent)
    existing = first_created.parent if first_created is not None else destination.parent
    if not existing.is_dir():
        raise QuantkitError(f"cannot use {destination}: {existing} is a file, not a folder")
    published = False
    staging = None
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.partial-",
                                        dir=destination.parent))
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700; publish with normal rights
        yield staging
        if replace and destination.exists():
            _swap(staging, destination)
        else:
            _publish(staging, destination)
        published = True
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if not published and first_created is not None:
            shutil.rmtree(first_created, ignore_errors=True)


def replaceable_output(out: str | Path, force: bool, inputs: Iterable[str | Path] = ()) -> Path:
    """`out` (absolute) if it may be written: it is new, or `force` may replace it.

    `--force` replaces only a folder quantkit wrote (it holds one of quantkit's records) or
    an empty one; never a file, a link, the current directory or a folder holding it, nor
    a folder that holds one of the `inputs`.
    """
    out = Path(out).absolute()
    if not out.exists() and not out.is_symlink():
        return out
    if not force:
        raise QuantkitError(f"output folder exists: {out} (pass --force to replace it)")
    if out.is_symlink() or not out.is_dir():
        raise QuantkitError(f"--force replaces output folders only: {out} is "
                            f"{'a link' if out.is_symlink() else 'a file'}; remove it or pick "
                            "another --out")
    real = out.resolve()
    here = Path.cwd().resolve()
    if real == here or real in here.parents:
        raise QuantkitError(f"--force would delete {out}, which holds the current directory; "
                            "pick a new --out folder")
    for item in inputs:
        source = Path(item).resolve()
        if source == real or real in source.parents:
            raise QuantkitError(f"--force would delete {out}, which holds the input {item}; "
                                "pick an --out folder outside the inputs")
    if any(out.iterdir()) and not any((out / name).exists() for name in QUANTKIT_RECORDS):
        raise QuantkitError(f"--force replaces only folders quantkit wrote (holding one of "
                            f"{', '.join(QUANTKIT_RECORDS)}): {out} holds other files; remove "
                            "it yourself or pick another --out")
    return out


def confined(root: Path, *parts: str) -> Path:
    """`root/parts...`, refusing a result that is not inside `root` (names from files)."""
    root = Path(root).absolute()
    path = root.joinpath(*parts)
    resolved, base = path.resolve(), root.resolve()
    if resolved != base and base not in resolved.parents:
        raise QuantkitError(f"refusing to write {path}: it is outside the output folder "
                            f"{root} (a name read from a file must be a plain name)")
    return path


def _first_missing_ancestor(folder: Path) -> Path | None:
    missing = None
    while not folder.exists() and folder != folder.parent:
        missing, folder = folder, folder.parent
    return missing


def _swap(staging: Path, destination: Path) -> None:
    retired = destination.with_name(f".{destination.name}.old-{os.getpid()}")
    os.rename(destination, retired)
    try:
        os.rename(staging, destination)
    except BaseException:
        os.rename(retired, destination)  # put the old one back
        raise
    if retired.is_dir() and not retired.is_symlink():
        shutil.rmtree(retired, ignore_errors=True)
    else:
        retired.unlink(missing_ok=True)


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


def write_text_atomic(path: Path, text: str) -> Path:
    """Write `text` to `path` whole or not at all (a reader never sees half a file)."""
    with atomic_path(Path(path)) as partial:
        partial.write_text(text, encoding="utf-8")
    return Path(path)
