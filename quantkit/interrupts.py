"""Ctrl-C and SIGTERM: turned into one exception, cleaned up by the same `finally` blocks.

`Terminated` (a KeyboardInterrupt) is what SIGTERM raises once `exit_on_sigterm()` is in
force, so staged folders, converter process groups and benchmark runners are removed on
both signals. A KeyboardInterrupt raised at an arbitrary point can land inside a native
import or call (onnx, paddle) and crash the interpreter (seen here: SIGSEGV as a target
started), so long benchmarks use `InterruptFlag` instead: the handler only sets a flag,
and `check()` raises at safe points (between targets, while waiting on a runner).
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import signal
import sys
import threading

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered like Ctrl-C (exit status 143 instead of 130)."""

    exit_status = 143


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def exit_on_sigterm() -> None:
    """From now on SIGTERM raises `Terminated` in the main thread (commands call this).

    Importing Paddle installs its own C signal handlers (glog's failure handler, which on
    SIGTERM prints a C++ stack and hangs or aborts instead of letting Python clean up), so
    the first `import paddle` afterwards is followed by `paddle.disable_signal_handler()`
    and Python's handlers are put back (`_ReclaimSignalsAfterPaddle`).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    if "paddle" in sys.modules:
        _reclaim_signals(sys.modules["paddle"])
    elif not any(isinstance(finder, _ReclaimSignalsAfterPaddle) for finder in sys.meta_path):
        sys.meta_path.insert(0, _ReclaimSignalsAfterPaddle())


def _reclaim_signals(paddle) -> None:
    disable = getattr(paddle, "disable_signal_handler", None)
    if disable is not None:
        disable()
    if threading.current_thread() is threading.main_thread():
        for signum in HANDLED:
            handler = signal.getsignal(signum)
            if callable(handler):
                signal.signal(signum, handler)  # re-installs Python's C-level trampoline


class _ReclaimSignalsAfterPaddle(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps Paddle's loader so `_reclaim_signals` runs after it."""

    def find_spec(self, name, path, target=None):
        if name != "paddle":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module) -> None:
            run(module)
            _reclaim_signals(module)

        spec.loader.exec_module = exec_module
        return spec


class InterruptFlag:
    """Within `with`, SIGINT/SIGTERM set `requested`; `check()` raises the interrupt then."""

    def __init__(self) -> None:
        self.requested: type[KeyboardInterrupt] | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "InterruptFlag":
        # Only the main thread may set handlers; leave an ignored signal ignored (nohup).
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                if signal.getsignal(signum) not in (signal.SIG_IGN, None):
                    self._previous[signum] = signal.signal(signum, self._note)
        return self

    def __exit__(self, *exc) -> bool:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        return False

    def _note(self, signum, frame) -> None:
        self.requested = Terminated if signum == signal.SIGTERM else KeyboardInterrupt

    def check(self) -> None:
        if self.requested is not None:
            raise self.requested()
