"""The results of a benchmark run: one record per target x batch size, saved as JSON.

`results.json` is the source of every report (table, CSV, Markdown, plots); results from
several machines merge into one comparison because every record names where it ran.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

from quantkit.choices import Choice
from quantkit.errors import QuantkitError
from quantkit.names import check_name
from quantkit.records import read_json, write_json

SCHEMA = "quantkit.bench/2"  # 2: task-aware accuracy (task, headline metric, metrics)
SCHEMA_FILE = Path(__file__).with_name("results.schema.json")  # JSON Schema of results.json


class Status(Choice):
    """How a target's measurement ended."""

    OK = "ok"
    FAILED = "failed"  # the runner reported an error (or a remote step failed)
    CRASHED = "crashed"  # the runner process died without a result (a native abort)
    SKIPPED = "skipped"  # this machine cannot run the target
    INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM before it finished
    NO_HOST = "no-host"  # no machine of the fleet offers the target


STATUSES = tuple(str(status) for status in Status)


@dataclass(frozen=True)
class Accuracy:
    """Quality of one target's outputs on the eval set, with the metric its task needs.

    `metrics` holds every number `quantkit.metrics.tasks.score` gives for the task (against
    ground truth and against FP32); `metric` names the headline one tables, plots and the
    recommendation lead with, `value` is it, `reference_value` FP32's on the same rows
    (headlines against ground truth), and `drop_points` how much worse than FP32 the target
    is, in percentage points of the headline (0 for the reference itself).
    """

    rows: int
    task: str = "generic"
    metric: str | None = None
    label: str | None = None  # what the headline means, for humans
    higher_is_better: bool = True
    unit: str = "fraction"  # of value: "fraction" (shown as %) or "dB"
    value: float | None = None
    reference_value: float | None = None
    drop_points: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def top1(self) -> float | None:
        return self.metrics.get("top1")

    def metric_value(self, name: str) -> float | None:
        return self.metrics.get(name)


@dataclass(frozen=True)
class BenchRecord:
    """One target at one batch size on one machine (batch_size None: never measured)."""

    target: str
    backend: str
    precision: str
    device: str
    status: str
    host: str = "local"
    batch_size: int | None = None
    error: str | None = None
    threads: int | None = None
    timing_mode: str | None = None
    latency_ms: dict[str, float] | None = None  # LatencyStats.to_dict()
    throughput_sps: float | None = None
    peak_rss_bytes: int | None = None
    size_bytes: int | None = None
    size_ratio: float | None = None  # to the FP32 reference's size
    accuracy: Accuracy | None = None
    warnings: tuple[str, ...] = ()
    machine: dict[str, Any] = field(default_factory=dict)  # measure.machine_facts()
    model: str | None = None  # which model of a zoo/fleet run; None: a single-model run

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status.parse(self.status, "status",
                                                        f" of the record for {self.target}"))

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["warnings"] = list(self.warnings)
        return record

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "results") -> "BenchRecord":
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise QuantkitError(f"{where}: unknown record field(s) {', '.join(unknown)}")
        missing = [name for name in ("target", "backend", "precision", "device", "status")
                   if name not in data]
        if missing:
            raise QuantkitError(f"{where}: record lacks {', '.join(missing)}")
        check_name(data["target"], "target", where)
        if data.get("host") is not None:
            check_name(data["host"], "host", where)
        if data.get("model") is not None:
            check_name(data["model"], "model", where)
        problem = _type_problem(data)
        if problem:
            raise QuantkitError(f"{where} ({data.get('target')}): {problem}; regenerate it "
                                "with `quantkit bench`")
        data = dict(data)
        if data.get("accuracy") is not None:
            data["accuracy"] = Accuracy(**data["accuracy"])
        data["warnings"] = tuple(data.get("warnings") or ())
        return cls(**data)


