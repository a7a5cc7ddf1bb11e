"""quantkit fleet against a real Ray cluster this file starts on 127.0.0.1.

A head and two worker nodes (`ray start --block` subprocesses, stopped by PID in the
fixture's teardown; the token in a temporary folder) advertise different targets; the
small test CNN stands in for two zoo models. Checked: each benchmark lands on the node
that offers its target (from the node each record names), the merged report is whole,
a target no node offers is `no-host` within seconds, a node that dies mid-benchmark
leaves a retried or failed record naming it while the other results are kept, a hung
benchmark is cancelled, Ctrl-C keeps what finished, and bad input is refused first.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from quantkit.benchmark.jobs import MeasureSettings
from quantkit.benchmark.results import BenchResults, Status
from quantkit.errors import QuantkitError

PADDLE3 = Path(__file__).parent / "data" / "paddle3"
MODELS = ("cnn-a", "cnn-b")
ONEDNN = ("intel-onednn-int8", "intel-onednn-fp32")
ORT = ("onnxruntime-int8", "onnxruntime-fp32")
MISADVERTISED = "nvidia-trt-fp32"  # node-a claims it; this CPU build cannot run it
TINY = MeasureSettings(batch_sizes=(1, 4), warmup=2, iterations=10, timeout_s=300)
RAY_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN")


@pytest.fixture(autouse=True)
def _ray_environment():
    """connect() sets Ray's auth variables in this process: put them back after a test."""
    saved = {name: os.environ.get(name) for name in RAY_ENV}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory) -> Path:
    """Two copies of the test CNN, calibration and eval .npz data."""
    folder = tmp_path_factory.mktemp("zoo")
    for name in MODELS:
        (folder / name).mkdir()
        for file in ("model.pdmodel", "model.pdiparams"):
            shutil.copyfile(PADDLE3 / file, folder / name / file)
    rng = np.random.default_rng(0)
    np.savez(folder / "calib.npz", image=rng.standard_normal((32, 1, 28, 28)).astype("float32"))
    np.savez(folder / "eval.npz", image=rng.standard_normal((48, 1, 28, 28)).astype("float32"),
             labels=rng.integers(0, 10, (48, 1)))
    return folder


def write_zoo(folder: Path, name: str, entries: dict[str, tuple[str, ...]], **overrides) -> Path:
    """A zoo file in `folder`: {model name: targets}; overrides replace an entry's keys."""
    text = []
    for model, targets in entries.items():
        fields = {"name": model, "model": model if model in MODELS else MODELS[0],
                  "task": "classification", "calib": "calib.npz", "eval": "eval.npz",
                  **overrides.get(model, {})}
        text.append("[[model]]")
        text += [f'{key} = "{value}"' for key, value in fields.items()]
        text.append("targets = [" + ", ".join(f'"{t}"' for t in targets) + "]")
        text += ["calib_batch_size = 8", "calib_batches = 4", ""]
    path = folder / name
    path.write_text("\n".join(text))
    return path


@pytest.fixture(scope="module")
def cluster():
    """head (no targets) + node-a (oneDNN, and a target it cannot run) + node-b (ORT)."""
    from quantkit.fleet.cluster import LocalCluster
    from quantkit.fleet.node import NodeSpec

    started = LocalCluster.start(NodeSpec(name="head"), (
        NodeSpec(name="node-a", targets=(*ONEDNN, MISADVERTISED)),
        NodeSpec(name="node-b", targets=ORT)))
    try:
        yield started
    finally:
        started.stop()
        assert not _our_processes(started), "a Ray process outlived the fixture"


def _our_processes(cluster) -> list[int]:
    """PIDs whose command line names this cluster's temporary folder."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(cluster.root) in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _fleet(cluster, zoo: Path, out: Path, measure: MeasureSettings = TINY, **kwargs):
    from quantkit.fleet.driver import FleetSettings, run_fleet

    return run_fleet(zoo, cluster.address, out, FleetSettings(measure=measure),
                     token_path=cluster.token_path, **kwargs)


# -- the cluster itself ---------------------------------------------------------------

def _listening(pids: set[int]) -> list[str]:
    """Local addresses of the TCP sockets `pids` listen on (from /proc, IPv4 and IPv6)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    addresses = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A" and parts[9] in inodes:  # 0A: LISTEN
                addresses.append(parts[1].split(":")[0])
    return addresses


LOOPBACK_HEX = {"0100007F", "0000000000000000FFFF00000100007F",
                "00000000000000000000000001000000"}  # 127.0.0.1, ::ffff:127.0.0.1, ::1


