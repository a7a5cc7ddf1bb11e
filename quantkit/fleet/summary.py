"""The fleet's answer per model: the fastest target on each kind of device.

"Fastest" is the lowest p50 latency among `ok` records at one batch size (batch 64 and
batch 1 do not compare); a device class is the profile's device with the CPU's
architecture and int8 ISA level, since an AVX2 box and a VNNI box answer differently.
"""
from __future__ import annotations

from dataclasses import dataclass

from quantkit.benchmark.formatting import MISSING, fmt_ms, fmt_points, fmt_quality, machine_name
from quantkit.benchmark.results import BenchRecord, BenchResults, Status

SUMMARY_FILE = "summary.md"


def device_class(record: BenchRecord) -> str:
    """e.g. "cpu (x86_64, AVX2 without VNNI)" or "arm (aarch64 with dot product)"."""
    facts = record.machine or {}
    arch, isa = str(facts.get("arch") or ""), str(facts.get("isa") or "")
    # An ARM ISA reads "aarch64 with dot product": it names the architecture itself.
    detail = isa if isa.startswith(arch) else ", ".join(part for part in (arch, isa) if part)
    return f"{record.device} ({detail})" if detail else record.device


@dataclass(frozen=True)
class Best:
    model: str
    device_class: str
    batch_size: int
    record: BenchRecord
    candidates: int  # ok records it was chosen from


def best_targets(results: BenchResults) -> list[Best]:
    """Per model x device class x batch size, the ok record with the lowest p50."""
    groups: dict[tuple[str, str, int], list[BenchRecord]] = {}
    for record in results.records:
        p50 = (record.latency_ms or {}).get("p50_ms")
        if record.status != Status.OK or p50 is None or record.batch_size is None:
            continue
        key = (record.model or "-", device_class(record), record.batch_size)
        groups.setdefault(key, []).append(record)
    return [Best(model, device, batch,
                 min(records, key=lambda r: r.latency_ms["p50_ms"]), len(records))
            for (model, device, batch), records in sorted(groups.items())]


def summary_markdown(results: BenchResults) -> str:
    best = best_targets(results)
    lines = ["# Fastest target per model and device class", "",
             "Lowest p50 latency among the `ok` records of each model, device class and "
             "batch size.", ""]
    if not best:
        return "\n".join(lines + ["No target was measured.", ""])
    lines += ["| model | device class | batch | best target | node | p50 ms | metric | value | "
              "drop pts | of |", "|---|---|---:|---|---|---:|---|---:|---:|---:|"]
    for item in best:
        record, accuracy = item.record, item.record.accuracy
        lines.append(f"| {item.model} | {item.device_class} | {item.batch_size} | "
                     f"{record.target} | {machine_name(record)} | "
                     f"{fmt_ms(record.latency_ms['p50_ms'])} | "
                     f"{(accuracy.metric if accuracy else None) or MISSING} | "
                     f"{fmt_quality(accuracy)} | "
                     f"{fmt_points(accuracy.drop_points if accuracy else None)} | "
                     f"{item.candidates} |")
    missing = sorted({f"{record.model or '-'}/{record.target}: {record.status}"
                      for record in results.records if record.status != Status.OK})
    if missing:
        lines += ["", "Not measured: " + "; ".join(missing) + "."]
    return "\n".join(lines) + "\n"
