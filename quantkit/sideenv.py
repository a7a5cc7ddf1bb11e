"""Side environments: a second Python venv for a library the main env cannot hold.

The main env pins Paddle 2.6.2 (Paddle Lite, paddle2onnx's INT8 export and Paddle core's
PTQ read only legacy programs). Paddle 3 is needed only to *run* a PIR model, to check a
translation against it, so it lives in its own venv, made from the main env's base
interpreter and checked by a stamp file naming the exact packages. One spec per side env,
here; `quantkit env install NAME` (and `make test`) creates it, `doctor` reports it.
"""
from __future__ import annotations

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


SPECS = {
    "paddle3": SideEnvSpec(
        name="paddle3",
        packages=("paddlepaddle==3.3.1",),
        why="runs Paddle 3 PIR models to check their legacy translation",
        probe="import paddle; print(paddle.__version__)",
    ),
}


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


def _stamp(side: SideEnvSpec) -> str:
    return "\n".join(side.packages) + "\n"


def ready(name: str) -> bool:
    """The side env exists and was installed with exactly today's spec."""
    side = spec(name)
    stamp = env_dir(name) / ".quantkit-installed"
    return python_of(name).is_file() and stamp.is_file() and stamp.read_text() == _stamp(side)


def require(name: str) -> Path:
    """The side env's python, or a one-line error saying how to make it."""
    if not ready(name):
        side = spec(name)
        raise QuantkitError(f"the {name} side environment is missing ({side.why}): run "
                            f"'quantkit env install {name}' (about 1 min, ~850 MB under "
                            f"{envs_root()}; set {ENVS_VARIABLE} to put it elsewhere)")
    return python_of(name)


def base_python() -> str:
    """The interpreter the main venv was made from: the side env gets the same CPython."""
    return getattr(sys, "_base_executable", None) or sys.executable


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
        _run([base_python(), "-m", "venv", str(target)], "create the venv")
        pip = [str(python_of(name)), "-m", "pip", "install", "--quiet",
               "--disable-pip-version-check"]
        _run(pip + list(side.packages), f"pip install {' '.join(side.packages)}")
        version = _run([str(python_of(name)), "-c", side.probe], "import the package")
        # the stamp is written last: a half-made env is never `ready`
        (target / ".quantkit-installed").write_text(_stamp(side))
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


def describe() -> list[dict]:
    """One record per side env for `doctor`: ready or not, where, why."""
    return [{"name": side.name, "ready": ready(side.name), "path": str(env_dir(side.name)),
             "packages": list(side.packages), "why": side.why} for side in SPECS.values()]
