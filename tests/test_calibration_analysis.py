"""Sensitivity analysis, accuracy budget and their commands, on the small CNN of tests/data/paddle3.

The planted model adds 600 to one channel's bias in the first batch norm and divides the
matching depthwise filter by 600: downstream values stay ordinary, but the depthwise conv
(weight `conv2d_1.w_0`) now reads an outlier channel that a per-tensor activation scale
cannot hold, so quantizing that layer alone must hurt most.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import quantkit  # noqa: F401  - before paddle
from quantkit.data import Dataset
from quantkit.calibration.budget import search
from quantkit.calibration.config import CalibrationConfig
from quantkit.calibration.sensitivity import analyze, sqnr_db
from quantkit.calibration.sensitivity_report import write_sensitivity_reports
from quantkit.cli import main
from quantkit.errors import QuantkitError
from quantkit.model_files import check_inference_model
from quantkit.calibration.analysis import analyze_model, calibrate_within_budget, open_session
from quantkit.calibration.calibrate import calibrate

DATA = Path(__file__).parent / "data" / "paddle3"
MODEL, PARAMS = "model.pdmodel", "model.pdiparams"
PLANTED_LAYER = "conv2d_1.w_0"
PLANTED_SHIFT = 600.0
CONFIG = CalibrationConfig(algo="abs_max", batch_size=16, batch_nums=4)


def _images(seed: int, count: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = rng.random((count, 1, 28, 28), dtype=np.float32) ** 3
    images[:, :, 8:12, 4:24] += 0.7
    return images


def _data_set(name: str, seed: int, count: int, labelled: bool = False) -> Dataset:
    images = _images(seed, count)
    labels = (np.arange(count) % 10).astype(np.int64) if labelled else None
    return Dataset(name, name, {"image": images}, labels)


@pytest.fixture(scope="module")
def planted_model(tmp_path_factory) -> Path:
    """tests/data/paddle3 with batch_norm_0's bias 0 +600 and the depthwise filter 0 /600.

