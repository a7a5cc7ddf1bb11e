"""Side environments: a second Python venv for a runtime the main env cannot hold.

The kit itself runs on CPython 3.10-3.12 with Paddle 2.6.2. Two runtimes cannot join it:
Paddle Lite (`paddle_lite_opt` and the x86 `.nb` runtime) publishes wheels for CPython
<= 3.10 only, and Paddle 3 cannot share a process with Paddle 2.6.2. Each lives in its own
venv, made from a named interpreter, checked by a stamp file naming the exact packages,
and used only through subprocesses (conversion, translation checks, the benchmark runner,
predictor workers: quantkit.targets.side_runtime). One spec per side env, here;
`quantkit env install NAME` (and `make test`) creates it, `doctor` reports it.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from quantkit.errors import QuantkitError
from quantkit.files import user_cache

ENVS_VARIABLE = "QUANTKIT_ENVS"


@dataclass(frozen=True)
class SideEnvSpec:
    name: str
    packages: tuple[str, ...]   # pip requirement strings, exact pins
    why: str                    # one line for `doctor` and error messages
    probe: str                  # python code printing the version that proves it works
    python: str | None = None   # "3.10": the CPython it needs; None: the kit's own
    size: str = ""              # measured on-disk size, for messages


SPECS = {
    "paddle3": SideEnvSpec(
        name="paddle3",
        packages=("paddlepaddle==3.3.1",),
        why="runs Paddle 3 PIR models (translation checks) and the paddle3-onednn-int8 target",
        probe="import paddle; print(paddle.__version__)",
        size="~850 MB",
    ),
    "lite": SideEnvSpec(
        name="lite",
        # paddlelite 2.13rc0's Tensor.from_numpy silently corrupts input under numpy 2.
        packages=("paddlelite==2.13rc0", "numpy==1.26.4"),
        why="Paddle Lite's opt and x86 .nb runtime (paddlelite has wheels for CPython <= 3.10)",
        probe="import paddlelite.lite, importlib.metadata as m; print(m.version('paddlelite'))",
        python="3.10",
        size="~260 MB",
    ),
}
PYTHON_VARIABLE = "QUANTKIT_PYTHON{}"  # QUANTKIT_PYTHON310: the CPython 3.10 to use


def envs_root() -> Path:
    """$QUANTKIT_ENVS, else the user cache's envs/: outside the repo, shared by checkouts."""
    configured = os.environ.get(ENVS_VARIABLE)
    if configured:
        return Path(configured).expanduser().absolute()
    return user_cache("envs")


def spec(name: str) -> SideEnvSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise QuantkitError(f"unknown side environment {name!r}: known are "
                            f"{', '.join(sorted(SPECS))}") from None


def env_dir(name: str) -> Path:
    return envs_root() / name


def python_of(name: str) -> Path:
    return env_dir(name) / "bin" / "python"


def _stamp(side: SideEnvSpec, interpreter: str) -> str:
    """What a ready env was made with: its exact packages and the interpreter it links to."""
    return "\n".join(side.packages) + f"\npython {interpreter}\n"


def ready(name: str) -> bool:
    """The side env exists, was installed with exactly today's packages, and the
    interpreter it was made from is still there (a venv links to it)."""
    side = spec(name)
    stamp = env_dir(name) / ".quantkit-installed"
    if not (python_of(name).is_file() and stamp.is_file()):
        return False
    lines = stamp.read_text().splitlines()
    if lines[:-1] != list(side.packages) or not lines[-1].startswith("python "):
        return False
    return Path(lines[-1][len("python "):]).is_file()


def require(name: str) -> Path:
    """The side env's python, or a one-line error saying how to make it."""
    if not ready(name):
        side = spec(name)
        raise QuantkitError(f"the {name} side environment is missing ({side.why}): run "
                            f"'quantkit env install {name}' (about 1 min, {side.size} under "
                            f"{envs_root()}; set {ENVS_VARIABLE} to put it elsewhere)")
    return python_of(name)


def base_python() -> str:
    """The real interpreter under this (venv's) Python, never a venv's own link to it:
    a side env made from a venv's python breaks when that venv is re-made."""
    return _real_interpreter(sys.base_prefix, tuple(sys.version_info[:2]),
                             getattr(sys, "_base_executable", None) or sys.executable)


