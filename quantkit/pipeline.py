"""`quantkit run`: calibrate once, convert for every target, benchmark, report.

The kit's headline: one command from an FP32 Paddle model and a little data to the
table that answers "which target and precision should I ship?". The run folder keeps
every step's output (calibrated/, artifacts/<target>/, results.json and the reports).
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from quantkit.benchmark.jobs import MeasureSettings
from quantkit.benchmark.results import BenchRecord, BenchResults
from quantkit.benchmark.session import BenchPlan, bench
from quantkit.calibration.config import CalibrationConfig
from quantkit.errors import QuantkitError

BUNDLES = "bundles"
CALIBRATED = "calibrated"
ARTIFACTS = "artifacts"
RUN_RECORD = "run.json"  # what the run was made from: model hash, calibration, data
# Top-1 and agreement are measured against the FP32 model run by plain Paddle Inference.
REFERENCE_TARGET = "intel-cpu-fp32"


@dataclass(frozen=True)
class RunSettings:
    calibration: CalibrationConfig = field(
        default_factory=lambda: CalibrationConfig(algo="hist", batch_size=32, batch_nums=10))
    measure: MeasureSettings = field(default_factory=MeasureSettings)
    reference_target: str = REFERENCE_TARGET
    max_drop: float | None = None  # accuracy budget in points (quantkit.calibration.budget)
    max_trials: int = 12


def run(model_dir: Path, calib_set, targets: Sequence[str], out_dir: Path,
        eval_set=None, settings: RunSettings = RunSettings(), remote=None,
        model_filename: str | None = None, params_filename: str | None = None,
        force: bool = False, on_event: Callable[[str], None] = lambda message: None,
        on_calibration_batch: Callable[[], None] = lambda: None,
        package_bundles: bool = False) -> BenchResults:
    """Calibrate `model_dir` on `calib_set`, convert for `targets`, benchmark, report.

    With `package_bundles`, also a release bundle per converted target in `bundles/`.
    """
    from quantkit.benchmark.report import write_reports
    from quantkit.model_files import check_inference_model
    from quantkit.targets.profile import load_profile

    model = check_inference_model(model_dir, model_filename, params_filename)
    profiles = [load_profile(name) for name in targets]  # unknown names fail before work
    if not profiles:
        raise QuantkitError("no targets given (see 'quantkit targets')")
    reference = load_profile(settings.reference_target)
    if reference.precision != "fp32":
        raise QuantkitError(f"reference target {reference.name} must be FP32")
    _fresh_folder(Path(out_dir), force)
    out_dir = Path(out_dir)
    write_run_record(out_dir, model, settings, calib_set, targets)

    quantized_dir = None
    if any(profile.precision == "int8" for profile in profiles):
        on_event(f"calibrating ({settings.calibration.algo}, "
                 f"{settings.calibration.batch_nums} x {settings.calibration.batch_size})")
        started = time.perf_counter()
        try:
            quantized_dir = _calibrate(model, calib_set, settings, out_dir / CALIBRATED,
                                       on_calibration_batch, on_event, eval_set)
        except BaseException:  # nothing measured yet: leave no half-made run folder
            shutil.rmtree(out_dir, ignore_errors=True)
            raise
        on_event(f"  calibrated in {time.perf_counter() - started:.1f} s")

    artifacts, failures = [], []
    names = [profile.name for profile in profiles]
    wanted = profiles + ([reference] if reference.name not in names else [])
    for profile in wanted:
        source = quantized_dir if profile.precision == "int8" else model.model_dir
        on_event(f"converting for {profile.name}")
        try:
            artifacts.append(_convert(model, source, profile, out_dir / ARTIFACTS / profile.name))
        except QuantkitError as exc:
            failures.append(BenchRecord(target=profile.name, backend=profile.backend,
                                        precision=profile.precision, device=profile.device,
                                        status="failed", error=f"conversion: {exc}"))
            on_event(f"  {profile.name}: conversion failed: {exc}")
    reference_dir = (out_dir / ARTIFACTS / reference.name).absolute()
    plan = BenchPlan(artifacts=artifacts, settings=settings.measure, eval_set=eval_set,
                     reference=reference_dir if reference_dir in artifacts else None,
                     remote=remote or {})
    results = bench(plan, out_dir, on_event) if artifacts else BenchResults()
    results.records.extend(failures)
    results.settings = {"measure": settings.measure.to_dict(),
                        "calibration": settings.calibration.to_dict(),
                        "model": str(model.model_file), "targets": list(targets),
                        "max_drop": settings.max_drop}
    write_reports(results, out_dir)
    if package_bundles:
        _package_all(out_dir, [p.name for p in profiles if (out_dir / ARTIFACTS / p.name)
                               .is_dir()], on_event)
    return results


def _package_all(out_dir: Path, targets: Sequence[str],
                 on_event: Callable[[str], None]) -> None:
    """A bundle per target; one that fails to package is reported, the others still made."""
    from quantkit.packaging import package

    for name in targets:
        try:
            bundle = package(out_dir, out_dir / BUNDLES, target=name)
        except QuantkitError as exc:
            on_event(f"  {name}: not packaged: {exc}")
        else:
            on_event(f"  bundle: {bundle} (+ .tar.gz)")


def write_run_record(out_dir: Path, model, settings: RunSettings, calib_set,
                     targets: Sequence[str]) -> Path:
    """run.json: the source model's hashes, calibration settings and data fingerprint.

    Release bundles copy it into their manifest, so a bundle names what it came from.
    """
    import datetime
    import json

    from quantkit.hashing import file_sha256

    files = [model.model_file] + ([model.params_file] if model.params_file else [])
    record = {
        "schema": "quantkit.run/1",
        "created_utc": datetime.datetime.now(datetime.timezone.utc)
        .isoformat(timespec="seconds"),
        "source_model": {"dir": str(Path(model.model_dir).absolute()),
                         "files": {path.name: {"sha256": file_sha256(path),
                                               "size": path.stat().st_size}
                                   for path in files}},
        "calibration": {**settings.calibration.to_dict(),
                        "data": calib_set.describe() if calib_set is not None else None},
        "measure": settings.measure.to_dict(),
        "reference_target": settings.reference_target,
        "targets": list(targets),
    }
    if settings.max_drop is not None:  # the search's outcome: calibrated/budget.json
        record["accuracy_budget"] = {"max_drop": settings.max_drop,
                                     "max_trials": settings.max_trials,
                                     "record": f"{CALIBRATED}/budget.json"}
    path = out_dir / RUN_RECORD
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def _fresh_folder(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and any(out_dir.iterdir()):
        if not force:
            raise QuantkitError(f"output folder exists and is not empty: {out_dir} "
                                "(pass --force to replace it)")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)


def _calibrate(model, calib_set, settings: RunSettings, out: Path,
               on_batch: Callable[[], None], on_event: Callable[[str], None],
               eval_set=None) -> Path:
    import paddle

    from quantkit.quant.analysis import calibrate_within_budget, data_set_batches
    from quantkit.quant.post_static import calibrate

    if calib_set is None:
        raise QuantkitError("INT8 targets need calibration data (--calib)")
    config = settings.calibration
    rows, size = calib_set.rows, config.batch_size
    available = -(-rows // size)
    if config.batch_nums is not None and available < config.batch_nums:
        on_event(f"  warning: calibration set {calib_set.source} has {rows} rows: "
                 f"{available} batches of {size} instead of {config.batch_nums}; using them")
    files = dict(model_filename=model.model_file.name,
                 params_filename=model.params_file.name if model.params_file else None)
    if settings.max_drop is not None:
        result = calibrate_within_budget(model.model_dir, calib_set, eval_set, out, config,
                                         settings.max_drop, settings.max_trials,
                                         on_event=on_event, **files)
        on_event(result.summary())
        return out
    calibrate(paddle.static.Executor(paddle.CPUPlace()), str(model.model_dir), str(out),
              config, data_loader=data_set_batches(model, calib_set, config),
              scope=paddle.static.Scope(), on_batch=on_batch, **files)
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
