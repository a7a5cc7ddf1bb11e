"""Backends whose runtime lives in a side environment, and the one way to reach it.

Paddle Lite (CPython <= 3.10 wheels) and Paddle 3 (cannot share a process with Paddle
2.6.2) run in side environments (quantkit.sideenv). The kit reaches them only through
subprocesses started here, with the runner kit (quantkit.kit) on PYTHONPATH:
`runner_command` for a timed benchmark job, `WorkerPredictor` for a predictor the main
process calls (verify's smoke run, serve, zoo checks), which is slower per call (the
arrays cross a pipe) and so never timed.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from quantkit import sideenv
from quantkit.errors import QuantkitError
from quantkit.kit import local_kit
from quantkit.targets.base import kill_group
from quantkit.targets.standalone import LITE_BACKEND, PADDLE3_BACKEND
from quantkit.targets.worker import pack_arrays, read_frame, unpack_arrays, write_frame

if TYPE_CHECKING:
    from quantkit.targets.artifact import Artifact

SIDE_ENV_OF = {LITE_BACKEND: "lite", PADDLE3_BACKEND: "paddle3"}  # backend -> side env
READY_TIMEOUT_S = 300.0


def side_env_of(backend: str) -> str | None:
    """The side env a backend's runtime lives in, or None for the kit's own process."""
    return SIDE_ENV_OF.get(backend)


class Launch(NamedTuple):
    """How to start a Python that runs quantkit's kit modules for one backend's runtime."""
    python: str
    env: dict[str, str]
    cwd: str | None  # the kit itself: a `quantkit/` in the caller's folder must not win


def python_for(backend: str | None, environment: dict[str, str]) -> Launch:
    """The kit's own interpreter for backends in the main env; for the others, the side
    env's python with the runner kit on PYTHONPATH (and nothing else of ours)."""
    name = side_env_of(backend) if backend else None
    if name is None:
        return Launch(sys.executable, environment, None)
    python = sideenv.require(name)
    kit = str(local_kit())
    env = dict(environment, PYTHONPATH=kit)
    env.pop("PYTHONHOME", None)
    return Launch(str(python), env, kit)


class WorkerPredictor:
    """A Predictor whose model runs in a worker process in the backend's side env."""

    def __init__(self, artifact: "Artifact", threads: int | None, what: str) -> None:
        self._what = what  # e.g. "Paddle Lite cannot load model.nb", for crash messages
        backend = str(artifact.backend)
        launch = python_for(backend, dict(os.environ, GLOG_minloglevel="2"))
        self._stderr = tempfile.TemporaryFile()
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [launch.python, "-m", "quantkit.targets.worker", str(Path(artifact.folder)
                                                                 .absolute())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            env=launch.env, cwd=launch.cwd, start_new_session=True)
        record = {"backend": backend, "files": list(artifact.files),
                  "settings": artifact.settings}
        self._send(json.dumps({"record": record, "threads": threads}).encode())
        reply = self._reply(timeout=READY_TIMEOUT_S, starting=True)
        self.input_names = tuple(json.loads(reply))

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        for name in self.input_names:
            if name not in feeds:
                raise QuantkitError(f"missing input '{name}' (the model's inputs: "
                                    f"{', '.join(self.input_names)})")
        payload = pack_arrays({name: np.ascontiguousarray(feeds[name])
                               for name in self.input_names})
        with self._lock:
            self._send(payload)
            return list(unpack_arrays(self._reply()).values())

    def _send(self, payload: bytes) -> None:
        try:
            write_frame(self._process.stdin, payload)
        except (BrokenPipeError, OSError):
            pass  # the reply read next says how the worker died

    def _reply(self, timeout: float | None = None, starting: bool = False) -> bytes:
        timer = threading.Timer(timeout, kill_group, (self._process,)) if timeout else None
        if timer:
            timer.start()
        try:
            frame = read_frame(self._process.stdout)
        except EOFError:
            frame = None
        finally:
            if timer:
                timer.cancel()
        if frame is None:
            death = self._death()
            self.close()
            raise QuantkitError(f"{self._what}: the worker {death}")
        kind, body = frame[:1], frame[1:]
        if kind == b"e":
            if starting:
                self.close()
            raise QuantkitError(body.decode(errors="replace"))
        return body

    def log_text(self) -> str:
        """What the worker's runtime printed so far (e.g. ONEDNN_VERBOSE's primitives).

        pread: the worker writes through the same file offset, which a seek would move.
        """
        fd = self._stderr.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")

    def _death(self) -> str:
        code = self._process.wait()
        lines = [line.strip() for line in self.log_text().splitlines() if line.strip()]
        if code < 0:
            try:
                how = f"crashed ({signal.Signals(-code).name})"
            except ValueError:
                how = f"crashed (signal {-code})"
        else:
            how = f"exited with code {code}"
        return how + (f": {lines[-1][:300]}" if lines else "")

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                self._process.stdin.close()
                self._process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                kill_group(self._process)
        self._stderr.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
