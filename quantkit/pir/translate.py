"""PIR json (Paddle 3) -> legacy ProgramDesc (Paddle 2.6.2): ``translate()``.

Runs where Paddle 2.6.2 is importable (it builds the program with Paddle 2.6.2's own
``Program``/``Block.append_op``, so every op gets its OpProto check, attribute defaults,
var-type and shape inference). It never imports Paddle 3: the PIR program is read from the
json by ``pirjson``. Nothing is written unless the whole program translates.
"""
from __future__ import annotations

import collections
import os
import shutil
import tempfile
from dataclasses import dataclass

from quantkit.pir import optable
from quantkit.pir.errors import PirTransError
from quantkit.pir.params import VARTYPE, read_params_header
from quantkit.static_mode import static_mode
from quantkit.pir.pirjson import CONTROL_FLOW_OPS, PirProgram, TensorType, VectorType, read_program

INT32_MAX = 2 ** 31 - 1
INT32_MIN = -(2 ** 31)
UNDEFINED_DTYPES = {"Undefined(ALL_DTYPE)", "undefined", "Undefined"}


@dataclass(frozen=True)
class Translation:
    source_sha256: str        # sha256 of the PIR json translated
    pir_op_counts: dict       # PIR op name -> count (top-level block)
    legacy_op_counts: dict    # legacy op type -> count (written program, incl. feed/fetch)
    feeds: tuple              # ((name, shape tuple with -1 for dynamic dims, dtype), ...)
    fetch_names: tuple        # legacy fetch target names (= the PIR fetch names)
    pdmodel: str              # path written
    pdiparams: str            # path written


# ----------------------------------------------------------------------------- checks
def _check_supported(prog: PirProgram):
    cf = collections.Counter()
    for op in prog.ops:
        if op.has_regions or op.name in CONTROL_FLOW_OPS:
            cf[op.name] += 1
    cf.update(n for n in prog.nested_op_names.elements() if n in CONTROL_FLOW_OPS)
    if cf:
        listed = ", ".join(f"{n} x{c}" for n, c in sorted(cf.items()))
        raise PirTransError(f"{prog.path}: the model has control flow ({listed}); static "
                            f"post-training quantization needs a straight-line graph: export "
                            f"the model without data-dependent branches or loops")
    unknown = collections.Counter(op.name for op in prog.ops if op.name not in optable.TABLE)
    if unknown:
        listed = ", ".join(f"{n} x{c}" for n, c in sorted(unknown.items()))
        raise PirTransError(f"{prog.path}: {len(unknown)} op type(s) outside the translation "
                            f"table: {listed}; nothing written")
    bad_attrs = collections.Counter()
    for op in prog.ops:
        e = optable.TABLE[op.name]
        for a in op.attrs:
            if a not in e.attrs and a not in optable.IGNORED_ATTRS:
                bad_attrs[f"{op.name}.{a}"] += 1
    if bad_attrs:
        listed = ", ".join(f"{n} x{c}" for n, c in sorted(bad_attrs.items()))
        raise PirTransError(f"{prog.path}: attribute(s) outside the translation table: "
                            f"{listed}; nothing written")
    for op in prog.ops:
        e = optable.TABLE[op.name]
        if e.special in ("parameter", "combine", "split"):
            continue
        if len(op.operands) != len(e.inputs) or len(op.results) != len(e.outputs):
            raise PirTransError(
                f"{prog.path}: op #{op.index} {op.name} has {len(op.operands)} operands and "
                f"{len(op.results)} results, the table expects {len(e.inputs)} and "
                f"{len(e.outputs)} (different Paddle version?); nothing written")
    for vid, t in prog.types.items():
        ok = isinstance(t, TensorType) or (
            isinstance(t, VectorType) and all(isinstance(x, TensorType) for x in t.elements))
        if not ok and t is not None:
            op = prog.producer[vid][0]
            raise PirTransError(f"{prog.path}: op #{op.index} {op.name} produces a value of "
                                f"type {t!r}; only dense tensors are supported; nothing written")


