"""The `quantkit` command: a thin layer over the Python API (parse, call, print)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from quantkit.errors import QuantkitError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="quantkit")
def main() -> None:
    """Turn a trained PaddlePaddle model into device-ready INT8 models."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # Paddle's C++ INFO/WARNING chatter


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


class _user_errors:
    """Print QuantkitError as one line on stderr and exit 2, instead of a traceback."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and issubclass(exc_type, QuantkitError):
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        return False


if __name__ == "__main__":
    main()
