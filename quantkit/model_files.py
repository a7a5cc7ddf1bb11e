"""Find a Paddle inference model on disk and refuse what quantkit cannot work on, before any work.

Checks run on the files alone (protobuf parsing, byte counts), so a corrupt model gives a
one-line error instead of a native crash inside Paddle, and nothing is written on failure.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from quantkit.data.feeds import FeedSpec
from quantkit.errors import QuantkitError
from quantkit.files import PADDLE_MODEL_FILE, PADDLE_PARAMS_FILE, PIR_SOURCE_RECORD
from quantkit.records import read_json

# Ops that carry control flow. Any op with a sub-block attribute counts too.
CONTROL_FLOW_OPS = frozenset({
    "conditional_block", "conditional_block_infer", "while", "recurrent", "select_input",
    "select_output", "pylayer", "static_pylayer", "cond", "if", "switch_case",
})

_PIR_RESAVE_HINT = (
    "or re-export it in the legacy format: run the export script with FLAGS_enable_pir_api=0 "
    "(inside Python, wrap the save in 'with paddle.pir_utils.OldIrGuard():'), so "
    "paddle.jit.save / paddle.static.save_inference_model write model.pdmodel + "
    "model.pdiparams")


@dataclass(frozen=True)
class InferenceModel:
    """A checked inference model: where its files are and what its program holds."""

    model_dir: Path
    model_file: Path
    params_file: Path | None  # None: parameters saved one file per variable
    op_types: tuple[str, ...]
    feeds: tuple[FeedSpec, ...]
    fetch_names: tuple[str, ...]
    source_dir: Path | None = None  # the folder the user named, if not model_dir (PIR)
    pir_source: dict | None = None  # the PIR model this one was translated from (record)

    @property
    def given_dir(self) -> Path:
        """The folder the user named: what `--force` must never delete."""
        return self.source_dir or self.model_dir

    @property
    def quantized(self) -> bool:
        """Holds quantize ops from PTQ (QDQ `quantize_linear` or the old fake_quantize form)."""
        return any(op in ("quantize_linear", "dequantize_linear") or op.startswith("fake_")
                   for op in self.op_types)

    @property
    def qdq(self) -> bool:
        """Quantized in QDQ form (onnx_format=True), which ONNX and OpenVINO can read."""
        return "quantize_linear" in self.op_types

    @property
    def feed_names(self) -> tuple[str, ...]:
        return tuple(feed.name for feed in self.feeds)

    @property
    def model_filename(self) -> str:
        return self.model_file.name

    @property
    def params_filename(self) -> str | None:
        return self.params_file.name if self.params_file else None


def locate_model_files(model_dir: str | Path, model_filename: str | None = None,
                       params_filename: str | None = None) -> tuple[Path, Path | None]:
    """Resolve the program and parameter files the way `load_inference_model` would.

    With no file names given, a folder holding exactly one `*.pdmodel` uses it and its
    `*.pdiparams` twin (the common PaddleSlim call with `model_filename=None`). A Paddle 3
    PIR program (`*.json`) resolves to its legacy translation (`quantkit.pir.cache`).
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise QuantkitError(f"model folder not found: {model_dir}")
    if model_filename is None:
        candidates = sorted(model_dir.glob("*.pdmodel"))
        if (model_dir / "__model__").is_file():
            model_file = model_dir / "__model__"
        elif len(candidates) == 1:
            model_file = candidates[0]
            if params_filename is None and model_file.with_suffix(".pdiparams").exists():
                params_filename = model_file.with_suffix(".pdiparams").name
        elif candidates:
            raise QuantkitError(
                f"{model_dir} holds several models ({', '.join(p.name for p in candidates)}): "
                "pass --model-filename and --params-filename (model_filename=, params_filename= in "
                "Python)")
        else:
            pir = [path for path in sorted(model_dir.glob("*.json")) if _looks_like_pir(path)]
            if len(pir) == 1:
                return _translated(pir[0], params_filename)
            if pir:
                raise QuantkitError(
                    f"{model_dir} holds several PIR programs ({', '.join(p.name for p in pir)})"
                    ": pass --model-filename and --params-filename")
            raise QuantkitError(f"no model file in {model_dir}: expected a *.pdmodel file "
                                "(legacy program) or a *.json file (Paddle 3 PIR program)")
    else:
        model_file = model_dir / model_filename
        if not model_file.is_file():
            raise QuantkitError(f"model file not found: {model_file}")
        if model_file.suffix == ".json":
            if not _looks_like_pir(model_file):
                raise QuantkitError(f"{model_file} is not a Paddle 3 PIR program (no "
                                    "'base_code'/'program' at its start)")
            return _translated(model_file, params_filename)
    params_file = model_dir / params_filename if params_filename else None
    if params_file is not None and not params_file.is_file():
        raise QuantkitError(f"params file not found: {params_file}")
    return model_file, params_file


