"""A calibrated QDQ program read as data: its scales, its int8 weights, its float twin.

quantkit's calibration writes a legacy Paddle program whose quantized tensors pass through
`quantize_linear` -> `dequantize_linear` pairs (activations) or are stored as int8 behind
a `dequantize_linear` (weights). Targets that do not run those ops as Paddle does need the
same calibration in another form: oneDNN needs some weights back in float
(`onednn_weights`), OpenVINO needs the float program plus the scales to place its own
FakeQuantize ops (`openvino`). Both edit the program here, in one way.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from quantkit.errors import QuantkitError
from quantkit.static_mode import static_mode

QUANTIZE, DEQUANTIZE = "quantize_linear", "dequantize_linear"


@dataclass
class QdqScales:
    """What calibration measured, by tensor name: the abs threshold T of each quantized
    activation (q = round(x / T * 127)), and each weight's int8 codes, per-channel T and
    channel axis."""

    activations: dict[str, float] = field(default_factory=dict)
    weights: dict[str, tuple[np.ndarray, np.ndarray, int]] = field(default_factory=dict)


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


@contextlib.contextmanager
def loaded(model_file: Path, params_file: Path) -> Iterator[tuple]:
    """(program, scope, executor) of a model file and its params file (any names, one
    folder), in a private scope."""
    import paddle

    model_file, params_file = Path(model_file), Path(params_file)
    if model_file.parent != params_file.parent:
        raise QuantkitError(f"{params_file}: expected the params file in the folder of "
                            f"{model_file}")
    with static_mode():
        scope = paddle.static.Scope()
        executor = paddle.static.Executor(paddle.CPUPlace())
        with paddle.static.scope_guard(scope):
            program, _, _ = paddle.static.load_inference_model(
                str(model_file.parent), executor, model_filename=model_file.name,
                params_filename=params_file.name)
            yield program, scope, executor


def save(program, executor, model_file: Path, params_file: Path) -> None:
    """The persistables as `save_inference_model` writes them (sorted by name), without its
    program normalisation, which would append another scale op to the output."""
    from paddle.static.io import _serialize_persistables

    program._sync_with_cpp()
    Path(model_file).write_bytes(program.desc.serialize_to_string())
    Path(params_file).write_bytes(_serialize_persistables(program, executor))


def read_scales(program, scope) -> QdqScales:
    block = program.global_block()
    scales = QdqScales()
    for op in block.ops:
        source = op.input("X")[0] if op.type in (QUANTIZE, DEQUANTIZE) else None
        if source is None:
            continue
        value = np.array(scope.find_var(op.input("Scale")[0]).get_tensor(), np.float32)
        persistable = block.has_var(source) and block.var(source).persistable
        if op.type == QUANTIZE and not persistable:
            scales.activations[source] = float(value.reshape(-1)[0])
        elif op.type == DEQUANTIZE and persistable:
            codes = np.array(scope.find_var(source).get_tensor())
            scales.weights[source] = (codes, value.reshape(-1), int(op.attr("quant_axis")))
    return scales


def fold_weights(program, scope, fold: Callable[[list], bool]) -> tuple[list[str], set[str]]:
    """Store weights back in float (as `dequantize_linear` computes them) where `fold(readers)`
    says so, and drop their dequantize ops; (weights folded, reader op types)."""
    import paddle

    block = program.global_block()
    readers = _readers(block)
    folded, op_types, drop = [], set(), []
    for index, op in enumerate(block.ops):
        if op.type != DEQUANTIZE:
            continue
        weight_name, out_name = op.input("X")[0], op.output("Y")[0]
        if not block.has_var(weight_name) or not block.var(weight_name).persistable:
            continue  # an activation's pair (drop_activation_pairs)
        consumers = readers.get(out_name, [])
        if not consumers or not fold(consumers):
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
    _remove_ops(block, drop)
    return folded, op_types


def drop_activation_pairs(program) -> int:
    """Remove every activation quantize/dequantize pair; readers read the float tensor."""
    block = program.global_block()
    producer_input = {op.output("Y")[0]: op.input("X")[0] for op in block.ops
                      if op.type == QUANTIZE}
    readers = _readers(block)
    drop = []
    for index, op in enumerate(block.ops):
        if op.type == QUANTIZE and not block.var(op.input("X")[0]).persistable:
            drop.append(index)
        elif op.type == DEQUANTIZE and op.input("X")[0] in producer_input:
            source = producer_input[op.input("X")[0]]
            for consumer in readers.get(op.output("Y")[0], []):
                consumer._rename_input(op.output("Y")[0], source)
            drop.append(index)
    _remove_ops(block, drop)
    return len(drop) // 2


def float_twin(model_file: Path, params_file: Path, out_dir: Path) -> QdqScales:
    """Write the calibrated model's float twin (no Q/DQ ops, weights as the QDQ program
    computes them) as out_dir/model.pdmodel + .pdiparams; return the scales it had."""
    from quantkit.files import PADDLE_MODEL_FILE, PADDLE_PARAMS_FILE

    with loaded(model_file, params_file) as (program, scope, executor):
        scales = read_scales(program, scope)
        if not scales.activations:
            raise QuantkitError(f"{model_file} holds no quantize_linear ops: not a QDQ "
                                "calibrated model (calibrate with --onnx-format)")
        fold_weights(program, scope, fold=lambda readers: True)
        drop_activation_pairs(program)
        leftover = sorted({op.type for op in program.global_block().ops
                           if op.type in (QUANTIZE, DEQUANTIZE)})
        if leftover:
            raise QuantkitError(f"{model_file}: {', '.join(leftover)} ops left after "
                                "removing the quantization pairs: an unexpected QDQ layout")
        save(program, executor, out_dir / PADDLE_MODEL_FILE, out_dir / PADDLE_PARAMS_FILE)
    return scales


def _readers(block) -> dict[str, list]:
    readers: dict[str, list] = {}
    for op in block.ops:
        for name in op.input_arg_names:
            readers.setdefault(name, []).append(op)
    return readers


def _remove_ops(block, drop: list[int]) -> None:
    """Remove ops by index, then the variables no remaining op reads or writes."""
    removed_names = set()
    for index in sorted(drop, reverse=True):
        removed = block.ops[index]
        removed_names.update(removed.input_arg_names + removed.output_arg_names)
        block._remove_op(index)
    still_used = {n for op in block.ops for n in op.input_arg_names + op.output_arg_names}
    for name in removed_names - still_used:
        if block.has_var(name):
            block._remove_var(name)