def _real_interpreter(base_prefix: str, version: tuple, executable: str) -> str:
    installed = Path(base_prefix) / "bin" / f"python{version[0]}.{version[1]}"
    return str(installed) if installed.is_file() else os.path.realpath(executable)


def interpreter_for(side: SideEnvSpec) -> str:
    """The CPython a side env is made from: the kit's own, or the version it names.

    For a named version: $QUANTKIT_PYTHON310 (say), the kit's own if it is that version,
    then pythonX.Y on PATH and pyenv's builds; a one-line error if none runs.
    """
    if side.python is None:
        return base_python()
    wanted = tuple(int(part) for part in side.python.split("."))
    variable = PYTHON_VARIABLE.format(side.python.replace(".", ""))
    configured = os.environ.get(variable)
    if configured:
        found = _probe_python(configured)
        if found is None or found[0] != wanted:
            raise QuantkitError(f"${variable}={configured} is not a working CPython "
                                f"{side.python}")
        return found[1]
    if sys.version_info[:2] == wanted:
        return base_python()
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates = [shutil.which(f"python{side.python}") or "",
                  *sorted(glob.glob(f"{pyenv_root}/versions/{side.python}*/bin/python"
                                    f"{side.python}"), reverse=True),
                  f"/usr/bin/python{side.python}", f"/usr/local/bin/python{side.python}"]
    for candidate in candidates:
        found = _probe_python(candidate) if candidate else None
        if found is not None and found[0] == wanted:
            return found[1]
    raise QuantkitError(f"the {side.name} side environment needs CPython {side.python} "
                        f"({side.why}) and none was found: install it (pyenv install "
                        f"{side.python}, or apt-get install python{side.python}-venv) or set "
                        f"${variable} to its python")


_PROBE = ("import json, sys, venv; print(json.dumps([sys.version_info[:2], sys.base_prefix, "
          "getattr(sys, '_base_executable', None) or sys.executable]))")


def _probe_python(python: str) -> tuple[tuple[int, ...], str] | None:
    """((major, minor), its real interpreter) for a python that runs and has venv."""
    try:
        done = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True,
                              timeout=60)
        version, base_prefix, executable = json.loads(done.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    if done.returncode != 0:
        return None
    return tuple(version), _real_interpreter(base_prefix, version, executable)


def install(name: str, progress=print) -> Path:
    """Create (or re-create, if its spec changed) the side env; return its python."""
    side = spec(name)
    if ready(name):
        progress(f"{name}: ready at {env_dir(name)}")
        return python_of(name)
    target = env_dir(name)
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    progress(f"{name}: creating a venv at {target} ({', '.join(side.packages)})")
    try:
        interpreter = interpreter_for(side)
        _run([interpreter, "-m", "venv", str(target)], "create the venv")
        pip = [str(python_of(name)), "-m", "pip", "install", "--quiet",
               "--disable-pip-version-check"]
        _run(pip + list(side.packages), f"pip install {' '.join(side.packages)}")
        version = _run([str(python_of(name)), "-c", side.probe], "import the package")
        # the stamp is written last: a half-made env is never `ready`
        (target / ".quantkit-installed").write_text(_stamp(side, interpreter))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    progress(f"{name}: ready ({version.strip()})")
    return python_of(name)


def _run(command: list[str], what: str) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise QuantkitError(f"side environment: could not {what}: {exc}") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise QuantkitError(f"side environment: could not {what}: "
                            f"{lines[-1] if lines else f'exit code {done.returncode}'}")
    return done.stdout


def runtime_versions() -> dict[str, str]:
    """{distribution: version} pinned in the side envs that are ready (installed with
    exactly those pins): what a Paddle Lite bundle records as its paddlelite."""
    versions: dict[str, str] = {}
    for side in SPECS.values():
        if ready(side.name):
            for package in side.packages:
                name, _, version = package.partition("==")
                versions.setdefault(name, version)
    return versions


def describe() -> list[dict]:
    """One record per side env for `doctor`: ready or not, where, why."""
    return [{"name": side.name, "ready": ready(side.name), "path": str(env_dir(side.name)),
             "packages": list(side.packages),
             "python": f"CPython {side.python}" if side.python else "the kit's Python",
             "why": side.why} for side in SPECS.values()]
