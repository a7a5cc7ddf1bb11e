"""`run_fleet`: a zoo file measured across a Ray cluster into one report.

Everything that can be refused is checked before anything is written or started: the
zoo (every model and data set), the head's address, every node's versions. Then, per
model, calibration and conversion run once here (pipeline.prepare into OUT/<model>/);
each (model, target) job goes to a node that offers the target; the driver scores every
record against that model's FP32 reference with the code `quantkit bench` uses.
"""
from __future__ import annotations

import dataclasses
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from quantkit.atomic import confined, replaceable_output, write_text_atomic
from quantkit.benchmark.jobs import MeasureSettings
from quantkit.benchmark.results import BenchRecord, BenchResults, Status
from quantkit.errors import QuantkitError
from quantkit.files import RESULTS_FILE
from quantkit.fleet.schedule import TIMEOUT_MARGIN_S, Job, Outcome, Scheduler
from quantkit.fleet.summary import SUMMARY_FILE, summary_markdown
from quantkit.interrupts import InterruptFlag
from quantkit.pipeline import REFERENCE_TARGET, RunSettings, prepare
from quantkit.zoo.run import ZooRun, check_zoo

LOCAL = "local"
DRIVER_HOST = "driver"  # a reference measured on the driver (no node offered it)


@dataclass(frozen=True)
class FleetSettings:
    """How every fleet benchmark is measured and watched."""

    measure: MeasureSettings = field(default_factory=MeasureSettings)
    reference_target: str = REFERENCE_TARGET
    timeout_margin_s: float = TIMEOUT_MARGIN_S
    one_per_machine: bool = True


def run_fleet(zoo_path: str | Path, address: str, out_dir: str | Path,
              settings: FleetSettings = FleetSettings(), force: bool = False,
              token_path: Path | None = None,
              on_event: Callable[[str], None] = lambda message: None) -> BenchResults:
    """Measure every model x target of the zoo file on the fleet at `address` ("local":
    a throwaway cluster on this machine); reports and summary.md in `out_dir`."""
    from quantkit.fleet import connect as fleet_connect
    from quantkit.fleet.versions import check_versions, driver_versions

    runs = check_zoo(Path(zoo_path))
    out_dir = replaceable_output(out_dir, force or _is_empty_folder(Path(out_dir)),
                                 inputs=[run.model.given_dir for run in runs])
    if address != LOCAL:  # a dead address: one line within seconds, nothing written
        fleet_connect.check_reachable(address)
    cluster = None
    try:
        if address == LOCAL:
            cluster, no_host_reasons = _start_local(runs, settings, on_event)
            address, token_path = cluster.address, cluster.token_path
        else:
            no_host_reasons = {}
        on_event(f"connecting to {address}")
        fleet_connect.connect(address, token_path)
        nodes = fleet_connect.probe_nodes()
        check_versions(driver_versions(), nodes)
        for node in nodes:
            on_event(f"node {node.name} ({node.address}): {', '.join(sorted(node.targets))}")
        offered = set().union(*(node.targets for node in nodes)) if nodes else set()
        return _measure_fleet(runs, nodes, offered, no_host_reasons, settings, out_dir,
                              on_event)
    finally:
        fleet_connect.disconnect()
        if cluster is not None:
            on_event("stopping the local cluster")
            cluster.stop()


def _start_local(runs: list[ZooRun], settings: FleetSettings, on_event):
    """A one-node cluster on 127.0.0.1 offering what this machine can run.

    One node, not one per target: every node has its own bench slot, so several nodes on
    one machine would time benchmarks side by side on the same cores.
    """
    from quantkit.fleet.cluster import LocalCluster
    from quantkit.fleet.node import NodeSpec
    from quantkit.targets import adapter_for
    from quantkit.targets.profile import load_profile

    wanted = dict.fromkeys([*(t for run in runs for t in run.targets),
                            settings.reference_target])
    runnable, reasons = [], {}
    for name in wanted:
        profile = load_profile(name)
        available = adapter_for(profile.backend).availability(profile)
        if available.can_run:
            runnable.append(name)
        else:
            reasons[name] = f"this machine cannot run it: {available.reason}"
    on_event(f"starting a local cluster on 127.0.0.1 offering {', '.join(runnable) or 'nothing'}")
    name = check_name_or(socket.gethostname(), LOCAL)
    return LocalCluster.start(NodeSpec(name=name, targets=tuple(runnable))), reasons


