"""Run a benchmark job on another machine: the one entry point, whatever the transport."""
from __future__ import annotations

from pathlib import Path

from quantkit.benchmark.remote.hosts import HostProfile
from quantkit.benchmark.remote.job import failed


def run_remote(job_dir: Path, host: HostProfile, timeout_s: float) -> dict:
    """The result record of the job in `job_dir` run on `host` (ssh or adb).

    Never raises for a host problem: an unreachable board becomes a failed record
    naming it, so the other targets' results are kept.
    """
    if host.kind == "ssh":
        from quantkit.benchmark.remote.ssh import run_over_ssh

        return run_over_ssh(Path(job_dir), host, timeout_s)
    if host.kind == "adb":
        from quantkit.benchmark.remote.adb import run_over_adb

        return run_over_adb(Path(job_dir), host, timeout_s)
    return failed(f"host '{host.name}' has unknown kind {host.kind!r}", "prepare")
