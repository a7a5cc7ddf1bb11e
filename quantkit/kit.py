"""The runner kit: the few quantkit modules a Python without quantkit runs a target with.

A board reached over SSH or adb and a side environment (quantkit.sideenv: Paddle Lite on
CPython 3.10, Paddle 3) have a runtime and numpy, not quantkit and its dependencies. They
run `quantkit.benchmark.runner` (timed jobs) and `quantkit.targets.worker` (a predictor
served over pipes) from these modules, copied as they are under the same package paths;
each imports only the others, numpy and its runtime (tests/test_kit.py checks that).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import quantkit
from quantkit.files import user_cache

SHIPPED_MODULES = ("__init__.py", "errors.py", "files.py", "machine.py", "evaluation.py",
                   "benchmark/__init__.py", "benchmark/measure.py", "benchmark/runner.py",
                   "targets/__init__.py", "targets/standalone.py", "targets/lite_runtime.py",
                   "targets/paddle_runtime.py", "targets/worker.py")
PACKAGE_DIR = Path(quantkit.__file__).resolve().parent


def write_kit(kit: Path) -> Path:
    """kit/quantkit/...: the shipped modules; put `kit` on PYTHONPATH to use them."""
    for name in SHIPPED_MODULES:
        target = kit / "quantkit" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PACKAGE_DIR / name, target)
    return kit


def local_kit() -> Path:
    """The kit for this machine's side environments, in the user cache, keyed by content.

    Written once per version of the modules (a new checkout gets its own), renamed into
    place whole so concurrent users never see half a kit.
    """
    digest = hashlib.sha256()
    for name in SHIPPED_MODULES:
        digest.update(name.encode() + b"\0" + (PACKAGE_DIR / name).read_bytes())
    kit = user_cache("kit", digest.hexdigest()[:16])
    if (kit / "quantkit" / SHIPPED_MODULES[-1]).is_file():
        return kit
    kit.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".kit-", dir=kit.parent))
    write_kit(staging)
    try:
        os.rename(staging, kit)
    except OSError:  # another process won the race: its kit is the same
        shutil.rmtree(staging, ignore_errors=True)
    return kit
