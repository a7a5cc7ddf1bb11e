"""`quantkit zoo ZOO.toml --out DIR`: every zoo model through calibration and every target
here, one merged report (the command line over quantkit.zoo.run: parse, call, print)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from quantkit.benchmark.cli_options import measure_settings, timing_options
from quantkit.cli_types import POINTS, POSITIVE, CommaList
from quantkit.errors import user_errors


@click.command("zoo")
@click.argument("zoo_file", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder for OUT/<model>/ (run folders) and the merged report + zoo.md.")
@click.option("--force", is_flag=True, help="Replace --out if it is an earlier zoo run.")
@click.option("--models", type=CommaList(), default=None,
              help="Only these models of the zoo file (comma-separated names).")
@click.option("--eval-limit", type=POSITIVE, default=None,
              help="Use the first N rows of every eval set (quick runs).")
@click.option("--calib-limit", type=POSITIVE, default=None,
              help="Use the first N rows of every calibration set (quick runs).")
@click.option("--det-size", type=POSITIVE, default=None,
              help="Detector input side for zoo: detection sets (a multiple of 32; default "
                   "640).")
@click.option("--max-drop", type=POINTS, default=None,
              help="Accuracy budget of the recommendation, in points vs FP32.")
@timing_options
def zoo_command(zoo_file, out_dir, force, models, eval_limit, calib_limit, det_size, max_drop,
                batch_sizes, threads, warmup, iterations, duration, timeout) -> None:
    """Take every model of ZOO_FILE through calibration and every target; one report."""
    from quantkit.benchmark.report import render_table
    from quantkit.pipeline import RunSettings
    from quantkit.zoo.run import ZOO_SUMMARY, run_zoo

    with user_errors(out_dir):
        settings = RunSettings(measure=measure_settings(batch_sizes, threads, warmup,
                                                        iterations, duration, timeout))
        results = run_zoo(zoo_file, out_dir, settings, force=force, only=models or (),
                          eval_limit=eval_limit, calib_limit=calib_limit, det_size=det_size,
                          max_drop=max_drop,
                          on_event=lambda message: click.echo(message, err=True))
        render_table(results)
        click.echo(f"results, reports and {ZOO_SUMMARY} in {out_dir}")
    bad = sorted({f"{record.model}/{record.target}" for record in results.records
                  if record.status in ("failed", "crashed")})
    if bad:
        click.echo(f"error: {len(bad)} target(s) failed: {', '.join(bad)}", err=True)
        sys.exit(1)
