"""`Choice`: a small closed set of names (algorithm, backend, precision, record status).

Members compare equal to their string values and print as them on every Python (3.11
changed how str-mixin enums format), so JSON files and messages read as before while code
compares members instead of strings. `parse` turns user text into a member or a one-line
refusal with close matches.
"""
from __future__ import annotations

import enum

from quantkit.errors import QuantkitError
from quantkit.suggest import did_you_mean


class Choice(str, enum.Enum):
    # Hash as the string: Enum hashes the member name, so `member in {"value": ...}` would
    # miss although `member == "value"`.
    __hash__ = str.__hash__

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def parse(cls, value, what: str, where: str = ""):
        """The member named `value`; else QuantkitError naming `what` and the choices."""
        for member in cls:
            if value == member.value:
                return member
        names = [str(member.value) for member in cls]
        hint = did_you_mean(value, names, n=2, cutoff=0.5, ignore_case=True)
        raise QuantkitError(f"unknown {what} {value!r}{where}{hint}: choose one of "
                            f"{', '.join(names)}")