def test_every_service_listens_on_loopback_with_a_temporary_token(cluster):
    pids = set(_our_processes(cluster))
    sessions = {cluster.head.pid, *(node.pid for node in cluster.nodes)}
    for entry in Path("/proc").iterdir():  # Ray's servers, started by the nodes
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3]) in sessions:
                    pids.add(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    addresses = _listening(pids)
    assert len(addresses) >= 6, addresses  # GCS, 3 raylets x 2, agents
    assert set(addresses) <= LOOPBACK_HEX, addresses
    assert cluster.token_path.is_file() and str(cluster.token_path).startswith("/tmp/")
    assert oct(cluster.token_path.stat().st_mode & 0o777) == "0o600"


# -- the fleet run ----------------------------------------------------------------------

def test_two_models_four_targets_each_on_the_node_that_offers_it(cluster, zoo_dir, tmp_path):
    from quantkit.benchmark.report import load_results, to_markdown

    zoo = write_zoo(zoo_dir, "two.toml", {model: (*ONEDNN, *ORT) for model in MODELS})
    events = []
    results = _fleet(cluster, zoo, tmp_path / "out", on_event=events.append)
    by = {(r.model, r.target, r.batch_size): r for r in results.records}
    expected_node = {**{t: "node-a" for t in ONEDNN}, **{t: "node-b" for t in ORT}}
    for model in MODELS:
        for target, node in expected_node.items():
            for batch in TINY.batch_sizes:
                record = by[(model, target, batch)]
                assert record.status == Status.OK, record.error
                assert record.host == node  # measured where the target is offered
                assert record.machine["hostname"] and record.machine["python"]
                assert "argmax_agreement" in record.accuracy.metrics  # vs the FP32 reference
                assert record.latency_ms["iterations"] == TINY.iterations
        reference = by[(model, "intel-cpu-fp32", 1)]  # no node offers it: the driver ran it
        assert reference.status == Status.OK and reference.host == "driver"
        assert reference.accuracy.top1 is not None
    assert len(results.records) == 2 * 5 * 2
    out = tmp_path / "out"
    for name in ("results.json", "results.csv", "results.md", "summary.md",
                 "latency_vs_accuracy.png", "size.png"):
        assert (out / name).is_file(), name
    assert all((out / model / "artifacts").is_dir() for model in MODELS)
    reloaded = load_results([out / "results.json"])  # what `quantkit report` re-renders
    assert [r.to_dict() for r in reloaded.records] == [r.to_dict() for r in results.records]
    markdown = to_markdown(reloaded)
    assert markdown.splitlines()[0].startswith("| model | target |")
    summary = (out / "summary.md").read_text()
    assert all(f"| {model} | cpu (" in summary for model in MODELS)
    assert any("started on node node-a" in event for event in events)


def test_report_command_re_renders_a_fleet_run(cluster, zoo_dir, tmp_path):
    zoo = write_zoo(zoo_dir, "one.toml", {"cnn-a": ("onnxruntime-fp32",)})
    _fleet(cluster, zoo, tmp_path / "out")
    done = subprocess.run([sys.executable, "-m", "quantkit.cli", "report",
                           str(tmp_path / "out" / "results.json"), "--out",
                           str(tmp_path / "again")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    rows = (tmp_path / "again" / "results.md").read_text().splitlines()
    assert sum(row.startswith("| onnxruntime-fp32 | node-b | 1 | ok |") for row in rows) == 1


def test_a_target_no_node_offers_is_no_host_at_once(cluster, zoo_dir, tmp_path):
    zoo = write_zoo(zoo_dir, "arm.toml", {"cnn-a": ("arm-lite-int8",)})
    started = time.monotonic()
    results = _fleet(cluster, zoo, tmp_path / "out")
    assert time.monotonic() - started < 30  # connect + probe; nothing converted, no hang
    [record] = results.records
    assert record.status == Status.NO_HOST and record.model == "cnn-a"
    assert "no node of the fleet offers arm-lite-int8" in record.error
    assert BenchResults.load(tmp_path / "out" / "results.json").records[0].status == "no-host"


def test_a_node_advertising_a_target_it_cannot_run_says_so(cluster, zoo_dir, tmp_path):
    zoo = write_zoo(zoo_dir, "trt.toml", {"cnn-a": (MISADVERTISED,)})
    results = _fleet(cluster, zoo, tmp_path / "out")
    record = next(r for r in results.records if r.target == MISADVERTISED)
    assert record.status == Status.FAILED and record.host == "node-a"
    assert f"node node-a advertises {MISADVERTISED} but cannot run it" in record.error


def test_version_mismatch_is_refused_with_what_to_install(cluster, zoo_dir, tmp_path,
                                                          monkeypatch):
    from quantkit.fleet import versions

    real = versions.driver_versions()
    monkeypatch.setattr(versions, "driver_versions",
                        lambda: {**real, "quantkit": "9.9.9", "python": "3.10.99"})
    zoo = write_zoo(zoo_dir, "one.toml", {"cnn-a": ("onnxruntime-fp32",)})
    with pytest.raises(QuantkitError) as refused:
        _fleet(cluster, zoo, tmp_path / "out")
    message = str(refused.value)
    assert f"node node-a runs Python {real['python']}, quantkit {real['quantkit']}" in message
    assert "install Python 3.10.99 and quantkit 9.9.9 there" in message
    assert not (tmp_path / "out").exists()


def test_a_hung_benchmark_is_cancelled_after_its_timeout(cluster):
    import ray
    import ray.cloudpickle
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from quantkit.fleet import connect
    from quantkit.fleet.schedule import Job, Scheduler

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    connect.connect(cluster.address, cluster.token_path)
    try:
        nodes = connect.probe_nodes()

        def hang(job, node):
            return ray.remote(num_cpus=0, max_retries=0)(_sleep_forever).options(
                resources={job.target: 1, "bench_slot": 1},
                scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False),
            ).remote()

        started = time.monotonic()
        [outcome] = Scheduler(nodes, submit=hang, timeout_margin_s=1.0).run(
            [Job("cnn-a/onnxruntime-int8", "onnxruntime-int8", None, {}, timeout_s=2.0)])
        assert time.monotonic() - started < 30
        assert outcome.result["status"] == Status.FAILED
        assert "timed out after 2 s" in outcome.result["error"]
        assert "node-b" in outcome.result["error"]
        # the slot is free again: the next job on that node runs
        quick = ray.remote(num_cpus=0)(_node_name).options(
            resources={"onnxruntime-int8": 1, "bench_slot": 1}).remote()
        assert ray.get(quick, timeout=60) == "node-b"
    finally:
        connect.disconnect()
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _sleep_forever():
    time.sleep(3600)


def _node_name():
    return os.environ.get("QUANTKIT_FLEET_NODE")


def test_ctrl_c_writes_what_finished(cluster, zoo_dir, tmp_path):
    zoo = write_zoo(zoo_dir, "ort.toml", {"cnn-a": ORT})

    def interrupt_after_first(message: str) -> None:
        if "done on node" in message:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        _fleet(cluster, zoo, tmp_path / "out", on_event=interrupt_after_first)
    saved = BenchResults.load(tmp_path / "out" / "results.json")
    assert saved.interrupted
    statuses = {record.target: record.status for record in saved.records}
    assert Status.OK in statuses.values() and Status.INTERRUPTED in statuses.values()
    assert (tmp_path / "out" / "results.md").is_file()


# -- bad input: refused before any work --------------------------------------------------

def test_an_unreachable_address_is_one_line_within_seconds(zoo_dir, tmp_path):
    from quantkit.fleet.cluster import free_port

    zoo = write_zoo(zoo_dir, "one.toml", {"cnn-a": ("onnxruntime-fp32",)})
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "quantkit.cli", "fleet", str(zoo),
                           "--address", f"127.0.0.1:{free_port()}", "--out",
                           str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Ray head at 127.0.0.1:" in lines[0]
    assert "refused" in lines[0]
    assert time.monotonic() - started < 60  # most of it is Python starting quantkit
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("broken, named", [
    ({"model": "no-such-model"}, "model folder not found"),
    ({"eval": "missing.npz"}, "eval set not found"),
    ({"calib": "missing.npz"}, "calibration data not found"),
])
def test_a_missing_model_or_data_is_named_before_any_work(zoo_dir, tmp_path, broken, named):
    from quantkit.fleet.driver import run_fleet

    zoo = write_zoo(zoo_dir, "bad.toml", {"cnn-a": ("onnxruntime-fp32",),
                                          "cnn-b": ("onnxruntime-int8",)},
                    **{"cnn-b": broken})
    with pytest.raises(QuantkitError, match=named) as refused:
        run_fleet(zoo, "127.0.0.1:1", tmp_path / "out")  # checked before the address
    assert "zoo model 'cnn-b'" in str(refused.value)
    assert not (tmp_path / "out").exists()


def test_duplicate_model_names_are_refused(zoo_dir, tmp_path):
    from quantkit.fleet.driver import run_fleet

    zoo = zoo_dir / "dup.toml"
    one = write_zoo(zoo_dir, "dup-part.toml", {"cnn-a": ("onnxruntime-fp32",)}).read_text()
    zoo.write_text(one + "\n" + one)
    with pytest.raises(QuantkitError, match="names model 'cnn-a' twice"):
        run_fleet(zoo, "127.0.0.1:1", tmp_path / "out")


def test_fleet_node_refuses_a_target_this_machine_cannot_run():
    done = subprocess.run([sys.executable, "-m", "quantkit.cli", "fleet", "node", "--head",
                           "127.0.0.1:1", "--targets", "onnxruntime-int8,nvidia-trt-int8",
                           "--dry-run"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "this machine cannot run nvidia-trt-int8: this paddlepaddle is a CPU build" \
        in done.stderr


def test_fleet_node_advertises_targets_and_a_bench_slot_with_no_cpus(tmp_path):
    hosts = tmp_path / "hosts.toml"
    hosts.write_text('[hosts.rk3588]\nkind = "ssh"\naddress = "127.0.0.1"\n')
    done = subprocess.run([sys.executable, "-m", "quantkit.cli", "fleet", "node", "--head",
                           "10.9.8.7:6379", "--targets", "onnxruntime-int8,arm-lite-int8",
                           "--remote", "arm-lite-int8=rk3588", "--hosts", str(hosts),
                           "--name", "x86-a", "--dry-run"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert '"arm-lite-int8\\": 1' in done.stdout or '"arm-lite-int8": 1' in done.stdout
    assert "bench_slot" in done.stdout and "--num-cpus 0" in done.stdout
    assert "--address 10.9.8.7:6379" in done.stdout and "--node-name x86-a" in done.stdout


def test_a_board_target_runs_through_the_hosts_file(zoo_dir, tmp_path, monkeypatch):
    """A node serving a board hands the job to the SSH runner: here an unreachable board,
    whose failure names the host (the SSH runner itself is tested against sshd)."""
    from quantkit.benchmark.session import BenchPlan, write_bench_job
    from quantkit.fleet.cluster import free_port
    from quantkit.fleet.node import ENV_HOSTS, ENV_NODE, ENV_REMOTE
    from quantkit.fleet.tasks import pack_job, run_job_here
    from quantkit.targets.artifact import load_artifact
    from quantkit.targets.convert import convert

    artifact = convert(zoo_dir / "cnn-a", "x86-lite-fp32", tmp_path / "lite",
                       model_filename="model.pdmodel", params_filename="model.pdiparams")
    job_dir = tmp_path / "job"
    write_bench_job(load_artifact(artifact.folder),
                    BenchPlan([artifact.folder], TINY), job_dir, embed_artifact=True)
    hosts = tmp_path / "hosts.toml"
    hosts.write_text(f'[hosts.board]\nkind = "ssh"\naddress = "127.0.0.1"\nport = {free_port()}'
                     '\nconnect_timeout_s = 3\n')
    monkeypatch.setenv(ENV_NODE, "x86-a")
    monkeypatch.setenv(ENV_REMOTE, '{"x86-lite-fp32": "board"}')
    monkeypatch.setenv(ENV_HOSTS, str(hosts))
    answer = run_job_here(pack_job(job_dir), TINY.to_dict(), "x86-lite-fp32")
    assert answer["node"] == "x86-a"
    assert answer["result"]["status"] == "failed" and answer["result"]["host"] == "board"
    assert "board" in answer["result"]["error"]


# -- a node dies mid-run (last: it kills a node) ---------------------------------------

def test_a_node_dying_mid_benchmark_is_retried_elsewhere_or_failed(cluster, zoo_dir,
                                                                   tmp_path):
    from quantkit.fleet.node import NodeSpec

    spare = cluster.add_node(NodeSpec(name="node-c", targets=("onnxruntime-int8",)))
    victims = {"node-b": cluster.nodes[1], "node-c": spare}
    killed = []

    def kill_soon(message: str) -> None:
        if "onnxruntime-int8: started on node" in message and not killed:
            name = message.rsplit(" ", 1)[1]
            killed.append(name)
            threading.Timer(6.0, victims[name].kill).start()  # mid-benchmark

    zoo = write_zoo(zoo_dir, "die.toml", {"cnn-a": ORT})
    slow = MeasureSettings(batch_sizes=(1,), warmup=2, iterations=None, duration_s=15.0,
                           timeout_s=300)
    results = _fleet(cluster, zoo, tmp_path / "out", measure=slow, on_event=kill_soon)
    by = {record.target: record for record in results.records}
    survivor = ({"node-b", "node-c"} - set(killed)).pop()
    retried = by["onnxruntime-int8"]
    assert retried.status == Status.OK and retried.host == survivor
    assert any(f"node {killed[0]} died while measuring onnxruntime-int8" in warning
               for warning in retried.warnings)
    fp32 = by["onnxruntime-fp32"]
    if killed[0] == "node-b":  # the only node offering it is gone
        assert fp32.status == Status.FAILED and "node-b" in fp32.error
    else:
        assert fp32.status == Status.OK and fp32.host == "node-b"
    assert by["intel-cpu-fp32"].status == Status.OK  # the other results are kept
    assert BenchResults.load(tmp_path / "out" / "results.json").records
