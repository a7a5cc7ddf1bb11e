"""Joining a fleet: check that this machine runs each target, then `ray start` with them.

A node advertises one Ray custom resource per target profile it offers and one
`bench_slot` (so two benchmarks never share its cores), with `--num-cpus 0` so no other
Ray work lands on it. Targets served on a board over SSH/adb are advertised too; the
node's worker reads which board from the environment `ray start` passes down.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from quantkit.errors import QuantkitError
from quantkit.names import check_name

BENCH_SLOT = "bench_slot"
NODE_LABEL = "quantkit-node"
# What a fleet worker learns about its node from the environment of `ray start`.
ENV_NODE = "QUANTKIT_FLEET_NODE"  # the node's name
ENV_REMOTE = "QUANTKIT_FLEET_REMOTE"  # JSON {target: host name in the hosts file}
ENV_HOSTS = "QUANTKIT_FLEET_HOSTS"  # the hosts file those names are read from
# Ray's token authentication: on for every cluster quantkit starts or joins.
ENV_AUTH_MODE = "RAY_AUTH_MODE"
ENV_TOKEN_PATH = "RAY_AUTH_TOKEN_PATH"
ENV_TOKEN = "RAY_AUTH_TOKEN"


@dataclass(frozen=True)
class NodePorts:
    """Ports a node listens on; None leaves Ray's default (one node per machine)."""

    node_manager: int | None = None
    object_manager: int | None = None
    metrics_export: int | None = None
    dashboard_agent_listen: int | None = None
    dashboard_agent_grpc: int | None = None
    runtime_env_agent: int | None = None
    min_worker: int | None = None
    max_worker: int | None = None

    def flags(self) -> list[str]:
        names = {"node_manager": "--node-manager-port",
                 "object_manager": "--object-manager-port",
                 "metrics_export": "--metrics-export-port",
                 "dashboard_agent_listen": "--dashboard-agent-listen-port",
                 "dashboard_agent_grpc": "--dashboard-agent-grpc-port",
                 "runtime_env_agent": "--runtime-env-agent-port",
                 "min_worker": "--min-worker-port", "max_worker": "--max-worker-port"}
        flags = []
        for key, flag in names.items():
            value = getattr(self, key)
            if value is not None:
                flags += [flag, str(value)]
        return flags


WORKER_PORTS = 100  # worker processes' ports after the fixed ones: the node's concurrency


def fixed_ports(base: int) -> NodePorts:
    """Every port a node listens on, from `base` up: one range to open in a firewall."""
    if not 1024 <= base <= 65535 - 10 - WORKER_PORTS:
        raise QuantkitError(f"--port-base must leave room for {10 + WORKER_PORTS} ports above "
                            f"it, between 1024 and {65535 - 10 - WORKER_PORTS} (got {base})")
    return NodePorts(node_manager=base, object_manager=base + 1, runtime_env_agent=base + 2,
                     dashboard_agent_grpc=base + 3, dashboard_agent_listen=base + 4,
                     metrics_export=base + 5, min_worker=base + 10,
                     max_worker=base + 10 + WORKER_PORTS - 1)


@dataclass(frozen=True)
class NodeSpec:
    """What one node offers and how it is reached; becomes a `ray start` command line."""

    name: str
    targets: tuple[str, ...] = ()
    remote: Mapping[str, str] = field(default_factory=dict)  # target -> hosts-file name
    hosts_file: Path | None = None
    node_ip: str | None = None  # None: Ray's own choice of this machine's address
    ports: NodePorts = NodePorts()
    object_store_bytes: int | None = None
    temp_dir: Path | None = None

    def __post_init__(self) -> None:
        check_name(self.name, "node name")
        for target in self.targets:
            check_name(target, "target")
        unknown = sorted(set(self.remote) - set(self.targets))
        if unknown:
            raise QuantkitError(f"--remote maps target(s) {', '.join(unknown)} that the node "
                                f"does not offer (--targets {','.join(self.targets)})")
        if self.remote and self.hosts_file is None:
            raise QuantkitError("--remote needs the hosts file the host names are read from "
                                "(--hosts)")

    def resources(self) -> dict[str, float]:
        """One unit per target and one bench slot (none for a head that only schedules)."""
        return {**{target: 1 for target in self.targets},
                **({BENCH_SLOT: 1} if self.targets else {})}

    def environment(self, token_path: Path | None = None) -> dict[str, str]:
        """Variables for `ray start`: Ray passes them on to the node's workers."""
        env = {ENV_NODE: self.name, ENV_AUTH_MODE: "token",
               "RAY_USAGE_STATS_ENABLED": "0"}
        if token_path is not None:
            env[ENV_TOKEN_PATH] = str(token_path)
        if self.remote:
            env[ENV_REMOTE] = json.dumps(dict(self.remote), sort_keys=True)
            env[ENV_HOSTS] = str(Path(self.hosts_file).absolute())
        return env


