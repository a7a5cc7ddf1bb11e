"""Paddle 3 PIR test models, made once per session in the paddle3 side environment.

`tests/pir/make_pir_models.py` saves seeded nets with Paddle 3.3.1's defaults (PIR json +
pdiparams) and re-saves rapidocr's PP-OCR models as PIR; the main env never imports Paddle 3.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

MAKER = Path(__file__).parent / "pir" / "make_pir_models.py"
MODEL_NAMES = ["allops", "inplace", "cond", "unsupported", "mobilenet_v3_small", "resnet18",
               "ocr_cls", "ocr_det", "ocr_rec"]


def rapidocr_models() -> Path:
    from quantkit.datasets.text_crops import CLS_MODEL, rapidocr_model_dir

    return rapidocr_model_dir(CLS_MODEL).parent


def paddle3_python() -> Path:
    from quantkit import sideenv

    if not sideenv.ready("paddle3"):
        pytest.skip("the paddle3 side environment is missing: 'quantkit env install paddle3' "
                    "(make test installs it)")
    return sideenv.python_of("paddle3")


def make_models(root: Path) -> dict[str, Path]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([str(paddle3_python()), str(MAKER), str(rapidocr_models()),
                           str(root), *MODEL_NAMES], capture_output=True, text=True,
                          env=dict(env, GLOG_minloglevel="2"), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    made = {json.loads(line)["name"] for line in done.stdout.splitlines()
            if line.startswith("{")}
    assert made == set(MODEL_NAMES)
    return {name: root / name for name in MODEL_NAMES}