def _measure_fleet(runs: list[ZooRun], nodes, offered: set[str], no_host_reasons: dict,
                   settings: FleetSettings, out_dir: Path, on_event) -> BenchResults:
    import ray

    if out_dir.exists():  # replaceable_output allowed it: an empty or earlier run folder
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    results = BenchResults(settings=_settings_record(runs, nodes, settings))
    missing = {run.name: [target for target in run.targets if target not in offered]
               for run in runs}
    for run in runs:  # no node offers these: said at once, nothing converted for them
        for target in missing[run.name]:
            on_event(f"  {run.name}/{target}: no-host: no node offers it")
    results.records = _assemble(runs, missing, settings, no_host_reasons, final=False)
    results.save(confined(out_dir, RESULTS_FILE))
    jobs: dict[str, tuple[ZooRun, Path]] = {}
    with tempfile.TemporaryDirectory(prefix="quantkit-fleet-") as scratch, \
            InterruptFlag() as interrupts:
        try:
            all_jobs = []
            for run in runs:
                measured = [target for target in run.targets if target in offered]
                if not measured:
                    continue
                on_event(f"{run.name}: calibrating and converting into {out_dir / run.name}")
                run.prepared = prepare(
                    run.model.model_dir, run.calib, measured, confined(out_dir, run.name),
                    run.eval,
                    RunSettings(calibration=run.calibration, measure=settings.measure,
                                reference_target=settings.reference_target),
                    model_filename=run.model.model_file.name,
                    params_filename=run.model.params_file.name if run.model.params_file
                    else None, on_event=on_event)
                interrupts.check()
                for artifact_dir in run.prepared.artifacts:
                    job = _job_for(run, artifact_dir, settings, offered, Path(scratch), ray)
                    if job is None:  # the reference, measured on this driver
                        _measure_reference_here(run, artifact_dir, settings, Path(scratch),
                                                no_host_reasons, interrupts, on_event)
                        continue
                    jobs[job.key] = (run, artifact_dir)
                    all_jobs.append(job)

            def keep(outcome: Outcome) -> None:
                run, artifact_dir = jobs[outcome.job.key]
                run.outcomes[str(artifact_dir)] = outcome
                results.records = _assemble(runs, missing, settings, no_host_reasons, False)
                results.save(confined(out_dir, RESULTS_FILE))

            on_event(f"benchmarking {len(all_jobs)} job(s) on {len(nodes)} node(s)")
            Scheduler(nodes, on_event=on_event, should_stop=lambda: interrupts.requested,
                      on_outcome=keep, timeout_margin_s=settings.timeout_margin_s,
                      one_per_machine=settings.one_per_machine).run(all_jobs)
        except KeyboardInterrupt:
            results.interrupted = True
            results.records = _assemble(runs, missing, settings, no_host_reasons, final=True)
            _write(results, out_dir)
            raise
    results.records = _assemble(runs, missing, settings, no_host_reasons, final=True)
    _write(results, out_dir)
    return results


def _job_for(run: ZooRun, artifact_dir: Path, settings: FleetSettings, offered: set[str],
             scratch: Path, ray) -> Job | None:
    """The packed job for one artifact, in the object store; None: measure it here."""
    from quantkit.benchmark.session import write_bench_job
    from quantkit.fleet.tasks import pack_job
    from quantkit.targets.artifact import load_artifact

    artifact = load_artifact(artifact_dir)
    if artifact.target not in offered:  # only the reference gets here (it was not asked)
        return None
    job_dir = scratch / run.name / artifact.target
    problem = write_bench_job(artifact, _plan(run, settings), job_dir, embed_artifact=True)
    key = f"{run.name}/{artifact.target}"
    if problem is not None:
        run.outcomes[str(artifact_dir)] = Outcome(Job(key, artifact.target, None, {}, 0),
                                                  problem)
        return None
    archive = ray.put(pack_job(job_dir))
    shutil.rmtree(job_dir)
    return Job(key, artifact.target, archive, settings.measure.to_dict(),
               settings.measure.timeout_s)


