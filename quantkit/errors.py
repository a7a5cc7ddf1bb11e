"""What users see when something goes wrong: one line naming the culprit, never a traceback.

`QuantkitError` is a refusal or failure with a message meant for the user. `user_errors`
wraps a command: it prints such an error, and the operating system's own refusals (no
space left, read-only file system, permission denied, a file where a folder should be)
as one line naming the path, and exits 2; Ctrl-C and SIGTERM end it with 130 / 143 and
a line saying what was kept.
"""
from __future__ import annotations

import errno
import sys
from pathlib import Path


class QuantkitError(Exception):
    """A refusal or failure with a message meant for the user, not a traceback."""


_REASONS = {
    errno.ENOSPC: "no space left on the device: free some space or pick another --out",
    errno.EDQUOT: "disk quota exceeded: free some space or pick another --out",
    errno.EROFS: "the file system is read-only: pick a writable --out",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder, not a file",
    errno.ENOENT: "no such file or folder",
    errno.ENAMETOOLONG: "the name is too long",
    errno.EEXIST: "it already exists",
}


def os_error_message(exc: OSError) -> str:
    """`exc` as "PATH: reason" in words a user can act on."""
    path = exc.filename if exc.filename is not None else "a file"
    reason = _REASONS.get(exc.errno or -1, exc.strerror or type(exc).__name__)
    if exc.errno == errno.EEXIST and exc.filename is not None and Path(exc.filename).is_file():
        reason = "it is a file, not a folder"
    target = f" -> {exc.filename2}" if getattr(exc, "filename2", None) else ""
    return f"cannot use {path}{target}: {reason}"


class user_errors:  # noqa: N801 - used as `with user_errors():`
    """For commands: a QuantkitError or an OSError as one line on stderr and exit 2; an
    interrupt as a line saying whether `out_dir` kept results, and exit 130 (SIGTERM: 143)."""

    def __init__(self, out_dir: str | Path | None = None) -> None:
        self.out_dir = out_dir

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            return False
        if issubclass(exc_type, KeyboardInterrupt):
            self._interrupted(exc)
        if issubclass(exc_type, QuantkitError):
            message = str(exc)
        elif issubclass(exc_type, OSError) and not issubclass(exc_type, ConnectionError):
            message = os_error_message(exc)
        elif issubclass(exc_type, MemoryError):
            message = ("not enough memory for this work: use smaller batches (--batch-sizes) "
                       "or fewer rows (--eval-limit, --calib-limit)")
        else:
            return False
        print(f"error: {' '.join(message.split())}", file=sys.stderr)
        sys.exit(2)

    def _interrupted(self, exc: BaseException) -> None:
        from quantkit.files import RESULTS_FILE

        status = getattr(exc, "exit_status", 130)
        what = "terminated" if status == 143 else "interrupted"
        if self.out_dir is None:
            kept = ""
        elif (Path(self.out_dir) / RESULTS_FILE).is_file():
            kept = f"; results finished so far are in {Path(self.out_dir) / RESULTS_FILE}"
        else:
            kept = "; nothing was kept"
        print(f"{what}{kept}", file=sys.stderr)
        sys.exit(status)
