"""Run a benchmark job on a Linux host over SSH, with the system `ssh` and `scp` binaries.

The system OpenSSH client is used (not paramiko) so the user's keys, agent, known_hosts
and ~/.ssh/config (ProxyJump, aliases) work as they do in a terminal. Every failure is
returned as a {"status": "failed"} record naming the host and what to do, never raised:
one unreachable board must not cost the results of the other targets.
"""
from __future__ import annotations

import math
import shlex
import subprocess
import time
from pathlib import Path

from quantkit.benchmark.remote import job as remote_job
from quantkit.benchmark.remote.hosts import HostProfile
from quantkit.benchmark.remote.job import RemoteJobError, failed

CLEANUP_TIMEOUT_S = 30.0
_TRANSFER_MIN_S = 60.0  # a step never gets less, even late in a long job


class _StepFailed(Exception):
    """A step that ends this remote run; carries the record to return."""

    def __init__(self, record: dict) -> None:
        super().__init__(record["error"])
        self.record = record


def _option(name: str, value: str) -> list[str]:
    if any(c.isspace() for c in value):
        value = f'"{value}"'
    return ["-o", f"{name}={value}"]


def ssh_options(host: HostProfile) -> list[str]:
    """Options shared by ssh and scp: never prompt, fail fast, trust a host on first use.

    The hosts file's own `ssh_options` come first: ssh keeps the first value it is given,
    so they override these defaults.
    """
    options: list[str] = []
    for item in host.ssh_options:
        name, _, value = item.partition("=")
        options += _option(name.strip(), value.strip())
    options += _option("BatchMode", "yes")  # a password prompt would hang the benchmark
    options += _option("ConnectTimeout", str(max(1, math.ceil(host.connect_timeout_s))))
    options += _option("StrictHostKeyChecking", "accept-new")
    options += _option("ServerAliveInterval", "15")  # notice a board that died mid-run
    options += _option("ServerAliveCountMax", "4")
    options += _option("LogLevel", "ERROR")  # errors only: no "Permanently added" noise
    if host.known_hosts is not None:
        options += _option("UserKnownHostsFile", str(host.known_hosts))
    if host.key is not None:
        options += ["-i", str(host.key)] + _option("IdentitiesOnly", "yes")
    return options


def _destination(host: HostProfile, for_scp: bool = False) -> str:
    address = host.address
    if for_scp and ":" in address:  # IPv6 literal
        address = f"[{address}]"
    return f"{host.user}@{address}" if host.user else address


def ssh_command(host: HostProfile, script: str) -> list[str]:
    """`ssh ... HOST sh -c SCRIPT`: POSIX sh whatever the remote login shell is."""
    return ["ssh", *ssh_options(host), "-p", str(host.port), _destination(host),
            "sh -c " + shlex.quote(script)]


def _scp_base(host: HostProfile) -> list[str]:
    return ["scp", "-q", *(["-O"] if host.scp_legacy else []), *ssh_options(host),
            "-P", str(host.port)]


def scp_upload_command(host: HostProfile, sources: list[Path], remote_dir: str) -> list[str]:
    return [*_scp_base(host), "-r", *[str(path) for path in sources],
            f"{_destination(host, for_scp=True)}:{remote_dir}/"]


def scp_download_command(host: HostProfile, remote_files: list[str],
                         local_dir: Path) -> list[str]:
    remote = _destination(host, for_scp=True)
    return [*_scp_base(host), *[f"{remote}:{path}" for path in remote_files],
            f"{local_dir}/"]


