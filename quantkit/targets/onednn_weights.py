"""Give oneDNN float weights for the quantized ops its INT8 pass leaves int8.

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

import numpy as np

from quantkit.errors import QuantkitError
from quantkit.static_mode import static_mode

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


def dequantize_weight(weight: np.ndarray, scale: np.ndarray, bit_length: int,
                      quant_axis: int) -> np.ndarray:
    """Paddle's `dequantize_linear` on a stored weight: weight * scale / (2^(bits-1) - 1).

    One scale for the tensor, or one per slice along `quant_axis`.
    """
    scale = np.asarray(scale, dtype=np.float32).reshape(-1)
    values = np.asarray(weight).astype(np.float32)
    if scale.size > 1:
        shape = [1] * values.ndim
        shape[quant_axis % values.ndim] = scale.size
        scale = scale.reshape(shape)
    return (values * scale / float((1 << (bit_length - 1)) - 1)).astype(np.float32)


def restore_float_weights(model_file: Path, params_file: Path) -> FloatWeightStats:
    """Rewrite `name.pdmodel` + `name.pdiparams` in place so no weight reaches oneDNN as int8.

    Files are only written when a weight needs it (callers pass a staging copy).
    """
    import paddle

    if model_file.with_suffix(".pdiparams") != params_file:
        raise QuantkitError(f"{params_file}: expected the params file beside {model_file} "
                            "with the same name")
    with static_mode():
        scope = paddle.static.Scope()
        executor = paddle.static.Executor(paddle.CPUPlace())
        with paddle.static.scope_guard(scope):
            program, _, _ = paddle.static.load_inference_model(
                str(model_file.with_suffix("")), executor)
            stats = _fold(program, scope)
            if not stats.weights:
                return stats
            # The persistables as `save_inference_model` writes them (sorted by name), without
            # its program normalisation, which would append another scale op to the output.
            from paddle.static.io import _serialize_persistables

            program._sync_with_cpp()
            model_file.write_bytes(program.desc.serialize_to_string())
            params_file.write_bytes(_serialize_persistables(program, executor))
    return stats


def _fold(program, scope) -> FloatWeightStats:
    import paddle

    block = program.global_block()
    readers: dict[str, list] = {}
    for op in block.ops:
        for name in op.input_arg_names:
            readers.setdefault(name, []).append(op)
    folded, op_types, drop = [], set(), []
    for index, op in enumerate(block.ops):
        if op.type != "dequantize_linear":
            continue
        weight_name, out_name = op.input("X")[0], op.output("Y")[0]
        if not block.has_var(weight_name) or not block.var(weight_name).persistable:
            continue  # an activation's quantize/dequantize pair: oneDNN handles those
        consumers = readers.get(out_name, [])
        if not consumers or any(c.type in ONEDNN_DEQUANTIZES for c in consumers):
            continue
        if weight_name not in folded:  # a weight shared by two readers is stored once
            tensor = scope.find_var(weight_name).get_tensor()
            scale = np.array(scope.find_var(op.input("Scale")[0]).get_tensor())
            tensor.set(dequantize_weight(np.array(tensor), scale, int(op.attr("bit_length")),
                                         int(op.attr("quant_axis"))), paddle.CPUPlace())
            block.var(weight_name).desc.set_dtype(paddle.base.core.VarDesc.VarType.FP32)
            folded.append(weight_name)
        for consumer in consumers:
            consumer._rename_input(out_name, weight_name)
        op_types.update(c.type for c in consumers)
        drop.append(index)
    if not drop:
        return FloatWeightStats((), ())
    removed_inputs = set()
    for index in reversed(drop):
        removed = block.ops[index]
        removed_inputs.update(n for n in removed.input_arg_names
                              if n not in removed.input("X"))
        removed_inputs.update(removed.output_arg_names)
        block._remove_op(index)
    still_read = {n for op in block.ops for n in op.input_arg_names + op.output_arg_names}
    for name in removed_inputs - still_read:
        block._remove_var(name)
    return FloatWeightStats(tuple(folded), tuple(sorted(op_types)))
