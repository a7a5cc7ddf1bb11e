"""Throwaway Ray clusters on this machine: started by PID, stopped by PID, on 127.0.0.1.

`ray stop` kills every Ray process on the host by name, other people's too, so it is
never used: each `ray start --block` runs in its own session and is stopped by its PID
(SIGTERM, then SIGKILL to its own process group). Every service is bound to 127.0.0.1,
token authentication is on and the token lives in a temporary folder, not ~/.ray.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from quantkit.errors import QuantkitError
from quantkit.fleet.node import (ENV_AUTH_MODE, ENV_TOKEN, ENV_TOKEN_PATH, NodePorts,
                                 NodeSpec, ray_start_command)

LOOPBACK = "127.0.0.1"
STARTED_MARK = "Ray runtime started"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
# A node that dies is declared dead after ~3 s instead of Ray's ~15-30 s default.
FAST_HEALTH_CHECKS = {"RAY_health_check_period_ms": "1000",
                      "RAY_health_check_timeout_ms": "1000",
                      "RAY_health_check_failure_threshold": "3"}
LOCAL_OBJECT_STORE = 512 * 1024 * 1024  # job archives are MBs; Ray's default is 30% of RAM


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def loopback_ports() -> NodePorts:
    """Distinct ports for one of several nodes on this machine."""
    return NodePorts(node_manager=free_port(), object_manager=free_port(),
                     metrics_export=free_port(), dashboard_agent_listen=free_port(),
                     dashboard_agent_grpc=free_port(), runtime_env_agent=free_port())


@dataclass
class RayProcess:
    """One `ray start --block` and the log it writes; stop() ends it and its children."""

    name: str
    process: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_started(self, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if STARTED_MARK in self.log_text():
                return
            if self.process.poll() is not None:
                raise QuantkitError(f"ray node '{self.name}' exited with code "
                                    f"{self.process.returncode}: {self.log_tail()}")
            time.sleep(0.2)
        self.stop()
        raise QuantkitError(f"ray node '{self.name}' did not start within {timeout_s:.0f} s: "
                            f"{self.log_tail()}")

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 5) -> str:
        tail = [line.strip() for line in self.log_text().splitlines() if line.strip()]
        return " | ".join(tail[-lines:]) or "(no output)"

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM to `ray start --block` (it stops what it started), then SIGKILL to
        whatever of its process tree is left."""
        tree = descendants(self.process.pid)
        if self.process.poll() is None:
            try:
                self.process.send_signal(signal.SIGTERM)
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                pass
        self._kill(tree | descendants(self.process.pid))

    def kill(self) -> None:
        """The node dies at once (a power cut): SIGKILL to it and every process under it,
        benchmark runners in their own sessions included."""
        self._kill(descendants(self.process.pid))

    def _kill(self, tree: set[int]) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # its own session: only ours
        except (ProcessLookupError, PermissionError):
            pass
        for pid in tree:  # by PID: what this node started, wherever its session
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass


def descendants(pid: int) -> set[int]:
    """PIDs of every living process under `pid` (from /proc; Linux)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def start_ray_process(spec: NodeSpec, log: Path, env: dict[str, str],
                      head_address: str | None = None, head_port: int | None = None,
                      loopback: bool = True) -> RayProcess:
    """`ray start --block` in its own session, its output in `log`."""
    command = ray_start_command(spec, head_address, head_port, loopback=loopback)
    handle = open(log, "w")
    try:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    finally:
        handle.close()
    return RayProcess(spec.name, process, log)


@dataclass
class LocalCluster:
    """A head (and nodes) on 127.0.0.1 with a token in a temporary folder."""

    root: Path
    token_path: Path
    address: str = ""
    head: RayProcess | None = None
    nodes: list[RayProcess] = field(default_factory=list)

    @classmethod
    def start(cls, head: NodeSpec | None = None, nodes: tuple[NodeSpec, ...] = (),
              root: Path | None = None) -> "LocalCluster":
        """A head advertising `head`'s targets, plus `nodes`; stopped again on failure."""
        # Short path: Ray's unix sockets live under it (108-byte limit).
        root = Path(tempfile.mkdtemp(prefix="qkray-", dir=root or "/tmp"))
        token_path = root / "auth_token"
        token_path.write_text(secrets.token_hex(32))
        token_path.chmod(0o600)
        cluster = cls(root=root, token_path=token_path)
        try:
            port = free_port()
            spec = head or NodeSpec(name="head")
            cluster.head = cluster._start(spec, head_port=port)
            cluster.address = f"{LOOPBACK}:{port}"
            for node in nodes:
                cluster.add_node(node)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def environment(self) -> dict[str, str]:
        """What a driver needs to connect (token auth on, this cluster's token)."""
        return {ENV_AUTH_MODE: "token", ENV_TOKEN_PATH: str(self.token_path)}

    def add_node(self, spec: NodeSpec) -> RayProcess:
        process = self._start(spec)
        self.nodes.append(process)
        return process

    def _start(self, spec: NodeSpec, head_port: int | None = None) -> RayProcess:
        spec = replace(spec, node_ip=LOOPBACK, ports=loopback_ports(),
                       object_store_bytes=spec.object_store_bytes or LOCAL_OBJECT_STORE,
                       temp_dir=self.root / "ray")
        env = {key: value for key, value in os.environ.items() if key != ENV_TOKEN}
        env.update(spec.environment(self.token_path))
        env.update(FAST_HEALTH_CHECKS)

        process = start_ray_process(spec, self.root / f"{spec.name}.log", env,
                                    None if head_port is not None else self.address, head_port)
        process.wait_started()
        return process

    def stop(self) -> None:
        """Stop every node, then the head, by PID; remove the temporary folder."""
        for process in reversed(self.nodes):
            process.stop()
        if self.head is not None:
            self.head.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "LocalCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
