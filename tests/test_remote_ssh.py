"""The SSH runner against a real OpenSSH server on 127.0.0.1 (tests/loopback_sshd.py).

The loopback host is reached exactly like an ARM board: real ssh/scp, key auth, a remote
shell, a remote interpreter. A Paddle Lite .nb runs through the standalone opener (what
a board with only the paddlelite wheel uses) and must give the same outputs as opening
the artifact here; every failure class comes back as a record naming host and cause.
"""
from __future__ import annotations

import glob
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import quantkit  # noqa: F401  - before paddle: importing paddle first breaks zlib
from quantkit import sideenv
from loopback_sshd import free_port, start_loopback_sshd
from quantkit.benchmark.remote.hosts import HostProfile
from quantkit.benchmark.jobs import MeasureSettings, write_job
from quantkit.benchmark.remote import run_remote
from quantkit.benchmark.remote.ssh import classify_ssh_failure, ssh_command

MODEL = Path(__file__).resolve().parent / "data" / "paddle3"
ITERATIONS = 7


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = start_loopback_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.load(MODEL / "reference.npz")["images"]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    from quantkit.targets.convert import convert

    out = tmp_path_factory.mktemp("artifacts")
    return {name: convert(MODEL, name, out / name).folder
            for name in ("x86-lite-fp32", "intel-cpu-fp32")}


def _local_outputs(artifact: Path, images: np.ndarray) -> np.ndarray:
    from quantkit.targets.convert import open_artifact

    return open_artifact(artifact).run({"image": images})[0]


def _job(tmp_path: Path, artifact: Path, images: np.ndarray, opener: str,
         batch_sizes=(1, 2), embed: bool = True) -> Path:
    settings = MeasureSettings(batch_sizes=batch_sizes, warmup=2, iterations=ITERATIONS,
                               eval_batch=3)
    return write_job(tmp_path / "job", artifact, settings, {"image": images},
                     {"image": images}, embed_artifact=embed, opener=opener)


def _host(sshd, tmp_path: Path, **overrides) -> HostProfile:
    """The loopback host; its python is the lite side env's, which has numpy and
    paddlelite but not quantkit: what an ARM board has."""
    overrides.setdefault("workdir", str(tmp_path / "remote"))
    overrides.setdefault("python", str(sideenv.require("lite")))
    return HostProfile(**sshd.host_fields(**overrides))


def _left_on_remote(tmp_path: Path) -> list[str]:
    workdir = tmp_path / "remote"
    return sorted(p.name for p in workdir.iterdir()) if workdir.exists() else []


# ------------------------------------------------------------------ runs that work

def test_lite_nb_runs_remotely_through_the_standalone_opener(sshd, artifacts, images,
                                                             tmp_path):
    job = _job(tmp_path, artifacts["x86-lite-fp32"], images, "paddle-lite")
    started = time.monotonic()
    result = run_remote(job, _host(sshd, tmp_path), timeout_s=120)
    elapsed = time.monotonic() - started
    assert result["status"] == "ok", result
    assert result["opener"] == "paddle-lite"  # the paddlelite-only path, not quantkit's
    assert {batch: len(samples) for batch, samples in result["timings_s"].items()} == {
        "1": ITERATIONS, "2": ITERATIONS}
    assert all(0 < s < 1 for samples in result["timings_s"].values() for s in samples)
    assert result["machine"]["hostname"] == platform.node()
    assert result["eval_outputs"] == "eval_outputs.npy"
    remote = np.load(job / "eval_outputs.npy")
    local = _local_outputs(artifacts["x86-lite-fp32"], images)
    assert remote.shape == (4, 10)
    np.testing.assert_allclose(remote, local, rtol=1e-5, atol=1e-6)
    assert (job / "result.json").is_file()
    assert _left_on_remote(tmp_path) == []  # the run's remote folder was removed
    assert "Accepted publickey" in sshd.log_text()  # it really went through sshd
    print(f"remote lite run: {elapsed:.2f} s")


def test_paddle_inference_artifact_runs_remotely_through_quantkit(sshd, artifacts, images,
                                                                  tmp_path):
    job = _job(tmp_path, artifacts["intel-cpu-fp32"], images, "auto", batch_sizes=(1,))
    result = run_remote(job, _host(sshd, tmp_path, python=sys.executable), timeout_s=120)
    assert result["status"] == "ok", result
    assert result["opener"] == "quantkit"  # auto found quantkit importable remotely
    assert len(result["timings_s"]["1"]) == ITERATIONS
    np.testing.assert_allclose(np.load(job / "eval_outputs.npy"),
                               _local_outputs(artifacts["intel-cpu-fp32"], images),
                               rtol=1e-5, atol=1e-6)
    assert _left_on_remote(tmp_path) == []


