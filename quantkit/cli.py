"""The `quantkit` command: a thin layer over the Python API (parse, call, print).

Every default comes from the settings the API uses (`CalibrationConfig.COMMAND_LINE`,
`RunSettings`, `MeasureSettings`), every number is checked when it is parsed
(`quantkit.cli_types`), and every user error is one line on stderr with exit status 2.
"""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import click

from quantkit.benchmark.cli_options import hosts_file_option, measure_settings, timing_options
from quantkit.calibration.cli_commands import (budget_options, calibration_options,
                                               command_config, image_options, load_data,
                                               normalisation_options)
from quantkit.benchmark.recommend import DEFAULT_MAX_DROP
from quantkit.cli_types import POINTS, POSITIVE, CommaList, FiniteNumber, output_options
from quantkit.errors import QuantkitError, user_errors
from quantkit.zoo.config import Task



@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="quantkit")
def main() -> None:
    """Turn a trained PaddlePaddle model into device-ready INT8 models."""
    from quantkit.interrupts import exit_on_sigterm

    os.environ.setdefault("GLOG_minloglevel", "2")  # Paddle's C++ INFO/WARNING chatter
    warnings.formatwarning = _one_line_warning
    exit_on_sigterm()


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as users read them ("warning: fewer batches ..."), not as source lines."""
    return f"warning: {message}\n"


@main.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Keep every artifact here (default: a temporary folder, removed at the end).")
@click.option("--scale", type=FiniteNumber(0.0, strict=True), default=None,
              help="MobileNetV1 width multiplier.")
@click.option("--steps", type=POSITIVE, default=None, help="Training steps of batch 64.")
@click.option("--algo", default=None, help="Calibration algorithm (PaddleSlim's names).")
@click.option("--eval-limit", type=POSITIVE, default=None,
              help="Evaluate on the first N test images only (default: all 10k).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Also write the results as JSON here.")
def demo(out_dir, scale, steps, algo, eval_limit, json_path) -> None:
    """PaddleSlim's PTQ tutorial end to end: MobileNetV1 on MNIST, FP32 vs INT8."""
    import dataclasses
    import tempfile

    from quantkit.demo.pipeline import DemoSettings, run_demo
    from quantkit.demo.report import RichDemoProgress, render_demo_table
    from quantkit.records import write_json

    with user_errors():
        settings = DemoSettings()
        train = dataclasses.replace(settings.train, **{k: v for k, v in (("scale", scale),
                                                                          ("steps", steps))
                                                       if v is not None})
        settings = dataclasses.replace(settings, train=train, eval_limit=eval_limit,
                                       **({"algo": algo} if algo else {}))
        with tempfile.TemporaryDirectory(prefix="quantkit-demo-") as scratch:
            target = out_dir if out_dir is not None else Path(scratch)
            with RichDemoProgress() as progress:
                result = run_demo(target, settings, progress)
            render_demo_table(result)
            if json_path:
                write_json(json_path, result.to_dict())
            if out_dir is None:
                click.echo("(artifacts were in a temporary folder; pass --out DIR to keep them)")


@main.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@output_options("A shipped profile name (see 'quantkit targets') or a PROFILE.toml path.",
                "Artifact folder to create.", "Replace --out if it is an earlier artifact.",
                target_required=True)
@click.option("--model-filename", default=None, help="Program file inside MODEL_DIR.")
@click.option("--params-filename", default=None, help="Params file inside MODEL_DIR.")
def convert(model_dir, target, out_dir, force, model_filename, params_filename) -> None:
    """Convert a (calibrated) Paddle model into what TARGET runs."""
    from quantkit.targets.convert import convert as convert_model

    with user_errors():
        artifact = convert_model(model_dir, target, out_dir, force=force,
                                 model_filename=model_filename,
                                 params_filename=params_filename)
    click.echo(f"{artifact.target}: {', '.join(artifact.files)} in {out_dir} "
               f"({artifact.size_bytes / 1e6:.2f} MB, {artifact.precision}, "
               f"{artifact.backend})")


@main.command()
def targets() -> None:
    """List the shipped target profiles and whether this machine can run each."""
    from rich.console import Console
    from rich.table import Table

    from quantkit.targets.convert import target_statuses

    from quantkit.machine import cpu_isa

    table = Table(title="quantkit targets", caption=f"this CPU: {cpu_isa().summary}")
    for column in ("target", "backend", "precision", "device", "tuned for", "runs here",
                   "why / on what (the int8 kernels it gets here)"):
        table.add_column(column)
    for status in target_statuses():
        profile, available = status.profile, status.availability
        table.add_row(profile.name, str(profile.backend), str(profile.precision),
                      profile.device, profile.tuned_for, "yes" if available.can_run else "no",
                      available.reason)
    Console(width=180).print(table)


