"""translate refuses, writing nothing, what it cannot translate faithfully."""
import json

import pytest

from quantkit.pir.errors import PirTransError
from quantkit.pir.translate import translate


def refuse(tmp_path, json_path, params_path, *needles):
    out = tmp_path / "out"
    with pytest.raises(PirTransError) as e:
        translate(json_path, params_path, out)
    msg = str(e.value)
    for n in needles:
        assert n in msg, msg
    assert "\n" not in msg
    assert not out.exists(), "wrote something while refusing"
    return msg


def test_op_outside_the_table(pir_models, tmp_path):
    m = pir_models["unsupported"]
    refuse(tmp_path, m / "model.json", m / "model.pdiparams",
           "outside the translation table", "pd_op.cumsum x1", "nothing written")


def test_control_flow(pir_models, tmp_path):
    m = pir_models["cond"]
    refuse(tmp_path, m / "model.json", m / "model.pdiparams", "control flow", "pd_op.if x1")


def test_corrupt_json(pir_models, tmp_path):
    bad = tmp_path / "model.json"
    bad.write_bytes((pir_models["allops"] / "model.json").read_bytes()[:5000])
    refuse(tmp_path, bad, pir_models["allops"] / "model.pdiparams", str(bad), "not valid JSON")


def test_json_without_params(pir_models, tmp_path):
    m = pir_models["allops"]
    refuse(tmp_path, m / "model.json", tmp_path / "missing.pdiparams",
           "cannot read the parameters file")


def test_params_of_another_model(pir_models, tmp_path):
    refuse(tmp_path, pir_models["allops"] / "model.json", pir_models["resnet18"] / "model.pdiparams",
           "wrong params file")


def test_attribute_outside_the_table(pir_models, tmp_path):
    doc = json.loads((pir_models["allops"] / "model.json").read_text())
    ops = doc["program"]["regions"][0]["blocks"][0]["ops"]
    conv = next(o for o in ops if o["#"] == "1.conv2d")
    conv["A"].append({"AT": {"#": "0.a_bool", "D": True}, "N": "fuse_relu"})
    bad = tmp_path / "model.json"
    bad.write_text(json.dumps(doc))
    refuse(tmp_path, bad, pir_models["allops"] / "model.pdiparams",
           "attribute(s) outside the translation table", "pd_op.conv2d.fuse_relu x1")


def test_non_constant_operand_for_an_attribute(pir_models, tmp_path):
    """pool2d's kernel_size must fold into legacy ksize; a computed one is refused."""
    doc = json.loads((pir_models["allops"] / "model.json").read_text())
    ops = doc["program"]["regions"][0]["blocks"][0]["ops"]
    shape_op = next(o for o in ops if o["#"] == "1.shape64")
    pool = next(o for o in ops if o["#"] == "1.pool2d")
    # make the kernel size come from a value computed later: move the pool's operand
    pool["I"][1]["%"] = ops[ops.index(pool) - 2]["O"][0]["%"]  # an f32 activation
    bad = tmp_path / "model.json"
    bad.write_text(json.dumps(doc))
    assert shape_op
    refuse(tmp_path, bad, pir_models["allops"] / "model.pdiparams", "pd_op.pool2d",
           "must be a constant")
