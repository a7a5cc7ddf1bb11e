"""Names read from files become folder and file names: they must be safe to use as one.

A target profile's `name`, the target in artifact.json or a bundle manifest, a record's
target in results.json, a host name in a hosts file: each ends up in a path (`OUT/artifacts/
NAME`, `dist/NAME.tar.gz`). `check_name` is applied where such a name is read, so
"../..", an absolute path or a name with a separator is refused before anything is written.
"""
from __future__ import annotations

import re

from quantkit.errors import QuantkitError

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
RULE = ("letters, digits, '.', '_', '+' and '-', starting with a letter or digit, at most "
        "100 characters")


def check_name(value, what: str, where: str = "") -> str:
    """`value` if it is a safe single path component; else a refusal naming `what`."""
    if not isinstance(value, str) or not _SAFE.fullmatch(value):
        located = f" in {where}" if where else ""
        raise QuantkitError(f"bad {what}{located}: {value!r} is not a safe name ({RULE}); it "
                            "becomes a folder name, so it may not hold '/', '..' or spaces")
    return value
