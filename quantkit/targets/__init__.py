"""Target adapters: from a (calibrated) Paddle model to what each hardware target runs.

One adapter per backend (`base.Adapter`), each in its own module and imported on demand:
each pulls its runtime (Paddle, ONNX Runtime, Paddle Lite), which a board may not have.
"""
from __future__ import annotations

import importlib

from quantkit.errors import QuantkitError

ADAPTERS = {  # backend name -> (module, class)
    "paddle-inference": ("quantkit.targets.paddle_inference", "PaddleInferenceAdapter"),
    "paddle3-inference": ("quantkit.targets.paddle3_inference", "Paddle3InferenceAdapter"),
    "tensorrt": ("quantkit.targets.tensorrt", "TensorRtAdapter"),
    "paddle-lite": ("quantkit.targets.paddle_lite", "PaddleLiteAdapter"),
    "onnxruntime": ("quantkit.targets.onnx_runtime", "OnnxRuntimeAdapter"),
    "openvino": ("quantkit.targets.openvino", "OpenVinoAdapter"),
}


def adapter_for(backend: str):
    """The adapter (`quantkit.targets.base.Adapter`) of a profile's backend."""
    if backend not in ADAPTERS:
        raise QuantkitError(f"no adapter for backend {backend!r} (known: "
                            f"{', '.join(ADAPTERS)})")
    module, name = ADAPTERS[backend]
    return getattr(importlib.import_module(module), name)()