def _translated(json_file: Path, params_filename: str | None) -> tuple[Path, Path]:
    """The legacy translation's files of a PIR program (translated once, then cached)."""
    from quantkit.pir.cache import legacy_twin
    from quantkit.pir.errors import PirTransError

    params_file = json_file.parent / (params_filename or json_file.with_suffix(".pdiparams").name)
    if not params_file.is_file():
        raise QuantkitError(f"{json_file} is a PIR program but its parameters "
                            f"{params_file.name} are missing: PIR models keep weights in a "
                            "*.pdiparams file next to the *.json; pass --params-filename")
    try:
        twin = legacy_twin(json_file, params_file)
    except PirTransError as exc:
        raise QuantkitError(f"cannot translate the PIR program: {exc}; {_PIR_RESAVE_HINT}") \
            from None
    return twin / PADDLE_MODEL_FILE, twin / PADDLE_PARAMS_FILE


def _looks_like_pir(path: Path) -> bool:
    """A PIR json starts with its base_code/program keys (a cheap sniff, not a parse)."""
    with path.open("rb") as handle:
        head = handle.read(4096).lstrip()
    return head.startswith(b"{") and (b'"program"' in head or b'"base_code"' in head)


def check_inference_model(model_dir: str | Path, model_filename: str | None = None,
                          params_filename: str | None = None) -> InferenceModel:
    """Locate and validate a model; raise QuantkitError naming the file or ops at fault."""
    model_file, params_file = locate_model_files(model_dir, model_filename, params_filename)
    program = _parse_program(model_file)
    _refuse_control_flow(program, model_file)
    if params_file is not None:
        _check_combined_params_size(program, params_file)
    else:
        _check_separate_params_exist(program, model_file.parent)
    ops = program.blocks[0].ops
    pir_record = model_file.parent / PIR_SOURCE_RECORD
    return InferenceModel(
        model_dir=model_file.parent,
        model_file=model_file,
        params_file=params_file,
        op_types=tuple(op.type for op in ops),
        feeds=_feed_specs(program),
        fetch_names=tuple(_io_names(ops, "fetch", "X")),
        source_dir=(Path(model_dir) if Path(model_dir).absolute() != model_file.parent.absolute()
                    else None),
        pir_source=read_json(pir_record, "PIR translation record") if pir_record.is_file()
        else None,
    )


def refuse_quantized(model: InferenceModel) -> None:
    """Calibration needs the FP32 model: a quantized one would be quantized twice."""
    if model.quantized:
        ops = sorted({op for op in model.op_types if "quant" in op})
        raise QuantkitError(f"{model.model_file} is already quantized ({', '.join(ops)}): "
                            "calibrate the FP32 model it was made from")


def op_input_names(model: InferenceModel) -> list[str]:
    """Every tensor name an op of the model reads (what `skip_tensor_list` is matched to)."""
    program = _parse_program(model.model_file)
    return sorted({name for block in program.blocks for op in block.ops
                   for slot in op.inputs for name in slot.arguments})


def _framework_proto():
    from paddle.base.proto import framework_pb2  # deferred: importing it loads paddle
    return framework_pb2


def _parse_program(model_file: Path):
    from google.protobuf.message import DecodeError

    proto = _framework_proto()
    program = proto.ProgramDesc()
    data = model_file.read_bytes()
    if not data:
        raise QuantkitError(f"model file is empty: {model_file}")
    try:
        program.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise QuantkitError(f"model file is corrupt or not a Paddle program: {model_file} "
                            f"({exc})") from None
    if not program.blocks or not program.blocks[0].ops:
        raise QuantkitError(f"model file holds no operators: {model_file}")
    return program


def _refuse_control_flow(program, model_file: Path) -> None:
    proto = _framework_proto()
    block_attr_types = {proto.AttrType.BLOCK, proto.AttrType.BLOCKS}
    found: dict[str, int] = {}
    for block in program.blocks:
        for op in block.ops:
            has_sub_block = any(attr.type in block_attr_types for attr in op.attrs)
            if op.type in CONTROL_FLOW_OPS or has_sub_block:
                found[op.type] = found.get(op.type, 0) + 1
    if found:
        listed = ", ".join(f"{name} (x{count})" for name, count in sorted(found.items()))
        raise QuantkitError(
            f"{model_file} contains control-flow ops: {listed}; static post-training "
            "quantization needs a straight-line graph: export the model without "
            "data-dependent branches or loops (or quantize the sub-graphs separately)")