# ------------------------------------------------------------------ failures, classified

def test_unreachable_port_fails_fast_naming_host_and_port(sshd, artifacts, images, tmp_path):
    port = free_port()  # nothing listens there
    job = _job(tmp_path, artifacts["x86-lite-fp32"], images, "paddle-lite")
    started = time.monotonic()
    result = run_remote(job, _host(sshd, tmp_path, port=port), timeout_s=60)
    assert time.monotonic() - started < 5
    assert result["status"] == "failed" and result["stage"] == "connect"
    assert f"127.0.0.1:{port} unreachable: connection refused" in result["error"]


def test_wrong_key_is_reported_as_refused_authentication(sshd, artifacts, images, tmp_path):
    job = _job(tmp_path, artifacts["x86-lite-fp32"], images, "paddle-lite")
    result = run_remote(job, _host(sshd, tmp_path, key=sshd.wrong_key), timeout_s=60)
    assert result["status"] == "failed" and result["stage"] == "connect"
    error = result["error"]
    assert error.startswith(f"authentication refused by {sshd.user}@127.0.0.1:{sshd.port}")
    assert f"for user {sshd.user} with key {sshd.wrong_key}" in error
    assert not (tmp_path / "remote").exists()


def test_missing_key_file_and_changed_host_key_are_named(sshd, artifacts, images, tmp_path):
    job = _job(tmp_path, artifacts["x86-lite-fp32"], images, "paddle-lite")
    result = run_remote(job, _host(sshd, tmp_path, key=tmp_path / "no_such_key"), 60)
    assert result["status"] == "failed"
    assert f"ssh key {tmp_path / 'no_such_key'} of host 'loopback' not found" in result["error"]
    impostor = tmp_path / "known_hosts"  # records another key for this address
    key_type, key_body = (sshd.wrong_key.with_suffix(".pub")).read_text().split()[:2]
    impostor.write_text(f"[127.0.0.1]:{sshd.port} {key_type} {key_body}\n")
    result = run_remote(job, _host(sshd, tmp_path, known_hosts=impostor), 60)
    assert result["status"] == "failed"
    assert f"host key of {sshd.user}@127.0.0.1:{sshd.port} does not match {impostor}" \
        in result["error"]


def test_missing_remote_python_is_named(sshd, artifacts, images, tmp_path):
    job = _job(tmp_path, artifacts["x86-lite-fp32"], images, "paddle-lite")
    result = run_remote(job, _host(sshd, tmp_path, python="/opt/no/such/python3"), 60)
    assert result["status"] == "failed" and result["stage"] == "run"
    assert result["error"].startswith("remote python /opt/no/such/python3 not found on "
                                      f"{sshd.user}@127.0.0.1:{sshd.port}")
    assert _left_on_remote(tmp_path) == []


def _probe(python: str) -> tuple[bool, bool] | None:
    """(has numpy, has paddlelite) for a Python >= 3.8, or None if it is not one."""
    code = ("import sys, importlib.util as u; assert sys.version_info >= (3, 8); "
            "print(u.find_spec('numpy') is not None, u.find_spec('paddlelite') is not None)")
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True,
                              timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    numpy_found, lite_found = done.stdout.split()
    return numpy_found == "True", lite_found == "True"


