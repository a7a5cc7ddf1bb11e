"""The `.tar.gz` of a bundle: byte-identical for the same folder, and extracted safely.

Reproducible because nothing about the packaging machine or moment enters the archive:
entries sorted, every mtime the fixed `ARCHIVE_MTIME`, uid/gid 0, empty user/group names,
modes 0755/0644, and a gzip header without name or timestamp. Extraction trusts nothing:
absolute paths, '..', links and device files are refused before anything is written.
"""
from __future__ import annotations

import gzip
import os
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from quantkit.errors import QuantkitError

ARCHIVE_SUFFIX = ".tar.gz"
# 2000-01-01T00:00:00Z: fixed like 0, but tar tools do not warn about 1970 timestamps.
ARCHIVE_MTIME = 946684800
_CHUNK = 1 << 20


def write_archive(folder: Path, destination: Path, arcname: str | None = None) -> Path:
    """Write `folder` as `destination` (.tar.gz) under one top-level folder `arcname`.

    `arcname` defaults to the folder's name (a staging folder passes the bundle's name).
    Written to a temporary file beside `destination` and renamed, so a reader never sees
    half an archive.
    """
    folder, destination = Path(folder), Path(destination)
    arcname = arcname or folder.name
    handle, partial = tempfile.mkstemp(prefix=f".{destination.name}.partial-",
                                       dir=destination.parent)
    os.close(handle)
    try:
        with open(partial, "wb") as raw:
            # filename="" and mtime=0 keep the gzip header free of name and time.
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                               compresslevel=9) as zipped:
                with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    _add_tree(tar, folder, arcname)
        os.chmod(partial, 0o644)
        os.replace(partial, destination)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return destination


def _add_tree(tar: tarfile.TarFile, folder: Path, arcname: str) -> None:
    tar.addfile(_info(arcname, tarfile.DIRTYPE, 0o755))
    for path in sorted(folder.rglob("*"), key=lambda p: p.relative_to(folder).as_posix()):
        name = f"{arcname}/{path.relative_to(folder).as_posix()}"
        if path.is_symlink():
            raise QuantkitError(f"{path} is a symbolic link: bundles hold regular files only")
        if path.is_dir():
            tar.addfile(_info(name, tarfile.DIRTYPE, 0o755))
        else:
            info = _info(name, tarfile.REGTYPE, 0o644)
            info.size = path.stat().st_size
            with open(path, "rb") as handle:
                tar.addfile(info, handle)


def _info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, ARCHIVE_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def extract_archive(archive: Path, into: Path) -> Path:
    """Extract a bundle archive into the empty folder `into`; return its top-level folder.

    Every member is checked first: one top-level folder, relative paths without '..',
    regular files and folders only (no links, devices or FIFOs).
    """
    archive = Path(archive)
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            members = tar.getmembers()
            top = _check_members(members, archive)
            for member in members:
                target = Path(into, *PurePosixPath(member.name).parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                with source, open(target, "wb") as out:
                    while block := source.read(_CHUNK):
                        out.write(block)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:  # BadGzipFile: OSError
        raise QuantkitError(f"{archive}: not a readable .tar.gz ({exc}); download or "
                            "package it again") from None
    return Path(into) / top


def _check_members(members: list[tarfile.TarInfo], archive: Path) -> str:
    if not members:
        raise QuantkitError(f"{archive}: the archive is empty")
    tops = set()
    for member in members:
        name = member.name
        parts = PurePosixPath(name).parts
        if name.startswith("/") or (parts and parts[0].endswith(":")) or "\\" in name:
            raise QuantkitError(f"{archive}: refusing member {name!r}: absolute path")
        if ".." in parts or not parts:
            raise QuantkitError(f"{archive}: refusing member {name!r}: it leaves the "
                                "bundle folder ('..')")
        if member.issym() or member.islnk():
            raise QuantkitError(f"{archive}: refusing member {name!r}: a link (bundles hold "
                                "regular files only)")
        if not (member.isfile() or member.isdir()):
            raise QuantkitError(f"{archive}: refusing member {name!r}: not a regular file "
                                "or folder")
        tops.add(parts[0])
    if len(tops) != 1:
        raise QuantkitError(f"{archive}: expected one top-level bundle folder, found "
                            f"{', '.join(sorted(tops))}")
    top = tops.pop()
    if any(member.isfile() and member.name == top for member in members):
        raise QuantkitError(f"{archive}: top-level entry {top!r} is a file, not a bundle "
                            "folder")
    return top

