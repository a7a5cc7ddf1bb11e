"""The runner kit and side environments: what runs where no quantkit is installed.

The kit's modules are imported by Pythons that have numpy and one runtime only (an ARM
board, the lite and paddle3 side envs), so each may import only the others; and a side
env must be made from a real interpreter, found by version, so it outlives the main venv.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from quantkit import sideenv
from quantkit.errors import QuantkitError
from quantkit.kit import PACKAGE_DIR, SHIPPED_MODULES, local_kit
from quantkit.targets import standalone
from quantkit.targets.side_runtime import python_for
from quantkit.targets.profile import Backend

# What a kit module may import besides the kit: the standard library, numpy and the
# runtimes the side envs and boards have.
RUNTIMES = {"numpy", "paddle", "paddlelite"}


def _module(name: str) -> str:
    return "quantkit" if name == "__init__.py" else "quantkit." + name[:-3].replace(
        "/__init__", "").replace("/", ".")


@pytest.mark.parametrize("name", SHIPPED_MODULES)
def test_kit_modules_import_only_the_kit_numpy_and_runtimes(name):
    shipped = {_module(item) for item in SHIPPED_MODULES}
    tree = ast.parse((PACKAGE_DIR / name).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            names = [node.module] if node.module != "quantkit" else names[1:]
        else:
            continue
        for imported in names:
            top = imported.split(".")[0]
            if top == "quantkit":
                assert imported in shipped or imported.rpartition(".")[0] in shipped, (
                    f"{name} imports {imported}, which the kit does not ship")
            else:
                assert top in RUNTIMES or top in sys.stdlib_module_names, (
                    f"{name} imports {imported}: not in a board's or side env's Python")


def test_standalone_backends_are_the_profiles_backends():
    assert set(standalone.STANDALONE_BACKENDS) <= {member.value for member in Backend}


def test_the_kit_imports_in_the_lite_side_env_without_quantkit(tmp_path):
    """The lite env has numpy and paddlelite only: the kit's runner and worker load there."""
    launch = python_for(standalone.LITE_BACKEND, {})
    assert launch.python == str(sideenv.require("lite")) and launch.cwd == launch.env[
        "PYTHONPATH"]
    done = subprocess.run(
        [launch.python, "-c", "import importlib.util as u, quantkit.benchmark.runner, "
         "quantkit.targets.worker, quantkit.targets.lite_runtime; import quantkit; "
         "print(quantkit.__file__, u.find_spec('click') is None)"],
        capture_output=True, text=True, timeout=120, env=launch.env, cwd=launch.cwd)
    assert done.returncode == 0, done.stderr
    where, no_click = done.stdout.split()
    assert where.startswith(launch.cwd) and no_click == "True"
    assert python_for("paddle-inference", {}).python == sys.executable


def test_local_kit_is_written_once_per_content(monkeypatch, tmp_path):
    monkeypatch.setenv("QUANTKIT_CACHE", str(tmp_path))
    first = local_kit()
    assert sorted(str(p.relative_to(first / "quantkit")) for p in
                  (first / "quantkit").rglob("*.py")) == sorted(SHIPPED_MODULES)
    assert local_kit() == first
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no staging left


def test_the_lite_env_is_made_from_a_real_cpython_310():
    interpreter = sideenv.interpreter_for(sideenv.spec("lite"))
    done = subprocess.run([interpreter, "-c", "import sys; print(sys.prefix == "
                           "sys.base_prefix, *sys.version_info[:2])"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["True", "3", "10"]  # not a venv: outlives any venv
    stamp = (sideenv.env_dir("lite") / ".quantkit-installed").read_text().splitlines()
    assert stamp[:-1] == list(sideenv.spec("lite").packages)
    assert Path(stamp[-1].split(" ", 1)[1]).is_file()


def test_a_wrong_named_interpreter_is_refused(monkeypatch):
    monkeypatch.setenv("QUANTKIT_PYTHON310", sys.executable if sys.version_info[:2] != (3, 10)
                       else "/no/such/python")
    with pytest.raises(QuantkitError, match=r"QUANTKIT_PYTHON310=.* is not a working "
                                            r"CPython 3\.10"):
        sideenv.interpreter_for(sideenv.spec("lite"))


def test_an_env_whose_interpreter_is_gone_is_not_ready(monkeypatch, tmp_path):
    monkeypatch.setenv(sideenv.ENVS_VARIABLE, str(tmp_path))
    env = tmp_path / "lite"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").write_text("")
    packages = "\n".join(sideenv.spec("lite").packages)
    (env / ".quantkit-installed").write_text(packages + f"\npython {sys.executable}\n")
    assert sideenv.ready("lite")
    (env / ".quantkit-installed").write_text(packages + f"\npython {tmp_path}/gone\n")
    assert not sideenv.ready("lite")
    (env / ".quantkit-installed").write_text(packages + "\n")  # a stamp from before
    assert not sideenv.ready("lite")
    with pytest.raises(QuantkitError, match="quantkit env install lite"):
        sideenv.require("lite")