@main.command()
def doctor() -> None:
    """Print the environment: library versions, CPU ISA, GPU and TensorRT presence."""
    from quantkit.doctor import environment_report

    for key, value in environment_report().items():
        click.echo(f"{key:<22} {value}")


def _measure_options(command):
    """The timing and eval options `bench` and `run` share (one method for every target)."""
    options = [
        timing_options,
        click.option("--eval", "eval_spec", default=None,
                     help="Eval set: 'mnist', an .npz (inputs by feed name, optional "
                          "labels), a folder with one sub-folder of images per class, or "
                          "zoo:NAME (PP-OCR sets with ground truth)."),
        click.option("--task", type=click.Choice([str(task) for task in Task]), default=None,
                     help="What the outputs mean, so accuracy uses the metric it needs "
                          "[default: the zoo set's task, else classification with labels, "
                          "else generic (closeness to FP32)]."),
        click.option("--eval-limit", type=POSITIVE, default=None,
                     help="Use the first N eval rows."),
        click.option("--remote", multiple=True,
                     help="Run on a host of the hosts file: HOST (every target) or "
                          "TARGET=HOST. Repeatable."),
        hosts_file_option(),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _remote_hosts(remote, hosts_file) -> dict:
    from quantkit.benchmark.remote.hosts import find_host
    from quantkit.benchmark.session import ANY_TARGET

    hosts = {}
    for entry in remote:
        target, _, host = entry.rpartition("=")
        hosts[target or ANY_TARGET] = find_host(host, hosts_file)
    return hosts


def _eval_set(spec, feeds, limit, mean, std):
    if spec is None:
        return None
    from quantkit.data import EVAL
    from quantkit.data.sources import load_dataset

    return load_dataset(spec, feeds, EVAL, limit=limit, mean=list(mean) or None,
                        std=list(std) or None)


def _print_event(message: str) -> None:
    click.echo(message, err=True)


def _check_writable(out_dir: Path | None) -> None:
    """Refuse an --out that cannot be written before any benchmark runs."""
    if out_dir is None:
        return
    out_dir = Path(out_dir)
    probe_dir = out_dir if out_dir.exists() else next(
        (parent for parent in out_dir.absolute().parents if parent.exists()), Path("/"))
    if not probe_dir.is_dir():
        raise QuantkitError(f"cannot use --out {out_dir}: {probe_dir} is a file, not a folder")
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise QuantkitError(f"cannot use --out {out_dir}: {probe_dir} is not writable")


def _exit_status(results) -> None:
    """Exit 1 when a target failed or crashed, or nothing at all was measured: the results
    are written, but the run did not do what was asked."""
    from quantkit.benchmark.results import Status

    bad = sorted({record.target for record in results.records
                  if record.status in (Status.FAILED, Status.CRASHED, Status.NO_HOST)})
    if bad:
        click.echo(f"error: {len(bad)} target(s) did not finish: {', '.join(bad)} (see the "
                   "notes above)", err=True)
        sys.exit(1)
    if not any(record.status == Status.OK for record in results.records):
        click.echo("error: nothing was measured: no target can run on this machine (see the "
                   "notes above, and --remote)", err=True)
        sys.exit(1)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--target", "-t", "target_names", multiple=True,
              help="Only these targets of a run folder (repeatable).")
@click.option("--reference", type=click.Path(path_type=Path), default=None,
              help="FP32 artifact to compare accuracy and size with (default: the first "
                   "FP32 artifact given).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Write results.json, CSV, Markdown and plots here.")
@click.option("--max-drop", type=POINTS, default=None,
              help=f"Accuracy budget of the recommendation, in points vs FP32 [default: "
                   f"{DEFAULT_MAX_DROP:g}].")
