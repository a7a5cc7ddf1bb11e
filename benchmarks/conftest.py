"""Benchmark fixtures: the demo's MobileNetV1 (FP32 and INT8), converted per target.

Uses `demo-output/` from `make demo` when present, else trains the same model (~3 min).
"""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory) -> tuple[Path, Path]:
    """(FP32 model dir with fp32.pdmodel, INT8 QDQ model dir with model.pdmodel)."""
    kept = ROOT / "demo-output"
    if (kept / "fp32" / "fp32.pdmodel").is_file() and (kept / "int8" / "model.pdmodel").is_file():
        return kept / "fp32", kept / "int8"
    from quantkit.demo.pipeline import DemoSettings, run_demo

    out = tmp_path_factory.mktemp("demo")
    run_demo(out, DemoSettings(eval_limit=500))
    return out / "fp32", out / "int8"
