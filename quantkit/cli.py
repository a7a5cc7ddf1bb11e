"""The `quantkit` command: a thin layer over the Python API (parse, call, print)."""
from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import click

from quantkit.errors import QuantkitError
from quantkit.errors import user_errors as _user_errors  # one line + exit 2, as every command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="quantkit")
def main() -> None:
    """Turn a trained PaddlePaddle model into device-ready INT8 models."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # Paddle's C++ INFO/WARNING chatter
    warnings.formatwarning = _one_line_warning


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as users read them ("warning: fewer batches ..."), not as source lines."""
    return f"warning: {message}\n"


@main.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Keep every artifact here (default: a temporary folder, removed at the end).")
@click.option("--scale", type=float, default=None, help="MobileNetV1 width multiplier.")
@click.option("--steps", type=int, default=None, help="Training steps of batch 64.")
@click.option("--algo", default=None, help="Calibration algorithm (PaddleSlim's names).")
@click.option("--eval-limit", type=int, default=None,
              help="Evaluate on the first N test images only (default: all 10k).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Also write the results as JSON here.")
def demo(out_dir, scale, steps, algo, eval_limit, json_path) -> None:
    """PaddleSlim's PTQ tutorial end to end: MobileNetV1 on MNIST, FP32 vs INT8."""
    import dataclasses
    import tempfile

    from quantkit.demo.pipeline import DemoSettings, run_demo
    from quantkit.demo.report import RichDemoProgress, render_demo_table

    settings = DemoSettings()
    train = settings.train
    train = dataclasses.replace(train, **{k: v for k, v in (("scale", scale), ("steps", steps))
                                          if v is not None})
    settings = dataclasses.replace(settings, train=train, eval_limit=eval_limit,
                                   **({"algo": algo} if algo else {}))
    with _user_errors(), tempfile.TemporaryDirectory(prefix="quantkit-demo-") as scratch:
        target = out_dir if out_dir is not None else Path(scratch)
        with RichDemoProgress() as progress:
            result = run_demo(target, settings, progress)
        render_demo_table(result)
        if json_path:
            json_path.write_text(json.dumps(result.to_dict(), indent=2))
        if out_dir is None:
            click.echo("(artifacts were in a temporary folder; pass --out DIR to keep them)")


@main.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--target", "-t", required=True,
              help="A shipped profile name (see 'quantkit targets') or a PROFILE.toml path.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Artifact folder to create.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--model-filename", default=None, help="Program file inside MODEL_DIR.")
@click.option("--params-filename", default=None, help="Params file inside MODEL_DIR.")
def convert(model_dir, target, out_dir, force, model_filename, params_filename) -> None:
    """Convert a (calibrated) Paddle model into what TARGET runs."""
    from quantkit.targets.convert import convert as convert_model

    with _user_errors():
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

    table = Table(title="quantkit targets")
    for column in ("target", "backend", "precision", "device", "runs here", "why / on what"):
        table.add_column(column)
    for status in target_statuses():
        profile, available = status.profile, status.availability
        table.add_row(profile.name, profile.backend, profile.precision, profile.device,
                      "yes" if available.can_run else "no", available.reason)
    Console(width=160).print(table)


@main.command()
def doctor() -> None:
    """Print the environment: library versions, CPU ISA, GPU and TensorRT presence."""
    from quantkit.doctor import environment_report

    for key, value in environment_report().items():
        click.echo(f"{key:<22} {value}")


