"""What every remote transport shares: the files a job sends, the shell line that runs it,
and how a runner that died without a result is explained.

ssh.py and adb.py only move files and run commands; a job behaves the same on a board,
a phone or a server because this module decides what is sent and how it runs there.
"""
from __future__ import annotations

import json
import re
import shlex
import uuid
from pathlib import Path

from quantkit.benchmark.jobs import read_result
from quantkit.files import (ARTIFACT_RECORD, BENCH_INPUTS, EVAL_INPUTS, EVAL_OUTPUTS,
                            JOB_FILE, JOB_RESULT_FILE)

from quantkit.kit import write_kit

KIT_DIR = "kit"  # beside the job on the host; PYTHONPATH points here
OUTPUT_FILES = (JOB_RESULT_FILE, EVAL_OUTPUTS)
PID_FILE = "runner.pid"
OUTPUT_MARK = "quantkit-output: "


class RemoteJobError(Exception):
    """A job folder that cannot be sent to another machine as written."""


def failed(error: str, stage: str) -> dict:
    """The record of a remote run that did not produce a result (other targets go on)."""
    return {"status": "failed", "error": error, "stage": stage}


def read_job(job_dir: Path) -> dict:
    path = job_dir / JOB_FILE
    if not path.is_file():
        raise RemoteJobError(f"{path} not found: write the job with "
                             "quantkit.benchmark.jobs.write_job first")
    return json.loads(path.read_text())


def job_files(job_dir: Path) -> list[Path]:
    """The files and folders a remote host needs: job.json, inputs, the embedded artifact."""
    job = read_job(job_dir)
    artifact = Path(job["artifact"])
    if artifact.is_absolute():
        raise RemoteJobError(f"{job_dir / JOB_FILE} points at {artifact} on this machine: "
                             "write remote jobs with write_job(..., embed_artifact=True)")
    if not (job_dir / artifact / ARTIFACT_RECORD).is_file():
        raise RemoteJobError(f"embedded artifact {job_dir / artifact} has no {ARTIFACT_RECORD}")
    if len(artifact.parts) != 1:
        raise RemoteJobError(f"embedded artifact {artifact} must sit directly in {job_dir}")
    files = [job_dir / JOB_FILE, job_dir / BENCH_INPUTS, job_dir / artifact]
    if (job_dir / EVAL_INPUTS).is_file():
        files.append(job_dir / EVAL_INPUTS)
    files.append(ship_kit(job_dir))
    missing = [str(path) for path in files if not path.exists()]
    if missing:
        raise RemoteJobError(f"job folder {job_dir} is missing {', '.join(missing)}")
    return files


def ship_kit(job_dir: Path) -> Path:
    """job_dir/kit/quantkit/...: the shipped modules, ready to send beside the job."""
    return write_kit(job_dir / KIT_DIR)


def run_name(job_dir: Path) -> str:
    """A remote folder name no other run (of any client) uses at the same time."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", job_dir.name)[:40] or "job"
    return f"{stem}-{uuid.uuid4().hex[:10]}"


def shell_path(path: str) -> str:
    """`path` for a POSIX shell line, keeping a leading ~/ meaning the remote home."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def thread_env(job: dict) -> dict[str, str]:
    """The same thread pinning a local run gets (jobs.child_environment), for the remote."""
    env = {"GLOG_minloglevel": "2"}
    threads = job.get("threads")
    if threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(int(threads))
    return env


def runner_script(python: str, remote_dir: str, env: dict[str, str],
                  opener: str = "auto") -> str:
    """The POSIX sh line that runs the job in `remote_dir` and says which outputs exist.

    `env` names are checked by HostProfile (shell-safe identifiers); values are quoted.
    The host's own quantkit runs the job where it is installed (opener "quantkit", or
    "auto"); else the modules shipped in kit/ do (see `_boot`).

    The runner runs in the background so its pid can be written down: a timed-out run is
    then killed by pid (dropping the ssh/adb connection does not stop it). The output
    files that exist are printed as marker lines, so only those are fetched.
    """
    exports = "".join(f"export {name}={shlex.quote(value)}; "
                      for name, value in sorted(env.items()))
    outputs = " ".join(OUTPUT_FILES)
    return (f"cd {shlex.quote(remote_dir)} || exit 97; {exports}"
            f"{shell_path(python)} -c {shlex.quote(boot_code(opener))} {shlex.quote(remote_dir)} & "
            f"echo $! > {PID_FILE}; wait $!; rc=$?; "
            f"for f in {outputs}; do if [ -f \"$f\" ]; then echo \"{OUTPUT_MARK}$f\"; fi; "
            "done; exit $rc")


