"""The `.tar.gz` of a bundle: byte-identical for the same folder, and extracted safely.

Reproducible because nothing about the packaging machine or moment enters the archive:
entries sorted, every mtime the fixed `ARCHIVE_MTIME`, uid/gid 0, empty user/group names,
modes 0755/0644, and a gzip header without name or timestamp. Extraction trusts nothing:
absolute paths, '..', links and device files are refused before anything is written.
"""
from __future__ import annotations

import gzip
import json
import os
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from quantkit.errors import QuantkitError
from quantkit.files import BUNDLE_MANIFEST as MANIFEST_NAME

from quantkit.files import ARCHIVE_SUFFIX  # noqa: E402
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

    Streamed and bounded: members are checked as they come (one top-level folder,
    relative paths without '..', regular files and folders only), only the README and the
    manifest may precede the manifest (each capped), and every later file must be listed in
    the manifest with the size it declares. An archive that would expand beyond what its
    manifest says (a decompression bomb) is refused at its first oversized member.
    """
    archive = Path(archive)
    extracted = _Extraction(archive, Path(into))
    try:
        with tarfile.open(archive, mode="r|gz") as tar:
            for member in tar:
                extracted.add(tar, member)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:  # BadGzipFile: OSError
        raise QuantkitError(f"{archive}: not a readable .tar.gz ({exc}); download or "
                            "package it again") from None
    return extracted.finish()


PRE_MANIFEST_LIMIT = 1 << 20  # the bundle README, the only file sorted before manifest.json
MANIFEST_LIMIT = 16 << 20


class _Extraction:
    """State of one streamed extraction: the top folder, the manifest's declared sizes."""

    def __init__(self, archive: Path, into: Path) -> None:
        self.archive, self.into = archive, into
        self.top: str | None = None
        self.declared: dict[str, int] | None = None  # bundle path -> size, from the manifest
        self.seen: set[str] = set()

    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = self._checked_parts(member)
        if self.top is None:
            self.top = parts[0]
        elif parts[0] != self.top:
            raise QuantkitError(f"{self.archive}: expected one top-level bundle folder, found "
                                f"{self.top} and {parts[0]}")
        target = Path(self.into, *parts)
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            return
        if len(parts) == 1:
            raise self._refuse(member, "the top-level entry is a file, not a bundle folder")
        name = "/".join(parts[1:])
        self._check_size(member, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        with source, open(target, "wb") as out:
            while block := source.read(_CHUNK):
                out.write(block)
        self.seen.add(name)
        if name == MANIFEST_NAME:
            self.declared = _declared_sizes(target, self.archive)
            for earlier in self.seen - {MANIFEST_NAME}:
                self._check_declared(earlier, (target.parent / earlier).stat().st_size)

    def _check_size(self, member: tarfile.TarInfo, name: str) -> None:
        if self.declared is None:
            limit = MANIFEST_LIMIT if name == MANIFEST_NAME else PRE_MANIFEST_LIMIT
            if name != MANIFEST_NAME and "/" in name:
                raise self._refuse(member, f"it comes before the bundle's {MANIFEST_NAME} "
                                           "(quantkit package writes the manifest first: "
                                           "package the bundle again)")
            if member.size > limit:
                raise self._refuse(member, f"it declares {member.size} bytes before the "
                                           f"manifest (at most {limit})")
            return
        self._check_declared(name, member.size)

    def _check_declared(self, name: str, size: int) -> None:
        if name not in self.declared:
            raise QuantkitError(f"{self.archive}: refusing member {name!r}: it is not listed "
                                f"in the bundle's {MANIFEST_NAME}")
        if size != self.declared[name]:
            raise QuantkitError(f"{self.archive}: refusing member {name!r}: it holds {size} "
                                f"bytes, the manifest declares {self.declared[name]}")

    def _checked_parts(self, member: tarfile.TarInfo) -> tuple[str, ...]:
        name = member.name
        parts = PurePosixPath(name).parts
        if name.startswith("/") or (parts and parts[0].endswith(":")) or "\\" in name:
            raise self._refuse(member, "absolute path")
        if ".." in parts or not parts:
            raise self._refuse(member, "it leaves the bundle folder ('..')")
        if member.issym() or member.islnk():
            raise self._refuse(member, "a link (bundles hold regular files only)")
        if not (member.isfile() or member.isdir()):
            raise self._refuse(member, "not a regular file or folder")
        return parts

    def _refuse(self, member: tarfile.TarInfo, why: str) -> QuantkitError:
        return QuantkitError(f"{self.archive}: refusing member {member.name!r}: {why}")

    def finish(self) -> Path:
        if self.top is None:
            raise QuantkitError(f"{self.archive}: the archive is empty")
        if self.declared is None:
            raise QuantkitError(f"{self.archive}: no {MANIFEST_NAME} in the archive: not a "
                                "quantkit bundle")
        return self.into / self.top


def _declared_sizes(manifest: Path, archive: Path) -> dict[str, int]:
    """{bundle path: size} from a manifest, or a refusal (the full check comes later)."""
    try:
        files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
        return {str(name): int(entry["size"]) for name, entry in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise QuantkitError(f"{archive}: its {MANIFEST_NAME} does not list the files and "
                            "their sizes: the bundle is damaged, package it again") from None
