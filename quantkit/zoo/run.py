"""A zoo file's models, each through calibration and every target, into one report.

`check_zoo` loads and checks every entry (model, targets, data) before anything is
written; `quantkit zoo` then runs each model here (`run_zoo`: pipeline.prepare and bench
per model, OUT/<model>/ each, one merged results.json + report + zoo.md in OUT), and
`quantkit fleet` sends the same runs to a Ray cluster.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from quantkit.calibration.config import COMMAND_LINE, CalibrationConfig
from quantkit.atomic import confined, replaceable_output, write_text_atomic
from quantkit.benchmark.results import BenchResults
from quantkit.errors import QuantkitError
from quantkit.pipeline import PreparedRun, RunSettings
from quantkit.zoo.config import ZooModel

ZOO_SUMMARY = "zoo.md"


@dataclass
class ZooRun:
    """One zoo model, checked and loaded, and (once prepared) its artifacts."""

    name: str
    model: object  # model_files.InferenceModel
    calib: object | None  # Dataset (None: no INT8 target needs one)
    eval: object | None
    targets: tuple[str, ...]
    calibration: object  # CalibrationConfig
    task: str = "generic"
    prepared: PreparedRun | None = None
    calibration_s: float | None = None
    outcomes: dict = field(default_factory=dict)  # fleet: by artifact folder


def check_zoo(zoo_path: Path, only: Sequence[str] = (), eval_limit: int | None = None,
              calib_limit: int | None = None, det_size: int | None = None) -> list[ZooRun]:
    """The zoo's models and data, loaded and checked; the first problem is named.

    `only` picks models by name; the limits and `det_size` shrink every data set (quick
    runs and tests); `det_size` applies to zoo: detection sets only.
    """
    from quantkit.data import CALIBRATION, EVAL
    from quantkit.data.sources import load_dataset
    from quantkit.model_files import check_inference_model
    from quantkit.targets.profile import Precision, load_profile
    from quantkit.zoo.config import ZOO_DATA, load_zoo

    zoo = load_zoo(zoo_path)
    entries = [zoo.named(name) for name in only] if only else list(zoo.models)
    runs = []
    for entry in entries:
        where = f"zoo model '{entry.name}' of {zoo.source}"
        try:
            model_dir = entry.model_dir()
            if not Path(model_dir).is_dir():
                raise QuantkitError(f"model folder not found: {model_dir}")
            model = check_inference_model(model_dir, entry.model_filename,
                                          entry.params_filename)
            profiles = [load_profile(name) for name in entry.targets]
            calibration = zoo_calibration(entry)
            needs_calib = any(profile.precision == Precision.INT8 for profile in profiles)
            data = []
            for spec, role, limit in ((entry.calib, CALIBRATION, calib_limit),
                                      (entry.eval, EVAL, eval_limit)):
                if role is CALIBRATION and not needs_calib:
                    data.append(None)
                    continue
                if det_size and spec.startswith(ZOO_DATA) and "-det-" in spec:
                    from quantkit.zoo.datasets import zoo_dataset

                    data.append(zoo_dataset(spec[len(ZOO_DATA):], model.feeds, role,
                                            size=det_size, limit=limit))
                    continue
                data.append(load_dataset(data_path(spec, entry.base_dir), model.feeds, role,
                                         limit=limit))
        except QuantkitError as exc:
            raise QuantkitError(f"{where}: {exc}") from None
        runs.append(ZooRun(entry.name, model, data[0], data[1], entry.targets, calibration,
                           task=str(entry.task)))
    return runs


def data_path(spec: str, base_dir: Path) -> str:
    """'mnist' and 'zoo:' names as they are; a relative path is relative to the zoo file."""
    from quantkit.data.sources import MNIST_SPECS
    from quantkit.zoo.config import ZOO_DATA

    path = Path(spec).expanduser()
    if spec.startswith(ZOO_DATA) or (spec.lower() in MNIST_SPECS
                                     and not (base_dir / path).exists()):
        return spec
    return str(path if path.is_absolute() else base_dir / path)


def run_zoo(zoo_path: str | Path, out_dir: str | Path, settings: RunSettings = RunSettings(),
            force: bool = False, only: Sequence[str] = (), eval_limit: int | None = None,
            calib_limit: int | None = None, det_size: int | None = None,
            max_drop: float | None = None,
            on_event: Callable[[str], None] = lambda message: None) -> BenchResults:
    """Every model of the zoo here, one after the other; one merged report in `out_dir`
    (`max_drop`: the recommendation's budget, in points)."""
    from quantkit.benchmark.report import write_reports
    from quantkit.benchmark.session import BenchPlan, bench
    from quantkit.pipeline import prepare, run_settings_record

    runs = check_zoo(Path(zoo_path), only, eval_limit, calib_limit, det_size)
    out_dir = replaceable_output(out_dir, force or _is_empty(Path(out_dir)),
                                 inputs=[run.model.given_dir for run in runs])
    if out_dir.exists():
        shutil.rmtree(out_dir)  # replaceable_output allowed it: an earlier zoo run
    out_dir.mkdir(parents=True)
    merged = BenchResults(settings={"zoo": str(Path(zoo_path).absolute()), "models": {}})
    for index, run in enumerate(runs, 1):
        on_event(f"[{index}/{len(runs)}] {run.name} ({run.task}): "
                 f"{', '.join(run.targets)}")
        run_settings = dataclasses.replace(settings, calibration=run.calibration)
        started = time.perf_counter()
        run.prepared = prepare(run.model.given_dir, run.calib, run.targets,
                               confined(out_dir, run.name), run.eval, run_settings,
                               _file_name(run.model, "model"), _file_name(run.model, "params"),
                               force=True, on_event=on_event)
        run.calibration_s = run.prepared.calibration_s
        plan = BenchPlan(artifacts=run.prepared.artifacts, settings=settings.measure,
                         eval_set=run.eval, reference=run.prepared.reference, task=run.task)
        results = bench(plan, run.prepared.out_dir, on_event) if run.prepared.artifacts \
            else BenchResults()
        results.records.extend(run.prepared.failures)
        results.settings = run_settings_record(run.prepared, run_settings)
        write_reports(results, run.prepared.out_dir)
        merged.records += [dataclasses.replace(record, model=run.name)
                           for record in results.records]
        merged.interrupted = merged.interrupted or results.interrupted
        merged.settings["models"][run.name] = {
            **results.settings, "task": run.task, "calibration_s": run.calibration_s,
            "eval_set": results.eval_set}
        on_event(f"  {run.name}: done in {time.perf_counter() - started:.0f} s")
    write_reports(merged, out_dir, max_drop)
    write_text_atomic(out_dir / ZOO_SUMMARY, zoo_markdown(merged))
    return merged


def _file_name(model, which: str) -> str | None:
    """The file names to hand `prepare` for a model folder the user named (None for a
    translated PIR model: its folder resolves by itself)."""
    if model.pir_source is not None:
        return None
    path = model.model_file if which == "model" else model.params_file
    return path.name if path is not None else None


def _is_empty(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


def zoo_markdown(results: BenchResults) -> str:
    """Per model x target at batch 1: p50/p90, size, the task metric against FP32 and
    against ground truth, and the model's calibration time."""
    from quantkit.benchmark.formatting import (MISSING, describe_machine, fmt_mb, fmt_ms,
                                               fmt_points, fmt_quality)
    from quantkit.benchmark.results import Status

    models = results.settings.get("models", {})
    lines = ["# Zoo report", ""]
    machines = {describe_machine(record.machine) for record in results.records
                if record.machine}
    lines += [f"Measured on {', '.join(sorted(machines)) or 'no machine'}.", "",
              "| model | task | target | p50 ms | p90 ms | size MB | vs ground truth | value | "
              "FP32 | drop pts | vs FP32 | value | calibration s | status |",
              "|---|---|---|---:|---:|---:|---|---:|---:|---:|---|---:|---:|---|"]
    for record in results.records:
        if record.batch_size not in (None, 1):
            continue
        about = models.get(record.model, {})
        accuracy, latency = record.accuracy, record.latency_ms or {}
        calibration = about.get("calibration_s") if record.precision == "int8" else None
        lines.append(" | ".join([
            f"| {record.model}", about.get("task", MISSING), record.target,
            fmt_ms(latency.get("p50_ms")), fmt_ms(latency.get("p90_ms")),
            fmt_mb(record.size_bytes), (accuracy.label if accuracy else None) or MISSING,
            fmt_quality(accuracy),
            fmt_quality(accuracy, accuracy.reference_value) if accuracy else MISSING,
            fmt_points(accuracy.drop_points if accuracy else None),
            *_against_fp32(accuracy),
            MISSING if calibration is None else f"{calibration:.1f}",
            record.status if record.status == Status.OK else
            f"{record.status}: {(record.error or '').splitlines()[0][:120]}"]) + " |")
    lines += ["", "vs ground truth: the task's headline metric of the target, beside the FP32 "
              "reference's on the same rows and the drop in points; vs FP32: how close the "
              "target's outputs are to FP32's. Every metric of each record is in results.json "
              "(accuracy.metrics)."]
    return "\n".join(lines) + "\n"


def _against_fp32(accuracy) -> tuple[str, str]:
    """(metric label, value) of the task's FP32-closeness headline for one record."""
    from quantkit.benchmark.formatting import MISSING, fmt_pct
    from quantkit.metrics.tasks import choose_headline

    if accuracy is None or not accuracy.metrics:
        return MISSING, MISSING
    line = choose_headline(accuracy.task, accuracy.metrics, with_truth=False)
    value = accuracy.metrics.get(line.metric)
    if value is None:
        return line.label, MISSING
    return line.label, f"{value:.1f} dB" if line.unit == "dB" else fmt_pct(value)


def zoo_calibration(entry: ZooModel) -> CalibrationConfig:
    """The command line's calibration with the zoo entry's algo and batches."""
    return dataclasses.replace(COMMAND_LINE, **{
        key: value for key, value in (("algo", entry.algo), ("batch_size", entry.calib_batch_size),
                                      ("batch_nums", entry.calib_batches))
        if value is not None})
