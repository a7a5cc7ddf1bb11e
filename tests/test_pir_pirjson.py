import json

import pytest

from quantkit.pir.errors import PirTransError
from quantkit.pir.params import read_params_header
from quantkit.pir.pirjson import TensorType, VectorType, read_program


def test_reads_a_real_file(pir_models):
    p = read_program(pir_models["allops"] / "model.json")
    assert p.version == 4 and len(p.sha256) == 64
    counts = p.op_counts()
    assert counts["pd_op.data"] == 1 and counts["pd_op.fetch"] == 5
    params = [op for op in p.ops if op.name == "builtin.parameter"]
    assert params and all(op.param_name for op in params)
    assert any(isinstance(t, VectorType) for t in p.types.values())  # combine / split
    data = next(op for op in p.ops if op.name == "pd_op.data")
    assert p.types[data.results[0]] == TensorType("float32", (-1, 3, 16, 16))
    assert data.attrs["name"].value == "x"


def test_params_header_matches_parameters(pir_models):
    for name in ("allops", "ocr_rec"):
        p = read_program(pir_models[name] / "model.json")
        params = sorted((op.param_name, p.types[op.results[0]]) for op in p.ops
                        if op.name == "builtin.parameter")
        stored = read_params_header(pir_models[name] / "model.pdiparams")
        assert [(t.dtype, t.shape) for _, t in params] == [(s.dtype, s.shape) for s in stored]


def _write(tmp_path, text, name="model.json"):
    f = tmp_path / name
    f.write_text(text) if isinstance(text, str) else f.write_bytes(text)
    return f


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s[: len(s) // 2], "not valid JSON"),
    (lambda s: "\x00\xff garbage", "not valid JSON"),
    (lambda s: json.dumps([1, 2]), "not a PIR program json"),
    (lambda s: s.replace('"magic":"pir"', '"magic":"xyz"'), "not a PIR program json"),
    (lambda s: s.replace('"version":4', '"version":99'), "version 99 is not supported"),
])
def test_corrupt_json_names_the_file(pir_models, tmp_path, mutate, message):
    text = json.dumps(json.loads((pir_models["allops"] / "model.json").read_text()),
                      separators=(",", ":"))
    bad = _write(tmp_path, mutate(text))
    with pytest.raises(PirTransError) as e:
        read_program(bad)
    assert str(bad) in str(e.value) and message in str(e.value)
    assert "\n" not in str(e.value)


def test_use_before_definition(pir_models, tmp_path):
    doc = json.loads((pir_models["allops"] / "model.json").read_text())
    ops = doc["program"]["regions"][0]["blocks"][0]["ops"]
    conv = next(o for o in ops if o["#"] == "1.conv2d")
    conv["I"][0]["%"] = 999999
    bad = _write(tmp_path, json.dumps(doc))
    with pytest.raises(PirTransError, match="used before it is defined"):
        read_program(bad)


def test_missing_file(tmp_path):
    with pytest.raises(PirTransError, match="cannot read the PIR json"):
        read_program(tmp_path / "nope.json")


def test_corrupt_params(tmp_path):
    f = tmp_path / "x.pdiparams"
    f.write_bytes(b"\x00" * 5)
    with pytest.raises(PirTransError, match="not a combined Paddle parameters file"):
        read_params_header(f)
