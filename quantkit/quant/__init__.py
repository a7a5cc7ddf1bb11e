"""PaddleSlim-compatible quantization API (`import quantkit as slim; slim.quant...`)."""
from quantkit.quant.post_static import QuantizedModel, quant_post, quant_post_static

__all__ = ["QuantizedModel", "quant_post", "quant_post_static"]