The depthwise conv's output is unchanged in float; only its input has an outlier channel.
"""
    import paddle

    out = tmp_path_factory.mktemp("planted")
    paddle.enable_static()
    try:
        scope, executor = paddle.static.Scope(), paddle.static.Executor(paddle.CPUPlace())
        with paddle.static.scope_guard(scope):
            program, feeds, fetches = paddle.static.load_inference_model(
                str(DATA / "model"), executor)
            bn = next(op for op in program.global_block().ops if op.type == "batch_norm")
            for name, change in ((bn.input("Bias")[0], lambda v: v + PLANTED_SHIFT),
                                 (PLANTED_LAYER, lambda v: v / PLANTED_SHIFT)):  # only its input is off
                tensor = scope.find_var(name).get_tensor()
                values = np.array(tensor)
                values[0] = change(values[0])
                tensor.set(values, paddle.CPUPlace())
            paddle.static.save_inference_model(
                str(out / "model"), [program.global_block().var(n) for n in feeds], fetches,
                executor, program=program)
    finally:
        paddle.disable_static()
    return out


@pytest.fixture(scope="module")
def session(planted_model):
    model = check_inference_model(planted_model)
    return open_session(model, _data_set("calib", 0, 64), CONFIG)


def test_the_planted_layer_ranks_first(session):
    eval_set = _data_set("eval", 1, 96, labelled=True)
    report = analyze(session, eval_set.inputs, eval_set.labels)
    assert [entry.layer for entry in report.layers][0] == PLANTED_LAYER
    sqnrs = [entry.error.sqnr_db for entry in report.layers]
    assert sqnrs == sorted(sqnrs) and len(sqnrs) == 4
    assert report.all_layers.sqnr_db < sqnrs[-1]  # everything quantized: worse than the mildest
    assert report.labelled and report.layers[0].error.top1 is not None


def test_every_layer_in_float_reproduces_fp32(session):
    inputs = _data_set("eval", 1, 32).inputs
    reference = session.outputs(inputs, quantized=False)
    in_float = session.outputs(inputs, skip=[layer.weight for layer in session.layers])
    np.testing.assert_allclose(in_float, reference, rtol=1e-5, atol=1e-6)  # oneDNN rounding


def test_a_session_variant_equals_the_saved_model(session, planted_model, tmp_path):
    """What the analysis measures is what quant_post_static writes for the same skip list."""
    import paddle

    calibrate(None, planted_model, tmp_path / "q", CONFIG,
              data_loader=_data_set("calib", 0, 64).reader(session.model.feeds, CONFIG.batch_size,
                                                           CONFIG.batch_nums))
    inputs = _data_set("eval", 1, 32).inputs
    paddle.enable_static()
    try:
        scope, executor = paddle.static.Scope(), paddle.static.Executor(paddle.CPUPlace())
        with paddle.static.scope_guard(scope):
            program, _, fetches = paddle.static.load_inference_model(
                str(tmp_path / "q" / "model"), executor)
            saved = executor.run(program, feed=inputs, fetch_list=fetches)[0]
    finally:
        paddle.disable_static()
    np.testing.assert_allclose(session.outputs(inputs, skip=()), saved, rtol=1e-4, atol=1e-4)


def test_sqnr_of_identical_and_noisy_outputs():
    reference = np.ones((4, 10))
    assert sqnr_db(reference, reference) == 150.0
    assert sqnr_db(reference * 1.1, reference) == pytest.approx(20.0)
    assert sqnr_db(np.full((4, 10), np.nan), reference) == -150.0


def test_reports_are_written(session, tmp_path):
    eval_set = _data_set("eval", 1, 32)
    report = analyze(session, eval_set.inputs)
    written = write_sensitivity_reports(report, tmp_path)
    data = json.loads(written["json"].read_text())
    assert data["layers"][0]["layer"] == PLANTED_LAYER and not data["labelled"]
    assert f"| 1 | `{PLANTED_LAYER}` |" in written["markdown"].read_text()
    from PIL import Image

    assert PLANTED_LAYER in Image.open(written["plot"]).info["Description"]


def test_budget_met_by_the_first_algo_needs_one_trial(session, planted_model):
    eval_set = _data_set("eval", 1, 32)
    result, chosen = search(lambda config: session, CONFIG, eval_set.inputs, None,
                            max_drop=100.0)
    assert result.met and len(result.trials) == 1 and chosen is session
    assert result.chosen.skip == () and result.chosen.algo == "abs_max"


def test_a_tight_budget_keeps_the_planted_layer_in_float(planted_model, tmp_path):
    calib, eval_set = _data_set("calib", 0, 64), _data_set("eval", 1, 96)
    result = calibrate_within_budget(planted_model, calib, eval_set, tmp_path / "q", CONFIG,
                                     max_drop=0.0, algos=("abs_max",), max_trials=5)
    assert result.met and result.ranking[0] == PLANTED_LAYER
    assert PLANTED_LAYER in result.chosen.skip
    assert result.trials[0].drop_points > 0.0  # everything quantized was not within budget
    record = json.loads((tmp_path / "q" / "budget.json").read_text())
    assert record["met"] and record["chosen"]["skip"] == list(result.chosen.skip)
    assert (tmp_path / "q" / "model.pdmodel").is_file()


def test_a_budget_no_trial_meets_is_refused_and_writes_nothing(planted_model, tmp_path):
    calib, eval_set = _data_set("calib", 0, 64), _data_set("eval", 1, 96)
    with pytest.raises(QuantkitError, match=r"no trial met the budget"):
        calibrate_within_budget(planted_model, calib, eval_set, tmp_path / "q", CONFIG,
                                max_drop=0.0, algos=("abs_max",), max_trials=1)
    assert not (tmp_path / "q").exists()


def test_budget_needs_eval_data(planted_model, tmp_path):
    with pytest.raises(QuantkitError, match="needs eval data"):
        calibrate_within_budget(planted_model, _data_set("c", 0, 32), None, tmp_path / "q",
                                CONFIG, max_drop=1.0)


def test_analyze_refuses_a_core_only_algo(planted_model):
    with pytest.raises(QuantkitError, match="ptf"):
        analyze_model(planted_model, _data_set("c", 0, 32), _data_set("e", 1, 8),
                      CalibrationConfig(algo="ptf", batch_size=16))


def _npz(path: Path, data_set: Dataset) -> Path:
    arrays = dict(data_set.inputs)
    if data_set.labels is not None:
        arrays["labels"] = data_set.labels
    np.savez(path, **arrays)
    return path


def test_analyze_and_calibrate_commands(planted_model, tmp_path):
    calib = _npz(tmp_path / "calib.npz", _data_set("c", 0, 64))
    evals = _npz(tmp_path / "eval.npz", _data_set("e", 1, 48))
    runner = CliRunner()
    analyzed = runner.invoke(main, ["analyze", str(planted_model), "--calib", str(calib),
                                    "--eval", str(evals), "--algo", "abs_max",
                                    "--calib-batch-size", "16", "--calib-batches", "4",
                                    "--out", str(tmp_path / "report")])
    assert analyzed.exit_code == 0, analyzed.output
    assert f"| 1 | `{PLANTED_LAYER}` |" in analyzed.output
    assert (tmp_path / "report" / "sensitivity.png").is_file()
    budgeted = runner.invoke(main, ["calibrate", str(planted_model), "--calib", str(calib),
                                    "--eval", str(evals), "--algo", "abs_max",
                                    "--calib-batch-size", "16", "--max-drop", "0",
                                    "--out", str(tmp_path / "q")])
    assert budgeted.exit_code == 0, budgeted.output
    assert "<- chosen" in budgeted.output and (tmp_path / "q" / "budget.json").is_file()
    plain = runner.invoke(main, ["calibrate", str(planted_model), "--calib", str(calib),
                                 "--out", str(tmp_path / "plain"), "--skip", "conv2d_1.w0"])
    assert plain.exit_code == 2 and "did you mean 'conv2d_1.w_0'" in plain.output
    assert not (tmp_path / "plain").exists()


def test_run_with_a_budget_records_the_search(planted_model, tmp_path):
    from quantkit.benchmark.jobs import MeasureSettings
    from quantkit.pipeline import RunSettings, run

    settings = RunSettings(calibration=CONFIG, max_drop=0.0, max_trials=5,
                           measure=MeasureSettings(batch_sizes=(1,), warmup=1, iterations=3))
    run(planted_model, _data_set("calib", 0, 64), ["intel-onednn-int8"], tmp_path / "run",
        _data_set("eval", 1, 96), settings)
    record = json.loads((tmp_path / "run" / "calibrated" / "budget.json").read_text())
    assert record["met"] and PLANTED_LAYER in record["chosen"]["skip"]
    run_record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run_record["accuracy_budget"]["max_drop"] == 0.0


def test_a_variant_with_an_unknown_skip_entry_is_refused(session):
    with pytest.raises(QuantkitError, match=r"'conv2d_1.w0' \(did you mean 'conv2d_1.w_0'"):
        session.outputs(_data_set("eval", 1, 8).inputs, skip=["conv2d_1.w0"])


def test_a_budget_checks_the_drop_it_is_given(session):
    """A task's drop (CER, box F1) replaces argmax disagreement: the search obeys it."""
    inputs = _data_set("eval", 1, 16).inputs
    seen = []

    def drop_of(outputs, reference):
        seen.append((outputs.shape, reference.shape))
        return 7.0

    result, chosen = search(lambda config: session, CONFIG, inputs, None, max_drop=7.0,
                            drop_of=drop_of)
    assert result.met and chosen is session and result.chosen.drop_points == 7.0
    assert seen == [((16, 10), (16, 10))]
    result, chosen = search(lambda config: session, CONFIG, inputs, None, max_drop=6.9,
                            algos=("abs_max",), max_trials=2, drop_of=drop_of)
    assert not result.met and chosen is None and len(result.trials) == 2


