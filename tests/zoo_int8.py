"""A zoo model calibrated as zoo.toml says, its held-out set and FP32's outputs on it.

The INT8 quality tests of the PP-OCR models (tests/test_ppocr_*_int8_quality.py and the
mixed-crop classifier test) start from the same three things; zoo.toml's entry decides the
calibration (algo, batches) so the tests measure what `make zoo` ships.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from quantkit.calibration.calibrate import calibrate
from quantkit.data import CALIBRATION, EVAL, Dataset
from quantkit.data.sources import load_dataset
from quantkit.model_files import check_inference_model
from quantkit.targets.convert import convert, open_artifact
from quantkit.zoo.config import load_zoo
from quantkit.zoo.run import zoo_calibration

ZOO = Path(__file__).resolve().parents[1] / "zoo.toml"
FILES = {"model_filename": "inference.pdmodel", "params_filename": "inference.pdiparams"}


class ZooInt8(NamedTuple):
    calibrated: Path  # the folder quant_post_static / quantkit calibrate writes
    held_out: Dataset
    reference: np.ndarray  # FP32 (intel-onednn-fp32) outputs on held_out


def calibrated_as_zoo(name: str, root: Path, calib_limit: int | None = None,
                      eval_batch: int = 16) -> ZooInt8:
    entry = load_zoo(ZOO).named(name)
    config = zoo_calibration(entry)
    model_dir = entry.model_dir()
    feeds = check_inference_model(model_dir, **FILES).feeds
    calib = load_dataset(entry.calib, feeds, CALIBRATION, limit=calib_limit).inputs["x"]
    step = config.batch_size
    batches = [{"x": calib[i:i + step]} for i in range(0, len(calib), step)]
    calibrated = calibrate(None, model_dir, root / "int8", config, data_loader=batches,
                           **FILES).path
    held_out = load_dataset(entry.eval, feeds, EVAL)
    fp32 = open_artifact(convert(model_dir, "intel-onednn-fp32", root / "fp32", **FILES).folder)
    reference = np.concatenate([fp32.run(rows)[0] for rows in held_out.batches(eval_batch)])
    return ZooInt8(Path(calibrated), held_out, reference)
