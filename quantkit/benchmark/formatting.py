"""How every view of benchmark results prints a number, a machine and a size.

The terminal table, CSV, Markdown and the PNG plots all format through here, so one run's
views cannot disagree on a value.
"""
from __future__ import annotations

import math
from typing import Any

from quantkit.benchmark.results import BenchRecord, BenchResults, Status

MISSING = "-"  # what a human-facing cell shows for "not measured"
MB = 1_000_000  # sizes and memory in SI megabytes, as the column headers say


def fmt_sig3(value: float | None) -> str:
    """Three significant digits without exponent notation (0.123, 12.3, 1230)."""
    if value is None:
        return MISSING
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    rounded = float(f"{value:.3g}")  # round first: 9.996 must print as 10.0, not 10.00
    if rounded == 0:
        return "0"
    return f"{rounded:.{max(0, 2 - math.floor(math.log10(abs(rounded))))}f}"


def fmt_ms(value: float | None) -> str:
    return fmt_sig3(value)


def fmt_pct(fraction: float | None) -> str:
    """A fraction as a percentage with two decimals (0.97123 -> 97.12%)."""
    return MISSING if fraction is None else f"{fraction * 100:.2f}%"


def fmt_quality(accuracy, value: float | None = None) -> str:
    """A headline value in its unit: fractions as %, SQNR in dB (`value`: another number
    of the same metric, e.g. FP32's)."""
    value = accuracy.value if value is None and accuracy is not None else value
    if value is None:
        return MISSING
    return f"{value:.1f} dB" if accuracy.unit == "dB" else fmt_pct(value)


def fmt_points(points: float | None) -> str:
    """Percentage points with two decimals; positive means accuracy was lost."""
    return MISSING if points is None else f"{points:.2f}".replace("-0.00", "0.00")


def fmt_mb(size_bytes: int | None) -> str:
    return MISSING if size_bytes is None else fmt_sig3(size_bytes / MB)


def fmt_ratio(ratio: float | None) -> str:
    return MISSING if ratio is None else f"{ratio:.2f}x"


def target_label(record: BenchRecord) -> str:
    """The target, with its model in front when the record names one ("lenet/onnx-int8")."""
    return f"{record.model}/{record.target}" if record.model else record.target


def machine_name(record: BenchRecord) -> str:
    """What to call the machine a record ran on: its host alias, else its hostname.

    Two runs made "local"ly on different machines must not merge into one name.
    """
    if record.host and record.host != "local":
        return record.host
    return str(record.machine.get("hostname") or record.host or "local")


def machines(results: BenchResults) -> dict[str, dict[str, Any]]:
    """Each machine in the results (by name, in order of appearance) with its facts."""
    found: dict[str, dict[str, Any]] = {}
    for record in results.records:
        if record.status == Status.NO_HOST:  # it never reached a machine
            continue
        name = machine_name(record)
        if name not in found or (record.machine and not found[name]):
            found[name] = dict(record.machine)
    return found


def describe_machine(facts: dict[str, Any]) -> str:
    """One line: CPU, cores, ISA flags, OS, Python and runtime versions."""
    if not facts:
        return "no machine facts recorded"
    parts = [str(facts.get("cpu_model") or "unknown CPU")]
    hardware = [str(facts["arch"])] if facts.get("arch") else []
    if facts.get("logical_cores"):
        hardware.append(f"{facts['logical_cores']} logical cores")
    if facts.get("isa_flags"):
        hardware.append(" ".join(facts["isa_flags"]))
    if hardware:
        parts[0] += f" ({', '.join(hardware)})"
    if facts.get("os"):
        parts.append(str(facts["os"]))
    if facts.get("python"):
        parts.append(f"Python {facts['python']}")
    libraries = facts.get("libraries") or {}
    if libraries:
        parts.append(" ".join(f"{name} {version}" for name, version in sorted(libraries.items())))
    return "; ".join(parts)


def named_machine(name: str, facts: dict[str, Any]) -> str:
    """A host alias with the hostname it reached, when they differ ("pi4 (raspberrypi)")."""
    hostname = facts.get("hostname")
    return f"{name} ({hostname})" if hostname and hostname != name else name