def _interpreter(tmp_path: Path, numpy_wanted: bool) -> str:
    """A real interpreter on this machine lacking paddlelite (and numpy unless wanted);
    else a wrapper of this venv's Python that hides them, so the test runs anywhere."""
    candidates = ["/usr/bin/python3", shutil.which("python3") or "",
                  *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python")))]
    for candidate in dict.fromkeys(c for c in candidates if c):
        found = _probe(candidate)
        if found is not None and found == (numpy_wanted, False):
            return candidate
    shim = tmp_path / ("python-numpy-only" if numpy_wanted else "python-bare")
    if numpy_wanted:  # block paddlelite and quantkit, keep numpy
        hide = ("import runpy, sys; sys.modules.update(paddlelite=None, quantkit=None); "
                "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")
        shim.write_text(f"#!/bin/sh\nexec {sys.executable} -c \"{hide}\" \"$@\"\n")
    else:  # -S: no site-packages at all
        shim.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    shim.chmod(0o755)
    return str(shim)


def test_remote_python_without_numpy_says_what_to_install(sshd, artifacts, images, tmp_path):
    python = _interpreter(tmp_path, numpy_wanted=False)
    job = _job(tmp_path, artifacts["x86-lite-fp32"], images, "paddle-lite")
    result = run_remote(job, _host(sshd, tmp_path, python=python), 60)
    assert result["status"] == "failed", result
    assert result["error"] == (f"remote python {python} on {sshd.user}@127.0.0.1:{sshd.port}"
                               " has no numpy: pip install numpy paddlelite there")
    assert _left_on_remote(tmp_path) == []


def test_remote_python_without_paddlelite_gives_the_runners_own_error(sshd, artifacts, images,
                                                                      tmp_path):
    python = _interpreter(tmp_path, numpy_wanted=True)
    job = _job(tmp_path, artifacts["x86-lite-fp32"], images, "auto")
    result = run_remote(job, _host(sshd, tmp_path, python=python), 60)
    assert result["status"] == "failed", result
    error = result["error"]
    assert error.startswith(f"on {sshd.user}@127.0.0.1:{sshd.port}: paddlelite is not "
                            "importable by "), error
    assert "No module named 'paddlelite" in error  # the ImportError the runner caught
    assert "pip install paddlelite" in error
    assert _left_on_remote(tmp_path) == []


def test_timeout_kills_the_remote_runner_and_removes_its_folder(sshd, artifacts, images,
                                                                tmp_path):
    pid_file = tmp_path / "sleeper.pid"
    sleeper = tmp_path / "python-that-hangs"
    sleeper.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 120\n")
    sleeper.chmod(0o755)
    job = _job(tmp_path, artifacts["x86-lite-fp32"], images, "paddle-lite")
    started = time.monotonic()
    result = run_remote(job, _host(sshd, tmp_path, python=str(sleeper)), timeout_s=4)
    assert time.monotonic() - started < 15
    assert result["status"] == "failed" and result["stage"] == "run"
    assert "timed out after" in result["error"] and "raise --timeout" in result["error"]
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid), f"remote runner {pid} still running"
    assert _left_on_remote(tmp_path) == []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_job_without_its_artifact_embedded_is_refused_before_connecting(
        sshd, artifacts, images, tmp_path):
    job = _job(tmp_path, artifacts["x86-lite-fp32"], images, "paddle-lite", embed=False)
    result = run_remote(job, _host(sshd, tmp_path, port=free_port()), 60)
    assert result["status"] == "failed" and result["stage"] == "prepare"
    assert "embed_artifact=True" in result["error"]


# ------------------------------------------------------------------ pure parts

def test_ssh_command_never_prompts_and_pins_key_port_and_known_hosts(tmp_path):
    host = HostProfile(name="b", kind="ssh", address="10.0.0.9", port=2222, user="pi",
                       key=tmp_path / "id", known_hosts=tmp_path / "kh",
                       connect_timeout_s=7.5, ssh_options=("StrictHostKeyChecking=yes",))
    argv = ssh_command(host, "echo 'hi there'")
    options = [argv[i + 1] for i, word in enumerate(argv) if word == "-o"]
    assert argv[0] == "ssh" and argv[-2:] == ["pi@10.0.0.9", "sh -c 'echo '\"'\"'hi there'\"'\"''"]
    assert options[0] == "StrictHostKeyChecking=yes"  # the hosts file's option comes first
    assert {"BatchMode=yes", "ConnectTimeout=8", "StrictHostKeyChecking=accept-new",
            f"UserKnownHostsFile={tmp_path / 'kh'}", "IdentitiesOnly=yes"} <= set(options)
    assert argv[argv.index("-i") + 1] == str(tmp_path / "id")
    assert argv[argv.index("-p") + 1] == "2222"


@pytest.mark.parametrize("stderr, expected", [
    ("ssh: connect to host 10.0.0.9 port 22: Connection timed out",
     "host pi@10.0.0.9:22 unreachable: connection timed out after 10 s"),
    ("ssh: connect to host 10.0.0.9 port 22: No route to host",
     "host pi@10.0.0.9:22 unreachable: no route to host"),
    ("ssh: Could not resolve hostname rpi5.lan: Name or service not known",
     "address '10.0.0.9' does not resolve"),
    ("Connection to 10.0.0.9 closed by remote host.",
     "connection to pi@10.0.0.9:22 lost during the run"),
    ("kex_exchange_identification: read: Connection reset by peer",
     "closed the connection before login"),
    ("Load key \"/k\": bad permissions", "its permissions are too open (chmod 600"),
    ("something else entirely", None),
])
def test_ssh_client_errors_are_classified(stderr, expected):
    host = HostProfile(name="b", kind="ssh", address="10.0.0.9", user="pi")
    reason = classify_ssh_failure(stderr, host)
    if expected is None:
        assert reason is None
    else:
        assert expected in reason
