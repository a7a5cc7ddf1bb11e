"""`serve`: claim the port, load the bundle, open the predictors, run uvicorn.

The port is bound first, before Paddle is imported or the bundle verified, so a busy
port is a one-line error in a second rather than after a long load; the same socket is
then handed to uvicorn, so nothing can take the port in between.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

from quantkit.errors import QuantkitError
from quantkit.serving.settings import DEFAULTS, ServeSettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (not yet listening), or why it cannot be."""
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise QuantkitError(f"bad value for 'port': {port!r} (0 to 65535)")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise QuantkitError(f"cannot use host {host!r}: {exc.strerror} (give an address of "
                            "this machine, e.g. 127.0.0.1 or 0.0.0.0)") from None
    sock = socket.socket(family, kind, proto)
    # Like uvicorn: reuse a port left in TIME_WAIT; a port someone listens on still fails.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise QuantkitError(f"port {port} on {host} is in use: stop the other server or "
                                "pick another --port") from None
        if exc.errno == errno.EACCES:
            raise QuantkitError(f"no permission to use port {port} on {host} (ports below "
                                "1024 need privileges): pick a port such as 8000") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise QuantkitError(f"{host} is not an address of this machine: use 127.0.0.1 "
                                "or 0.0.0.0") from None
        raise QuantkitError(f"cannot bind {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def auto_workers(threads_per_predictor: int) -> int:
    """As many predictors as fit on the CPUs this process may use, at least one."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cpus or 1) // max(1, threads_per_predictor))


def serve(path: str | Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          workers: int | None = None, max_batch: int = DEFAULTS.max_batch,
          max_wait_ms: float | None = DEFAULTS.max_wait_ms,
          max_body_bytes: int = DEFAULTS.max_body_bytes, threads: int | None = None,
          access_log: bool = True) -> None:
    """Serve the bundle (or artifact folder) at `path` over HTTP until interrupted.

    `workers=None` picks CPUs // threads-per-predictor; `max_wait_ms` turns on dynamic
    batching (None: off).
    """
    ServeSettings(workers=1 if workers is None else workers, max_batch=max_batch,
                  max_wait_ms=max_wait_ms, max_body_bytes=max_body_bytes)  # bad limits: now
    sock = bind_socket(host, port)
    # A .tar.gz bundle is extracted into `scratch` for the server's lifetime.
    with contextlib.closing(sock), tempfile.TemporaryDirectory(prefix="quantkit-serve-") as scratch:
        import uvicorn

        from quantkit.serving.app import create_app
        from quantkit.serving.source import source_from_path

        source = source_from_path(path, threads=threads, extract_to=scratch)
        if workers is None:
            workers = auto_workers(int(source.metadata.get("threads") or 1))
        settings = ServeSettings(workers=workers, max_batch=max_batch, max_wait_ms=max_wait_ms,
                                 max_body_bytes=max_body_bytes)
        app = create_app(source, settings)
        config = uvicorn.Config(app, log_level="info", access_log=access_log,
                                timeout_graceful_shutdown=30)
        _announce(source.name, path, sock, settings)
        try:
            with _stop_signal_as_exception():
                uvicorn.Server(config).run(sockets=[sock])
        except (KeyboardInterrupt, _Stopped):
            pass  # uvicorn re-raises the signal after its graceful shutdown: all done


class _Stopped(Exception):
    """SIGTERM, re-raised by uvicorn once it has drained the requests in flight."""


@contextlib.contextmanager
def _stop_signal_as_exception():
    """Turn SIGTERM into an exception, so `serve` unwinds (removing an extracted bundle)
    instead of the process dying where uvicorn re-raises the signal."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise _Stopped()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _announce(name: str, path: str | Path, sock: socket.socket,
              settings: ServeSettings) -> None:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    batching = (f"dynamic batching up to {settings.max_batch} rows / {settings.max_wait_ms:g} ms"
                if settings.batching else "no dynamic batching")
    workers = f"{settings.workers} worker{'s' if settings.workers != 1 else ''}"
    logging.getLogger("uvicorn.error").info(
        "quantkit serving %s from %s on http://%s:%d (%s, %s)", name, path, shown, port,
        workers, batching)


class ServerThread:
    """Uvicorn serving `app` on a bound socket from a background thread.

    For tests, benchmarks and notebooks: `serve` is the blocking production entry point.
    """

    def __init__(self, app: Any, sock: socket.socket, log_level: str = "warning") -> None:
        import uvicorn

        self._sock = sock
        self.host, self.port = sock.getsockname()[:2]
        config = uvicorn.Config(app, log_level=log_level, access_log=False,
                                timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="quantkit-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> "ServerThread":
        self._thread.start()
        self._server_started(timeout)
        return self

    def _server_started(self, timeout: float) -> None:
        import time

        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise QuantkitError("the server thread stopped during startup (see its log)")
            if time.monotonic() > deadline:
                raise QuantkitError(f"the server did not start within {timeout:.0f} s")
            time.sleep(0.01)

    def stop(self, timeout: float = 30.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
