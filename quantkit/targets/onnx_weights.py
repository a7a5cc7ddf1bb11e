"""Store a QDQ model's weights as int8 initializers instead of float constants.

paddle2onnx 1.3.1 exports each quantized weight as a FLOAT constant wrapped in
QuantizeLinear -> DequantizeLinear, so the INT8 `.onnx` file is as large as the FP32 one.
The QuantizeLinear of a constant is itself a constant: we compute it once here (exactly as
ONNX defines it: round half to even, add the zero point, saturate) and feed the stored
integers straight into the DequantizeLinear. The graph computes the same numbers, and the
file shrinks ~4x. ONNX Runtime folds those Q nodes at load time anyway, so kernels and
speed are unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
import numpy as np

QUANT_TYPES = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255)}


@dataclass(frozen=True)
class WeightFoldStats:
    """What the rewrite did: how many weights, and bytes of float data replaced by integers."""

    weights_folded: int
    float_bytes_removed: int
    int_bytes_added: int
    skipped: tuple[str, ...] = ()  # QuantizeLinear nodes left alone, with the reason

    def to_dict(self) -> dict:
        return {"weights_folded": self.weights_folded,
                "float_bytes_removed": self.float_bytes_removed,
                "int_bytes_added": self.int_bytes_added,
                "skipped": list(self.skipped)}


def quantize_linear(weight: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None,
                    axis: int = 1) -> np.ndarray:
    """ONNX QuantizeLinear on a constant: per-tensor (scalar scale) or per-axis (1-D scale).

    A missing zero point means uint8 with zero point 0, as the operator's spec says.
    """
    out_dtype = np.dtype(np.uint8) if zero_point is None else np.asarray(zero_point).dtype
    if out_dtype not in QUANT_TYPES:
        raise ValueError(f"unsupported quantized type {out_dtype}")
    low, high = QUANT_TYPES[out_dtype]
    scale = np.asarray(scale, dtype=np.float32)
    zero = np.zeros_like(scale, dtype=np.int32) if zero_point is None \
        else np.asarray(zero_point).astype(np.int32)
    if scale.ndim == 1 and weight.ndim > 0:  # per-axis: broadcast along `axis`
        shape = [1] * weight.ndim
        shape[axis % weight.ndim] = scale.size
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    weight = np.asarray(weight, dtype=np.float32)
    # A scale of 0 is an all-zero channel (its abs max): it quantizes to the zero point, not
    # to 0/0 = NaN cast to an arbitrary integer (the PP-OCRv4 recogniser has such channels).
    scale, weight = np.broadcast_arrays(scale, weight)
    scaled = np.rint(np.divide(weight, scale, out=np.zeros(weight.shape, np.float32),
                               where=scale != 0))  # rint: half to even
    return np.clip(scaled + zero, low, high).astype(out_dtype)


def fold_weight_quantizers(model) -> WeightFoldStats:
    """Replace QuantizeLinear(constant float weight) by a precomputed integer initializer.

    Mutates `model` (an `onnx.ModelProto`) in place. Constants may be graph initializers
    or `Constant` nodes (paddle2onnx emits the latter); float constants left unused
    afterwards are dropped, which is where the size goes.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = _constant_values(graph)
    used_as_graph_output = {out.name for out in graph.output}
    folded, float_bytes, int_bytes = 0, 0, 0
    skipped: list[str] = []
    replaced: dict[str, str] = {}  # QuantizeLinear output -> new initializer name
    keep = []
    taken = _all_names(graph)
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] not in constants:
            keep.append(node)
            continue
        names = list(node.input) + [""] * (3 - len(node.input))
        weight_name, scale_name, zero_name = names[:3]
        if scale_name not in constants or (zero_name and zero_name not in constants):
            skipped.append(f"{node.name or node.output[0]}: scale or zero point not constant")
            keep.append(node)
            continue
        if node.output[0] in used_as_graph_output:
            skipped.append(f"{node.name or node.output[0]}: output is a graph output")
            keep.append(node)
            continue
        weight = constants[weight_name]
        zero_type = constants[zero_name].dtype if zero_name else np.dtype(np.uint8)
        if weight.dtype != np.float32 or zero_type not in QUANT_TYPES:
            skipped.append(f"{node.name or node.output[0]}: {weight.dtype} weight, "
                           f"{zero_type} zero point")
            keep.append(node)
            continue
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 1)
        quantized = quantize_linear(weight, constants[scale_name],
                                    constants[zero_name] if zero_name else None, axis)
        new_name = _unique(f"{weight_name}_quantized", taken)
        graph.initializer.append(numpy_helper.from_array(quantized, new_name))
        replaced[node.output[0]] = new_name
        folded += 1
        float_bytes += weight.nbytes
        int_bytes += quantized.nbytes
    del graph.node[:]
    graph.node.extend(keep)
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in replaced:
                node.input[index] = replaced[name]
    _drop_unused_constants(graph)
    return WeightFoldStats(folded, float_bytes, int_bytes, tuple(skipped))


def _constant_values(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 \
                and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _all_names(graph) -> set[str]:
    names = {init.name for init in graph.initializer}
    names.update(value.name for value in list(graph.input) + list(graph.output))
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
    return names


def _unique(name: str, taken: set[str]) -> str:
    candidate, index = name, 1
    while candidate in taken:
        candidate, index = f"{name}_{index}", index + 1
    taken.add(candidate)
    return candidate


def _drop_unused_constants(graph) -> None:
    """Remove Constant nodes and initializers nothing reads any more."""
    def consumed() -> set[str]:
        names = {out.name for out in graph.output}
        for node in graph.node:
            names.update(node.input)
        return names

    used = consumed()
    unused_nodes = [node for node in graph.node
                    if node.op_type == "Constant" and node.output[0] not in used]
    for node in unused_nodes:
        graph.node.remove(node)
    unused_inits = [init for init in graph.initializer if init.name not in used]
    for init in unused_inits:
        graph.initializer.remove(init)


def integer_initializers(model) -> list[str]:
    """Names of int8/uint8 initializers: how a test sees that weights are stored as integers."""
    from onnx import TensorProto

    return [init.name for init in model.graph.initializer
            if init.data_type in (TensorProto.INT8, TensorProto.UINT8)]
