"""`quantkit fleet ZOO.toml --address HOST:PORT|local --out DIR`, `quantkit fleet node` and
`quantkit fleet head`: the command line over quantkit.fleet (parse, call, print)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import click

from quantkit.benchmark.cli_options import hosts_file_option, measure_settings, timing_options
from quantkit.cli_types import CommaList
from quantkit.errors import user_errors

RUN = "run"
PORT_BASE = click.option("--port-base", type=int, default=None,
                         help="Listen on fixed ports BASE..BASE+109 (one range for the "
                              "firewall; default: Ray's random ports).")


class _FleetGroup(click.Group):
    """`quantkit fleet ZOO.toml ...` is `quantkit fleet run ZOO.toml ...`."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [RUN, *args]
        return super().parse_args(ctx, args)


@click.group("fleet", cls=_FleetGroup)
def fleet_command() -> None:
    """Benchmark a zoo of models on a Ray cluster of machines (one node per device).

    \b
    quantkit fleet ZOO.toml --address HOST:PORT --out DIR   measure every model x target
    quantkit fleet ZOO.toml --address local --out DIR       ... on this machine alone
    quantkit fleet head --port 6379 --node-ip IP            start the head (deploy/fleet.md)
    quantkit fleet node --head HOST:PORT --targets a,b      join: offer targets it can run
    """


@fleet_command.command(RUN)
@click.argument("zoo_file", type=click.Path(path_type=Path))
@click.option("--address", required=True,
              help="The Ray head as HOST:PORT, or 'local' for a throwaway one-node cluster "
                   "on 127.0.0.1.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder for OUT/<model>/ (calibrated model, artifacts), results and "
                   "summary.md.")
@click.option("--force", is_flag=True, help="Replace --out if it is an earlier fleet run.")
@click.option("--token-file", type=click.Path(path_type=Path), default=None,
              help="The cluster's auth token (default: $RAY_AUTH_TOKEN_PATH, then "
                   "~/.ray/auth_token).")
@timing_options
def run_command(zoo_file, address, out_dir, force, token_file, batch_sizes, threads, warmup,
                iterations, duration, timeout) -> None:
    """Calibrate and convert every zoo model here, measure each target on a node offering it."""
    from quantkit.benchmark.report import render_table
    from quantkit.fleet.driver import FleetSettings, run_fleet
    from quantkit.fleet.summary import summary_markdown

    with user_errors(out_dir):
        settings = FleetSettings(measure=measure_settings(batch_sizes, threads, warmup,
                                                          iterations, duration, timeout))
        results = run_fleet(zoo_file, address, out_dir, settings, force=force,
                            token_path=token_file, on_event=_print_event)
        render_table(results)
        click.echo(summary_markdown(results))
        click.echo(f"results, reports and summary.md in {out_dir}")
    bad = sorted({f"{record.model}/{record.target}" for record in results.records
                  if record.status in ("failed", "crashed", "no-host")})
    if bad:
        click.echo(f"error: {len(bad)} job(s) did not finish: {', '.join(bad)}", err=True)
        sys.exit(1)


