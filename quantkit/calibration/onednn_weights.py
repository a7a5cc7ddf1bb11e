"""Give oneDNN float weights for the quantized ops its INT8 pass leaves int8.

Run by calibration on every QDQ model it writes (deployable as written), and again by the
oneDNN adapter at conversion, for models calibrated elsewhere (e.g. by PaddleSlim).

A QDQ model stores each quantized weight as int8 behind a `dequantize_linear` op. Paddle
2.6's `quant_dequant_mkldnn_pass` removes every `dequantize_linear` but turns the weights
back into float only for conv2d, depthwise_conv2d, mul, matmul and matmul_v2. Any other
weight reader keeps raw int8 bytes: PP-OCR's DB detector head (two `conv2d_transpose`)
then fails inside `predictor.run()` ("trying to retrieve float32 ... int8 [operator <
conv2d_transpose > error]"), after `conv_transpose_bn_fuse_pass` has read those bytes as
float (weights ~1e38). Here such weights are dequantized once, as `dequantize_linear`
would, and their `dequantize_linear` ops removed: the op runs in FP32 on the
quantize-dequantized weight, which is what the QDQ program computes anyway.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from quantkit.calibration.qdq_program import fold_weights, loaded, save

ONEDNN_DEQUANTIZES = frozenset({"conv2d", "depthwise_conv2d", "mul", "matmul", "matmul_v2"})
"""Weight readers whose int8 weights `quant_dequant_mkldnn_pass` turns back into float
(`DequantizeWeights` in paddle/fluid/framework/ir/mkldnn/quant_dequant_mkldnn_pass.cc)."""


@dataclass(frozen=True)
class FloatWeightStats:
    """Which weights were stored back as float, and for which op types."""

    weights: tuple[str, ...]
    op_types: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"weights": list(self.weights), "op_types": list(self.op_types)}


def restore_float_weights(model_file: Path, params_file: Path) -> FloatWeightStats:
    """Rewrite the model and params files in place so no weight reaches oneDNN as int8.

    Files are only written when a weight needs it (callers pass a staging copy).
    """
    with loaded(model_file, params_file) as (program, scope, executor):
        folded, op_types = fold_weights(
            program, scope,
            fold=lambda readers: not any(r.type in ONEDNN_DEQUANTIZES for r in readers))
        if folded:
            save(program, executor, model_file, params_file)
    return FloatWeightStats(tuple(folded), tuple(sorted(op_types)))
