"""`bench`: measure converted artifacts, one process per target, into one results file.

Data flows one way: artifacts (+ an eval set) -> job folders -> runner processes (here or
on a remote host) -> raw timings and outputs -> records (stats, accuracy, size). The
FP32 reference runs first so every later record can say what it lost against it.
Results are saved after every target, so a crash or Ctrl-C keeps what was finished.
"""
from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from quantkit.atomic import confined
from quantkit.benchmark.formatting import fmt_quality
from quantkit.benchmark.jobs import MeasureSettings, run_local, write_job
from quantkit.benchmark.results import Accuracy, BenchRecord, BenchResults, Status
from quantkit.benchmark.stats import HIGH_CV, summarize
from quantkit.data import Dataset
from quantkit.data.synthetic import synthetic_inputs, tile_rows
from quantkit.errors import QuantkitError
from quantkit.files import ARTIFACT_RECORD, EVAL_OUTPUTS, RESULTS_FILE
from quantkit.interrupts import InterruptFlag
from quantkit.machine import machine_facts
from quantkit.targets.artifact import Artifact, artifact_feeds, artifact_profile, load_artifact
from quantkit.targets.profile import Precision

ANY_TARGET = "*"


@dataclass
class _Reference:
    """The FP32 outputs, accuracy and size every other target is compared with."""

    target: str
    size_bytes: int
    outputs: np.ndarray | None = None
    accuracy: Accuracy | None = None


@dataclass
class BenchPlan:
    """What to measure: artifacts, how, on which data, against what, and where."""

    artifacts: Sequence[Path]
    settings: MeasureSettings = field(default_factory=MeasureSettings)
    eval_set: Dataset | None = None
    reference: Path | None = None  # an FP32 artifact; default: the first FP32 one listed
    remote: Mapping[str, object] = field(default_factory=dict)  # target or "*" -> HostProfile
    task: str | None = None  # what the outputs mean (accuracy.resolve_task when None)

    @property
    def resolved_task(self) -> str:
        from quantkit.benchmark.accuracy import resolve_task

        return str(resolve_task(self.task, self.eval_set))

    def host_for(self, target: str):
        return self.remote.get(target, self.remote.get(ANY_TARGET))


def find_artifacts(paths: Sequence[Path], targets: Sequence[str] | None = None) -> list[Path]:
    """Artifact folders named directly, or found one level inside a run folder."""
    found: list[Path] = []
    for path in map(Path, paths):
        if (path / ARTIFACT_RECORD).is_file():
            found.append(path)
        elif path.is_dir():
            inside = sorted(p.parent for p in path.glob(f"*/{ARTIFACT_RECORD}"))
            inside += sorted(p.parent for p in path.glob(f"artifacts/*/{ARTIFACT_RECORD}"))
            if not inside:
                raise QuantkitError(f"{path}: no artifact.json in it or its sub-folders "
                                    "(make artifacts with 'quantkit convert')")
            found.extend(inside)
        else:
            raise QuantkitError(f"not found: {path}")
    if targets:
        named = {Artifact.load(folder).target: folder for folder in found}
        unknown = [name for name in targets if name not in named]
        if unknown:
            raise QuantkitError(f"no artifact for target(s) {', '.join(unknown)} "
                                f"(found: {', '.join(sorted(named))})")
        found = [named[name] for name in targets]
    return found


def bench(plan: BenchPlan, out_dir: Path | None = None,
          on_event: Callable[[str], None] = lambda message: None) -> BenchResults:
    """Measure every artifact of `plan`; results.json in `out_dir` after each target."""
    artifacts = [load_artifact(path) for path in plan.artifacts]
    if not artifacts:
        raise QuantkitError("nothing to benchmark: give at least one artifact")
    reference_dir = reference_dir_for(plan, artifacts)
    order = sorted(artifacts, key=lambda a: a.folder != reference_dir)  # reference first
    if reference_dir is not None and all(a.folder != reference_dir for a in artifacts):
        order.insert(0, load_artifact(reference_dir))
    eval_set = plan.eval_set
    results = BenchResults(settings=plan.settings.to_dict(),
                           eval_set={**eval_set.describe(), "task": plan.resolved_task}
                           if eval_set is not None else None,
                           reference={"artifact": str(reference_dir)} if reference_dir else None)
    scorer = Scorer(plan, reference_dir)
    with tempfile.TemporaryDirectory(prefix="quantkit-bench-") as scratch, \
            InterruptFlag() as interrupts:
        try:
            for index, artifact in enumerate(order):
                interrupts.check()
                on_event(f"[{index + 1}/{len(order)}] {artifact.target}")
                result, outputs = _measure(artifact, plan, Path(scratch) / f"{index:02d}",
                                           interrupts)
                interrupts.check()
                records = scorer.add(artifact, result, outputs)
                results.records.extend(records)
                on_event(_summary_line(records))
                if out_dir is not None:
                    _save(results, out_dir)
        except KeyboardInterrupt:
            results.interrupted = True
            done = {record.target for record in results.records}
            for artifact in order:
                if artifact.target not in done:
                    results.records.append(bare_record(
                        artifact, "interrupted", "run interrupted before this target finished"))
            if out_dir is not None:
                _save(results, out_dir)
            raise
    return results


