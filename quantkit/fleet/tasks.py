"""What runs on a fleet node: one benchmark job, and the probe of the node's versions.

A job travels as an uncompressed tar of the folder `write_bench_job` made on the driver
(artifact embedded, timing inputs, eval rows) through Ray's object store, so nodes need no
shared file system. The node unpacks it into a scratch folder and runs it with
`run_bench_job`, the path `quantkit bench` takes: a runner process on this machine, or the
SSH/adb runner for a board this node serves. Ray only places and carries the work.
"""
from __future__ import annotations

import io
import json
import platform
import tarfile
import tempfile
from pathlib import Path

from quantkit.files import JOB_FILE

JOB_FOLDER = "job"


def pack_job(job_dir: Path) -> bytes:
    """The job folder as tar bytes (artifacts are small; .nb/.onnx barely compress)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(job_dir, arcname=JOB_FOLDER)
    return buffer.getvalue()


def unpack_job(data: bytes, into: Path) -> Path:
    """Extract a packed job under `into`; refuses members that would land outside it."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as archive:
        for member in archive.getmembers():
            parts = Path(member.name).parts
            if (Path(member.name).is_absolute() or ".." in parts or not parts
                    or parts[0] != JOB_FOLDER or not (member.isfile() or member.isdir())):
                raise ValueError(f"job archive member {member.name!r} is not a plain file "
                                 f"inside {JOB_FOLDER}/")
        archive.extractall(into)
    return into / JOB_FOLDER


def node_versions() -> dict:
    """What the driver compares with its own: Python, quantkit and Ray versions."""
    import importlib.metadata

    import ray

    return {"python": platform.python_version(),
            "quantkit": importlib.metadata.version("quantkit"), "ray": ray.__version__}


def probe_node() -> dict:
    """Runs on each node before any work: its name, versions, boards and machine."""
    from quantkit.fleet.node import node_environment
    from quantkit.machine import machine_facts

    return {**node_environment(), **node_versions(), "machine": machine_facts()}


def run_job_here(archive: bytes, settings: dict, target: str) -> dict:
    """Runs on the node: the job's runner result and eval outputs, and who measured it.

    {"result": runner record, "outputs": array or None, "node": this node's name}. A
    target this machine cannot run (advertised by mistake) is a failed record saying so.
    """
    from quantkit.benchmark.jobs import MeasureSettings
    from quantkit.benchmark.session import run_bench_job
    from quantkit.fleet.node import node_environment
    from quantkit.machine import machine_facts

    node = node_environment()
    measure = MeasureSettings(**{**settings, "batch_sizes": tuple(settings["batch_sizes"])})
    with tempfile.TemporaryDirectory(prefix="quantkit-fleet-job-") as scratch:
        job_dir = unpack_job(archive, Path(scratch))
        host = None
        if target in node["remote"]:
            from quantkit.benchmark.remote.hosts import find_host

            host = find_host(node["remote"][target], node["hosts_file"])
            _set_opener(job_dir, host.opener)
        else:
            refusal = _cannot_run(job_dir, node["name"], target)
            if refusal is not None:
                return {"result": {**refusal, "host": node["name"],
                                   "machine": machine_facts()},
                        "outputs": None, "node": node["name"]}
        result, outputs = run_bench_job(job_dir, measure, host)
    if host is None:
        result["host"] = node["name"]
        result.setdefault("machine", machine_facts())
    return {"result": result, "outputs": outputs, "node": node["name"]}


def _cannot_run(job_dir: Path, node: str, target: str) -> dict | None:
    from quantkit.targets import adapter_for
    from quantkit.targets.artifact import artifact_profile, load_artifact

    job = json.loads((job_dir / JOB_FILE).read_text())
    artifact = load_artifact(job_dir / job["artifact"])
    available = adapter_for(artifact.backend).availability(artifact_profile(artifact.folder))
    if available.can_run:
        return None
    return {"status": "failed",
            "error": f"node {node} advertises {target} but cannot run it: {available.reason} "
                     f"(restart it with `quantkit fleet node` without {target})"}


def _set_opener(job_dir: Path, opener: str) -> None:
    """A board's hosts-file entry says how its runner opens the artifact."""
    path = job_dir / JOB_FILE
    job = json.loads(path.read_text())
    job["opener"] = opener
    path.write_text(json.dumps(job, indent=2) + "\n")
