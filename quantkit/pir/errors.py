"""The one exception of the PIR translator: a QuantkitError with a one-line message."""
from __future__ import annotations

from quantkit.errors import QuantkitError


class PirTransError(QuantkitError):
    """A refusal or failure of the translation, saying what and where on one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
