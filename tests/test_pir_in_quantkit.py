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
