"""`quantkit calibrate` and `quantkit analyze`: thin click commands over quantkit.calibration.

Registered in quantkit/cli.py. Defaults come from `CalibrationConfig` (`COMMAND_LINE`) and
`budget.DEFAULT_MAX_TRIALS`. Exit codes: 0 ok, 2 a refusal (one line: what is wrong and
what to do), including an accuracy budget no trial met (the trials are listed).
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from quantkit.calibration.budget import DEFAULT_MAX_TRIALS
from quantkit.calibration.config import COMMAND_LINE
from quantkit.cli_types import NON_NEGATIVE, POINTS, POSITIVE, CommaList
from quantkit.errors import QuantkitError, user_errors


def calibration_options(command):
    """The calibration data and settings `calibrate`, `analyze` and `run` share."""
    options = [
        click.option("--calib", "calib_spec", required=True,
                     help="Calibration data: 'mnist-train', an .npz or an image folder."),
        click.option("--calib-limit", type=POSITIVE, default=None,
                     help="Use the first N calibration rows."),
        click.option("--algo", default=str(COMMAND_LINE.algo), show_default=True,
                     help="Calibration algorithm (PaddleSlim's names)."),
        click.option("--calib-batch-size", type=POSITIVE, default=COMMAND_LINE.batch_size,
                     show_default=True, help="Rows per calibration batch."),
        click.option("--calib-batches", type=POSITIVE, default=COMMAND_LINE.batch_nums,
                     show_default=True, help="Calibration batches used at most."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def normalisation_options(command):
    """Image-folder normalisation (--mean/--std)."""
    command = click.option("--std", type=float, multiple=True,
                           help="Image-folder data: per-channel std after scaling to [0,1].")(
        command)
    return click.option("--mean", type=float, multiple=True,
                        help="Image-folder data: per-channel mean after scaling to [0,1].")(
        command)


def image_options(command):
    """Image-folder normalisation and the model files inside MODEL_DIR."""
    command = click.option("--params-filename", default=None,
                           help="Params file inside MODEL_DIR.")(command)
    command = click.option("--model-filename", default=None,
                           help="Program file inside MODEL_DIR.")(command)
    return normalisation_options(command)


def _data_options(command):
    options = [
        click.argument("model_dir", type=click.Path(path_type=Path)),
        calibration_options,
        click.option("--skip", "skip_list", type=CommaList(), default=(),
                     help="Comma-separated tensors (e.g. conv weights) to keep in float."),
        click.option("--onnx-format/--no-onnx-format", default=COMMAND_LINE.onnx_format,
                     show_default=True,
                     help="QDQ (quantize_linear) ops, or the older fake-quant ops."),
        click.option("--eval-limit", type=POSITIVE, default=None,
                     help="Use the first N eval rows."),
        image_options,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def load_data(model, calib_spec, calib_limit, eval_spec, eval_limit, mean, std):
    """(calibration Dataset, eval Dataset or None) checked against `model`'s feeds."""
    from quantkit.data import CALIBRATION, EVAL
    from quantkit.data.sources import load_dataset

    norm = dict(mean=list(mean) or None, std=list(std) or None)
    calib_set = load_dataset(calib_spec, model.feeds, CALIBRATION, calib_limit, **norm)
    eval_set = load_dataset(eval_spec, model.feeds, EVAL, eval_limit, **norm) \
        if eval_spec else None
    return calib_set, eval_set


def command_config(algo, batch_size, batches, skip=(), onnx_format=True):
    """The CalibrationConfig a command asked for (the rest from COMMAND_LINE)."""
    import dataclasses

    return dataclasses.replace(COMMAND_LINE, algo=algo, batch_size=batch_size,
                               batch_nums=batches, skip_tensor_list=tuple(skip),
                               onnx_format=onnx_format)


@click.command("analyze")
@_data_options
@click.option("--eval", "eval_spec", required=True,
              help="Eval data the layers are measured on ('mnist', an .npz, an image folder).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Folder for sensitivity.json, sensitivity.md and sensitivity.png.")
@click.option("--top", type=NON_NEGATIVE, default=15, show_default=True,
              help="Layers shown in the terminal table (0: all).")