def classify_ssh_failure(stderr: str, host: HostProfile) -> str | None:
    """An OpenSSH client error (exit 255) in words naming host, user and key, or None."""
    text = stderr.lower()
    where = host.where
    source = f" in {host.source}" if host.source else ""
    if "connection refused" in text:
        return (f"host {where} unreachable: connection refused (is sshd running there, on "
                f"port {host.port}? check 'address' and 'port' of host '{host.name}'{source})")
    if "timed out" in text:
        return (f"host {where} unreachable: connection timed out after "
                f"{host.connect_timeout_s:g} s (board off or asleep, wrong address, or a "
                "firewall)")
    if "no route to host" in text or "network is unreachable" in text:
        return (f"host {where} unreachable: no route to host (is this machine on the "
                "board's network? check 'address')")
    if "could not resolve hostname" in text or "name or service not known" in text:
        return (f"host {where} unreachable: address {host.address!r} does not resolve "
                f"(fix 'address' of host '{host.name}'{source})")
    if "host key verification failed" in text or "identification has changed" in text:
        known = host.known_hosts or "~/.ssh/known_hosts"
        return (f"host key of {where} does not match {known} (reinstalled board, or "
                f"another machine at that address): if expected, remove the old entry with "
                f"ssh-keygen -R '[{host.address}]:{host.port}' -f {known}")
    if "unprotected private key" in text or "bad permissions" in text:
        return (f"ssh refused to use key {host.key}: its permissions are too open "
                f"(chmod 600 {host.key})")
    if "permission denied" in text or "too many authentication failures" in text:
        user = host.user or "(your default ssh user)"
        key = host.key or "(ssh's default keys and agent)"
        fix = (f"ssh-copy-id -i {host.key} -p {host.port} {_destination(host)}"
               if host.key else "set 'key' in the hosts file")
        return (f"authentication refused by {where} for user {user} with key {key}: "
                f"install the public key there ({fix}) or fix 'user'/'key' of host "
                f"'{host.name}'{source}")
    if "closed by remote host" in text or "broken pipe" in text \
            or "not responding" in text:
        return (f"connection to {where} lost during the run (board rebooted or out of "
                "memory, or the network dropped)")
    if "connection closed" in text or "connection reset" in text \
            or "kex_exchange_identification" in text:
        return (f"{where} closed the connection before login (not an SSH server on port "
                f"{host.port}, sshd MaxStartups reached, or a firewall)")
    return None


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.splitlines()[-lines:] if line.strip())


class _Session:
    """The steps of one remote run against one host, sharing one deadline."""

    def __init__(self, host: HostProfile, deadline: float, timeout_s: float) -> None:
        self.host = host
        self.deadline = deadline
        self.timeout_s = timeout_s

    def _remaining(self, stage: str, floor: float = 0.0) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _StepFailed(failed(f"timed out after {self.timeout_s:g} s on "
                                     f"{self.host.where} before {stage} (raise --timeout)",
                                     stage))
        return max(left, floor)

    def call(self, argv: list[str], stage: str, timeout: float) -> subprocess.CompletedProcess:
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=timeout)
        except FileNotFoundError:
            raise _StepFailed(failed(f"'{argv[0]}' not found on this machine: install the "
                                     "OpenSSH client (scripts/install-system-deps.sh, or "
                                     "apt-get install openssh-client)", stage)) from None
        except subprocess.TimeoutExpired:
            raise _StepFailed(failed(f"timed out after {timeout:.0f} s during {stage} on "
                                     f"{self.host.where} (raise --timeout)", stage)) from None
        if done.returncode == 255:
            reason = classify_ssh_failure(done.stderr, self.host)
            if reason:
                raise _StepFailed(failed(reason, stage))
        return done

    def make_dir(self, name: str) -> str:
        """Create a fresh folder under the host's workdir; its absolute remote path."""
        workdir = remote_job.shell_path(self.host.workdir)
        script = (f"mkdir -p {workdir} && cd {workdir} && mkdir {shlex.quote(name)} && "
                  f"cd {shlex.quote(name)} && pwd")
        done = self.call(ssh_command(self.host, script), "connect",
                         min(self._remaining("connect"), self.host.connect_timeout_s + 30))
        path = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
        if done.returncode != 0 or not path.startswith("/"):
            raise _StepFailed(failed(
                f"cannot create a folder in {self.host.workdir} on {self.host.where} "
                f"(exit {done.returncode}: {_tail(done.stderr) or 'no message'}): set "
                f"'workdir' of host '{self.host.name}' to a writable folder", "connect"))
        return path

    def upload(self, sources: list[Path], remote_dir: str) -> None:
        done = self.call(scp_upload_command(self.host, sources, remote_dir), "upload",
                         self._remaining("upload", _TRANSFER_MIN_S))
        if done.returncode != 0:
            hint = (" (remote disk full: free space or move 'workdir')"
                    if "no space left" in done.stderr.lower() else "")
            sftp = (" (no SFTP server there: set scp_legacy = true)"
                    if "subsystem" in done.stderr.lower() else "")
            raise _StepFailed(failed(f"upload to {self.host.where}:{remote_dir} failed "
                                     f"(exit {done.returncode}: {_tail(done.stderr)})"
                                     f"{hint}{sftp}", "upload"))

    def run(self, script: str) -> subprocess.CompletedProcess:
        return self.call(ssh_command(self.host, script), "run", self._remaining("run"))

    def download(self, remote_files: list[str], local_dir: Path) -> None:
        done = self.call(scp_download_command(self.host, remote_files, local_dir),
                         "download", self._remaining("download", _TRANSFER_MIN_S))
        if done.returncode != 0:
            raise _StepFailed(failed(f"download of {', '.join(remote_files)} from "
                                     f"{self.host.where} failed (exit {done.returncode}: "
                                     f"{_tail(done.stderr)})", "download"))

    def remove(self, remote_dir: str, kill_runner: bool) -> str | None:
        """Delete the run's folder (killing a runner still going); an error text or None."""
        quoted = shlex.quote(remote_dir)
        kill = (f"if [ -f {quoted}/{remote_job.PID_FILE} ]; then "
                f"kill -9 \"$(cat {quoted}/{remote_job.PID_FILE})\" 2>/dev/null; fi; "
                if kill_runner else "")
        try:
            done = self.call(ssh_command(self.host, f"{kill}rm -rf {quoted}"), "cleanup",
                             self.host.connect_timeout_s + CLEANUP_TIMEOUT_S)
        except _StepFailed as exc:
            return f"{remote_dir} left on {self.host.where}: {exc}"
        if done.returncode != 0:
            return (f"{remote_dir} left on {self.host.where}: rm exited {done.returncode} "
                    f"({_tail(done.stderr)})")
        return None