def _check_params(prog: PirProgram, params_path):
    params = [(op.param_name, prog.types[op.results[0]]) for op in prog.ops
              if op.name == "builtin.parameter"]
    names = [p[0] for p in params]
    dup = [n for n, c in collections.Counter(names).items() if c > 1]
    if dup:
        raise PirTransError(f"{prog.path}: parameter(s) declared twice: {', '.join(dup[:5])}")
    stored = read_params_header(params_path)
    params.sort(key=lambda p: p[0])
    if len(stored) != len(params):
        raise PirTransError(f"{os.fspath(params_path)}: holds {len(stored)} tensors but "
                            f"{prog.path} declares {len(params)} parameters; wrong params "
                            f"file?; nothing written")
    for (name, t), s in zip(params, stored):
        if tuple(t.shape) != tuple(s.shape) or t.dtype != s.dtype:
            raise PirTransError(f"{os.fspath(params_path)}: tensor for parameter {name} is "
                                f"{s.dtype}{list(s.shape)}, the program declares "
                                f"{t.dtype}{list(t.shape)}; wrong params file?; nothing written")
    return params


# ----------------------------------------------------------------------------- build
class _Builder:
    def __init__(self, prog: PirProgram, paddle):
        from paddle.base import core
        self.paddle = paddle
        self.core = core
        self.prog = prog
        self.main = paddle.static.Program()
        self.block = self.main.global_block()
        self.names = {}        # value id -> legacy var name
        self.combine = {}      # value id -> [element value ids]   (builtin.combine)
        self.vec_names = {}    # value id -> [legacy var names]    (vector results)
        self.used_names = set()
        self.type_counter = collections.Counter()
        self.feeds = []        # (col, name, shape, dtype)
        self.fetches = []      # (col, name)
        self.preferred = {}    # value id -> var name to give it (fetch names)
        self.skip_ops = set()  # op indices folded away by peepholes
        self.add_axis = {}     # op index of pd_op.add -> (x vid, param vid, axis)
        self.vt = {n: core.VarDesc.VarType(v) for n, v in VARTYPE.items()}

    # -- helpers
    def err(self, op, msg):
        return PirTransError(f"{self.prog.path}: op #{op.index} {op.name}: {msg}; nothing written")

    def fresh(self, base):
        while True:
            k = self.type_counter[base]
            self.type_counter[base] += 1
            name = f"{base}_{k}.tmp_0"
            if name not in self.used_names:
                return name

    def new_var(self, name, ttype, persistable=False):
        if name in self.used_names:
            raise PirTransError(f"{self.prog.path}: variable name {name} used twice")
        self.used_names.add(name)
        return self.block.create_var(
            name=name, shape=list(ttype.shape), dtype=self.vt[ttype.dtype],
            type=self.core.VarDesc.VarType.LOD_TENSOR, persistable=persistable,
            stop_gradient=True)

    def const_of(self, vid):
        """Values of a constant operand (full / full_int_array / combine of them) or None."""
        if vid in self.combine:
            out = []
            for e in self.combine[vid]:
                c = self.const_of(e)
                if c is None:
                    return None
                out.extend(c)
            return out
        prod = self.prog.producer.get(vid)
        if prod is None:
            return None
        op = prod[0]
        if op.name == "pd_op.full_int_array":
            return [int(v) for v in op.attrs["value"].value]
        if op.name == "pd_op.full":
            shape = op.attrs["shape"].value
            n = 1
            for d in shape:
                n *= d
            if n > 64:
                return None
            v = op.attrs["value"].value
            return [v] * n
        return None

    def tensor(self, vid, op):
        """Legacy var name of a tensor value, materialising constants on first use."""
        if vid in self.names:
            return self.names[vid]
        prod = self.prog.producer.get(vid)
        if prod and prod[0].name == "pd_op.full":
            return self.emit_full(prod[0])
        if prod and prod[0].name == "pd_op.full_int_array":
            return self.emit_full_int_array(prod[0])
        raise self.err(op, f"operand %{vid} has no legacy variable (vector used as tensor?)")

    def elements(self, vid, op):
        if vid in self.combine:
            return [self.tensor(e, op) for e in self.combine[vid]]
        if vid in self.vec_names:
            return list(self.vec_names[vid])
        raise self.err(op, f"operand %{vid} is not a vector")

    def append(self, type_, inputs, outputs, attrs):
        return self.block.append_op(type=type_, inputs=inputs, outputs=outputs, attrs=attrs)

    # -- constants
    def emit_full(self, op):
        vid = op.results[0]
        t = self.prog.types[vid]
        name = self.fresh("fill_constant")
        self.new_var(name, t)
        v = op.attrs["value"].value
        if t.dtype.startswith("int") or t.dtype.startswith("uint"):
            s = str(int(v))
        elif t.dtype == "bool":
            s = "1" if v else "0"
        else:
            s = repr(float(v))
        self.append("fill_constant", {}, {"Out": [name]},
                    {"shape": [int(d) for d in op.attrs["shape"].value],
                     "dtype": VARTYPE[t.dtype], "value": float(v), "str_value": s,
                     "force_cpu": False})
        self.names[vid] = name
        return name

    def emit_full_int_array(self, op):
        vid = op.results[0]
        t = self.prog.types[vid]
        vals = [int(v) for v in op.attrs["value"].value]
        name = self.fresh("assign_value")
        self.new_var(name, t)
        key = {"int32": "int32_values", "int64": "int64_values"}.get(t.dtype)
        if key is None:
            raise self.err(op, f"full_int_array of dtype {t.dtype}")
        self.append("assign_value", {}, {"Out": [name]},
                    {"shape": [len(vals)], "dtype": VARTYPE[t.dtype], key: vals})
        self.names[vid] = name
        return name

    # -- peepholes
    def plan(self):
        """Find fetch names and conv-bias patterns before emitting anything."""
        fetched = collections.Counter()
        overwritten = set()  # operands of in-place ops: their final value is another var
        for op in self.prog.ops:
            if op.name == "pd_op.fetch":
                fetched[op.operands[0]] += 1
            e = optable.TABLE[op.name]
            for operand_name in e.inplace.values():
                overwritten.add(op.operands[[i.name for i in e.inputs].index(operand_name)])
        for op in self.prog.ops:
            if op.name != "pd_op.fetch":
                continue
            vid = op.operands[0]
            prod = self.prog.producer[vid][0]
            e = optable.TABLE[prod.name]
            if (fetched[vid] == 1 and e.special in ("", "reduce", "cast", "shape64")
                    and vid not in overwritten
                    and not any(o.alias for o in e.outputs)):
                self.preferred[vid] = op.attrs["name"].value
        # reshape(param[C] -> [1,..,C,..,1]) only feeding add(x, .) of the same rank:
        # legacy elementwise_add(x, param, axis=k), as Paddle 2.6.2 writes a conv/bn bias.
        for op in self.prog.ops:
            if op.name != "pd_op.reshape":
                continue
            src, shp = op.operands
            prod = self.prog.producer.get(src)
            if not prod or prod[0].name != "builtin.parameter":
                continue
            pshape = self.prog.types[src].shape
            target = self.const_of(shp)
            if target is None or len(pshape) != 1:
                continue
            big = [k for k, d in enumerate(target) if d != 1]
            if not big and pshape[0] == 1:
                big = [1 if len(target) > 1 else 0]  # a 1-channel bias: [1,1,1,1]
            if len(big) != 1 or target[big[0]] not in (-1, 1, pshape[0]):
                continue
            k = big[0]
            out = op.results[0]
            users = self.prog.users.get(out, [])
            plan = {}
            for user, pos in users:
                if user.name != "pd_op.add":
                    break
                other = user.operands[1 - pos]
                ot = self.prog.types[other]
                if (not isinstance(ot, TensorType) or len(ot.shape) != len(target)
                        or ot.shape[k] not in (-1, pshape[0]) or other == out):
                    break
                plan[user.index] = (other, src, k)
            else:
                if users and out not in self.preferred:
                    self.skip_ops.add(op.index)
                    self.add_axis.update(plan)

    # -- main loop
    def build(self):
        self.plan()
        for op in self.prog.ops:
            if op.index in self.skip_ops:
                continue
            e = optable.TABLE[op.name]
            if e.special == "parameter":
                vid = op.results[0]
                self.new_var(op.param_name, self.prog.types[vid], persistable=True)
                self.names[vid] = op.param_name
            elif e.special == "combine":
                self.combine[op.results[0]] = list(op.operands)
            elif e.special == "split":
                names = self.elements(op.operands[0], op)
                if len(names) != len(op.results):
                    raise self.err(op, f"splits {len(names)} elements into {len(op.results)}")
                for vid, n in zip(op.results, names):
                    self.names[vid] = n
            elif e.special in ("full", "full_int_array"):
                continue  # emitted on first use as a tensor, else folded into attributes
            elif e.special == "feed":
                self.do_feed(op)
            elif e.special == "fetch":
                self.do_fetch(op)
            else:
                self.do_op(op, e)
        self.finish()
        return self.main

    def do_feed(self, op):
        vid = op.results[0]
        t = self.prog.types[vid]
        name = op.attrs["name"].value
        col = op.attrs["col"].value if "col" in op.attrs else len(self.feeds)
        self.new_var(name, t)
        self.names[vid] = name
        self.feeds.append((col, name, tuple(t.shape), t.dtype))

    def do_fetch(self, op):
        vid = op.operands[0]
        name = op.attrs["name"].value
        col = op.attrs["col"].value
        src = self.tensor(vid, op)
        if src != name:
            self.new_var(name, self.prog.types[vid])
            self.append("assign", {"X": [src]}, {"Out": [name]}, {})
        self.fetches.append((col, name))

    def convert(self, op, conv, value):
        if conv == "dtype":
            if value not in VARTYPE:
                raise self.err(op, f"dtype {value!r}")
            return VARTYPE[value]
        if conv == "dtype_or_-1":
            return -1 if value in UNDEFINED_DTYPES else self.convert(op, "dtype", value)
        if conv == "dropout_mode":
            m = {"upscale_in_train": "upscale_in_train",
                 "downscale_in_infer": "downgrade_in_infer",
                 "downgrade_in_infer": "downgrade_in_infer"}
            if value not in m:
                raise self.err(op, f"dropout mode {value!r}")
            return m[value]
        if conv == "floats":
            return [float(v) for v in value]
        raise self.err(op, f"unknown conversion {conv}")

    def fold(self, op, spec, values):
        if spec.fold == "ints":
            return [int(v) for v in values]
        if spec.fold == "int32s":
            return [max(INT32_MIN, min(INT32_MAX, int(v))) for v in values]
        if len(values) != 1:
            raise self.err(op, f"operand {spec.name} has {len(values)} values, expected one")
        if spec.fold == "int":
            return int(values[0])
        if spec.fold == "float":
            return float(values[0])
        raise self.err(op, f"unknown fold {spec.fold}")

    def do_op(self, op, e):
        inputs, attrs, outputs = {}, {}, {}
        if op.index in self.add_axis:  # conv-bias peephole
            other, param, axis = self.add_axis[op.index]
            inputs = {"X": [self.tensor(other, op)], "Y": [self.names[param]]}
            attrs = {"axis": axis}
        else:
            for spec, vid in zip(e.inputs, op.operands):
                if vid == 0:
                    if not spec.optional:
                        raise self.err(op, f"operand {spec.name} is missing")
                    continue
                if spec.attr:
                    c = self.const_of(vid)
                    if c is not None:
                        attrs[spec.attr] = self.fold(op, spec, c)
                    elif spec.list_slot and vid in self.combine:
                        inputs[spec.list_slot] = self.elements(vid, op)
                        # like Paddle 2.6.2's layers: the attribute keeps the constant
                        # elements and -1 for the tensor ones (compile-time shapes use it)
                        per = [self.const_of(x) for x in self.combine[vid]]
                        attrs[spec.attr] = self.fold(
                            op, spec, [c[0] if c and len(c) == 1 else -1 for c in per])
                    elif spec.tensor_slot and isinstance(self.prog.types[vid], TensorType):
                        inputs[spec.tensor_slot] = [self.tensor(vid, op)]
                    else:
                        raise self.err(op, f"operand {spec.name} must be a constant "
                                           f"(legacy {e.legacy} takes it as attribute "
                                           f"{spec.attr})")
                elif spec.vector:
                    inputs[spec.slot] = self.elements(vid, op)
                else:
                    inputs[spec.slot] = [self.tensor(vid, op)]
            for pname, a in op.attrs.items():
                m = e.attrs.get(pname)
                if m is None:
                    continue
                if isinstance(m, tuple):
                    attrs[m[0]] = self.convert(op, m[1], a.value)
                else:
                    attrs[m] = a.value
            attrs.update(e.fixed)
        operand_of = {spec.name: vid for spec, vid in zip(e.inputs, op.operands)}
        out_main = None
        for spec, vid in zip(e.outputs, op.results):
            if spec.alias:
                name = self.names[operand_of[spec.alias]]
                outputs[spec.slot] = [name]
                self.names[vid] = name
                continue
            if not spec.slot:
                if vid and self.prog.users.get(vid):
                    raise self.err(op, f"result {spec.name} is used but legacy {e.legacy} "
                                       f"has no such output")
                continue
            t = self.prog.types[vid]
            if spec.vector:
                names = [self.fresh(e.legacy) for _ in t.elements]
                for n, et in zip(names, t.elements):
                    self.new_var(n, et)
                self.vec_names[vid] = names
                outputs[spec.slot] = names
                continue
            name = self.preferred.get(vid) or self.fresh(e.legacy)
            self.new_var(name, t)
            self.names[vid] = name
            outputs[spec.slot] = [name]
            out_main = out_main or name
        if e.xshape:
            xt = self.prog.types[op.operands[0]]
            xs = self.fresh(e.legacy + "_xshape")
            self.new_var(xs, TensorType(xt.dtype, (0,) + tuple(xt.shape)))
            outputs["XShape"] = [xs]
        if e.special == "shape64":
            self.do_shape64(op, inputs, outputs)
            return
        if e.special == "cast":
            attrs["in_dtype"] = VARTYPE[self.prog.types[op.operands[0]].dtype]
        if e.special == "reduce":
            self.do_reduce(op, attrs)
        legacy_op = self.append(e.legacy, inputs, outputs, attrs)
        self.check_shapes(op, e, legacy_op)
        for res_name, operand_name in e.inplace.items():
            res_vid = op.results[[o.name for o in e.outputs].index(res_name)]
            self.names[operand_of[operand_name]] = self.names[res_vid]

    def do_shape64(self, op, inputs, outputs):
        # Paddle 2.6.2's shape op returns int32; PIR shape64 returns int64: shape + cast.
        t = self.prog.types[op.results[0]]
        tmp = self.fresh("shape")
        self.new_var(tmp, TensorType("int32", t.shape))
        self.append("shape", inputs, {"Out": [tmp]}, {})
        self.append("cast", {"X": [tmp]}, outputs,
                    {"in_dtype": VARTYPE["int32"], "out_dtype": VARTYPE["int64"]})

    def do_reduce(self, op, attrs):
        rank = len(self.prog.types[op.operands[0]].shape)
        dim = attrs.get("dim", [])
        attrs["reduce_all"] = len(dim) == 0 or len(dim) == rank
        if not dim:
            attrs["dim"] = [0]
        if "out_dtype" in attrs and attrs["out_dtype"] != -1:
            attrs["in_dtype"] = VARTYPE[self.prog.types[op.operands[0]].dtype]

    def check_shapes(self, op, e, legacy_op):
        """Paddle 2.6.2's shape inference must agree with the PIR types."""
        for spec, vid in zip(e.outputs, op.results):
            if spec.alias or not spec.slot or spec.vector or not vid:
                continue
            if not self.prog.users.get(vid):
                continue  # unused results (layer_norm Mean, dropout Mask...) need not agree
            t = self.prog.types[vid]
            v = self.block.var(self.names[vid])
            got = tuple(v.shape)
            want = tuple(t.shape)
            same = len(got) == len(want) and all(
                a == b or a == -1 or b == -1 for a, b in zip(got, want))
            # PIR programs translated from old legacy models keep [1] where Paddle >= 2.5
            # infers a 0-D result (slice/reduce with decrease_axis); both hold one element
            same = same or {got, want} == {(), (1,)}
            if not same:
                raise self.err(op, f"Paddle 2.6.2 infers shape {list(got)} for result "
                                   f"{spec.name} of legacy {e.legacy}, PIR says {list(want)}")
            if v.dtype != self.vt[t.dtype]:
                raise self.err(op, f"Paddle 2.6.2 infers dtype {v.dtype} for result "
                                   f"{spec.name} of legacy {e.legacy}, PIR says {t.dtype}")

    def finish(self):
        from paddle.static.io import append_fetch_ops, prepend_feed_ops
        if not self.feeds:
            raise PirTransError(f"{self.prog.path}: the program has no feed (pd_op.data/feed)")
        if not self.fetches:
            raise PirTransError(f"{self.prog.path}: the program has no pd_op.fetch")
        for op in self.block.ops:
            if op.desc.has_attr("is_test"):
                op._set_attr("is_test", True)
        self.feeds.sort()
        self.fetches.sort()
        prepend_feed_ops(self.main, [f[1] for f in self.feeds])
        append_fetch_ops(self.main, [f[1] for f in self.fetches])
        callstack = self.core.op_proto_and_checker_maker.kOpCreationCallstackAttrName()
        for op in self.block.ops:
            if op.desc.has_attr(callstack):
                op.desc.remove_attr(callstack)
        self.main.desc._set_version()
        self.main.desc.flush()