def _measure_options(command):
    """The timing and eval options `bench` and `run` share (one method for every target)."""
    options = [
        click.option("--batch-sizes", default="1", show_default=True,
                     help="Comma-separated batch sizes to time, e.g. 1,64."),
        click.option("--threads", type=int, default=None,
                     help="CPU threads per target (default: each target profile's)."),
        click.option("--warmup", type=int, default=10, show_default=True,
                     help="Untimed runs before timing."),
        click.option("--iterations", type=int, default=None,
                     help="Timed runs per batch size [default: 100 unless --duration]."),
        click.option("--duration", type=float, default=None,
                     help="Time each batch size for this many seconds instead."),
        click.option("--eval", "eval_spec", default=None,
                     help="Eval set: 'mnist', an .npz (inputs by feed name, optional "
                          "labels) or a folder with one sub-folder of images per class."),
        click.option("--eval-limit", type=int, default=None, help="Use the first N eval rows."),
        click.option("--mean", type=float, multiple=True,
                     help="Image-folder eval sets: per-channel mean after scaling to [0,1]."),
        click.option("--std", type=float, multiple=True,
                     help="Image-folder eval sets: per-channel std after scaling to [0,1]."),
        click.option("--remote", multiple=True,
                     help="Run on a host of the hosts file: HOST (every target) or "
                          "TARGET=HOST. Repeatable."),
        click.option("--hosts", "hosts_file", type=click.Path(path_type=Path), default=None,
                     help="Hosts file (default: ./hosts.toml, then "
                          "~/.config/quantkit/hosts.toml)."),
        click.option("--timeout", type=float, default=1800.0, show_default=True,
                     help="Seconds allowed per target process."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _measure_settings(batch_sizes, threads, warmup, iterations, duration, timeout):
    from quantkit.benchmark.jobs import MeasureSettings

    try:
        sizes = tuple(int(part) for part in batch_sizes.split(",") if part.strip())
    except ValueError:
        raise QuantkitError(f"--batch-sizes must be integers like 1,64 (got "
                            f"{batch_sizes!r})") from None
    if iterations is None and duration is None:
        iterations = 100
    return MeasureSettings(batch_sizes=sizes, threads=threads, warmup=warmup,
                           iterations=iterations, duration_s=duration, timeout_s=timeout)


def _remote_hosts(remote, hosts_file) -> dict:
    from quantkit.benchmark.hosts import find_host
    from quantkit.benchmark.session import ANY_TARGET

    hosts = {}
    for entry in remote:
        target, _, host = entry.rpartition("=")
        hosts[target or ANY_TARGET] = find_host(host, hosts_file)
    return hosts


def _eval_set(spec, feeds, limit, mean, std):
    if spec is None:
        return None
    from quantkit.benchmark.evalsets import load_eval_set

    return load_eval_set(spec, feeds, limit=limit, mean=list(mean) or None,
                         std=list(std) or None)


def _print_event(message: str) -> None:
    click.echo(message, err=True)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--target", "-t", "target_names", multiple=True,
              help="Only these targets of a run folder (repeatable).")
@click.option("--reference", type=click.Path(path_type=Path), default=None,
              help="FP32 artifact to compare accuracy and size with (default: the first "
                   "FP32 artifact given).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Write results.json, CSV, Markdown and plots here.")
@_measure_options
def bench(paths, target_names, reference, out_dir, batch_sizes, threads, warmup, iterations,
          duration, eval_spec, eval_limit, mean, std, remote, hosts_file, timeout) -> None:
    """Measure latency, throughput, memory, size and accuracy of converted artifacts.

    Each target runs in its own process (here, or on a --remote host) with the same
    timed loop; results are saved after every target.
    """
    from quantkit.benchmark.feeds import artifact_feeds
    from quantkit.benchmark.report import render_table, write_reports
    from quantkit.benchmark.session import BenchPlan, bench as run_bench, find_artifacts
    from quantkit.targets.convert import load_artifact

    with _user_errors(), _interrupt_note(out_dir):
        settings = _measure_settings(batch_sizes, threads, warmup, iterations, duration,
                                     timeout)
        artifacts = find_artifacts(list(paths), list(target_names) or None)
        feeds = artifact_feeds(load_artifact(artifacts[0]))
        plan = BenchPlan(artifacts=artifacts, settings=settings,
                         eval_set=_eval_set(eval_spec, feeds, eval_limit, mean, std),
                         reference=reference, remote=_remote_hosts(remote, hosts_file))
        results = run_bench(plan, out_dir, _print_event)
        render_table(results)
        if out_dir is not None:
            written = write_reports(results, out_dir)
            click.echo(f"reports: {', '.join(str(path) for path in written.values())}")


@main.command("run")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--calib", "calib_spec", required=True,
              help="Calibration data: 'mnist-train', an .npz or an image folder.")
