"""`quantkit run`: calibrate once, convert for every target, benchmark, report.

The kit's headline: one command from an FP32 Paddle model and a little data to the
table that answers "which target and precision should I ship?". The run folder keeps
every step's output (calibrated/, artifacts/<target>/, results.json and the reports).
"""
from __future__ import annotations

import datetime
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from quantkit.atomic import confined, replaceable_output
from quantkit.benchmark.jobs import MeasureSettings
from quantkit.benchmark.results import BenchRecord, BenchResults, Status
from quantkit.benchmark.session import BenchPlan, bench
from quantkit.calibration.budget import DEFAULT_MAX_TRIALS
from quantkit.calibration.config import COMMAND_LINE, CalibrationConfig
from quantkit.data import Dataset
from quantkit.errors import QuantkitError
from quantkit.files import (ARTIFACTS_DIR, BUDGET_RECORD, BUNDLES_DIR, CALIBRATED_DIR,
                            RUN_RECORD, RUN_SCHEMA)
from quantkit.hashing import file_sha256
from quantkit.records import write_json
from quantkit.targets.profile import Precision

# Top-1 and agreement are measured against the FP32 model run by plain Paddle Inference.
REFERENCE_TARGET = "intel-cpu-fp32"


@dataclass(frozen=True)
class RunSettings:
    """Everything `quantkit run` is asked to do; the CLI's defaults read this."""

    calibration: CalibrationConfig = COMMAND_LINE
    measure: MeasureSettings = field(default_factory=MeasureSettings)
    reference_target: str = REFERENCE_TARGET
    max_drop: float | None = None  # accuracy budget in points (quantkit.calibration.budget)
    max_trials: int = DEFAULT_MAX_TRIALS
    task: str | None = None  # what the outputs mean (benchmark.accuracy.resolve_task)


@dataclass
class PreparedRun:
    """A run folder after calibration and conversion: what the benchmarks will measure."""

    out_dir: Path
    model: object  # model_files.InferenceModel
    artifacts: list[Path]  # one folder per target that converted (the reference included)
    failures: list[BenchRecord]  # conversions that failed, as records
    reference: Path | None  # the FP32 reference artifact, if it converted
    targets: tuple[str, ...]
    calibration_s: float | None = None  # wall time of calibration (None: no INT8 target)


def prepare(model_dir: Path, calib_set: Dataset | None, targets: Sequence[str], out_dir: Path,
            eval_set: Dataset | None = None, settings: RunSettings = RunSettings(),
            model_filename: str | None = None, params_filename: str | None = None,
            force: bool = False, on_event: Callable[[str], None] = lambda message: None,
            on_calibration_batch: Callable[[], None] = lambda: None) -> PreparedRun:
    """Check everything, calibrate once and convert for every target (+ the reference).

    Interrupted (Ctrl-C, SIGTERM) or failing before anything was measured, the run folder
    is removed again.
    """
    from quantkit.model_files import check_inference_model
    from quantkit.targets.profile import load_profile

    model = check_inference_model(model_dir, model_filename, params_filename)
    if len(set(targets)) != len(targets):
        raise QuantkitError(f"--targets lists a target twice: {', '.join(targets)}")
    profiles = [load_profile(name) for name in targets]  # unknown names fail before work
    if not profiles:
        raise QuantkitError("no targets given (see 'quantkit targets')")
    reference = load_profile(settings.reference_target)
    if reference.precision != Precision.FP32:
        raise QuantkitError(f"reference target {reference.name} must be FP32")
    needs_int8 = any(profile.precision == Precision.INT8 for profile in profiles)
    if needs_int8 and calib_set is None:
        raise QuantkitError("INT8 targets need calibration data (--calib)")
    if settings.max_drop is not None and eval_set is None:
        raise QuantkitError("--max-drop needs eval data: add --eval")
    if needs_int8:
        from quantkit.model_files import refuse_quantized

        refuse_quantized(model)
    out_dir = _fresh_folder(Path(out_dir), force, model.given_dir)
    try:
        write_run_record(out_dir, model, settings, calib_set, targets)
        quantized_dir, calibration_s = None, None
        if needs_int8:
            started = time.perf_counter()
            quantized_dir = _calibrate(model, calib_set, settings, out_dir / CALIBRATED_DIR,
                                       on_calibration_batch, on_event, eval_set)
            calibration_s = time.perf_counter() - started
        artifacts, failures = _convert_all(model, quantized_dir, profiles, reference, out_dir,
                                           on_event)
    except BaseException:  # nothing measured yet: leave no half-made run folder
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    reference_dir = (out_dir / ARTIFACTS_DIR / reference.name).absolute()
    return PreparedRun(out_dir, model, artifacts, failures,
                       reference_dir if reference_dir in artifacts else None,
                       tuple(profile.name for profile in profiles), calibration_s)


def run(model_dir: Path, calib_set: Dataset | None, targets: Sequence[str], out_dir: Path,
        eval_set: Dataset | None = None, settings: RunSettings = RunSettings(), remote=None,
        model_filename: str | None = None, params_filename: str | None = None,
        force: bool = False, on_event: Callable[[str], None] = lambda message: None,
        on_calibration_batch: Callable[[], None] = lambda: None,
        package_bundles: bool = False) -> BenchResults:
    """Calibrate `model_dir` on `calib_set`, convert for `targets`, benchmark, report.

    With `package_bundles`, also a release bundle per converted target in `bundles/`.
    """
    prepared = prepare(model_dir, calib_set, targets, out_dir, eval_set, settings,
                       model_filename, params_filename, force, on_event, on_calibration_batch)
    plan = BenchPlan(artifacts=prepared.artifacts, settings=settings.measure, eval_set=eval_set,
                     reference=prepared.reference, remote=remote or {}, task=settings.task)
    results = bench(plan, prepared.out_dir, on_event) if prepared.artifacts else BenchResults()
    results.records.extend(prepared.failures)
    results.settings = run_settings_record(prepared, settings)
    from quantkit.benchmark.report import write_reports

    write_reports(results, prepared.out_dir)
    if package_bundles:
        _package_all(prepared.out_dir, [name for name in prepared.targets
                                        if (prepared.out_dir / ARTIFACTS_DIR / name).is_dir()],
                     on_event)
    return results