def boot_code(opener: str) -> str:
    """Python that runs the runner module: with the host's own quantkit where it imports
    (opener auto or quantkit), else with the modules shipped in kit/ (a board)."""
    use_kit = (f"[sys.modules.pop(m) for m in list(sys.modules) if m.split('.')[0] == "
               f"'quantkit']\nsys.path.insert(0, {KIT_DIR!r})")
    if opener == "paddle-lite":
        choose = use_kit
    elif opener == "quantkit":
        choose = "pass"
    else:
        choose = ("try:\n    import quantkit.targets.convert\nexcept ImportError:\n    "
                  + use_kit.replace("\n", "\n    "))
    return (f"import runpy, sys\n{choose}\n"
            "runpy.run_module('quantkit.benchmark.runner', run_name='__main__')")


def outputs_listed(stdout: str) -> list[str]:
    """The output files the remote run reported (marker lines from `runner_script`)."""
    names = [line[len(OUTPUT_MARK):].strip() for line in stdout.splitlines()
             if line.startswith(OUTPUT_MARK)]
    return [name for name in names if name in OUTPUT_FILES]


def clear_outputs(job_dir: Path) -> None:
    """Remove outputs of an earlier run, so a stale result is never read as this one's."""
    for name in OUTPUT_FILES:
        (job_dir / name).unlink(missing_ok=True)


_NO_MODULE = re.compile(r"(?:ModuleNotFoundError|ImportError): No module named '?([\w.]+)'?")


def explain_runner_death(returncode: int, stderr: str, python: str, where: str) -> str | None:
    """Why the remote interpreter could not even start the runner, in words, or None."""
    not_found = re.search(re.escape(python) + r": (?:.*not found|No such file or directory)",
                          stderr)
    if returncode == 127 or not_found:  # adb before Android 7 always reports exit 0
        return (f"remote python {python} not found on {where}: set 'python' in the hosts "
                "file to an interpreter that exists there (`command -v python3` on the "
                "host shows one)")
    if returncode == 126:
        return (f"remote python {python} on {where} is not executable (a folder, or no x "
                "permission): set 'python' in the hosts file to the interpreter itself")
    if "future feature annotations is not defined" in stderr:
        return (f"remote python {python} on {where} is older than Python 3.7; the runner "
                "needs Python 3.8+: point 'python' at a newer interpreter")
    missing = _NO_MODULE.findall(stderr)
    if missing:
        module = missing[-1]
        if module == "numpy":
            return (f"remote python {python} on {where} has no numpy: pip install numpy "
                    "paddlelite there")
        if module.startswith("importlib"):
            return (f"remote python {python} on {where} lacks {module} (Python < 3.8); the "
                    "runner needs Python 3.8+: point 'python' at a newer interpreter")
        return (f"remote python {python} on {where} has no module {module}: pip install "
                f"{module.split('.')[0]} there")
    return None


def remote_run_result(job_dir: Path, returncode: int, stderr: str, python: str,
                      where: str) -> dict:
    """The fetched result.json, or a record of why the remote runner left none."""
    if (job_dir / JOB_RESULT_FILE).is_file():
        record = json.loads((job_dir / JOB_RESULT_FILE).read_text())
        if record.get("status") != "ok":
            record["error"] = f"on {where}: {record.get('error') or 'no error text'}"
            record.setdefault("stage", "run")
        return record
    explanation = explain_runner_death(returncode, stderr, python, where)
    if explanation:
        return failed(explanation, "run")
    if 128 < returncode < 128 + 65:  # sh reports "killed by signal N" as 128 + N
        returncode = -(returncode - 128)
    record = read_result(job_dir, returncode, stderr)
    record["error"] = f"on {where}: {record.get('error') or 'no error text'}"
    record["stage"] = "run"
    return record
