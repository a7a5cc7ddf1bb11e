"""Translate every test model, load it with Paddle 2.6.2, and measure equivalence."""
import collections
import hashlib
import os

import numpy as np
import pytest

from pir_models import rapidocr_models

from quantkit.pir.equivalence import check_equivalence
from quantkit.pir.pirjson import read_program
from quantkit.pir.translate import translate

SHAPES = {"ocr_cls": {"x": [2, 3, 48, 192]}, "ocr_det": {"x": [1, 3, 320, 320]},
          "ocr_rec": {"x": [2, 3, 48, 320]}}
MODELS = ["allops", "inplace", "mobilenet_v3_small", "resnet18", "ocr_cls", "ocr_det", "ocr_rec"]
OCR_DIRS = {"ocr_cls": "ch_ppocr_mobile_v2_cls_infer", "ocr_det": "ch_PP-OCRv4_det_infer",
            "ocr_rec": "ch_PP-OCRv4_rec_infer"}


def page_image(h, w):
    """A white page with dark text-like bars, normalised like PP-OCR (mean/std 0.5)."""
    img = np.ones((h, w), np.float32)
    rng = np.random.default_rng(3)
    for r in range(20, h - 20, 40):
        x0 = int(rng.integers(10, 60))
        for _ in range(6):
            ln = int(rng.integers(15, 45))
            img[r:r + 14, x0:x0 + ln] = 0.1
            x0 += ln + int(rng.integers(5, 15))
            if x0 > w - 50:
                break
    return np.repeat(((img - 0.5) / 0.5)[None, None], 3, axis=1)


@pytest.fixture(scope="module")
def translated(pir_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("legacy")
    cache = {}

    def get(name):
        if name not in cache:
            m = pir_models[name]
            out = root / name
            cache[name] = (translate(m / "model.json", m / "model.pdiparams", out), out)
        return cache[name]
    return get


@pytest.mark.parametrize("name", MODELS)
def test_translation_record(name, pir_models, translated):
    t, out = translated(name)
    src = pir_models[name] / "model.json"
    assert t.source_sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    prog = read_program(src)
    assert t.pir_op_counts == prog.op_counts()
    assert t.fetch_names == tuple(op.attrs["name"].value for op in prog.ops
                                  if op.name == "pd_op.fetch")
    assert [f[0] for f in t.feeds] == ["x"]
    assert t.legacy_op_counts["feed"] == 1 and t.legacy_op_counts["fetch"] == len(t.fetch_names)
    assert (out / "model.pdiparams").read_bytes() == (pir_models[name] / "model.pdiparams").read_bytes()
    assert sorted(os.listdir(out)) == ["model.pdiparams", "model.pdmodel"]


@pytest.mark.parametrize("name", sorted(OCR_DIRS))
def test_ocr_translation_has_the_original_legacy_ops(name, translated):
    """legacy -> PIR (Paddle 3) -> legacy (quantkit.pir) gives back the op multiset of the original."""
    from paddle.base.proto import framework_pb2
    t, _ = translated(name)
    d = framework_pb2.ProgramDesc()
    d.ParseFromString(open(os.path.join(rapidocr_models(), OCR_DIRS[name], "inference.pdmodel"), "rb").read())
    original = collections.Counter(op.type for op in d.blocks[0].ops)
    assert t.legacy_op_counts == dict(original)


@pytest.mark.parametrize("name", MODELS)
def test_loads_in_paddle_2_6_2_static(name, translated):
    import paddle
    t, out = translated(name)
    paddle.enable_static()
    try:
        exe = paddle.static.Executor(paddle.CPUPlace())
        prog, feeds, fetches = paddle.static.load_inference_model(
            str(out), exe, model_filename="model.pdmodel", params_filename="model.pdiparams")
        assert feeds == [f[0] for f in t.feeds]
        assert [v.name for v in fetches] == list(t.fetch_names)
        persist = sorted(v.name for v in prog.list_vars() if v.persistable
                         and v.name not in ("feed", "fetch"))
        assert len(persist) == len(set(persist))
    finally:
        paddle.disable_static()


@pytest.mark.parametrize("name", MODELS)
def test_equivalent_in_paddle_inference(name, pir_models, translated):
    _, out = translated(name)
    m = pir_models[name]
    inputs = {"x": page_image(320, 320)} if name == "ocr_det" else None
    eq = check_equivalence(m / "model.json", m / "model.pdiparams", out,
                           shapes=SHAPES.get(name), inputs=inputs)
    assert eq.max_abs_diff <= eq.tolerance
    assert eq.paddle_versions == ("3.3.1", "2.6.2")
    assert eq.output_range > 0


@pytest.mark.parametrize("name", ["allops", "inplace", "ocr_cls"])
def test_equivalent_in_static_executor(name, pir_models, translated):
    _, out = translated(name)
    m = pir_models[name]
    eq = check_equivalence(m / "model.json", m / "model.pdiparams", out,
                           shapes=SHAPES.get(name), runner="executor")
    assert eq.max_abs_diff <= eq.tolerance