# ----------------------------------------------------------------------------- public
def translate(json_path, params_path, out_dir) -> Translation:
    """Translate a PIR inference model into ``out_dir/model.pdmodel`` + ``model.pdiparams``.

    Refuses (PirTransError, nothing written) control flow, any op or attribute outside
    ``optable.TABLE``, a params file that does not match the program's parameters, and
    any op whose Paddle 2.6.2 shape inference disagrees with the PIR types.
    """
    prog = read_program(json_path)
    _check_supported(prog)
    _check_params(prog, params_path)
    import paddle as _paddle
    if not _paddle.__version__.startswith("2."):
        raise PirTransError(f"translate writes legacy programs with Paddle 2.x; this "
                            f"interpreter has Paddle {_paddle.__version__}")
    with static_mode():
        paddle = _paddle
        try:
            builder = _Builder(prog, paddle)
            main = builder.build()
        except PirTransError:
            raise
        except Exception as ex:  # Paddle 2.6.2 rejected an op (OpProto check, infer_shape)
            msg = str(ex).strip().splitlines()
            msg = next((m for m in msg if m.strip() and not m.startswith("  ")), repr(ex))
            raise PirTransError(f"{prog.path}: Paddle 2.6.2 rejected the translated program: "
                                f"{type(ex).__name__}: {msg[:300]}; nothing written") from None
        data = main.desc.serialize_to_string()
        legacy_counts = dict(collections.Counter(op.type for op in main.global_block().ops))
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    pdmodel = os.path.join(out_dir, "model.pdmodel")
    pdiparams = os.path.join(out_dir, "model.pdiparams")
    with tempfile.NamedTemporaryFile(dir=out_dir, delete=False, suffix=".tmp") as f:
        f.write(data)
        tmp_model = f.name
    tmp_params = tmp_model + ".params"
    try:
        shutil.copyfile(params_path, tmp_params)
        os.replace(tmp_params, pdiparams)
        os.replace(tmp_model, pdmodel)
    finally:
        for p in (tmp_model, tmp_params):
            if os.path.exists(p):
                os.unlink(p)
    return Translation(
        source_sha256=prog.sha256,
        pir_op_counts=prog.op_counts(),
        legacy_op_counts=legacy_counts,
        feeds=tuple((n, s, d) for _, n, s, d in builder.feeds),
        fetch_names=tuple(n for _, n in builder.fetches),
        pdmodel=pdmodel,
        pdiparams=pdiparams,
    )