def _measure_reference_here(run: ZooRun, artifact_dir: Path, settings: FleetSettings,
                            scratch: Path, no_host_reasons: dict, interrupts,
                            on_event) -> None:
    """No node offers the FP32 reference: it runs where it can, on this driver."""
    from quantkit.benchmark.session import run_bench_job, write_bench_job
    from quantkit.targets import adapter_for
    from quantkit.targets.artifact import artifact_profile, load_artifact

    key = str(artifact_dir)
    if key in run.outcomes:  # its job could not be written
        return
    artifact = load_artifact(artifact_dir)
    job = Job(f"{run.name}/{artifact.target}", artifact.target, None, {}, 0)
    available = adapter_for(artifact.backend).availability(artifact_profile(artifact_dir))
    if not available.can_run:
        reason = no_host_reasons.get(artifact.target, available.reason)
        run.outcomes[key] = Outcome(job, {"status": Status.NO_HOST,
                                          "error": f"reference {artifact.target}: no node "
                                                   f"offers it and the driver cannot run it "
                                                   f"({reason}); accuracy vs FP32 is left "
                                                   "out"})
        return
    on_event(f"  {job.key}: FP32 reference, measured on the driver (no node offers it)")
    job_dir = scratch / run.name / f"reference-{artifact.target}"
    problem = write_bench_job(artifact, _plan(run, settings), job_dir)
    if problem is not None:
        run.outcomes[key] = Outcome(job, problem)
        return
    result, outputs = run_bench_job(job_dir, settings.measure,
                                    should_stop=lambda: interrupts.requested)
    result["host"] = DRIVER_HOST
    run.outcomes[key] = Outcome(job, result, outputs, node=DRIVER_HOST)


def _plan(run: ZooRun, settings: FleetSettings):
    from quantkit.benchmark.session import BenchPlan

    prepared = run.prepared
    return BenchPlan(artifacts=prepared.artifacts, settings=settings.measure,
                     eval_set=run.eval, reference=prepared.reference, task=run.task)


def _assemble(runs: list[ZooRun], missing: dict, settings: FleetSettings,
              no_host_reasons: dict, final: bool) -> list[BenchRecord]:
    """Every record so far, model by model, scored against each model's reference.

    `final`: a job without an outcome (Ctrl-C) becomes an `interrupted` record.
    """
    from quantkit.benchmark.session import Scorer, bare_record
    from quantkit.targets.artifact import load_artifact
    from quantkit.targets.profile import load_profile

    records: list[BenchRecord] = []
    for run in runs:
        prepared = run.prepared
        if prepared is not None:
            scorer = Scorer(_plan(run, settings), prepared.reference)
            order = sorted(prepared.artifacts, key=lambda path: path != prepared.reference)
            for artifact_dir in order:
                artifact = load_artifact(artifact_dir)
                outcome = run.outcomes.get(str(artifact_dir))
                if outcome is None:
                    if final:
                        records.append(bare_record(artifact, Status.INTERRUPTED,
                                                   "run interrupted before this target "
                                                   "finished", host=DRIVER_HOST, machine={}))
                    continue
                for record in scorer.add(artifact, outcome.result, outcome.outputs):
                    records.append(dataclasses.replace(
                        record, model=run.name,
                        warnings=(*record.warnings, *outcome.notes)))
            records += [dataclasses.replace(record, model=run.name)
                        for record in prepared.failures]
        for target in missing[run.name]:
            profile = load_profile(target)
            why = no_host_reasons.get(target)
            records.append(BenchRecord(
                target=target, backend=profile.backend, precision=profile.precision,
                device=profile.device, status=Status.NO_HOST, host=DRIVER_HOST,
                model=run.name,
                error=f"no node of the fleet offers {target}"
                      + (f" ({why})" if why else "")
                      + f"; start one with `quantkit fleet node --targets {target}`"))
    return records


def _settings_record(runs: Sequence[ZooRun], nodes, settings: FleetSettings) -> dict:
    return {"measure": settings.measure.to_dict(),
            "reference_target": settings.reference_target,
            "models": {run.name: {"model": str(run.model.model_file),
                                  "targets": list(run.targets),
                                  "calibration": run.calibration.to_dict(),
                                  "eval_set": run.eval.describe() if run.eval else None}
                       for run in runs},
            "nodes": [{"name": node.name, "address": node.address,
                       "targets": sorted(node.targets), "versions": node.versions,
                       "remote": node.remote} for node in nodes]}


def _write(results: BenchResults, out_dir: Path) -> None:
    from quantkit.benchmark.report import write_reports

    write_reports(results, out_dir)
    write_text_atomic(out_dir / SUMMARY_FILE, summary_markdown(results))


def check_name_or(name: str, fallback: str) -> str:
    """`name` if it is a safe node name (records carry it), else `fallback`."""
    from quantkit.names import check_name

    try:
        return check_name(name, "node name")
    except QuantkitError:
        return fallback


def _is_empty_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())
