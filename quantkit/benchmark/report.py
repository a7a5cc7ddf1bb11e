"""Views of benchmark results: a terminal table, CSV, Markdown and PNG plots.

Every view is drawn from the same `BenchResults` (results.json), so the table in a
terminal, the README table and the plots of one run cannot disagree. Records from
several machines stay apart by machine name in every view.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from quantkit.atomic import write_text_atomic
from quantkit.benchmark import plots
from quantkit.benchmark.formatting import (MISSING, describe_machine, fmt_mb, fmt_ms,
                                           fmt_points, fmt_quality, fmt_ratio, fmt_sig3,
                                           machine_name, machines, named_machine)
from quantkit.benchmark.recommend import DEFAULT_MAX_DROP, recommend
from quantkit.benchmark.results import Accuracy, BenchRecord, BenchResults, Status, merge
from quantkit.benchmark.stats import HIGH_CV, LatencyStats
from quantkit.errors import QuantkitError
from quantkit.files import REPORT_FILES

if TYPE_CHECKING:  # rich loads only when a table is drawn
    from rich.console import Console
    from rich.table import Table


LATENCY_KEYS = tuple(item.name for item in fields(LatencyStats))
ACCURACY_KEYS = tuple(item.name for item in fields(Accuracy))
MACHINE_KEYS = ("hostname", "arch", "cpu_model", "isa_flags", "logical_cores", "os", "python",
                "libraries")
# Spreadsheet columns: named after the JSON fields so a CSV header maps back to the schema.
CSV_COLUMNS = (("model", "target", "backend", "precision", "device", "status", "host", "machine",
                "batch_size", "threads", "timing_mode")
               + tuple(f"latency_{key}" for key in LATENCY_KEYS)
               + ("throughput_sps", "peak_rss_bytes", "size_bytes", "size_ratio")
               + tuple(f"accuracy_{key}" for key in ACCURACY_KEYS)
               + ("warnings", "error")
               + tuple(f"machine_{key}" for key in MACHINE_KEYS))
# Human columns, shared by the rich table and the Markdown table ("model" goes first when
# the records come from several models: table_columns).
MODEL_COLUMN = "model"
TABLE_COLUMNS = ("target", "machine", "batch", "status", "p50 ms", "p90 ms", "p99 ms",
                 "samples/s", "RSS MB", "size MB", "vs FP32", "metric", "value", "FP32",
                 "drop pts", "notes")
_NUMERIC_COLUMNS = frozenset(TABLE_COLUMNS[4:11] + TABLE_COLUMNS[12:15]) | {"batch"}
_STATUS_STYLES = {"ok": "green", "failed": "red", "crashed": "bold red",
                  "skipped": "yellow", "interrupted": "yellow", "no-host": "yellow"}


def record_notes(record: BenchRecord) -> list[str]:
    """Why a record failed, or what makes its numbers doubtful (warnings, a noisy run)."""
    notes = []
    if record.status != "ok":
        first_line = (record.error or "").strip().splitlines()
        notes.append(first_line[0] if first_line else record.status)
    notes.extend(record.warnings)
    if _is_noisy(record) and not any("cv" in note.lower() for note in notes):
        notes.append(f"high CV {record.latency_ms['cv']:.2f} (> {HIGH_CV}): noisy timing")
    return notes


def _is_noisy(record: BenchRecord) -> bool:
    cv = (record.latency_ms or {}).get("cv")
    return cv is not None and cv > HIGH_CV


def table_cells(record: BenchRecord) -> dict[str, str]:
    """One record as the human columns (TABLE_COLUMNS), formatted."""
    latency = record.latency_ms or {}
    accuracy = record.accuracy
    return {
        MODEL_COLUMN: record.model or MISSING,
        "target": record.target,
        "machine": MISSING if record.status == Status.NO_HOST else machine_name(record),
        "batch": MISSING if record.batch_size is None else str(record.batch_size),
        "status": record.status,
        "p50 ms": fmt_ms(latency.get("p50_ms")),
        "p90 ms": fmt_ms(latency.get("p90_ms")),
        "p99 ms": fmt_ms(latency.get("p99_ms")),
        "samples/s": fmt_sig3(record.throughput_sps),
        "RSS MB": fmt_mb(record.peak_rss_bytes),
        "size MB": fmt_mb(record.size_bytes),
        "vs FP32": fmt_ratio(record.size_ratio),
        "metric": (accuracy.metric if accuracy else None) or MISSING,
        "value": fmt_quality(accuracy),
        "FP32": fmt_quality(accuracy, accuracy.reference_value) if accuracy else MISSING,
        "drop pts": fmt_points(accuracy.drop_points if accuracy else None),
        "notes": "; ".join(record_notes(record)) or MISSING,
    }


def table_columns(results: BenchResults) -> tuple[str, ...]:
    """TABLE_COLUMNS, with the model in front when the records name several models."""
    several = len({record.model for record in results.records}) > 1
    return ((MODEL_COLUMN,) if several else ()) + TABLE_COLUMNS


# -- the views ------------------------------------------------------------------------

NOTES_WIDTH = 48  # terminal table only


def render_table(results: BenchResults, console: "Console | None" = None) -> "Table":
    """Print the results as a rich table (to `console`, else stdout); return the table."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title="quantkit benchmark" + (" (interrupted: partial)"
                                                if results.interrupted else ""),
                  caption=_machines_caption(results), caption_justify="left")
    # One machine: the caption names it, and the notes get its column's width.
    columns = [c for c in table_columns(results)
               if c != "machine" or len(set(map(machine_name, results.records))) > 1]
    for column in columns:
        table.add_column(column, justify="right" if column in _NUMERIC_COLUMNS else "left",
                         overflow="fold", no_wrap=column in ("target", "status"),
                         min_width=24 if column == "notes" else None)
    for record in results.records:
        cells = table_cells(record)
        # Text, not markup: an error message may contain "[...]" that rich would eat.
        if len(cells["notes"]) > NOTES_WIDTH:  # the full text is in results.json/.md
            cells["notes"] = cells["notes"][:NOTES_WIDTH - 1] + "…"
        row = [Text(cells[column]) for column in columns]
        row[columns.index("status")].stylize(_STATUS_STYLES.get(record.status, ""))
        if record.status != "ok":
            row[columns.index("notes")].stylize("red")
        table.add_row(*row)
    if console is None:  # 14-15 columns: below ~170 characters rich folds every cell
        console = Console()
        console = Console(width=max(console.width, 172))
    console.print(table)
    if results.recommendation is None:
        attach_recommendation(results)
    for line in recommendation_lines(results):
        console.print(Text(f"ship: {line}"))
    return table


