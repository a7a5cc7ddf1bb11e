"""Target adapters: from a (calibrated) Paddle model to what each hardware target runs."""
from __future__ import annotations

from quantkit.errors import QuantkitError


def adapter_for(backend: str):
    """The adapter of a profile's backend (imported on demand: each pulls its runtime)."""
    if backend == "paddle-inference":
        from quantkit.targets.paddle_inference import PaddleInferenceAdapter
        return PaddleInferenceAdapter()
    if backend == "tensorrt":
        from quantkit.targets.tensorrt import TensorRtAdapter
        return TensorRtAdapter()
    if backend == "paddle-lite":
        from quantkit.targets.paddle_lite import PaddleLiteAdapter
        return PaddleLiteAdapter()
    if backend == "onnxruntime":
        from quantkit.targets.onnx_runtime import OnnxRuntimeAdapter
        return OnnxRuntimeAdapter()
    raise QuantkitError(f"no adapter for backend {backend!r}")
