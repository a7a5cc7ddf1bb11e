"""The one exception type users see: a one-line message naming what is wrong and what to do."""


class QuantkitError(Exception):
    """A refusal or failure with a message meant for the user, not a traceback."""