def run_over_ssh(job_dir: Path, host: HostProfile, timeout_s: float) -> dict:
    """Run the job in `job_dir` on `host`; the result record (result.json fetched back).

    Steps: make a unique folder under the host's workdir, scp the job and runner there,
    run it, scp back result.json and eval_outputs.npy, delete the folder. `timeout_s`
    bounds the whole run; a runner still going at the deadline is killed on the host.
    """
    if host.kind != "ssh":
        return failed(f"host '{host.name}' is kind {host.kind!r}, not ssh", "connect")
    job_dir = Path(job_dir)
    try:
        sources = remote_job.job_files(job_dir)
        env = {**remote_job.thread_env(remote_job.read_job(job_dir)), **host.env}
    except RemoteJobError as exc:
        return failed(str(exc), "prepare")
    if host.key is not None and not host.key.is_file():
        return failed(f"ssh key {host.key} of host '{host.name}' not found"
                      f"{' (from ' + host.source + ')' if host.source else ''}: fix 'key'",
                      "connect")
    remote_job.clear_outputs(job_dir)
    session = _Session(host, time.monotonic() + timeout_s, timeout_s)
    try:
        remote_dir = session.make_dir(remote_job.run_name(job_dir))
    except _StepFailed as exc:
        return exc.record
    finished = False
    try:
        session.upload(sources, remote_dir)
        done = session.run(remote_job.runner_script(host.python, remote_dir, env,
                                                    host.opener))
        finished = True
        outputs = remote_job.outputs_listed(done.stdout)
        if outputs:
            session.download([f"{remote_dir}/{name}" for name in outputs], job_dir)
        record = remote_job.remote_run_result(job_dir, done.returncode, done.stderr,
                                              host.python, host.where)
    except _StepFailed as exc:
        record = exc.record
    finally:
        problem = session.remove(remote_dir, kill_runner=not finished)
    if problem:
        record["cleanup_error"] = problem
    return record
