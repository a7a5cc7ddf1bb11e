"""Ctrl-C during a benchmark: noted at once, acted on where it is safe.

A KeyboardInterrupt raised at an arbitrary point can land inside a native import or call
(onnx, paddle) in this process; seen here: SIGINT as the second target started left the
interpreter to die with SIGSEGV instead of saving the finished results. So the handler
only sets a flag; `bench` checks it between targets and while it waits for a runner.
"""
from __future__ import annotations

import signal
import threading


class InterruptFlag:
    """Within `with`, SIGINT sets `requested`; `check()` raises KeyboardInterrupt then."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "InterruptFlag":
        # Only the main thread may set handlers; leave an ignored SIGINT ignored (nohup).
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._note)
        return self

    def __exit__(self, *exc) -> bool:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False

    def _note(self, signum, frame) -> None:
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt
