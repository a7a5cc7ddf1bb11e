"""A real OpenSSH server on 127.0.0.1 for tests: its own host key, client key and config.

Tests of the SSH runner talk to this server exactly as they would to an ARM board: same
`ssh`/`scp` binaries, same authentication, same remote shell. Nothing of the system's
own sshd configuration or keys is used or changed (as root, sshd insists on its
privilege-separation folder /run/sshd; it is created if missing, as the openssh-server
service would).
"""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")
REQUIRE_ENV = "QUANTKIT_REQUIRE_SSHD"  # CI sets it: a missing sshd fails, not skips
START_TIMEOUT_S = 10.0


def require_sshd() -> Path:
    """The sshd binary, or skip (fail when QUANTKIT_REQUIRE_SSHD=1) naming what is missing."""
    missing = [name for name in ("ssh", "scp", "ssh-keygen") if shutil.which(name) is None]
    if not SSHD.is_file():
        missing.insert(0, str(SSHD))
    if missing:
        reason = (f"OpenSSH not installed ({', '.join(missing)} missing): run "
                  "scripts/install-system-deps.sh")
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason} ({REQUIRE_ENV}=1 requires the loopback SSH tests)")
        pytest.skip(reason)
    return SSHD


def free_port() -> int:
    """A TCP port nothing listens on right now (closed again before returning)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name,
                    "-f", str(path)], check=True, stdin=subprocess.DEVNULL)
    return path


@dataclass
class LoopbackSshd:
    """A running sshd and the client-side files a HostProfile needs to reach it."""

    folder: Path
    port: int
    user: str
    client_key: Path
    wrong_key: Path  # a valid key the server does not accept
    known_hosts: Path
    process: subprocess.Popen
    log: Path
    _log_handle: object = field(repr=False, default=None)

    def host_fields(self, **overrides) -> dict:
        """Keyword arguments for HostProfile(...) that reach this server."""
        values = {"name": "loopback", "kind": "ssh", "address": "127.0.0.1",
                  "port": self.port, "user": self.user, "key": self.client_key,
                  "known_hosts": self.known_hosts, "connect_timeout_s": 5.0}
        values.update(overrides)
        return values

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.is_file() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log_handle is not None:
            self._log_handle.close()


def _config(folder: Path, port: int, host_key: Path, authorized: Path) -> str:
    lines = [f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}",
             f"PidFile {folder / 'sshd.pid'}", f"AuthorizedKeysFile {authorized}",
             "UsePAM no", "PermitRootLogin prohibit-password", "StrictModes no",
             "PubkeyAuthentication yes", "PasswordAuthentication no",
             "KbdInteractiveAuthentication no", "Subsystem sftp internal-sftp",
             "PrintMotd no", "UseDNS no", "LogLevel VERBOSE"]
    return "\n".join(lines) + "\n"


def _wait_listening(process: subprocess.Popen, port: int) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def start_loopback_sshd(folder: Path) -> LoopbackSshd:
    """Generate keys and config in `folder` and start sshd on a free loopback port."""
    sshd = require_sshd()
    folder.mkdir(parents=True, exist_ok=True)
    host_key = _keygen(folder / "host_ed25519")
    client_key = _keygen(folder / "client_ed25519")
    wrong_key = _keygen(folder / "wrong_ed25519")
    authorized = folder / "authorized_keys"
    authorized.write_text((folder / "client_ed25519.pub").read_text())
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = folder / "sshd.log"
    last = ""
    for _ in range(3):  # the free port may be taken between probe and bind: retry
        port = free_port()
        config = folder / "sshd_config"
        config.write_text(_config(folder, port, host_key, authorized))
        handle = open(log, "a")
        process = subprocess.Popen([str(sshd), "-D", "-e", "-f", str(config)],
                                   stdin=subprocess.DEVNULL, stdout=handle,
                                   stderr=subprocess.STDOUT)
        if _wait_listening(process, port):
            return LoopbackSshd(folder, port, getpass.getuser(), client_key, wrong_key,
                                folder / "known_hosts", process, log, handle)
        if process.poll() is None:
            process.kill()
        process.wait()
        handle.close()
        last = log.read_text(errors="replace")[-800:]
    raise RuntimeError(f"sshd did not start on 127.0.0.1 (log {log}): {last}")
