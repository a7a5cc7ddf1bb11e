"""The translation table: one entry per PIR op quantkit translates, as data.

Each entry says, for a PIR op (``pd_op.*`` / ``builtin.*``):
  legacy    the legacy (ProgramDesc) op type written for it ('' for ops that write nothing
            by themselves: builtin.combine/split, constants folded into attributes)
  inputs    one In per PIR operand, in operand order (Paddle 3 op signature order):
              slot         legacy input slot that takes the operand as a tensor
              vector       the operand is a vector value (builtin.combine) -> duplicable slot
              attr/fold    a constant operand (pd_op.full / full_int_array, or a combine of
                           them) folded into the legacy attribute ``attr``; fold says how:
                           'ints' (int list), 'int', 'float'
              tensor_slot  when not constant: legacy slot taking it as a 1-D tensor
              list_slot    when not constant and a builtin.combine: duplicable legacy slot
              optional     operand may be null (absent)
  outputs   one Out per PIR result, in order:
              slot         legacy output slot ('' = nothing written; the value must be unused)
              vector       the result is a vector (elements named by its builtin.split)
              alias        reuse the legacy variable of this PIR operand (legacy in-place,
                           e.g. batch_norm MeanOut is the Mean parameter)
  attrs     PIR attribute -> legacy attribute name, or (name, conversion), or None (dropped).
            Any PIR attribute not listed here (and not in IGNORED_ATTRS) makes translate refuse.
  fixed     legacy attributes set to constants (what Paddle 2.6.2's own layers write)
  xshape    the legacy op writes an XShape output (reshape2, transpose2, ...)
  inplace   PIR result -> PIR operand it overwrites (the ``op_`` variants): later uses of
            that operand read the result
  special   name of the hook in translate.py for the few ops whose legacy attributes are
            computed (feed/fetch, constants, reductions, cast, shape64)

Conversions: 'dtype' (PIR dtype name -> framework.proto VarType), 'dtype_or_-1'
(Undefined -> -1), 'dropout_mode', 'int32s' (int list clamped to int32, for slice
bounds), 'floats'.
Sources: Paddle's op_compat.yaml naming, Paddle 2.6.2 OpProtos (slot/attribute names, checked
by tests/test_pir_optable.py) and what Paddle 2.6.2's Python layers write for each op.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class In:
    """One PIR operand: the legacy input slot it fills, or the attribute it folds into."""

    name: str
    slot: str = ""
    vector: bool = False
    attr: str = ""
    fold: str = ""
    tensor_slot: str = ""
    list_slot: str = ""
    optional: bool = False


@dataclass(frozen=True)
class Out:
    """One PIR result: the legacy output slot it becomes (vector: one var per element)."""

    name: str
    slot: str = ""
    vector: bool = False
    alias: str = ""


@dataclass(frozen=True)
class Entry:
    pir: str
    legacy: str
    inputs: tuple
    outputs: tuple
    attrs: dict = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)
    xshape: bool = False
    inplace: dict = field(default_factory=dict)
    special: str = ""


# attributes every op may carry that carry no semantics for inference
IGNORED_ATTRS = frozenset({"struct_name", "op_callstack", "stop_gradient", "persistable"})

X = (In("x", "X"),)
OUT = (Out("out", "Out"),)
XY = (In("x", "X"), In("y", "Y"))
CONV_ATTRS = {"strides": "strides", "paddings": "paddings",
              "padding_algorithm": "padding_algorithm", "dilations": "dilations",
              "groups": "groups", "data_format": "data_format"}
INTERP_INPUTS = (In("x", "X"), In("out_size", "OutSize", optional=True),
                 In("size_tensor", "SizeTensor", vector=True, optional=True),
                 In("scale_tensor", "Scale", optional=True))
INTERP_ATTRS = {"data_format": "data_layout", "out_d": "out_d", "out_h": "out_h",
                "out_w": "out_w", "scale": ("scale", "floats"),
                "interp_method": "interp_method", "align_corners": "align_corners",
                "align_mode": "align_mode"}
REDUCE_INPUTS = (In("x", "X"), In("axis", attr="dim", fold="ints"))

_ENTRIES = [
    # --- structure -----------------------------------------------------------------
    Entry("builtin.parameter", "", (), (Out("out", "Out"),), special="parameter"),
    Entry("builtin.combine", "", (), (Out("out", "Out"),), special="combine"),
    Entry("builtin.split", "", (In("x", "X", vector=True),), (), special="split"),
    Entry("pd_op.data", "feed", (), OUT,
          {"name": None, "shape": None, "dtype": None, "place": None}, special="feed"),
    Entry("pd_op.feed", "feed", (), OUT, {"name": None, "col": None}, special="feed"),
    Entry("pd_op.fetch", "fetch", X, OUT, {"name": None, "col": None}, special="fetch"),
    Entry("pd_op.full", "fill_constant", (), OUT,
          {"shape": None, "value": None, "dtype": None, "place": None}, special="full"),
    Entry("pd_op.full_int_array", "assign_value", (), OUT,
          {"value": None, "dtype": None, "place": None}, special="full_int_array"),
    Entry("pd_op.assign", "assign", X, OUT),
    Entry("pd_op.shape", "shape", (In("input", "Input"),), OUT),
    Entry("pd_op.shape64", "shape", (In("input", "Input"),), OUT, special="shape64"),
    Entry("pd_op.cast", "cast", X, OUT, {"dtype": ("out_dtype", "dtype")}, special="cast"),
    # --- convolution / normalisation / pooling ---------------------------------------
    Entry("pd_op.conv2d", "conv2d", (In("input", "Input"), In("filter", "Filter")),
          (Out("out", "Output"),), CONV_ATTRS),
    Entry("pd_op.depthwise_conv2d", "depthwise_conv2d",
          (In("input", "Input"), In("filter", "Filter")), (Out("out", "Output"),), CONV_ATTRS),
    Entry("pd_op.conv2d_transpose", "conv2d_transpose",
          (In("x", "Input"), In("filter", "Filter"),
           In("output_size", attr="output_size", fold="ints")),
          (Out("out", "Output"),), dict(CONV_ATTRS, output_padding="output_padding")),
    Entry("pd_op.batch_norm_", "batch_norm",
          (In("x", "X"), In("mean", "Mean"), In("variance", "Variance"),
           In("scale", "Scale", optional=True), In("bias", "Bias", optional=True)),
          (Out("out", "Y"), Out("mean_out", "MeanOut", alias="mean"),
           Out("variance_out", "VarianceOut", alias="variance"),
           Out("saved_mean", "SavedMean"), Out("saved_variance", "SavedVariance"),
           Out("reserve_space")),
          {"is_test": "is_test", "momentum": "momentum", "epsilon": "epsilon",
           "data_format": "data_layout", "use_global_stats": "use_global_stats",
           "trainable_statistics": "trainable_statistics"}),
    Entry("pd_op.layer_norm", "layer_norm",
          (In("x", "X"), In("scale", "Scale", optional=True), In("bias", "Bias", optional=True)),
          (Out("out", "Y"), Out("mean", "Mean"), Out("variance", "Variance")),
          {"epsilon": "epsilon", "begin_norm_axis": "begin_norm_axis"}),
    Entry("pd_op.pool2d", "pool2d", (In("x", "X"), In("kernel_size", attr="ksize", fold="ints")),
          OUT, {"strides": "strides", "paddings": "paddings", "ceil_mode": "ceil_mode",
                "exclusive": "exclusive", "data_format": "data_format",
                "pooling_type": "pooling_type", "global_pooling": "global_pooling",
                "adaptive": "adaptive", "padding_algorithm": "padding_algorithm"}),
    Entry("pd_op.dropout", "dropout",
          (In("x", "X"), In("seed_tensor", "Seed", optional=True),
           In("p", attr="dropout_prob", fold="float")),
          (Out("out", "Out"), Out("mask", "Mask")),
          {"is_test": "is_test", "mode": ("dropout_implementation", "dropout_mode"),
           "seed": "seed", "fix_seed": "fix_seed"}),
    # --- activations -----------------------------------------------------------------
    Entry("pd_op.relu", "relu", X, OUT),
    Entry("pd_op.relu6", "relu6", X, OUT, fixed={"threshold": 6.0}),
    Entry("pd_op.sigmoid", "sigmoid", X, OUT),
    Entry("pd_op.tanh", "tanh", X, OUT),
    Entry("pd_op.hardswish", "hard_swish", X, OUT,
          fixed={"threshold": 6.0, "scale": 6.0, "offset": 3.0}),
    Entry("pd_op.hardsigmoid", "hard_sigmoid", X, OUT, {"slope": "slope", "offset": "offset"}),
    Entry("pd_op.swish", "swish", X, OUT, fixed={"beta": 1.0}),
    Entry("pd_op.silu", "silu", X, OUT),
    Entry("pd_op.gelu", "gelu", X, OUT, {"approximate": "approximate"}),
    Entry("pd_op.leaky_relu", "leaky_relu", X, OUT, {"negative_slope": "alpha"}),
    Entry("pd_op.hardtanh", "brelu", X, OUT, {"t_min": "t_min", "t_max": "t_max"}),
    Entry("pd_op.clip", "clip",
          (In("x", "X"), In("min", attr="min", fold="float", tensor_slot="Min"),
           In("max", attr="max", fold="float", tensor_slot="Max")), OUT),
    Entry("pd_op.softmax", "softmax", X, OUT, {"axis": "axis"}),
    Entry("pd_op.exp", "exp", X, OUT),
    Entry("pd_op.sqrt", "sqrt", X, OUT),
    Entry("pd_op.abs", "abs", X, OUT),
    Entry("pd_op.pow", "pow", X, OUT, {"y": "factor"}),
    Entry("pd_op.scale", "scale",
          (In("x", "X"), In("scale", attr="scale", fold="float", tensor_slot="ScaleTensor")),
          OUT, {"bias": "bias", "bias_after_scale": "bias_after_scale"}),
    # --- elementwise / matmul / reductions -------------------------------------------
    Entry("pd_op.add", "elementwise_add", XY, OUT, fixed={"axis": -1}),
    Entry("pd_op.subtract", "elementwise_sub", XY, OUT, fixed={"axis": -1}),
    Entry("pd_op.multiply", "elementwise_mul", XY, OUT, fixed={"axis": -1}),
    Entry("pd_op.divide", "elementwise_div", XY, OUT, fixed={"axis": -1}),
    Entry("pd_op.maximum", "elementwise_max", XY, OUT, fixed={"axis": -1}),
    Entry("pd_op.minimum", "elementwise_min", XY, OUT, fixed={"axis": -1}),
    Entry("pd_op.matmul", "matmul_v2", XY, OUT,
          {"transpose_x": "trans_x", "transpose_y": "trans_y"}),
    Entry("pd_op.mean", "reduce_mean", REDUCE_INPUTS, OUT, {"keepdim": "keep_dim"},
          special="reduce"),
    Entry("pd_op.max", "reduce_max", REDUCE_INPUTS, OUT, {"keepdim": "keep_dim"},
          special="reduce"),
    Entry("pd_op.sum", "reduce_sum", REDUCE_INPUTS, OUT,
          {"keepdim": "keep_dim", "dtype": ("out_dtype", "dtype_or_-1")}, special="reduce"),
    # --- shape manipulation -----------------------------------------------------------
    Entry("pd_op.reshape", "reshape2",
          (In("x", "X"), In("shape", attr="shape", fold="ints", tensor_slot="Shape",
                            list_slot="ShapeTensor")), OUT, xshape=True),
    Entry("pd_op.transpose", "transpose2", X, OUT, {"perm": "axis"}, xshape=True),
    Entry("pd_op.flatten", "flatten_contiguous_range", X, OUT,
          {"start_axis": "start_axis", "stop_axis": "stop_axis"}, xshape=True),
    Entry("pd_op.squeeze", "squeeze2", (In("x", "X"), In("axis", attr="axes", fold="ints")),
          OUT, xshape=True),
    Entry("pd_op.unsqueeze", "unsqueeze2",
          (In("x", "X"), In("axis", attr="axes", fold="ints", tensor_slot="AxesTensor",
                            list_slot="AxesTensorList")), OUT, xshape=True),
    Entry("pd_op.slice", "slice",
          (In("input", "Input"),
           In("starts", attr="starts", fold="int32s", tensor_slot="StartsTensor",
              list_slot="StartsTensorList"),
           In("ends", attr="ends", fold="int32s", tensor_slot="EndsTensor",
              list_slot="EndsTensorList")),
          OUT, {"axes": "axes", "infer_flags": "infer_flags", "decrease_axis": "decrease_axis"}),
    Entry("pd_op.concat", "concat",
          (In("x", "X", vector=True), In("axis", attr="axis", fold="int", tensor_slot="AxisTensor")),
          OUT),
    Entry("pd_op.split", "split",
          (In("x", "X"), In("sections", attr="sections", fold="ints",
                            list_slot="SectionsTensorList"),
           In("axis", attr="axis", fold="int", tensor_slot="AxisTensor")),
          (Out("out", "Out", vector=True),), fixed={"num": 0}),
    Entry("pd_op.split_with_num", "split",
          (In("x", "X"), In("axis", attr="axis", fold="int", tensor_slot="AxisTensor")),
          (Out("out", "Out", vector=True),), {"num": "num"}, fixed={"sections": []}),
    Entry("pd_op.stack", "stack", (In("x", "X", vector=True),), (Out("out", "Y"),),
          {"axis": "axis"}),
    Entry("pd_op.pad3d", "pad3d",
          (In("x", "X"), In("paddings", attr="paddings", fold="ints", tensor_slot="Paddings")),
          OUT, {"mode": "mode", "pad_value": "value", "data_format": "data_format"}),
    Entry("pd_op.nearest_interp", "nearest_interp_v2", INTERP_INPUTS, (Out("output", "Out"),),
          INTERP_ATTRS),
    Entry("pd_op.bilinear_interp", "bilinear_interp_v2", INTERP_INPUTS, (Out("output", "Out"),),
          INTERP_ATTRS),
]

# PIR in-place variants ("op_"): same translation; the result overwrites operand `x`, so
# later uses of that operand read the result.
INPLACE_OF = {
    "pd_op.relu_": ("pd_op.relu", "x"), "pd_op.relu6_": ("pd_op.relu6", "x"),
    "pd_op.sigmoid_": ("pd_op.sigmoid", "x"), "pd_op.tanh_": ("pd_op.tanh", "x"),
    "pd_op.hardswish_": ("pd_op.hardswish", "x"),
    "pd_op.hardsigmoid_": ("pd_op.hardsigmoid", "x"), "pd_op.swish_": ("pd_op.swish", "x"),
    "pd_op.leaky_relu_": ("pd_op.leaky_relu", "x"), "pd_op.hardtanh_": ("pd_op.hardtanh", "x"),
    "pd_op.clip_": ("pd_op.clip", "x"), "pd_op.exp_": ("pd_op.exp", "x"),
    "pd_op.sqrt_": ("pd_op.sqrt", "x"), "pd_op.abs_": ("pd_op.abs", "x"),
    "pd_op.pow_": ("pd_op.pow", "x"), "pd_op.scale_": ("pd_op.scale", "x"),
    "pd_op.add_": ("pd_op.add", "x"), "pd_op.subtract_": ("pd_op.subtract", "x"),
    "pd_op.multiply_": ("pd_op.multiply", "x"), "pd_op.divide_": ("pd_op.divide", "x"),
    "pd_op.cast_": ("pd_op.cast", "x"), "pd_op.reshape_": ("pd_op.reshape", "x"),
    "pd_op.flatten_": ("pd_op.flatten", "x"), "pd_op.squeeze_": ("pd_op.squeeze", "x"),
    "pd_op.unsqueeze_": ("pd_op.unsqueeze", "x"), "pd_op.assign_": ("pd_op.assign", "x"),
}


def _build():
    table = {e.pir: e for e in _ENTRIES}
    assert len(table) == len(_ENTRIES), "duplicate entry"
    # the non-inplace batch_norm has the same signature as batch_norm_
    bn = table["pd_op.batch_norm_"]
    table["pd_op.batch_norm"] = Entry("pd_op.batch_norm", bn.legacy, bn.inputs, bn.outputs,
                                      bn.attrs, bn.fixed, bn.xshape, bn.inplace, bn.special)
    for name, (base, operand) in INPLACE_OF.items():
        b = table[base]
        table[name] = Entry(name, b.legacy, b.inputs, b.outputs, b.attrs, b.fixed, b.xshape,
                            {b.outputs[0].name: operand}, b.special)
    return table


TABLE = _build()