def to_csv(results: BenchResults) -> str:
    """One row per record, exact values (not rounded), empty where not measured."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in results.records:
        writer.writerow(csv_row(record))
    return buffer.getvalue()


def csv_row(record: BenchRecord) -> dict[str, str]:
    """One record flattened to CSV_COLUMNS (latency_*, accuracy_*, machine_* columns)."""
    row: dict[str, Any] = {
        "model": record.model, "target": record.target, "backend": record.backend, "precision": record.precision,
        "device": record.device, "status": record.status, "host": record.host,
        "machine": machine_name(record), "batch_size": record.batch_size,
        "threads": record.threads, "timing_mode": record.timing_mode,
        "throughput_sps": record.throughput_sps, "peak_rss_bytes": record.peak_rss_bytes,
        "size_bytes": record.size_bytes, "size_ratio": record.size_ratio,
        "warnings": "; ".join(record.warnings), "error": record.error,
    }
    latency = record.latency_ms or {}
    row.update({f"latency_{key}": latency.get(key) for key in LATENCY_KEYS})
    accuracy = record.accuracy
    row.update({f"accuracy_{key}": getattr(accuracy, key) if accuracy else None
                for key in ACCURACY_KEYS})
    if accuracy is not None:  # every task metric, as JSON in one cell
        row["accuracy_metrics"] = json.dumps(accuracy.metrics, sort_keys=True)
    facts = record.machine
    row.update({f"machine_{key}": facts.get(key) for key in MACHINE_KEYS})
    row["machine_isa_flags"] = " ".join(facts.get("isa_flags") or ())
    row["machine_libraries"] = " ".join(f"{name}={version}" for name, version
                                        in sorted((facts.get("libraries") or {}).items()))
    return {key: "" if value is None else str(value) for key, value in row.items()}


def to_markdown(results: BenchResults) -> str:
    """A GitHub Markdown table of the records, with the machine(s) named under it."""
    columns = table_columns(results)
    header = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---:" if column in _NUMERIC_COLUMNS else "---"
                          for column in columns) + "|"
    lines = [header, rule]
    for record in results.records:
        cells = table_cells(record)
        lines.append("| " + " | ".join(_md_escape(cells[column]) for column in columns)
                     + " |")
    lines.append("")
    if results.interrupted:
        lines += ["**The run was interrupted: these results are partial.**", ""]
    found = machines(results)
    lines.append("Measured on:" if found else "No records.")
    lines += [f"- **{_md_escape(named_machine(name, facts))}**: {_md_escape(describe_machine(facts))}"
              for name, facts in found.items()]
    timing_modes = sorted({record.timing_mode for record in results.records
                           if record.timing_mode})
    if timing_modes:
        lines += ["", "Latency covers " + "; ".join(_md_escape(mode) for mode in timing_modes)
                  + "."]
    if any(_is_noisy(record) for record in results.records):
        lines += ["", f"High CV: the standard deviation is above {HIGH_CV:.0%} of the mean; "
                  "compare such rows with care."]
    if results.recommendation:
        lines += ["", "**Which target to ship** (fastest within the accuracy budget):", ""]
        lines += [f"- {_md_escape(line)}" for line in recommendation_lines(results)]
    return "\n".join(lines) + "\n"


def attach_recommendation(results: BenchResults, max_drop: float | None = None) -> None:
    """Answer "which target should I ship?" into `results.recommendation`.

    The budget: `max_drop`, else the run's --max-drop, else recommend.DEFAULT_MAX_DROP.
    """
    budget = max_drop if max_drop is not None else (results.settings or {}).get("max_drop")
    results.recommendation = [answer.to_dict() for answer in recommend(
        results, DEFAULT_MAX_DROP if budget is None else float(budget))]


def recommendation_lines(results: BenchResults) -> list[str]:
    return [answer["summary"] for answer in results.recommendation or []]


def write_reports(results: BenchResults, out_dir: Path,
                  max_drop: float | None = None) -> dict[str, Path]:
    """Write results.json, .csv, .md and the two PNGs into `out_dir`, each atomically."""
    attach_recommendation(results, max_drop)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: out_dir / name for kind, name in REPORT_FILES.items()}
    results.save(paths["json"])
    write_text_atomic(paths["csv"], to_csv(results))
    write_text_atomic(paths["markdown"], to_markdown(results))
    plots.plot_latency_vs_accuracy(results, paths["latency_vs_accuracy"])
    plots.plot_sizes(results, paths["size"])
    return paths


def load_results(paths: Sequence[Path]) -> BenchResults:
    """One or more results.json as one BenchResults (several: merged across machines)."""
    if not paths:
        raise QuantkitError("give at least one results.json to report on")
    loaded = [_load(Path(path)) for path in paths]
    return loaded[0] if len(loaded) == 1 else merge(loaded)


# -- helpers --------------------------------------------------------------------------

def _load(path: Path) -> BenchResults:
    """Load one results file; every refusal names the file (several may be given)."""
    try:
        results = BenchResults.load(path)
    except QuantkitError as exc:
        if str(path) in str(exc):
            raise
        raise QuantkitError(f"{path}: {exc}") from None
    except OSError as exc:
        raise QuantkitError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise QuantkitError(f"{path}: malformed results record ({exc}); "
                            "regenerate it with `quantkit bench`") from None
    return results


def _machines_caption(results: BenchResults) -> str:
    found = machines(results)
    return "\n".join(f"{named_machine(name, facts)}: {describe_machine(facts)}"
                     for name, facts in found.items())


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
