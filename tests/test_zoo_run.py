"""`quantkit zoo`: the zoo file is checked before any work, and each PP-OCR model goes
through calibration and its targets at reduced size into one report scored with its task's
metric (boxes for the detector, text for the recogniser, labels for the classifier).

The quality bars of issue 13 are asserted by the INT8 quality tests; here the numbers must
exist, mean what their task says, and agree between results.json and zoo.md.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from quantkit.cli import main
from quantkit.errors import QuantkitError
from quantkit.zoo.config import load_zoo
from quantkit.zoo.run import ZOO_SUMMARY, check_zoo

REPO_ZOO = Path(__file__).parent.parent / "zoo.toml"


def _zoo(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "zoo.toml"
    path.write_text(text)
    return path


ENTRY = '''[[model]]
name = "{name}"
model = "{model}"
task = "{task}"
calib = "{calib}"
eval = "{eval}"
targets = {targets}
'''


def _entry(name="det", model="rapidocr:ch_PP-OCRv4_det_infer", task="detection",
           calib="zoo:ppocr-det-calib", eval="zoo:ppocr-det-eval",
           targets='["intel-onednn-int8"]'):
    return ENTRY.format(name=name, model=model, task=task, calib=calib, eval=eval,
                        targets=targets)


def test_the_repository_zoo_names_the_three_ppocr_models():
    zoo = load_zoo(REPO_ZOO)
    assert [(entry.name, str(entry.task)) for entry in zoo.models] == [
        ("ppocr-det", "detection"), ("ppocr-rec", "recognition"),
        ("ppocr-cls", "classification")]
    assert all(entry.model_dir().is_dir() for entry in zoo.models)


@pytest.mark.parametrize("text, message", [
    (_entry(task="segmentation"), "task"),
    (_entry(name="../up"), "model name"),
    (_entry() + _entry(), "names model 'det' twice"),
    (_entry(targets='["intel-onednn-int8", "intel-onednn-int8"]'), "lists a target twice"),
    (_entry(targets='["no-such-target"]'), "no-such-target"),
    (_entry(calib="zoo:ppocr-det-nope"), "unknown zoo data set 'ppocr-det-nope'"),
    (_entry(model="rapidocr:nope"), "unknown rapidocr model 'nope'"),
    (_entry(model="missing-folder"), "model folder not found"),
    ("[model]\nname = 1\n", "lists no models"),
    ("title = 'x'\n", "top-level key"),
])
def test_a_bad_zoo_file_is_refused_before_any_work(tmp_path, text, message):
    path = _zoo(tmp_path, text)
    with pytest.raises(QuantkitError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_zoo(path)


def test_the_command_refuses_on_one_line_and_writes_nothing(tmp_path):
    path = _zoo(tmp_path, _entry())
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["zoo", str(path), "--out", str(out), "--models", "cls"])
    assert result.exit_code == 2  # a user error (1: a target failed)
    assert result.output.strip().count("\n") == 0 and "no model 'cls'" in result.output
    assert not out.exists()


SMALL_ZOO = (
    _entry("ppocr-det", targets='["intel-onednn-int8", "onnxruntime-int8", '
                                '"intel-openvino-int8"]')
    + _entry("ppocr-rec", "rapidocr:ch_PP-OCRv4_rec_infer", "recognition",
             "zoo:ppocr-rec-calib", "zoo:ppocr-rec-eval", '["intel-onednn-int8"]')
    + _entry("ppocr-cls", "rapidocr:ch_ppocr_mobile_v2_cls_infer", "classification",
             "zoo:ppocr-cls-calib", "zoo:ppocr-cls-eval", '["onnxruntime-int8"]'))
TASK_METRICS = {"ppocr-det": ("box_f1_vs_truth", {"box_f1_vs_fp32", "map_iou"}),
                "ppocr-rec": ("cer_vs_truth", {"cer_vs_fp32", "step_agreement"}),
                "ppocr-cls": ("top1", {"argmax_agreement", "mean_abs_prob_diff"})}


@pytest.mark.slow
def test_each_zoo_model_runs_through_its_targets_into_one_report(tmp_path):
    path = _zoo(tmp_path, SMALL_ZOO)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "zoo", str(path), "--out", str(out), "--eval-limit", "4", "--calib-limit", "4",
        "--det-size", "160", "--iterations", "2", "--warmup", "1"])
    assert result.exit_code == 0, result.output
    merged = json.loads((out / "results.json").read_text())
    records = merged["records"]
    assert {(r["model"], r["target"]) for r in records} == {
        ("ppocr-det", "intel-cpu-fp32"), ("ppocr-det", "intel-onednn-int8"),
        ("ppocr-det", "onnxruntime-int8"), ("ppocr-det", "intel-openvino-int8"),
        ("ppocr-rec", "intel-cpu-fp32"), ("ppocr-rec", "intel-onednn-int8"),
        ("ppocr-cls", "intel-cpu-fp32"), ("ppocr-cls", "onnxruntime-int8")}
    assert all(r["status"] == "ok" for r in records), [r["error"] for r in records]
    for record in records:
        accuracy = record["accuracy"]
        headline, against_fp32 = TASK_METRICS[record["model"]]
        assert accuracy["metric"] == headline and accuracy["value"] is not None
        if record["target"] != "intel-cpu-fp32":
            assert against_fp32 <= set(accuracy["metrics"])
            assert accuracy["reference_value"] is not None
        if record["model"] != "ppocr-cls":  # an argmax over pixels or steps is no accuracy
            assert "top1" not in accuracy["metrics"]
            assert "argmax_agreement" not in accuracy["metrics"]
    models = merged["settings"]["models"]
    assert set(models) == {"ppocr-det", "ppocr-rec", "ppocr-cls"}
    assert all(models[name]["calibration_s"] > 0 for name in models)
    assert models["ppocr-det"]["eval_set"]["task"] == "detection"
    summary = (out / ZOO_SUMMARY).read_text()
    rows = [line for line in summary.splitlines() if line.startswith("| ppocr-")]
    assert len(rows) == len(records)
    for name in models:  # each model's own run folder and report
        assert (out / name / "run.json").is_file() and (out / name / "results.json").is_file()
    assert {entry["model"] for entry in merged["recommendation"]} == set(models)