_NUMBER_FIELDS = ("batch_size", "threads", "throughput_sps", "peak_rss_bytes", "size_bytes",
                  "size_ratio")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_problem(data: dict[str, Any]) -> str | None:
    """What is wrong with a record's values (field names are checked by the caller)."""
    if data["status"] not in STATUSES:
        return f"status {data['status']!r} is not one of {', '.join(STATUSES)}"
    latency = data.get("latency_ms")
    if latency is not None and not (isinstance(latency, dict)
                                    and all(_is_number(v) for v in latency.values())):
        return f"latency_ms must be a mapping of numbers, not {latency!r}"
    for name in _NUMBER_FIELDS:
        value = data.get(name)
        if value is not None and not _is_number(value):
            return f"{name} must be a number, not {value!r}"
    accuracy = data.get("accuracy")
    if accuracy is not None:
        known = {item.name for item in fields(Accuracy)}
        if not isinstance(accuracy, dict) or set(accuracy) - known or "rows" not in accuracy:
            return f"accuracy must be a mapping of {', '.join(sorted(known))}, not {accuracy!r}"
        texts = {"task", "metric", "label", "unit"}
        bad = [k for k, v in accuracy.items() if v is not None and k not in texts
               and k not in ("metrics", "higher_is_better") and not _is_number(v)]
        bad += [k for k in texts if accuracy.get(k) is not None
                and not isinstance(accuracy[k], str)]
        if bad:
            return f"accuracy.{bad[0]} has the wrong type: {accuracy[bad[0]]!r}"
        metrics = accuracy.get("metrics", {})
        if not isinstance(metrics, dict) or not all(
                isinstance(k, str) and (v is None or _is_number(v)) for k, v in metrics.items()):
            return f"accuracy.metrics must map names to numbers, not {metrics!r}"
        if not isinstance(accuracy.get("higher_is_better", True), bool):
            return "accuracy.higher_is_better must be true or false"
    if not isinstance(data.get("machine", {}), dict):
        return f"machine must be a mapping, not {data['machine']!r}"
    return None


@dataclass
class BenchResults:
    """A run's records plus what it was run with (settings, eval set, reference)."""

    records: list[BenchRecord] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    eval_set: dict[str, Any] | None = None
    reference: dict[str, Any] | None = None
    created_utc: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc)
                             .isoformat(timespec="seconds"))
    interrupted: bool = False
    recommendation: list[dict[str, Any]] | None = None  # recommend.Recommendation.to_dict()

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "created_utc": self.created_utc,
                "interrupted": self.interrupted, "settings": self.settings,
                "eval_set": self.eval_set, "reference": self.reference,
                "records": [record.to_dict() for record in self.records],
                "recommendation": self.recommendation}

    def save(self, path: Path) -> None:
        """Write atomically: a reader (or a Ctrl-C) never leaves half a file."""
        write_json(Path(path), self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, where: str = "results") -> "BenchResults":
        if isinstance(data, dict) and str(data.get("schema", "")).startswith("quantkit.bench/") \
                and data["schema"] != SCHEMA:
            raise QuantkitError(f"{where}: written by another quantkit version (schema "
                                f"{data['schema']!r}, this one reads {SCHEMA!r}): measure "
                                "again with this version's 'quantkit bench'")
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise QuantkitError(f"{where}: not a quantkit results file (schema {found!r}, "
                                f"expected {SCHEMA!r})")
        records = data.get("records")
        if not isinstance(records, list):
            raise QuantkitError(f"{where}: 'records' must be a list")
        return cls(records=[BenchRecord.from_dict(item, f"{where} record {index}")
                            for index, item in enumerate(records)],
                   settings=data.get("settings") or {}, eval_set=data.get("eval_set"),
                   reference=data.get("reference"),
                   created_utc=data.get("created_utc", ""),
                   interrupted=bool(data.get("interrupted", False)),
                   recommendation=data.get("recommendation"))

    @classmethod
    def load(cls, path: Path) -> "BenchResults":
        path = Path(path)
        return cls.from_dict(read_json(path, "results file"), str(path))


def merge(results: Iterable[BenchResults]) -> BenchResults:
    """One comparison from several runs (machines); records keep their own machine."""
    merged = BenchResults(records=[], settings={"merged_from": []})
    for part in results:
        merged.records.extend(part.records)
        merged.settings["merged_from"].append({"created_utc": part.created_utc,
                                               "settings": part.settings})
        merged.interrupted = merged.interrupted or part.interrupted
        merged.eval_set = merged.eval_set or part.eval_set
    return merged