def _save(results: BenchResults, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    results.save(confined(out_dir, RESULTS_FILE))


def reference_dir_for(plan: BenchPlan, artifacts: list[Artifact]) -> Path | None:
    if plan.reference is not None:
        reference = load_artifact(plan.reference)
        if reference.precision != "fp32":
            raise QuantkitError(f"reference {plan.reference} is {reference.precision}: the "
                                "reference must be an FP32 artifact")
        return reference.folder
    return next((a.folder for a in artifacts if a.precision == Precision.FP32), None)


def _measure(artifact: Artifact, plan: BenchPlan, job_dir: Path,
             interrupts: InterruptFlag) -> tuple[dict, np.ndarray | None]:
    """Run one artifact's job where it belongs; (result record, eval outputs or None)."""
    host = plan.host_for(artifact.target)
    if host is None:
        from quantkit.targets import adapter_for

        profile = artifact_profile(artifact.folder)
        available = adapter_for(artifact.backend).availability(profile)
        if not available.can_run:
            return {"status": "skipped",
                    "error": f"cannot run here: {available.reason}. On such a machine: "
                             f"quantkit bench {artifact.folder} --remote HOST "
                             "(docs/remote-boards.md)"}, None
    problem = write_bench_job(artifact, plan, job_dir, embed_artifact=host is not None,
                              opener=getattr(host, "opener", "auto"))
    if problem is not None:
        return problem, None
    return run_bench_job(job_dir, plan.settings, host,
                         should_stop=lambda: interrupts.requested)


def write_bench_job(artifact: Artifact, plan: BenchPlan, job_dir: Path,
                    embed_artifact: bool = False, opener: str = "auto") -> dict | None:
    """The job folder that measures `artifact` as `plan` says; a failed result if its
    inputs cannot be made (the eval set does not fit the artifact's feeds)."""
    try:
        feeds = artifact_feeds(artifact)
        bench_inputs, eval_inputs = _inputs_for(feeds, plan)
    except QuantkitError as exc:
        return {"status": "failed", "error": str(exc)}
    write_job(job_dir, artifact.folder, plan.settings, bench_inputs, eval_inputs,
              embed_artifact=embed_artifact, opener=opener)
    return None


def run_bench_job(job_dir: Path, settings: MeasureSettings, host=None,
                  should_stop: Callable[[], bool] = lambda: False
                  ) -> tuple[dict, np.ndarray | None]:
    """Run a written job in a runner process here, or on `host` (a HostProfile);
    (result record, eval outputs or None)."""
    if host is None:
        result = run_local(job_dir, settings, should_stop=should_stop)
    else:
        from quantkit.benchmark.remote import run_remote

        result = run_remote(job_dir, host, settings.timeout_s)
        result["host"] = host.name
    outputs = None
    if result.get("status") == "ok" and result.get("eval_outputs"):
        outputs = np.load(job_dir / EVAL_OUTPUTS)
    return result, outputs


def _inputs_for(feeds, plan: BenchPlan):
    rows = max(plan.settings.batch_sizes)
    eval_set = plan.eval_set
    if eval_set is None:
        return synthetic_inputs(feeds, rows), None
    missing = [feed.name for feed in feeds if feed.name not in eval_set.inputs]
    if missing:
        raise QuantkitError(f"the eval set has input(s) {', '.join(eval_set.inputs)}; this "
                            f"artifact needs {', '.join(feed.name for feed in feeds)}")
    inputs = {feed.name: eval_set.inputs[feed.name] for feed in feeds}
    return tile_rows(inputs, rows), inputs


def _reference_from(artifact: Artifact, outputs, plan: BenchPlan) -> _Reference:
    reference = _Reference(artifact.target, artifact.size_bytes, outputs)
    reference.accuracy = _accuracy(outputs, plan, None, artifact)
    return reference


class Scorer:
    """Runner results -> records, scored against the FP32 reference once it is known.

    `bench` adds the reference's result first, then each target's as it finishes; the
    fleet adds them in the same order once every node has answered.
    """

    def __init__(self, plan: BenchPlan, reference_dir: Path | None) -> None:
        self.plan = plan
        self.reference_dir = None if reference_dir is None else Path(reference_dir)
        self.reference: _Reference | None = None

    def add(self, artifact: Artifact, result: dict,
            outputs: np.ndarray | None) -> list[BenchRecord]:
        if self.reference_dir is not None and Path(artifact.folder) == self.reference_dir:
            self.reference = _reference_from(artifact, outputs, self.plan)
        return records_for(artifact, result, outputs, self.plan, self.reference)


def records_for(artifact: Artifact, result: dict, outputs: np.ndarray | None,
                plan: BenchPlan, reference: _Reference | None) -> list[BenchRecord]:
    """One record per batch size from a runner result (one record if it did not run)."""
    status = result.get("status", "crashed")
    size = artifact.size_bytes
    ratio = size / reference.size_bytes if reference and reference.size_bytes else None
    if status != "ok":
        record = bare_record(artifact, status, result.get("error") or "no error text",
                              host=result.get("host", "local"), machine=result.get("machine"))
        return [dataclasses.replace(record, size_ratio=ratio)]
    accuracy = _accuracy(outputs, plan, reference, artifact)
    machine = result.get("machine") or {}
    profile = artifact_profile(artifact.folder)
    threads = plan.settings.threads or profile.threads
    shared = []  # warnings that hold for every batch size
    if outputs is not None and not np.all(np.isfinite(outputs)):
        shared.append("NaN/Inf outputs")
    cores = machine.get("logical_cores") or 0
    if cores and threads > cores:
        shared.append(f"{threads} threads on {cores} logical cores")
    base = BenchRecord(target=artifact.target, backend=artifact.backend,
                       precision=artifact.precision, device=profile.device, status="ok",
                       host=result.get("host", "local"), threads=threads,
                       timing_mode=result.get("timing_mode"),
                       peak_rss_bytes=result.get("peak_rss_bytes"), size_bytes=size,
                       size_ratio=ratio, accuracy=accuracy, machine=machine)
    records = []
    for batch, summary in (result.get("latency_summary_ms") or {}).items():
        # benchmark_bin (adb) reports avg/min/max of its own loop, not each run.
        records.append(dataclasses.replace(
            base, batch_size=int(batch),
            latency_ms={"iterations": plan.settings.iterations or 1,
                        "min_ms": summary["min_ms"], "mean_ms": summary["avg_ms"],
                        "max_ms": summary["max_ms"]},
            throughput_sps=int(batch) * 1000.0 / summary["avg_ms"],
            warnings=("benchmark_bin: avg/min/max only, no percentiles", *shared)))
    for batch, seconds in result["timings_s"].items():
        stats = summarize(seconds)
        warnings = [f"noisy: CV {stats.cv:.0%} > {HIGH_CV:.0%}"] if stats.is_noisy else []
        if stats.iterations < 100:
            warnings.append(f"{stats.iterations} runs: p99 ~ max")
        records.append(dataclasses.replace(
            base, batch_size=int(batch), latency_ms=stats.to_dict(),
            throughput_sps=stats.throughput(int(batch)), warnings=(*warnings, *shared)))
    return records


def _accuracy(outputs, plan: BenchPlan, reference: _Reference | None,
              artifact: Artifact) -> Accuracy | None:
    if outputs is None or plan.eval_set is None:
        return None
    from quantkit.benchmark.accuracy import measure_accuracy

    if reference is not None and reference.target == artifact.target:
        return reference.accuracy
    return measure_accuracy(
        outputs, plan.resolved_task, plan.eval_set,
        None if reference is None else reference.outputs,
        None if reference is None else reference.accuracy, source=plan.eval_set.source)


def bare_record(artifact: Artifact, status: str, error: str, host: str = "local",
                machine: dict | None = None) -> BenchRecord:
    """The record of a target that was not measured (skipped, failed, no host...)."""
    return BenchRecord(target=artifact.target, backend=artifact.backend,
                       precision=artifact.precision,
                       device=artifact_profile(artifact.folder).device,
                       status=status, host=host, error=error, size_bytes=artifact.size_bytes,
                       machine=machine if machine is not None else
                       machine_facts() if host == "local" else {})


def _summary_line(records: list[BenchRecord]) -> str:
    first = records[0]
    if first.status != "ok":
        return f"  {first.target}: {first.status}: {first.error}"
    parts = [f"batch {r.batch_size}: p50 {r.latency_ms['p50_ms']:.3g} ms"
             if "p50_ms" in r.latency_ms else
             f"batch {r.batch_size}: mean {r.latency_ms['mean_ms']:.3g} ms" for r in records]
    if first.accuracy is not None and first.accuracy.value is not None:
        parts.append(f"{first.accuracy.metric} {fmt_quality(first.accuracy)}")
    return f"  {first.target}: " + ", ".join(parts)