def test_zoo_recognition_and_detection_sets_budget_on_their_task_metric():
    from quantkit.calibration.analysis import task_drop

    lines = Dataset("rec", "rec", {"x": np.zeros((2, 3, 48, 320), np.float32)}, None,
                    truth=("ab", "c"), extra={"task": "recognition"})
    assert task_drop(lines) is not None
    assert task_drop(_data_set("eval", 1, 4)) is None  # no task: top-1 or disagreement
    assert task_drop(_data_set("eval", 1, 4), "detection") is not None
    assert task_drop(lines, "classification") is None


def test_variants_run_in_batches_of_about_a_megabyte_of_input():
    """64 recogniser lines in one simulated-quantization run peaked at 19 GB of RSS."""
    from quantkit.calibration.session import eval_rows

    assert eval_rows({"image": np.zeros((256, 1, 28, 28), np.float32)}) == 64
    assert eval_rows({"x": np.zeros((128, 3, 48, 320), np.float32)}) == 5
    assert eval_rows({"x": np.zeros((2, 3, 640, 640), np.float32)}) == 1


def test_freed_heap_pages_go_back_to_the_system():
    import platform

    from quantkit.native_memory import release_freed_memory

    assert release_freed_memory() is (platform.libc_ver()[0] == "glibc")
