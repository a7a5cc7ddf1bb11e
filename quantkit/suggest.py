"""Close matches for a misspelt name: "unknown key 'valid_target' (did you mean 'valid_targets'?)".

Every refusal of an unknown name (profile keys, options, algorithms, hosts, targets, skip
entries) words its hint through here.
"""
from __future__ import annotations

import difflib
from typing import Iterable

from quantkit.errors import QuantkitError


def did_you_mean(value, known: Iterable[str], n: int = 1, cutoff: float = 0.6,
                 ignore_case: bool = False) -> str:
    """" (did you mean 'x'?)" for the closest of `known`, or ""."""
    names = [str(name) for name in known]
    if ignore_case:
        lowered = {name.lower(): name for name in names}
        close = [lowered[m] for m in difflib.get_close_matches(str(value).lower(),
                                                               list(lowered), n=n,
                                                               cutoff=cutoff)]
    else:
        close = difflib.get_close_matches(str(value), names, n=n, cutoff=cutoff)
    return f" (did you mean {' or '.join(repr(name) for name in close)}?)" if close else ""


def refuse_unknown_keys(given: Iterable[str], known: Iterable[str], what: str,
                        where: str = "") -> None:
    """Raise for the first key of `given` not in `known`, with a close match and the list."""
    known = sorted(known)
    for key in given:
        if key not in known:
            raise QuantkitError(f"unknown {what} '{key}'{where}{did_you_mean(key, known)}; "
                                f"known: {', '.join(known)}")