def ray_executable() -> str:
    """The `ray` script of this interpreter (the node must run the driver's Python)."""
    beside = Path(sys.executable).with_name("ray")
    if beside.is_file():
        return str(beside)
    found = shutil.which("ray")
    if found is None:
        raise QuantkitError("the 'ray' command is not installed beside "
                            f"{sys.executable}: pip install quantkit (it depends on ray)")
    return found


def ray_start_command(spec: NodeSpec, head_address: str | None = None,
                      head_port: int | None = None, loopback: bool = False) -> list[str]:
    """`ray start ... --block` for a head (head_address None) or a node joining one.

    `loopback`: a cluster on 127.0.0.1 only (quantkit.fleet.loopback).
    """
    ray = [sys.executable, "-m", "quantkit.fleet.loopback"] if loopback else [ray_executable()]
    command = [*ray, "start", "--block", "--disable-usage-stats",
               "--num-cpus", "0", "--num-gpus", "0",
               "--resources", json.dumps(spec.resources(), sort_keys=True),
               "--node-name", spec.name, "--labels", f"{NODE_LABEL}={spec.name}",
               *spec.ports.flags()]
    if head_address is None:
        command += ["--head", "--include-dashboard", "false"]
        if head_port is not None:
            command += ["--port", str(head_port)]
    else:
        command += ["--address", head_address]
    if spec.node_ip is not None:
        command += ["--node-ip-address", spec.node_ip]
    if spec.object_store_bytes is not None:
        command += ["--object-store-memory", str(spec.object_store_bytes)]
    if spec.temp_dir is not None:
        command += ["--temp-dir", str(spec.temp_dir)]
    return command


def check_targets(targets: Sequence[str], remote: Mapping[str, str],
                  hosts_file: Path | None) -> None:
    """Refuse a target this machine cannot run (a board's target: its host must exist)."""
    from quantkit.targets import adapter_for
    from quantkit.targets.profile import load_profile

    if not targets:
        raise QuantkitError("give the targets this node offers: --targets a,b "
                            "(see 'quantkit targets')")
    if len(set(targets)) != len(targets):
        raise QuantkitError(f"--targets lists a target twice: {', '.join(targets)}")
    refusals = []
    for name in targets:
        profile = load_profile(name)
        if profile.name != name:
            raise QuantkitError(f"--targets takes profile names; {name} is profile "
                                f"{profile.name}")
        if name in remote:
            from quantkit.benchmark.remote.hosts import find_host

            find_host(remote[name], hosts_file)  # refuses an unknown host, naming it
            continue
        available = adapter_for(profile.backend).availability(profile)
        if not available.can_run:
            refusals.append(f"{name}: {available.reason}")
    if refusals:
        raise QuantkitError("this machine cannot run " + "; ".join(refusals) + " (serve a "
                            "board's target with --remote TARGET=HOST, or leave it out)")


def parse_remote(entries: Sequence[str]) -> dict[str, str]:
    """--remote TARGET=HOST (repeatable) as {target: host}."""
    mapping = {}
    for entry in entries:
        target, sep, host = entry.partition("=")
        if not sep or not target or not host:
            raise QuantkitError(f"--remote takes TARGET=HOST (a host of the hosts file), not "
                                f"{entry!r}")
        if target in mapping:
            raise QuantkitError(f"--remote maps {target} twice")
        mapping[target] = check_name(host, "host name", "--remote")
    return mapping


def node_environment() -> dict:
    """In a fleet worker: what its node was started with (name, boards, hosts file)."""
    remote = os.environ.get(ENV_REMOTE)
    return {"name": os.environ.get(ENV_NODE) or os.uname().nodename,
            "remote": json.loads(remote) if remote else {},
            "hosts_file": os.environ.get(ENV_HOSTS)}
