"""Paddle settings the calibration engine changes for a while, each scoped and locked.

Paddle keeps them process-wide (a global flag, methods of its IrGraph class), so each is
set inside a `with` block, restored on the way out, and held under a lock: two
calibrations in threads of one process wait for each other instead of seeing each other's
settings.
"""
from __future__ import annotations

import contextlib
import threading

_FLAGS_LOCK = threading.RLock()
_GRAPH_LOCK = threading.RLock()


@contextlib.contextmanager
def forward_kernels(onednn: bool):
    """Run calibration forwards on oneDNN's FP32 kernels (thresholds agree to ~1e-7 relative).

    The flag is read when the executor first prepares a (program, fetch list), so it is set
    before the first run and restored after the last.
    """
    import paddle
    from paddle.base import core

    if not onednn or not core.is_compiled_with_mkldnn():
        yield
        return
    with _FLAGS_LOCK:
        before = paddle.get_flags(["FLAGS_use_mkldnn"])
        paddle.set_flags({"FLAGS_use_mkldnn": True})
        try:
            yield
        finally:
            paddle.set_flags(before)


@contextlib.contextmanager
def fast_graph_edits():
    """Take two quadratic costs out of core's program passes, same graph edits.

    Core's `AddQuantDequantForInferencePass` rescans every graph node twice per quantized
    tensor (`all_persistable_nodes`), and every `IrGraph.link_to`/`update_*_link` call
    asserts membership by building a Python set of all graph nodes: together ~1.5 s of a
    2 s QDQ write on MobileNetV1. Here the persistable scan is memoised per graph (it grows
    with `create_persistable_node`, is dropped on any node removal) and the links are made
    without the membership asserts (they only guard core's own bugs). The written programs
    are compared with core's in tests/test_calibration_driver.py.
    """
    from paddle.base.framework import IrGraph

    names = ("all_persistable_nodes", "create_persistable_node", "safe_remove_nodes",
             "link_to", "update_input_link", "update_output_link")
    with _GRAPH_LOCK:  # held from reading the originals to restoring them
        originals = {name: getattr(IrGraph, name) for name in names}
        with _patched(IrGraph, _replacements(originals)):
            yield


@contextlib.contextmanager
def _patched(cls, methods: dict):
    originals = {name: getattr(cls, name) for name in methods}
    for name, method in methods.items():
        setattr(cls, name, method)
    try:
        yield
    finally:
        for name, method in originals.items():
            setattr(cls, name, method)


def _replacements(originals: dict) -> dict:
    """IrGraph methods doing core's edits without the quadratic scans."""
    cache: dict = {}

    def all_persistable_nodes(self):
        if self.graph not in cache:
            cache[self.graph] = originals["all_persistable_nodes"](self)
        return set(cache[self.graph])

    def create_persistable_node(self, *args, **kwargs):
        node = originals["create_persistable_node"](self, *args, **kwargs)
        if self.graph in cache:
            cache[self.graph].add(node)
        return node

    def safe_remove_nodes(self, *args, **kwargs):
        cache.pop(self.graph, None)
        return originals["safe_remove_nodes"](self, *args, **kwargs)

    def link_to(self, node_in, node_out):
        node_in.append_output(node_out)
        node_out.append_input(node_in)

    def update_input_link(self, old_input_node, new_input_node, op_node):
        old_input_node.remove_output(op_node)
        op_node.remove_input(old_input_node)
        link_to(self, new_input_node, op_node)
        op_node.rename_input(old_input_node.name(), new_input_node.name())

    def update_output_link(self, old_output_node, new_output_node, op_node):
        old_output_node.remove_input(op_node)
        op_node.remove_output(old_output_node)
        link_to(self, op_node, new_output_node)
        op_node.rename_output(old_output_node.name(), new_output_node.name())

    return {"all_persistable_nodes": all_persistable_nodes,
            "create_persistable_node": create_persistable_node,
            "safe_remove_nodes": safe_remove_nodes, "link_to": link_to,
            "update_input_link": update_input_link, "update_output_link": update_output_link}
