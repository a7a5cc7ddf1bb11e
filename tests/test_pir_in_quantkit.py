"""A Paddle 3 PIR model folder goes through quantkit as it is: translated once (cached by
content, checked against Paddle 3), calibrated, converted, run and packaged, with the PIR
source recorded at every stage; what cannot be translated is refused on one line."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from quantkit.errors import QuantkitError
from quantkit.files import PIR_SOURCE_RECORD
from quantkit.model_files import check_inference_model

pytestmark = pytest.mark.slow


@pytest.fixture()
def pir_cache(tmp_path, monkeypatch):
    """A fresh translation cache (the side envs stay where make test put them)."""
    from quantkit import sideenv

    monkeypatch.setenv(sideenv.ENVS_VARIABLE, str(sideenv.envs_root()))
    monkeypatch.setenv("QUANTKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "pir"


def test_a_pir_folder_is_translated_once_and_checked(pir_models, pir_cache, tmp_path):
    source = shutil.copytree(pir_models["mobilenet_v3_small"], tmp_path / "m")
    model = check_inference_model(source)
    assert model.model_dir.parent == pir_cache and model.given_dir == source
    assert "hard_swish" in model.op_types and model.feed_names == ("x",)
    record = model.pir_source
    assert record["source"]["model_file"] == str(source / "model.json")
    check = record["equivalence"]
    assert check["checked"] and check["max_abs_diff"] <= check["tolerance"]
    assert check["inputs"] == {"x": [2, 3, 224, 224]} and check["paddle"][0].startswith("3.")
    stamp = (model.model_dir / "model.pdmodel").stat().st_mtime_ns
    assert check_inference_model(source).model_dir == model.model_dir
    assert (model.model_dir / "model.pdmodel").stat().st_mtime_ns == stamp  # cached
    # new weights, same program: a new translation
    params = bytearray((source / "model.pdiparams").read_bytes())
    params[-1] ^= 1
    (source / "model.pdiparams").write_bytes(bytes(params))
    assert check_inference_model(source).model_dir != model.model_dir


def test_calibrate_convert_and_package_record_the_pir_source(pir_models, pir_cache, tmp_path):
    from quantkit.calibration.calibrate import calibrate
    from quantkit.calibration.config import CalibrationConfig
    from quantkit.packaging.bundle import package
    from quantkit.targets.convert import convert, open_artifact

    source = pir_models["resnet18"]
    images = np.random.default_rng(0).standard_normal((4, 3, 224, 224)).astype("float32")
    calibrated = calibrate(None, str(source), str(tmp_path / "q"),
                           CalibrationConfig(batch_size=2, batch_nums=2),
                           batch_generator=lambda: iter([images[:2], images[2:]])).path
    assert json.loads((calibrated / PIR_SOURCE_RECORD).read_text())["source"][
        "model_file"] == str(source / "model.json")
    artifact = convert(calibrated, "intel-onednn-int8", tmp_path / "a")
    recorded = json.loads((artifact.folder / "artifact.json").read_text())["pir_source"]
    assert recorded["source"]["model_sha256"] and recorded["equivalence"]["checked"]
    fp32 = convert(source, "intel-cpu-fp32", tmp_path / "f")
    assert fp32.pir_source == recorded
    logits = open_artifact(fp32.folder).run({"x": images[:2]})[0]
    assert logits.shape == (2, 1000) and np.isfinite(logits).all()
    bundle = package(fp32.folder, tmp_path / "bundles")
    assert json.loads((bundle / "model" / "artifact.json").read_text())["pir_source"] == \
        recorded


def _refused(model_dir, *needles, **files):
    with pytest.raises(QuantkitError) as error:
        check_inference_model(model_dir, **files)
    message = str(error.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


def test_an_op_outside_the_table_is_refused_by_name(pir_models, pir_cache):
    _refused(pir_models["unsupported"], "outside the translation table", "pd_op.cumsum x1",
             "OldIrGuard")
    assert not pir_cache.exists() or not any(pir_cache.iterdir())


def test_control_flow_is_refused(pir_models, pir_cache):
    _refused(pir_models["cond"], "control flow", "pd_op.if x1", "straight-line graph")


def test_corrupt_json_is_refused_naming_it(pir_models, pir_cache, tmp_path):
    folder = tmp_path / "corrupt"
    folder.mkdir()
    (folder / "model.json").write_bytes(
        (pir_models["allops"] / "model.json").read_bytes()[:5000])
    shutil.copyfile(pir_models["allops"] / "model.pdiparams", folder / "model.pdiparams")
    _refused(folder, str(folder / "model.json"), "not valid JSON")


def test_json_without_params_is_refused(pir_models, pir_cache, tmp_path):
    folder = tmp_path / "no-params"
    folder.mkdir()
    shutil.copyfile(pir_models["allops"] / "model.json", folder / "model.json")
    _refused(folder, "model.pdiparams are missing", "--params-filename")


def test_without_the_side_env_the_record_says_not_checked(pir_models, pir_cache, tmp_path,
                                                         monkeypatch, capsys):
    monkeypatch.setenv("QUANTKIT_ENVS", str(tmp_path / "no-envs"))
    model = check_inference_model(pir_models["inplace"])
    check = model.pir_source["equivalence"]
    assert not check["checked"] and "quantkit env install paddle3" in check["reason"]
    assert "not checked" in capsys.readouterr().err


INT8_TARGETS = ("intel-onednn-int8", "paddle3-onednn-int8", "onnxruntime-int8",
                "arm-lite-int8")
# (calibration rows, eval rows): the PP-OCR classifier reads its zoo crops; the seeded
# random-weight nets read seeded noise, on which only closeness to FP32 is meaningful.
PIR_INT8_CASES = {"ocr_cls": "zoo:ppocr-cls", "mobilenet_v3_small": None, "resnet18": None}


def _rows(spec, model, role, rows):
    from quantkit.data.sources import load_dataset

    if spec:
        return load_dataset(f"{spec}-{role}", model.feeds, limit=rows).inputs["x"]
    shape = (rows, *model.feeds[0].shape[1:])
    seed = 0 if role == "calib" else 1
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


@pytest.mark.parametrize("name", sorted(PIR_INT8_CASES))
def test_pir_models_calibrate_and_convert_for_every_int8_target(name, pir_models, pir_cache,
                                                               tmp_path):
    """As for legacy models: oneDNN and ONNX INT8 run close to the PIR model's FP32 (the
    translation is equivalent to it, checked), and the ARM .nb converts."""
    from quantkit.calibration.calibrate import calibrate
    from quantkit.calibration.config import CalibrationConfig
    from quantkit.metrics import cosine_mean
    from quantkit.targets.convert import convert, open_artifact
    from quantkit.targets.profile import load_profile
    from quantkit.targets import adapter_for

    source = pir_models[name]
    model = check_inference_model(source)
    assert model.pir_source["equivalence"]["checked"]
    calib = _rows(PIR_INT8_CASES[name], model, "calib", 8)
    images = _rows(PIR_INT8_CASES[name], model, "eval", 8)
    calibrated = calibrate(None, str(source), str(tmp_path / "q"),
                           CalibrationConfig(batch_size=4, batch_nums=2),
                           batch_generator=lambda: iter([calib[:4], calib[4:]])).path
    fp32 = open_artifact(convert(source, "intel-cpu-fp32", tmp_path / "fp32").folder)
    (expected,) = fp32.run({"x": images})
    for target in INT8_TARGETS:
        artifact = convert(calibrated, target, tmp_path / target)
        assert artifact.precision == "int8" and artifact.pir_source == model.pir_source
        profile = load_profile(target)
        if not adapter_for(profile.backend).availability(profile).can_run:
            continue  # the ARM .nb: converted, runs on a board
        (outputs,) = open_artifact(artifact.folder).run({"x": images})
        closeness = cosine_mean(outputs, expected)
        # measured on seeded noise: mobilenet_v3_small 0.966, resnet18 0.9999; ocr_cls 0.983
        assert closeness >= 0.95, f"{target}: cosine {closeness:.4f} to the PIR FP32 model"
        if PIR_INT8_CASES[name]:  # real crops: the classifier's answers stay
            assert (outputs.argmax(1) == expected.argmax(1)).mean() >= 7 / 8


def test_the_pir_classifier_calibrates_to_what_its_legacy_original_does(pir_models, pir_cache,
                                                                       tmp_path):
    """rapidocr's legacy classifier and its PIR re-save, calibrated on the same crops, give
    the same INT8 model: the same scales, so the same oneDNN INT8 outputs."""
    from quantkit.calibration.calibrate import calibrate
    from quantkit.calibration.config import CalibrationConfig
    from quantkit.datasets.text_crops import CLS_MODEL, rapidocr_model_dir
    from quantkit.targets.convert import convert, open_artifact

    pir = check_inference_model(pir_models["ocr_cls"])
    calib = _rows("zoo:ppocr-cls", pir, "calib", 8)
    images = _rows("zoo:ppocr-cls", pir, "eval", 8)
    outputs = []
    sources = (("pir", pir_models["ocr_cls"]), ("legacy", rapidocr_model_dir(CLS_MODEL)))
    for label, source in sources:
        calibrated = calibrate(None, str(source), str(tmp_path / label),
                               CalibrationConfig(batch_size=4, batch_nums=2),
                               batch_generator=lambda: iter([calib[:4], calib[4:]])).path
        artifact = convert(calibrated, "intel-onednn-int8", tmp_path / f"{label}-int8")
        outputs.append(open_artifact(artifact.folder).run({"x": images})[0])
    assert np.abs(outputs[0] - outputs[1]).max() <= 1e-6