def run_settings_record(prepared: PreparedRun, settings: RunSettings) -> dict:
    """What results.json records about how a run was made."""
    return {"measure": settings.measure.to_dict(),
            "calibration": settings.calibration.to_dict(),
            "model": str(prepared.model.model_file), "targets": list(prepared.targets),
            "max_drop": settings.max_drop}


def _convert_all(model, quantized_dir: Path | None, profiles, reference, out_dir: Path,
                 on_event: Callable[[str], None]) -> tuple[list[Path], list[BenchRecord]]:
    """Every target's artifact (and the FP32 reference's); a failed conversion is a record."""
    artifacts, failures = [], []
    names = [profile.name for profile in profiles]
    wanted = profiles + ([reference] if reference.name not in names else [])
    for profile in wanted:
        source = quantized_dir if profile.precision == Precision.INT8 else model.model_dir
        on_event(f"converting for {profile.name}")
        try:
            artifacts.append(_convert(model, source, profile,
                                      confined(out_dir / ARTIFACTS_DIR, profile.name)))
        except QuantkitError as exc:
            failures.append(BenchRecord(target=profile.name, backend=profile.backend,
                                        precision=profile.precision, device=profile.device,
                                        status=Status.FAILED, error=f"conversion: {exc}"))
            on_event(f"  {profile.name}: conversion failed: {exc}")
    return artifacts, failures


def _package_all(out_dir: Path, targets: Sequence[str],
                 on_event: Callable[[str], None]) -> None:
    """A bundle per target; one that fails to package is reported, the others still made."""
    from quantkit.packaging import package

    for name in targets:
        try:
            bundle = package(out_dir, out_dir / BUNDLES_DIR, target=name)
        except QuantkitError as exc:
            on_event(f"  {name}: not packaged: {exc}")
        else:
            on_event(f"  bundle: {bundle} (+ .tar.gz)")


def write_run_record(out_dir: Path, model, settings: RunSettings, calib_set,
                     targets: Sequence[str]) -> Path:
    """run.json: the source model's hashes, calibration settings and data fingerprint.

    Release bundles copy it into their manifest, so a bundle names what it came from.
    """
    files = [model.model_file] + ([model.params_file] if model.params_file else [])
    record = {
        "schema": RUN_SCHEMA,
        "created_utc": datetime.datetime.now(datetime.timezone.utc)
        .isoformat(timespec="seconds"),
        "source_model": {"dir": str(Path(model.given_dir).absolute()),
                         "files": {path.name: {"sha256": file_sha256(path),
                                               "size": path.stat().st_size}
                                   for path in files},
                         "pir_source": model.pir_source},
        "calibration": {**settings.calibration.to_dict(),
                        "data": calib_set.describe() if calib_set is not None else None},
        "measure": settings.measure.to_dict(),
        "reference_target": settings.reference_target,
        "targets": list(targets),
    }
    if settings.max_drop is not None:  # the search's outcome: calibrated/budget.json
        record["accuracy_budget"] = {"max_drop": settings.max_drop,
                                     "max_trials": settings.max_trials,
                                     "record": f"{CALIBRATED_DIR}/{BUDGET_RECORD}"}
    return write_json(out_dir / RUN_RECORD, record)


def _fresh_folder(out_dir: Path, force: bool, model_dir: Path) -> Path:
    out_dir = replaceable_output(out_dir, force or _is_empty_folder(out_dir),
                                 inputs=[model_dir])
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    return out_dir


def _is_empty_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


def _calibrate(model, calib_set: Dataset, settings: RunSettings, out: Path,
               on_batch: Callable[[], None], on_event: Callable[[str], None],
               eval_set: Dataset | None = None) -> Path:
    from quantkit.calibration.analysis import calibrate_within_budget
    from quantkit.calibration.calibrate import calibrate

    config = settings.calibration
    on_event(f"calibrating ({config.algo}, {config.batch_nums} x {config.batch_size})")
    started = time.perf_counter()
    available = calib_set.batch_count(config.batch_size)
    if config.batch_nums is not None and available < config.batch_nums:
        on_event(f"  warning: calibration data {calib_set.source} has {calib_set.rows} rows: "
                 f"{available} batches of {config.batch_size} instead of "
                 f"{config.batch_nums}; using them")
    files = dict(model_filename=model.model_file.name,
                 params_filename=model.params_file.name if model.params_file else None)
    if settings.max_drop is not None:
        result = calibrate_within_budget(model.model_dir, calib_set, eval_set, out, config,
                                         settings.max_drop, settings.max_trials,
                                         on_event=on_event, task=settings.task, **files)
        on_event(result.summary())
    else:
        calibrate(None, str(model.model_dir), str(out), config,
                  data_loader=calib_set.reader(model.feeds, config.batch_size,
                                               config.batch_nums),
                  on_batch=on_batch, **files)
    on_event(f"  calibrated in {time.perf_counter() - started:.1f} s")
    return out


def _convert(model, source: Path, profile, out: Path) -> Path:
    from quantkit.targets.convert import convert

    if source == model.model_dir:
        artifact = convert(source, profile, out, model_filename=model.model_file.name,
                           params_filename=model.params_file.name if model.params_file
                           else None)
    else:
        artifact = convert(source, profile, out)
    return artifact.folder
