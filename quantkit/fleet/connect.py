"""Reaching a fleet: a fast reachability check, `ray.init` with token auth, the node list.

`ray.init` against a dead address retries for a minute or more; a plain TCP connect
first turns an unreachable head into a one-line error within seconds, before anything
is written. Every node then answers a tiny probe (name, Python, quantkit and Ray
versions, boards it serves, machine facts): a node that cannot is named.
"""
from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from quantkit.errors import QuantkitError
from quantkit.fleet.node import BENCH_SLOT, ENV_AUTH_MODE, ENV_TOKEN, ENV_TOKEN_PATH

REACH_TIMEOUT_S = 3.0
PROBE_TIMEOUT_S = 90.0  # a node's first worker imports quantkit and Ray
RESERVED_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory", BENCH_SLOT)


@dataclass(frozen=True)
class FleetNode:
    """One alive node that can take benchmarks, as the driver sees it."""

    node_id: str
    name: str
    address: str  # its IP: nodes sharing one never benchmark at the same time
    targets: frozenset[str]
    remote: dict = field(default_factory=dict)  # target -> board (hosts-file name)
    versions: dict = field(default_factory=dict)
    machine: dict = field(default_factory=dict)


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise QuantkitError(f"--address must be HOST:PORT of the Ray head (e.g. "
                            f"10.0.0.5:6379) or 'local', not {address!r}")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_reachable(address: str, timeout_s: float = REACH_TIMEOUT_S) -> None:
    """Refuse at once when nothing listens at the head's address."""
    host, port = split_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if isinstance(exc, socket.timeout):
            reason = f"no answer within {timeout_s:.0f} s"
        raise QuantkitError(f"cannot reach the Ray head at {address}: {reason} (start it with "
                            "`quantkit fleet head`; see deploy/fleet.md)") from None


def connect(address: str, token_path: Path | None = None) -> None:
    """ray.init to an existing cluster with token authentication on."""
    check_reachable(address)
    os.environ[ENV_AUTH_MODE] = "token"
    if token_path is not None:
        os.environ[ENV_TOKEN_PATH] = str(token_path)
        os.environ.pop(ENV_TOKEN, None)
    host, _ = split_address(address)
    if is_loopback(host):  # a loopback cluster: this driver is 127.0.0.1 too
        from quantkit.fleet.loopback import keep_loopback

        keep_loopback()
    import ray

    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False,
                 **({"_node_ip_address": host} if is_loopback(host) else {}))
    except Exception as exc:  # ray's own errors: auth, version mismatch, no raylet here
        text = " ".join(str(exc).split())
        raise QuantkitError(f"cannot join the Ray cluster at {address}: {text[:400]}") from None


def disconnect() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def offered_targets() -> set[str]:
    """Targets some alive node advertises now (ray.cluster_resources)."""
    import ray

    return {name for name, amount in ray.cluster_resources().items()
            if amount > 0 and name not in RESERVED_RESOURCES and not name.startswith("node:")}


def alive_node_ids() -> set[str]:
    import ray

    return {node["NodeID"] for node in ray.nodes() if node.get("Alive")}


def bench_nodes() -> list[dict]:
    """ray.nodes() entries of alive nodes with a bench slot (the ones that measure)."""
    import ray

    return [node for node in ray.nodes()
            if node.get("Alive") and node.get("Resources", {}).get(BENCH_SLOT, 0) > 0]


def probe_nodes(timeout_s: float = PROBE_TIMEOUT_S) -> list[FleetNode]:
    """Every bench node's probe answer; a node that cannot answer is named."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from quantkit.fleet.tasks import probe_node

    nodes = bench_nodes()
    probe = ray.remote(num_cpus=0, max_retries=0)(probe_node)
    pending = {probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        node["NodeID"], soft=False)).remote(): node for node in nodes}
    ready, late = ray.wait(list(pending), num_returns=len(pending), timeout=timeout_s)
    for ref in late:
        ray.cancel(ref, force=True)
    problems, found = [], []
    for ref in ready:
        node = pending[ref]
        try:
            answer = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - the node's own error, reported
            problems.append(f"node {_name(node)}: {first_line(exc)}")
            continue
        targets = frozenset(name for name, amount in node["Resources"].items()
                            if amount > 0 and name not in RESERVED_RESOURCES
                            and not name.startswith("node:"))
        found.append(FleetNode(node_id=node["NodeID"], name=answer["name"],
                               address=node.get("NodeManagerAddress", ""), targets=targets,
                               remote=answer.get("remote") or {},
                               versions={key: answer.get(key)
                                         for key in ("python", "quantkit", "ray")},
                               machine=answer.get("machine") or {}))
    problems += [f"node {_name(pending[ref])} did not answer within {timeout_s:.0f} s (is its "
                 "Python the driver's? see deploy/fleet.md)" for ref in late]
    if problems:
        raise QuantkitError("fleet nodes failed the start-up probe: " + "; ".join(problems))
    names = [node.name for node in found]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise QuantkitError(f"several fleet nodes are named {', '.join(twice)}: give each "
                            "its own --name")
    return sorted(found, key=lambda node: node.name)


def _name(node: dict) -> str:
    return node.get("NodeName") or node.get("NodeID", "?")[:12]


def first_line(exc: BaseException) -> str:
    """An exception as one line; a RayTaskError's last line is the node's own error."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