def analyze_command(model_dir, calib_spec, calib_limit, algo, calib_batch_size, calib_batches,
                    skip_list, onnx_format, eval_limit, mean, std, model_filename,
                    params_filename, eval_spec, out_dir, top) -> None:
    """Rank MODEL_DIR's layers by how much quantizing each one alone changes the output."""
    from quantkit.calibration.analysis import analyze_model
    from quantkit.calibration.sensitivity_report import markdown, write_sensitivity_reports
    from quantkit.model_files import check_inference_model

    with user_errors():
        config = command_config(algo, calib_batch_size, calib_batches, skip_list, onnx_format)
        model = check_inference_model(model_dir, model_filename, params_filename)
        calib_set, eval_set = load_data(model, calib_spec, calib_limit, eval_spec,
                                        eval_limit, mean, std)

        def progress(done: int, total: int, name: str) -> None:
            click.echo(f"  layer {done + 1}/{total}: {name}", err=True)

        report = analyze_model(model_dir, calib_set, eval_set, config, model_filename,
                               params_filename, on_layer=progress)
        click.echo(markdown(report, limit=top or None))
        if out_dir is not None:
            written = write_sensitivity_reports(report, out_dir)
            click.echo(f"reports: {', '.join(str(path) for path in written.values())}")


def budget_options(command):
    """--max-drop and --max-trials: the accuracy budget `calibrate` and `run` share."""
    command = click.option("--max-trials", type=POSITIVE, default=DEFAULT_MAX_TRIALS,
                           show_default=True,
                           help="Variants measured at most by --max-drop.")(command)
    return click.option("--max-drop", type=POINTS, default=None,
                        help="Accuracy budget in points vs FP32 on --eval (its task's metric: "
                             "box F1 or CER for zoo detection/recognition sets, top-1 with "
                             "labels, else disagreement): search algorithms and skip lists "
                             "until the drop is within it.")(command)


@click.command("calibrate")
@_data_options
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder for model.pdmodel + model.pdiparams (must not exist).")
@click.option("--eval", "eval_spec", default=None,
              help="Eval data for --max-drop ('mnist', an .npz, an image folder).")
@budget_options
def calibrate_command(model_dir, calib_spec, calib_limit, algo, calib_batch_size,
                      calib_batches, skip_list, onnx_format, eval_limit, mean, std,
                      model_filename, params_filename, out_dir, eval_spec, max_drop,
                      max_trials) -> None:
    """Calibrate MODEL_DIR to an INT8 Paddle model (optionally within an accuracy budget)."""
    from quantkit.calibration.analysis import calibrate_within_budget
    from quantkit.calibration.calibrate import calibrate, calibration_passes
    from quantkit.model_files import check_inference_model, refuse_quantized

    with user_errors(out_dir):
        if Path(out_dir).exists():
            raise QuantkitError(f"output folder exists: {out_dir} (choose a new one)")
        if max_drop is not None and eval_spec is None:
            raise QuantkitError("--max-drop needs eval data: add --eval")
        config = command_config(algo, calib_batch_size, calib_batches, skip_list, onnx_format)
        model = check_inference_model(model_dir, model_filename, params_filename)
        refuse_quantized(model)
        calib_set, eval_set = load_data(model, calib_spec, calib_limit, eval_spec,
                                        eval_limit, mean, std)
        if max_drop is not None:
            result = calibrate_within_budget(
                model_dir, calib_set, eval_set, out_dir, config, max_drop, max_trials,
                model_filename=model_filename, params_filename=params_filename,
                on_event=lambda message: click.echo(message, err=True))
            click.echo(result.summary())
        else:
            batches = calib_set.batch_count(config.batch_size, config.batch_nums)
            with click.progressbar(length=batches * calibration_passes(config),
                                   label=f"calibrating ({config.algo})",
                                   file=sys.stderr) as bar:
                calibrate(None, model_dir, out_dir, config,
                          data_loader=calib_set.reader(model.feeds, config.batch_size,
                                                       config.batch_nums),
                          model_filename=model_filename, params_filename=params_filename,
                          on_batch=lambda: bar.update(1))
        click.echo(f"quantized model: {out_dir}")