@_measure_options
@normalisation_options
def bench(paths, target_names, reference, out_dir, max_drop, batch_sizes, threads, warmup,
          iterations, duration, eval_spec, task, eval_limit, remote, hosts_file, timeout, mean,
          std) -> None:
    """Measure latency, throughput, memory, size and accuracy of converted artifacts.

    Each target runs in its own process (here, or on a --remote host) with the same
    timed loop; results are saved after every target.
    """
    from quantkit.benchmark.report import attach_recommendation, render_table, write_reports
    from quantkit.benchmark.session import BenchPlan, bench as run_bench, find_artifacts
    from quantkit.targets.artifact import artifact_feeds, load_artifact

    with user_errors(out_dir):
        if len(set(target_names)) != len(target_names):
            raise QuantkitError(f"--target lists a target twice: {', '.join(target_names)}")
        settings = measure_settings(batch_sizes, threads, warmup, iterations, duration,
                                     timeout)
        _check_writable(out_dir)
        artifacts = find_artifacts(list(paths), list(target_names) or None)
        feeds = artifact_feeds(load_artifact(artifacts[0]))
        plan = BenchPlan(artifacts=artifacts, settings=settings,
                         eval_set=_eval_set(eval_spec, feeds, eval_limit, mean, std),
                         reference=reference, remote=_remote_hosts(remote, hosts_file),
                         task=task)
        results = run_bench(plan, out_dir, _print_event)
        attach_recommendation(results, max_drop)
        render_table(results)
        if out_dir is not None:
            written = write_reports(results, out_dir, max_drop)
            click.echo(f"reports: {', '.join(str(path) for path in written.values())}")
        _exit_status(results)


@main.command("run")
@click.argument("model_dir", type=click.Path(path_type=Path))
@calibration_options
@click.option("--targets", "target_list", required=True, type=CommaList(),
              help="Comma-separated target profiles (see 'quantkit targets').")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Run folder: calibrated model, artifacts, results and reports.")
@budget_options
@click.option("--force", is_flag=True, help="Replace --out if it is an earlier run folder.")
@click.option("--package", "package_bundles", is_flag=True,
              help="Also write a release bundle per target into OUT/bundles/.")
@_measure_options
@image_options
def run_command(model_dir, calib_spec, calib_limit, algo, calib_batch_size, calib_batches,
                target_list, out_dir, max_drop, max_trials, force, package_bundles,
                batch_sizes, threads, warmup, iterations, duration, eval_spec, task, eval_limit,
                remote, hosts_file, timeout, mean, std, model_filename,
                params_filename) -> None:
    """Calibrate MODEL_DIR, convert for every target, benchmark them and report."""
    from quantkit.benchmark.report import render_table
    from quantkit.model_files import check_inference_model
    from quantkit.pipeline import RunSettings, run

    with user_errors(out_dir):
        settings = RunSettings(
            calibration=command_config(algo, calib_batch_size, calib_batches),
            measure=measure_settings(batch_sizes, threads, warmup, iterations, duration,
                                      timeout),
            max_drop=max_drop, max_trials=max_trials, task=task)
        model = check_inference_model(model_dir, model_filename, params_filename)
        calib_set, eval_set = load_data(model, calib_spec, calib_limit, eval_spec,
                                        eval_limit, mean, std)
        results = run(model_dir, calib_set, list(target_list), out_dir, eval_set, settings,
                      remote=_remote_hosts(remote, hosts_file), model_filename=model_filename,
                      params_filename=params_filename, force=force, on_event=_print_event,
                      package_bundles=package_bundles)
        render_table(results)
        click.echo(f"results and reports in {out_dir}")
        _exit_status(results)


@main.command()
@click.argument("results_files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder for the table, CSV, Markdown and plots.")
@click.option("--max-drop", type=POINTS, default=None,
              help="Accuracy budget of the recommendation, in points vs FP32 [default: the "
                   f"run's --max-drop, else {DEFAULT_MAX_DROP:g}].")
def report(results_files, out_dir, max_drop) -> None:
    """Re-render reports from results.json files (several machines merge into one)."""
    from quantkit.benchmark.report import load_results, render_table, write_reports

    with user_errors():
        results = load_results(list(results_files))
        written = write_reports(results, out_dir, max_drop)
        render_table(results)
        click.echo(f"reports: {', '.join(str(path) for path in written.values())}")


def _register_commands() -> None:
    """Commands that live beside their modules (calibrate, package, serve, fleet, ...)."""
    from quantkit.calibration.cli_commands import analyze_command, calibrate_command
    from quantkit.fleet.cli_command import fleet_command
    from quantkit.packaging.cli_commands import package_command, verify_command
    from quantkit.pir.cli_commands import env_group, translate_command
    from quantkit.serving.cli_command import serve_command
    from quantkit.zoo.cli_command import zoo_command

    for command in (calibrate_command, analyze_command, package_command, verify_command,
                    serve_command, translate_command, env_group, fleet_command, zoo_command):
        main.add_command(command)


_register_commands()


if __name__ == "__main__":
    main()
