"""The one exception type users see: a one-line message naming what is wrong and what to do."""
from __future__ import annotations

import sys


class QuantkitError(Exception):
    """A refusal or failure with a message meant for the user, not a traceback."""


class user_errors:  # noqa: N801 - used as `with user_errors():`
    """For commands: print a QuantkitError as one line on stderr and exit 2, no traceback."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and issubclass(exc_type, QuantkitError):
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        return False
