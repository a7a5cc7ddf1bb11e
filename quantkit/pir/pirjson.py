"""Read and check a Paddle 3 PIR program serialised as JSON (``model.json``).

Pure Python (no paddle import). The format, as written by Paddle 3.x ``WriteModule``
(paddle/fluid/pir/serialize_deserialize), observed on Paddle 3.3.1 files (version 4):

    {"base_code": {"magic": "pir", "trainable": true, "version": 4},
     "program": {"regions": [{"#": "region_0", "blocks": [{"#": "block_0", "args": [],
                 "ops": [OP, ...]}]}]}}

    OP   = {"#": "<dialect id>.<op name>", "I": [{"%": value id}, ...],
            "O": [{"%": value id, "TT": TYPE}, ...], "A": [ATTR, ...],
            "OA": [ATTR, ...] (stop_gradient/persistable only), "DA": [], "QA": [],
            "regions": [...] (control flow only)}
    ATTR = {"N": name, "AT": {"#": "<dialect id>.a_<kind>", "D": data}}
    TYPE = {"#": "0.t_dtensor", "D": [{"#": "0.t_f32"}, dims, layout, lod, offset]}
         | {"#": "0.t_vec", "D": [TYPE, ...]}  | {"#": "NULL"}
    builtin.parameter is compressed: {"#": "p", "A": [flag, flag, flag, "<name>"],
            "O": {"%": id, "TT": TYPE}, "OA": [flags]}

Dialect ids: 0 builtin, 1 pd_op, 2 cf, 3 custom_op, 4 pd_dist. Value id 0 is a null
(absent optional) operand; block arguments have negative ids.
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from quantkit.pir.errors import PirTransError

SUPPORTED_VERSIONS = (1, 2, 3, 4)  # 4 is what Paddle 3.3.1 writes and is the one measured

DIALECTS = {"0": "builtin", "1": "pd_op", "2": "cf", "3": "custom_op", "4": "pd_dist"}

# 0.t_<x> element types -> numpy-style dtype names
ELEMENT_TYPES = {
    "t_f32": "float32", "t_f64": "float64", "t_f16": "float16", "t_bf16": "bfloat16",
    "t_i8": "int8", "t_ui8": "uint8", "t_i16": "int16", "t_i32": "int32", "t_i64": "int64",
    "t_bool": "bool", "t_c64": "complex64", "t_c128": "complex128",
}

# ops that carry regions or are control flow by name
CONTROL_FLOW_OPS = {"pd_op.if", "pd_op.while", "pd_op.pylayer", "pd_op.select_input",
                    "pd_op.select_output", "cf.yield", "cf.tuple_push", "cf.tuple_pop",
                    "cf.stack_create", "cf.has_elements", "pd_op.assert"}


@dataclass(frozen=True)
class TensorType:
    dtype: str
    shape: tuple


@dataclass(frozen=True)
class VectorType:
    elements: tuple  # of TensorType


@dataclass(frozen=True)
class Attr:
    kind: str  # e.g. "a_bool", "a_i32", "a_array", "a_intarray", "a_dtype", "a_place"
    value: Any  # python value; arrays are lists of python values


@dataclass
class Op:
    index: int
    name: str                 # full name: "pd_op.conv2d", "builtin.parameter", ...
    operands: tuple           # value ids, 0 = null
    results: tuple            # value ids
    attrs: dict               # name -> Attr (opinfo attributes only)
    has_regions: bool = False
    param_name: str | None = None  # builtin.parameter only


@dataclass
class PirProgram:
    path: str
    sha256: str
    version: int
    ops: list                                   # top-level block, in order
    types: dict = field(default_factory=dict)   # value id -> TensorType | VectorType | None
    producer: dict = field(default_factory=dict)  # value id -> (op, result index)
    users: dict = field(default_factory=dict)   # value id -> [(op, operand index)]
    nested_op_names: collections.Counter = field(default_factory=collections.Counter)

    def op_counts(self) -> dict:
        return dict(collections.Counter(op.name for op in self.ops))


def _bad(path, msg):
    return PirTransError(f"{path}: {msg}")


def _parse_type(path, tt):
    if not isinstance(tt, dict) or "#" not in tt:
        raise _bad(path, f"malformed value type {str(tt)[:80]}")
    tid = tt["#"]
    if tid == "NULL":
        return None
    if tid == "0.t_dtensor":
        d = tt.get("D")
        if not (isinstance(d, list) and len(d) >= 2 and isinstance(d[0], dict)
                and isinstance(d[1], list)):
            raise _bad(path, f"malformed dense tensor type {str(tt)[:80]}")
        et = d[0].get("#", "")
        short = et.split(".", 1)[-1]
        if short not in ELEMENT_TYPES:
            raise _bad(path, f"unknown element type {et!r}")
        if not all(isinstance(x, int) for x in d[1]):
            raise _bad(path, f"malformed dims {d[1]!r}")
        return TensorType(ELEMENT_TYPES[short], tuple(d[1]))
    if tid == "0.t_vec":
        d = tt.get("D")
        if not isinstance(d, list):
            raise _bad(path, f"malformed vector type {str(tt)[:80]}")
        return VectorType(tuple(_parse_type(path, x) for x in d))
    # selected rows, tensor arrays, sparse types... are kept as opaque strings: the
    # translator refuses any op whose values are not dense tensors or vectors of them.
    return tid


def _parse_attr_value(path, at):
    if not isinstance(at, dict) or "#" not in at:
        raise _bad(path, f"malformed attribute {str(at)[:80]}")
    kind = at["#"].split(".", 1)[-1]
    data = at.get("D")
    if kind == "a_array":
        if not isinstance(data, list):
            raise _bad(path, f"malformed array attribute {str(at)[:80]}")
        return Attr(kind, [_parse_attr_value(path, x).value for x in data])
    if kind == "a_scalar":  # [dtype name, value(, imag)]
        if not isinstance(data, list) or not data:
            raise _bad(path, f"malformed scalar attribute {str(at)[:80]}")
        return Attr(kind, data[1] if len(data) == 2 else data[1:])
    return Attr(kind, data)


def _parse_attrs(path, lst, opname):
    out = {}
    if not isinstance(lst, list):
        raise _bad(path, f"op {opname}: attributes are not a list")
    for a in lst:
        if not isinstance(a, dict) or "N" not in a or "AT" not in a:
            raise _bad(path, f"op {opname}: malformed attribute {str(a)[:80]}")
        out[a["N"]] = _parse_attr_value(path, a["AT"])
    return out


def _op_name(path, raw):
    if raw == "p":
        return "builtin.parameter"
    if not isinstance(raw, str) or "." not in raw:
        raise _bad(path, f"malformed op name {raw!r}")
    dialect, name = raw.split(".", 1)
    return f"{DIALECTS.get(dialect, dialect)}.{name}"


def _collect_nested(path, op_json, counter):
    for region in op_json.get("regions", []) or []:
        for block in region.get("blocks", []) or []:
            for sub in block.get("ops", []) or []:
                counter[_op_name(path, sub.get("#"))] += 1
                _collect_nested(path, sub, counter)


def read_program(json_path) -> PirProgram:
    """Parse and check ``json_path``; raise PirTransError naming the file on any defect."""
    path = os.fspath(json_path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise _bad(path, f"cannot read the PIR json ({e.strerror or e})") from None
    sha = hashlib.sha256(raw).hexdigest()
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(path, f"not valid JSON ({e}); is this a PIR model.json?") from None
    if not isinstance(doc, dict) or "base_code" not in doc or "program" not in doc:
        raise _bad(path, "not a PIR program json (no base_code/program keys)")
    base = doc["base_code"]
    if not isinstance(base, dict) or base.get("magic") != "pir":
        raise _bad(path, f"not a PIR program json (magic {base.get('magic') if isinstance(base, dict) else base!r})")
    version = base.get("version")
    if version not in SUPPORTED_VERSIONS:
        raise _bad(path, f"PIR json version {version!r} is not supported (supported: "
                         f"{', '.join(map(str, SUPPORTED_VERSIONS))})")
    try:
        regions = doc["program"]["regions"]
        if len(regions) != 1 or len(regions[0]["blocks"]) != 1:
            raise _bad(path, f"expected one region with one block at top level, found "
                             f"{len(regions)} regions")
        block = regions[0]["blocks"][0]
        ops_json = block["ops"]
    except (KeyError, TypeError, IndexError):
        raise _bad(path, "malformed program (regions/blocks/ops)") from None
    if block.get("args"):
        raise _bad(path, "top-level block has arguments; not an inference program")

    prog = PirProgram(path=path, sha256=sha, version=version, ops=[])
    for i, oj in enumerate(ops_json):
        if not isinstance(oj, dict):
            raise _bad(path, f"op #{i} is not an object")
        name = _op_name(path, oj.get("#"))
        results_json = oj.get("O", [])
        if isinstance(results_json, dict):
            results_json = [results_json]
        if not isinstance(results_json, list):
            raise _bad(path, f"op #{i} {name}: malformed results")
        param_name = None
        if name == "builtin.parameter":
            a = oj.get("A")
            if not (isinstance(a, list) and a and isinstance(a[-1], str)):
                raise _bad(path, f"op #{i} builtin.parameter: malformed attributes {a!r}")
            param_name = a[-1]
            attrs = {}
        else:
            attrs = _parse_attrs(path, oj.get("A", []), name)
        operands = []
        for o in oj.get("I", []):
            if not isinstance(o, dict) or not isinstance(o.get("%"), int):
                raise _bad(path, f"op #{i} {name}: malformed operand {o!r}")
            vid = o["%"]
            if vid != 0 and vid not in prog.types:
                raise _bad(path, f"op #{i} {name}: operand %{vid} is used before it is defined")
            operands.append(vid)
        results = []
        op = Op(index=i, name=name, operands=tuple(operands), results=(), attrs=attrs,
                has_regions=bool(oj.get("regions")), param_name=param_name)
        for k, r in enumerate(results_json):
            if not isinstance(r, dict) or not isinstance(r.get("%"), int):
                raise _bad(path, f"op #{i} {name}: malformed result {r!r}")
            vid = r["%"]
            if vid in prog.types:
                raise _bad(path, f"op #{i} {name}: value %{vid} defined twice")
            if vid == 0:  # null result (never used)
                results.append(0)
                continue
            prog.types[vid] = _parse_type(path, r.get("TT"))
            prog.producer[vid] = (op, k)
            results.append(vid)
        op.results = tuple(results)
        for k, vid in enumerate(op.operands):
            if vid:
                prog.users.setdefault(vid, []).append((op, k))
        if op.has_regions:
            _collect_nested(path, oj, prog.nested_op_names)
        prog.ops.append(op)
    if not prog.ops:
        raise _bad(path, "program has no ops")
    return prog
