"""Command-line value types: every number is checked for sense when it is parsed.

`--duration nan` would never end a timing loop, `--calib-batch-size 0` divides by zero
and `--batch-sizes 100000000` asks for gigabytes: such values are refused by click with
the flag named, before any work starts.
"""
from __future__ import annotations

import math

import click

MAX_BATCH = 65536  # rows per call: beyond this a batch size is a typo


class WholeNumber(click.ParamType):
    """An int in [low, high]; bools and floats like 2.5 are refused."""

    name = "integer"

    def __init__(self, low: int = 1, high: int | None = None) -> None:
        self.low, self.high = low, high

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = int(str(value).strip(), 10)
            except ValueError:
                self.fail(f"{value!r} is not a whole number", param, ctx)
        if number < self.low or (self.high is not None and number > self.high):
            self.fail(f"{number} is out of range: {self._range()}", param, ctx)
        return number

    def _range(self) -> str:
        return f"{self.low} to {self.high}" if self.high is not None else f">= {self.low}"


class FiniteNumber(click.ParamType):
    """A finite float with a lower bound (`strict`: the bound itself is refused)."""

    name = "number"

    def __init__(self, low: float = 0.0, strict: bool = False,
                 high: float | None = None) -> None:
        self.low, self.strict, self.high = low, strict, high

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        below = number <= self.low if self.strict else number < self.low
        if below or (self.high is not None and number > self.high):
            bound = f"> {self.low}" if self.strict else f">= {self.low}"
            upper = f" and <= {self.high}" if self.high is not None else ""
            self.fail(f"{number:g} is out of range: it must be {bound}{upper}", param, ctx)
        return number


class CommaList(click.ParamType):
    """Comma-separated names, each once ("a,b"): duplicates and empty entries refused."""

    name = "list"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        items = [item.strip() for item in str(value).split(",")]
        if not all(items):
            self.fail(f"{value!r} has an empty entry (write names separated by commas)",
                      param, ctx)
        seen = set()
        for item in items:
            if item in seen:
                self.fail(f"{item!r} is listed twice", param, ctx)
            seen.add(item)
        return tuple(items)


class BatchSizes(click.ParamType):
    """Comma-separated batch sizes from 1 to MAX_BATCH, each once ("1,64")."""

    name = "sizes"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        sizes = []
        for item in CommaList().convert(value, param, ctx):
            sizes.append(WholeNumber(1, MAX_BATCH).convert(item, param, ctx))
        return tuple(sizes)


def output_options(target_help: str, out_help: str, force_help: str,
                   target_required: bool = False):
    """--target, --out and --force, as `convert` and `package` take them."""
    from pathlib import Path

    def add(command):
        command = click.option("--force", is_flag=True, help=force_help)(command)
        command = click.option("--out", "out_dir", required=True,
                               type=click.Path(path_type=Path), help=out_help)(command)
        return click.option("--target", "-t", required=target_required,
                            default=None, help=target_help)(command)
    return add


POSITIVE = WholeNumber(1)
NON_NEGATIVE = WholeNumber(0)
POSITIVE_SECONDS = FiniteNumber(0.0, strict=True)
POINTS = FiniteNumber(0.0, high=100.0)
