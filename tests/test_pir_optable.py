"""The table against both sides: Paddle 2.6.2's OpProtos and Paddle 3.3.1's op signatures."""
import json

import pytest

from quantkit.pir import optable

# legacy attributes that translate.py computes itself (hooks), per legacy op
COMPUTED = {"fill_constant": {"shape", "dtype", "value", "str_value", "force_cpu"},
            "assign_value": {"shape", "dtype", "int32_values", "int64_values"},
            "cast": {"in_dtype"}, "reduce_mean": {"reduce_all", "in_dtype"},
            "reduce_max": {"reduce_all", "in_dtype"}, "reduce_sum": {"reduce_all", "in_dtype"},
            "feed": {"col"}, "fetch": {"col"}, "elementwise_add": {"axis"}}


@pytest.fixture(scope="module")
def protos():
    from paddle.base import core
    from paddle.base.proto import framework_pb2
    out = {}
    for s in core.get_all_op_protos():
        p = framework_pb2.OpProto()
        p.ParseFromString(s)
        out[p.type] = p
    return out


def legacy_attrs(entry):
    names = set(entry.fixed)
    for m in entry.attrs.values():
        if m is not None:
            names.add(m[0] if isinstance(m, tuple) else m)
    names |= {i.attr for i in entry.inputs if i.attr}
    return names


@pytest.mark.parametrize("name", sorted(optable.TABLE))
def test_entry_matches_paddle_2_6_2(name, protos):
    from paddle.base import core
    e = optable.TABLE[name]
    if not e.legacy:
        return
    assert e.legacy in protos, f"{e.legacy} is not a Paddle 2.6.2 op"
    p = protos[e.legacy]
    ins = {i.name: i for i in p.inputs}
    outs = {o.name: o for o in p.outputs}
    for i in e.inputs:
        for slot in (i.slot, i.tensor_slot, i.list_slot):
            if slot:
                assert slot in ins, f"{e.legacy} has no input {slot}"
        if i.vector or i.list_slot:
            assert ins[i.slot or i.list_slot].duplicable
    for o in e.outputs:
        if o.slot:
            assert o.slot in outs, f"{e.legacy} has no output {o.slot}"
            assert outs[o.slot].duplicable == o.vector
    if e.xshape:
        assert "XShape" in outs
    # every required legacy input/output is produced
    for pi in p.inputs:
        if not pi.dispensable and e.special not in ("feed", "fetch"):
            assert any(pi.name in (i.slot, i.tensor_slot, i.list_slot) for i in e.inputs), pi.name
    known = {a.name for a in p.attrs} | set(core.get_op_extra_attrs(e.legacy))
    missing = (legacy_attrs(e) | COMPUTED.get(e.legacy, set())) - known
    assert not missing, f"{e.legacy} has no attribute(s) {missing}"


def test_table_matches_paddle_3_signatures(pir_models):
    """Operand / attribute / result names of every table op seen in the test models."""
    seen = {}
    for folder in pir_models.values():
        f = folder / "signatures.json"
        if f.exists():
            seen.update(json.loads(f.read_text()))
    checked = 0
    for name, (ins, attrs, outs) in seen.items():
        if name not in optable.TABLE:
            continue
        e = optable.TABLE[name]
        assert [i.name for i in e.inputs] == ins, name
        assert [o.name for o in e.outputs] == outs, name
        assert set(attrs) <= set(e.attrs) | optable.IGNORED_ATTRS, name
        checked += 1
    assert checked >= 50


def test_every_entry_is_exercised(pir_models):
    """Each base entry occurs in some test model (in-place variants: see FINDINGS.md)."""
    from quantkit.pir.pirjson import read_program
    used = set()
    for folder in pir_models.values():
        used |= set(read_program(folder / "model.json").op_counts())
    base = {e.pir for e in optable._ENTRIES}
    assert base - used == set()
    assert {"pd_op.relu_", "pd_op.tanh_", "pd_op.batch_norm_"} <= used


def test_the_readme_lists_exactly_the_table():
    """The README's op table is a copy: it must name every translated op and no other."""
    import re
    from pathlib import Path

    from quantkit.pir.optable import INPLACE_OF, TABLE

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("<summary>PIR op -> legacy op")[1].split("</details>")[0]
    listed = {}
    for line in block.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            listed[cells[0].strip("`")] = (cells[1], re.findall(r"`([^`]+)`", cells[2]))
    assert set(listed) == set(TABLE) - set(INPLACE_OF)
    for pir, (legacy, inplace) in listed.items():
        entry = TABLE[pir]
        assert legacy == (f"`{entry.legacy}`" if entry.legacy else
                          f"(none: {entry.special or 'structural'})"), pir
        assert sorted(inplace) == sorted(k for k, (base, _) in INPLACE_OF.items()
                                         if base == pir), pir
