"""Typed `[options]` of a target profile: one frozen dataclass per backend, one loader.

Each backend declares its options as a dataclass whose fields carry their type, default
and rule (`option(...)`); `load_options` checks a profile's `[options]` table against it:
an unknown key (with a close match), a wrong type (a quoted "false" is not false, 3.0 is
not an int), a value out of range or not among the choices is refused naming the key and
the profile file. The result is a value to print, diff and save beside an artifact.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

from quantkit.errors import QuantkitError
from quantkit.suggest import refuse_unknown_keys

T = TypeVar("T")


def option(default, *, help: str, choices: tuple | None = None, min: float | None = None,
           max: float | None = None):
    """A dataclass field of an options class, with the rule `load_options` enforces."""
    metadata = {"help": help, "choices": choices, "min": min, "max": max}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple for sequence defaults")
    return dataclasses.field(default=default, metadata=metadata)


def load_options(cls: type[T], options: Mapping[str, Any], backend: str, where: str) -> T:
    """`options` (a profile's [options] table) as `cls`, every key and value checked."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    refuse_unknown_keys([f"options.{key}" for key in options],
                        [f"options.{name}" for name in fields], "option",
                        f"{where} for the {backend} backend")
    values = {key: _checked(key, value, hints[key], fields[key].metadata, where)
              for key, value in options.items()}
    return cls(**values)


def _checked(key: str, value: Any, kind, rule: Mapping[str, Any], where: str) -> Any:
    def refuse(expected: str) -> QuantkitError:
        return QuantkitError(f"bad value for 'options.{key}'{where}: {value!r} ({expected})")

    origin = typing.get_origin(kind)
    if origin is typing.Union:  # Optional[...]: None stays None
        if value is None:
            return None
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        origin = typing.get_origin(kind)
    if kind is bool:
        if not isinstance(value, bool):
            raise refuse("true or false, unquoted")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise refuse("a whole number")
        _range(value, rule, refuse)
        return _choice(value, rule, refuse)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise refuse("a finite number")
        _range(value, rule, refuse)
        return float(value)
    if kind is str:
        if not isinstance(value, str) or not value:
            raise refuse("a non-empty string")
        return _choice(value, rule, refuse)
    if kind is Path:
        if not isinstance(value, str) or not value:
            raise refuse("a file path")
        return Path(value).expanduser()
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) and item
                                                           for item in value):
            raise refuse("a list of non-empty strings")
        choices = rule.get("choices")
        for item in value:
            if choices is not None and item not in choices:
                raise refuse(f"each one of {', '.join(map(str, choices))}")
        return tuple(value)
    raise TypeError(f"options field {key!r} has an unsupported type {kind!r}")


def _range(value, rule, refuse) -> None:
    low, high = rule.get("min"), rule.get("max")
    if low is not None and value < low or high is not None and value > high:
        bounds = f"from {low} to {high}" if low is not None and high is not None else \
            f">= {low}" if low is not None else f"<= {high}"
        raise refuse(f"a number {bounds}")


def _choice(value, rule, refuse):
    choices = rule.get("choices")
    if choices is not None and value not in choices:
        raise refuse(f"one of {', '.join(map(str, choices))}")
    return value


def describe_options(cls) -> list[str]:
    """One line per option: name, default and help (for docs and `quantkit targets`)."""
    return [f"{f.name} = {f.default!r}: {f.metadata.get('help', '')}"
            for f in dataclasses.fields(cls)]