@click.option("--calib-limit", type=int, default=None, help="Use the first N calibration rows.")
@click.option("--targets", "target_list", required=True,
              help="Comma-separated target profiles (see 'quantkit targets').")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Run folder: calibrated model, artifacts, results and reports.")
@click.option("--algo", default="hist", show_default=True,
              help="Calibration algorithm (PaddleSlim's names).")
@click.option("--calib-batch-size", type=int, default=32, show_default=True)
@click.option("--calib-batches", type=int, default=10, show_default=True)
@click.option("--max-drop", type=float, default=None,
              help="Accuracy budget in points vs FP32 on --eval (top-1 with labels, else "
                   "disagreement): search algorithms and skip lists until it holds.")
@click.option("--max-trials", type=int, default=12, show_default=True,
              help="Variants measured at most by --max-drop.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--package", "package_bundles", is_flag=True,
              help="Also write a release bundle per target into OUT/bundles/.")
@click.option("--model-filename", default=None, help="Program file inside MODEL_DIR.")
@click.option("--params-filename", default=None, help="Params file inside MODEL_DIR.")
@_measure_options
def run_command(model_dir, calib_spec, calib_limit, target_list, out_dir, algo,
                calib_batch_size, calib_batches, max_drop, max_trials, force,
                package_bundles, model_filename,
                params_filename,
                batch_sizes, threads, warmup, iterations, duration, eval_spec, eval_limit,
                mean, std, remote, hosts_file, timeout) -> None:
    """Calibrate MODEL_DIR, convert for every target, benchmark them and report."""
    from quantkit.benchmark.report import render_table
    from quantkit.calibration.config import CalibrationConfig
    from quantkit.model_files import check_inference_model
    from quantkit.pipeline import RunSettings, run

    with _user_errors(), _interrupt_note(out_dir):
        settings = RunSettings(
            calibration=CalibrationConfig(algo=algo, batch_size=calib_batch_size,
                                          batch_nums=calib_batches),
            measure=_measure_settings(batch_sizes, threads, warmup, iterations, duration,
                                      timeout),
            max_drop=max_drop, max_trials=max_trials)
        feeds = check_inference_model(model_dir, model_filename, params_filename).feeds
        calib_set = _eval_set(calib_spec, feeds, calib_limit, mean, std)
        eval_set = _eval_set(eval_spec, feeds, eval_limit, mean, std)
        targets = [name.strip() for name in target_list.split(",") if name.strip()]
        results = run(model_dir, calib_set, targets, out_dir, eval_set, settings,
                      remote=_remote_hosts(remote, hosts_file), model_filename=model_filename,
                      params_filename=params_filename, force=force, on_event=_print_event,
                      package_bundles=package_bundles)
        render_table(results)
        click.echo(f"results and reports in {out_dir}")


@main.command()
@click.argument("results_files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder for the table, CSV, Markdown and plots.")
def report(results_files, out_dir) -> None:
    """Re-render reports from results.json files (several machines merge into one)."""
    from quantkit.benchmark.report import render_table, report_from_files
    from quantkit.benchmark.results import BenchResults, merge

    with _user_errors():
        written = report_from_files(list(results_files), out_dir)
        render_table(merge(BenchResults.load(path) for path in results_files))
        click.echo(f"reports: {', '.join(str(path) for path in written.values())}")


class _interrupt_note:
    """Ctrl-C: say where the partial results are and exit 130 (no traceback)."""

    def __init__(self, out_dir) -> None:
        self.out_dir = out_dir

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is KeyboardInterrupt:
            where = (f"; results finished so far are in {self.out_dir}/results.json"
                     if self.out_dir else "")
            click.echo(f"interrupted{where}", err=True)
            sys.exit(130)
        return False


def _register_release_commands() -> None:
    """calibrate/analyze/package/verify/serve live beside their modules; registered here."""
    from quantkit.packaging.cli_commands import package_command, verify_command

    from quantkit.serving.cli_command import serve_command

    from quantkit.calibration.cli_commands import analyze_command, calibrate_command

    main.add_command(calibrate_command)
    main.add_command(analyze_command)
    main.add_command(package_command)
    main.add_command(verify_command)
    main.add_command(serve_command)


_register_release_commands()


if __name__ == "__main__":
    main()