def _persistable_tensors(program):
    proto = _framework_proto()
    for var in program.blocks[0].vars:
        if var.persistable and var.type.type == proto.VarType.LOD_TENSOR:
            yield var


def _check_combined_params_size(program, params_file: Path) -> None:
    """Walk the records of a combined params file and check they fit the program.

    `save_combine` writes, per persistable tensor in name order: u32 version, u64 LoD
    level count (+ each level's u64 byte size and data), u32 tensor version, i32 size of
    the TensorDesc proto, the proto, then the raw data. Quantized models store int8 data
    for float-declared weights, so sizes are read from the file's own descriptors.
    """
    import struct

    proto = _framework_proto()
    element_bytes = {
        proto.VarType.BOOL: 1, proto.VarType.INT8: 1, proto.VarType.UINT8: 1,
        proto.VarType.INT16: 2, proto.VarType.FP16: 2, proto.VarType.BF16: 2,
        proto.VarType.INT32: 4, proto.VarType.FP32: 4,
        proto.VarType.INT64: 8, proto.VarType.FP64: 8,
    }
    names = sorted(var.name for var in _persistable_tensors(program))
    size = params_file.stat().st_size
    position = 0
    with params_file.open("rb") as handle:
        for index, name in enumerate(names):
            def read(count: int) -> bytes:
                nonlocal position
                data = handle.read(count)
                position += len(data)
                if len(data) < count:
                    raise QuantkitError(
                        f"params file is truncated: {params_file} ends inside parameter "
                        f"'{name}' ({index + 1} of {len(names)}) at byte {size}")
                return data

            read(4)
            (lod_levels,) = struct.unpack("<Q", read(8))
            for _ in range(lod_levels):
                (level_bytes,) = struct.unpack("<Q", read(8))
                read(level_bytes)
            read(4)
            (desc_size,) = struct.unpack("<i", read(4))
            desc = proto.VarType.TensorDesc()
            try:
                desc.ParseFromString(read(desc_size))
            except Exception:  # noqa: BLE001 - any decode failure means a corrupt file
                raise QuantkitError(f"params file is corrupt: {params_file} (bad descriptor "
                                    f"of parameter '{name}')") from None
            numel = 1
            for dim in desc.dims:
                numel *= dim
            data_bytes = numel * element_bytes.get(desc.data_type, 4)
            if position + data_bytes > size:
                raise QuantkitError(
                    f"params file is truncated: {params_file} ends inside parameter "
                    f"'{name}' ({index + 1} of {len(names)}) at byte {size}")
            handle.seek(data_bytes, 1)
            position += data_bytes
    if position != size:
        raise QuantkitError(f"params file does not match its model: {params_file} has "
                            f"{size - position} bytes after the model's {len(names)} parameters")


def _check_separate_params_exist(program, folder: Path) -> None:
    missing = [var.name for var in _persistable_tensors(program)
               if not (folder / var.name).is_file()]
    if missing:
        raise QuantkitError(f"parameter files missing in {folder}: {', '.join(missing[:5])}"
                            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                            + " (pass --params-filename if the parameters are in one file)")


def _io_names(ops, op_type: str, slot: str) -> list[str]:
    names = []
    for op in ops:
        if op.type == op_type:
            for var in op.inputs if slot == "X" else op.outputs:
                if var.parameter == slot:
                    names.extend(var.arguments)
    return names


def _feed_specs(program) -> tuple[FeedSpec, ...]:
    proto = _framework_proto()
    dtype_names = {
        proto.VarType.BOOL: "bool", proto.VarType.INT8: "int8", proto.VarType.UINT8: "uint8",
        proto.VarType.INT16: "int16", proto.VarType.INT32: "int32",
        proto.VarType.INT64: "int64", proto.VarType.FP16: "float16",
        proto.VarType.FP32: "float32", proto.VarType.FP64: "float64",
    }
    block = program.blocks[0]
    var_descs = {var.name: var for var in block.vars}
    columns = []
    for op in block.ops:
        if op.type != "feed":
            continue
        column = next((attr.i for attr in op.attrs if attr.name == "col"), len(columns))
        for name in _io_names([op], "feed", "Out"):
            tensor = var_descs[name].type.lod_tensor.tensor
            spec = FeedSpec(name, tuple(int(d) for d in tensor.dims),
                            dtype_names.get(tensor.data_type, "float32"))
            columns.append((column, spec))
    return tuple(spec for _, spec in sorted(columns, key=lambda item: item[0]))
