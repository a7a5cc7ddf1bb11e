"""OpenVINO + NNCF's default PTQ: the yardstick every quantkit INT8 benchmark compares with.

The quantized model runs in quantkit's own OpenVINO predictor with the
`intel-openvino-int8` profile's compile settings, so only the quantization differs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from quantkit.targets.openvino import OpenVinoOptions, OpenVinoPredictor
from quantkit.targets.profile import load_profile


def nncf_int8(model_file: Path, calib: np.ndarray, out: Path) -> OpenVinoPredictor:
    """NNCF's default PTQ of `model_file` (a .pdmodel or .onnx) on the rows of `calib`, one
    row per sample as NNCF's examples feed them, saved in `out` and opened."""
    nncf = pytest.importorskip("nncf", reason="NNCF is the bench extra: pip install -e .[bench]")
    import openvino as ov

    dataset = nncf.Dataset([calib[i:i + 1] for i in range(len(calib))])
    quantized = nncf.quantize(ov.Core().read_model(str(model_file)), dataset,
                              subset_size=len(calib))
    Path(out).mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(Path(out) / "nncf.xml"), compress_to_fp16=False)
    profile = load_profile("intel-openvino-int8")
    return OpenVinoPredictor(Path(out) / "nncf.xml", OpenVinoOptions.from_profile(profile)
                             .compile_config(profile.threads))