def _node_options(command):
    options = [
        click.option("--targets", "target_list", required=True, type=CommaList(),
                     help="Comma-separated target profiles this node offers."),
        click.option("--name", default=None,
                     help="Node name in records (default: this machine's hostname)."),
        click.option("--node-ip", default=None,
                     help="The address other machines reach this node at (default: Ray's "
                          "choice)."),
        click.option("--remote", multiple=True,
                     help="TARGET=HOST: run TARGET on HOST of the hosts file (a board over "
                          "SSH/adb) instead of here. Repeatable."),
        hosts_file_option("Hosts file for --remote"),
        click.option("--token-file", type=click.Path(path_type=Path), default=None,
                     help="The cluster's auth token (default: $RAY_AUTH_TOKEN_PATH, then "
                          "~/.ray/auth_token)."),
        PORT_BASE,
        click.option("--detach", is_flag=True,
                     help="Start in the background and print its PID (default: block, as a "
                          "service manager wants)."),
        click.option("--dry-run", is_flag=True, help="Check, print the command, start nothing."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@fleet_command.command("node")
@click.option("--head", "head_address", required=True, help="The Ray head as HOST:PORT.")
@_node_options
def node_command(head_address, target_list, name, node_ip, remote, hosts_file, token_file,
                 port_base, detach, dry_run) -> None:
    """Join the fleet at --head, offering the --targets this machine (or a board) runs."""
    with user_errors():
        from quantkit.fleet.connect import check_reachable, split_address

        split_address(head_address)
        spec = _checked_spec(target_list, name, node_ip, remote, hosts_file, port_base)
        if not dry_run:
            check_reachable(head_address)
        _start(spec, head_address, None, token_file, detach, dry_run)


@fleet_command.command("head")
@click.option("--port", type=int, default=6379, show_default=True, help="The head's port.")
@click.option("--targets", "target_list", default=None, type=CommaList(),
              help="Targets the head machine offers too (default: none; it only schedules).")
@click.option("--name", default=None, help="Node name (default: this machine's hostname).")
@click.option("--node-ip", default=None,
              help="The address nodes and the driver reach the head at.")
@click.option("--token-file", type=click.Path(path_type=Path), default=None,
              help="Auth token file (created with a fresh token if missing).")
@PORT_BASE
@click.option("--detach", is_flag=True, help="Start in the background and print its PID.")
@click.option("--dry-run", is_flag=True, help="Check, print the command, start nothing.")
def head_command(port, target_list, name, node_ip, token_file, port_base, detach,
                 dry_run) -> None:
    """Start the fleet's head: Ray's GCS with token auth on (no benchmarks unless --targets)."""
    with user_errors():
        spec = _checked_spec(target_list, name, node_ip, (), None, port_base, allow_none=True)
        if token_file is not None and not Path(token_file).exists() and not dry_run:
            import secrets

            Path(token_file).parent.mkdir(parents=True, exist_ok=True)
            Path(token_file).write_text(secrets.token_hex(32))
            Path(token_file).chmod(0o600)
            click.echo(f"new auth token in {token_file}: copy it to every node and driver")
        _start(spec, None, port, token_file, detach, dry_run)


def _checked_spec(target_list, name, node_ip, remote, hosts_file, port_base,
                  allow_none=False):
    from quantkit.benchmark.remote.hosts import default_hosts_files
    from quantkit.fleet.node import NodePorts, NodeSpec, check_targets, fixed_ports, parse_remote

    targets = tuple(target_list or ())
    mapping = parse_remote(remote)
    if mapping and hosts_file is None:
        hosts_file = next((path for path in default_hosts_files() if path.is_file()), None)
    if targets or not allow_none:
        check_targets(targets, mapping, hosts_file)
    return NodeSpec(name=name or socket.gethostname(), targets=targets, remote=mapping,
                    hosts_file=hosts_file, node_ip=node_ip,
                    ports=fixed_ports(port_base) if port_base is not None else NodePorts())


def _start(spec, head_address, head_port, token_file, detach, dry_run) -> None:
    from quantkit.fleet.cluster import start_ray_process
    from quantkit.fleet.connect import is_loopback, split_address
    from quantkit.fleet.node import ENV_TOKEN_PATH, ray_start_command

    host = split_address(head_address)[0] if head_address is not None else spec.node_ip
    loopback = host is not None and is_loopback(host)  # a fleet that stays on this machine
    command = ray_start_command(spec, head_address, head_port, loopback=loopback)
    token = token_file or os.environ.get(ENV_TOKEN_PATH)
    env = {**os.environ, **spec.environment(Path(token).absolute() if token else None)}
    click.echo(f"{'would run' if dry_run else 'running'}: {subprocess.list2cmdline(command)}")
    if dry_run:
        return
    if not detach:
        sys.stdout.flush()
        os.execve(command[0], command, env)  # the service manager sees Ray itself
    log = Path.cwd() / f"quantkit-fleet-{spec.name}.log"
    process = start_ray_process(spec, log, env, head_address, head_port, loopback)
    process.wait_started()
    click.echo(f"node {spec.name} started: PID {process.pid} (log {log}); stop it with "
               f"`kill {process.pid}` (never `ray stop`: it kills every Ray process here)")


def _print_event(message: str) -> None:
    click.echo(message, err=True)
