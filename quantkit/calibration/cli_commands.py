"""`quantkit calibrate` and `quantkit analyze`: thin click commands over quantkit.quant.

Registered in quantkit/cli.py. Exit codes: 0 ok, 2 a refusal (one line: what is wrong
and what to do), including an accuracy budget no trial met (the trials are listed).
"""
from __future__ import annotations

from pathlib import Path

import click

from quantkit.errors import QuantkitError, user_errors


def _data_options(command):
    """Calibration data, eval data and the calibration settings both commands share."""
    options = [
        click.argument("model_dir", type=click.Path(path_type=Path)),
        click.option("--calib", "calib_spec", required=True,
                     help="Calibration data: 'mnist-train', an .npz or an image folder."),
        click.option("--calib-limit", type=int, default=None,
                     help="Use the first N calibration rows."),
        click.option("--algo", default="hist", show_default=True,
                     help="Calibration algorithm (PaddleSlim's names)."),
        click.option("--calib-batch-size", type=int, default=32, show_default=True),
        click.option("--calib-batches", type=int, default=10, show_default=True),
        click.option("--skip", "skip_list", default="",
                     help="Comma-separated tensors (e.g. conv weights) to keep in float."),
        click.option("--onnx-format/--no-onnx-format", default=True, show_default=True,
                     help="QDQ (quantize_linear) ops, or the older fake-quant ops."),
        click.option("--eval-limit", type=int, default=None, help="Use the first N eval rows."),
        click.option("--mean", type=float, multiple=True,
                     help="Image-folder data: per-channel mean after scaling to [0,1]."),
        click.option("--std", type=float, multiple=True,
                     help="Image-folder data: per-channel std after scaling to [0,1]."),
        click.option("--model-filename", default=None, help="Program file inside MODEL_DIR."),
        click.option("--params-filename", default=None, help="Params file inside MODEL_DIR."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _load(model_dir, model_filename, params_filename, calib_spec, calib_limit, eval_spec,
          eval_limit, mean, std):
    from quantkit.benchmark.evalsets import load_eval_set
    from quantkit.model_files import check_inference_model

    feeds = check_inference_model(model_dir, model_filename, params_filename).feeds
    norm = dict(mean=list(mean) or None, std=list(std) or None)
    calib_set = load_eval_set(calib_spec, feeds, limit=calib_limit, **norm)
    eval_set = load_eval_set(eval_spec, feeds, limit=eval_limit, **norm) if eval_spec else None
    return calib_set, eval_set


def _config(algo, batch_size, batches, skip_list, onnx_format):
    from quantkit.calibration.config import CalibrationConfig

    skip = tuple(name.strip() for name in skip_list.split(",") if name.strip())
    return CalibrationConfig(algo=algo, batch_size=batch_size, batch_nums=batches,
                             skip_tensor_list=skip, onnx_format=onnx_format)


@click.command("analyze")
@_data_options
@click.option("--eval", "eval_spec", required=True,
              help="Eval data the layers are measured on ('mnist', an .npz, an image folder).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Folder for sensitivity.json, sensitivity.md and sensitivity.png.")
@click.option("--top", type=int, default=15, show_default=True,
              help="Layers shown in the terminal table.")
def analyze_command(model_dir, calib_spec, calib_limit, algo, calib_batch_size, calib_batches,
                    skip_list, onnx_format, eval_limit, mean, std, model_filename,
                    params_filename, eval_spec, out_dir, top) -> None:
    """Rank MODEL_DIR's layers by how much quantizing each one alone changes the output."""
    from quantkit.calibration.sensitivity_report import markdown, write_sensitivity_reports
    from quantkit.quant.analysis import analyze_model

    with user_errors():
        calib_set, eval_set = _load(model_dir, model_filename, params_filename, calib_spec,
                                    calib_limit, eval_spec, eval_limit, mean, std)
        config = _config(algo, calib_batch_size, calib_batches, skip_list, onnx_format)

        def progress(done: int, total: int, name: str) -> None:
            click.echo(f"  layer {done + 1}/{total}: {name}", err=True)

        report = analyze_model(model_dir, calib_set, eval_set, config, model_filename,
                               params_filename, on_layer=progress)
        click.echo(markdown(report, limit=top))
        if out_dir is not None:
            written = write_sensitivity_reports(report, out_dir)
            click.echo(f"reports: {', '.join(str(path) for path in written.values())}")


@click.command("calibrate")
@_data_options
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder for model.pdmodel + model.pdiparams (must not exist).")
@click.option("--eval", "eval_spec", default=None,
              help="Eval data for --max-drop ('mnist', an .npz, an image folder).")
@click.option("--max-drop", type=float, default=None,
              help="Accuracy budget in points (top-1 with labels, else disagreement with "
                   "FP32): search algorithms and skip lists until the drop is within it.")
@click.option("--max-trials", type=int, default=12, show_default=True,
              help="Variants measured at most by --max-drop.")
def calibrate_command(model_dir, calib_spec, calib_limit, algo, calib_batch_size,
                      calib_batches, skip_list, onnx_format, eval_limit, mean, std,
                      model_filename, params_filename, out_dir, eval_spec, max_drop,
                      max_trials) -> None:
    """Calibrate MODEL_DIR to an INT8 Paddle model (optionally within an accuracy budget)."""
    from quantkit.model_files import check_inference_model
    from quantkit.quant.analysis import calibrate_within_budget, data_set_batches
    from quantkit.quant.post_static import calibrate, calibration_passes

    with user_errors():
        if Path(out_dir).exists():
            raise QuantkitError(f"output folder exists: {out_dir} (choose a new one)")
        calib_set, eval_set = _load(model_dir, model_filename, params_filename, calib_spec,
                                    calib_limit, eval_spec, eval_limit, mean, std)
        config = _config(algo, calib_batch_size, calib_batches, skip_list, onnx_format)
        if max_drop is not None:
            result = calibrate_within_budget(
                model_dir, calib_set, eval_set, out_dir, config, max_drop, max_trials,
                model_filename=model_filename, params_filename=params_filename,
                on_event=lambda message: click.echo(message, err=True))
            click.echo(result.summary())
        else:
            model = check_inference_model(model_dir, model_filename, params_filename)
            batches = -(-calib_set.rows // config.batch_size)
            if config.batch_nums is not None:
                batches = min(batches, config.batch_nums)
            with click.progressbar(length=batches * calibration_passes(config),
                                   label=f"calibrating ({config.algo})",
                                   file=click.get_text_stream("stderr")) as bar:
                calibrate(None, model_dir, out_dir, config,
                          data_loader=data_set_batches(model, calib_set, config),
                          model_filename=model_filename, params_filename=params_filename,
                          on_batch=lambda: bar.update(1))
        click.echo(f"quantized model: {out_dir}")

