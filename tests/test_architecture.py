"""The package's shape: data flows one way through the stages, and no imports go in circles.

Every import statement in quantkit/ (at module level or inside a function: a lazy import
is still a dependency) is read with `ast`. A module may import its own stage and earlier
ones only; the stage order is the pipeline's (model + data -> calibrated model ->
artifact -> measurements -> bundle -> server), with the commands on top.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import quantkit

PACKAGE = Path(quantkit.__file__).resolve().parent

STAGES = (  # (stage, module prefixes), earliest first
    ("foundation", ("quantkit", "quantkit.errors", "quantkit.choices", "quantkit.names",
                    "quantkit.files", "quantkit.atomic", "quantkit.records", "quantkit.hashing",
                    "quantkit.machine", "quantkit.static_mode", "quantkit.onednn",
                    "quantkit.interrupts", "quantkit.cli_types", "quantkit.evaluation",
                    "quantkit.sideenv", "quantkit.kit")),
    ("models and data", ("quantkit.models", "quantkit.datasets", "quantkit.metrics",
                         "quantkit.data", "quantkit.pir", "quantkit.model_files",
                         "quantkit.zoo")),
    ("calibration", ("quantkit.calibration",)),
    ("PaddleSlim face", ("quantkit.quant",)),
    ("targets", ("quantkit.targets",)),
    ("benchmark", ("quantkit.benchmark",)),
    ("packaging", ("quantkit.packaging",)),
    ("zoo runs", ("quantkit.pipeline", "quantkit.zoo.run", "quantkit.zoo.cli_command")),
    ("fleet", ("quantkit.fleet",)),
    ("serving", ("quantkit.serving",)),
    ("commands", ("quantkit.demo", "quantkit.doctor",
                  "quantkit.environment_check", "quantkit.cli")),
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _stage(module: str) -> int:
    """Index of the stage owning `module` (longest matching prefix wins)."""
    best, found = -1, None
    for index, (_, prefixes) in enumerate(STAGES):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), index
    if found is None:
        raise AssertionError(f"{module} belongs to no stage: add it to STAGES")
    return found


def _import_nodes(node: ast.AST):
    """Import statements anywhere, except under `if TYPE_CHECKING:` (no runtime import)."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and getattr(child.test, "id", None) == "TYPE_CHECKING":
            continue
        yield from _import_nodes(child)


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> set[str]:
    """quantkit modules that `module` imports (statements anywhere in its file)."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            targets = [_resolve(alias.name) for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import submodule` depends on the submodule; other names on `pkg`.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES
                       else _resolve(base) for alias in node.names]
        found.update(name for name in targets
                     if name and name != module and name.startswith("quantkit"))
    return found


GRAPH = {module: _imports(module) for module in MODULES}


def test_every_module_has_a_stage():
    for module in MODULES:
        _stage(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_from_a_later_stage(module):
    own = _stage(module)
    later = sorted(name for name in GRAPH[module] if _stage(name) > own)
    assert not later, (f"{module} ({STAGES[own][0]}) imports from later stages: "
                       + ", ".join(f"{name} ({STAGES[_stage(name)][0]})" for name in later))


def test_no_import_cycles():
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(GRAPH[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checks_can_fail():
    """A planted back-edge and a planted cycle are caught by the same code."""
    assert _stage("quantkit.calibration.driver") < _stage("quantkit.benchmark.session")
    assert _stage("quantkit.quant.post_static") > _stage("quantkit.calibration.calibrate")
    saved = {key: set(value) for key, value in GRAPH.items()}
    try:
        GRAPH["quantkit.benchmark.plots"].add("quantkit.benchmark.report")
        with pytest.raises(AssertionError, match="import cycles"):
            test_no_import_cycles()
        GRAPH["quantkit.calibration.driver"].add("quantkit.benchmark.session")
        with pytest.raises(AssertionError, match="imports from later stages"):
            test_no_import_from_a_later_stage("quantkit.calibration.driver")
    finally:
        GRAPH.clear()
        GRAPH.update(saved)
