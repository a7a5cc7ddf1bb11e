"""Placement: each benchmark on a node that offers its target, retried once elsewhere when
its node dies, cancelled when it overruns; a target no node offers is `no-host` at once.

The driver picks the node (hard node affinity) instead of leaving it to Ray, so it can
keep nodes that share a machine from measuring at the same time, say which node a retry
went to, and stop a retry from landing on the node that just died when it rejoins. Each
task still asks Ray for its target resource and the node's one `bench_slot`, so two
drivers sharing a fleet never overlap on a node either.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from quantkit.benchmark.results import Status
from quantkit.fleet.connect import FleetNode, alive_node_ids, first_line
from quantkit.fleet.node import BENCH_SLOT

TIMEOUT_MARGIN_S = 60.0  # beyond MeasureSettings.timeout_s: unpacking, a worker starting
CANCEL_GRACE_S = 10.0  # after a polite cancel (the runner is killed), force it
POLL_S = 0.5
ALIVE_EVERY_S = 2.0  # how often the driver re-reads which nodes are alive
NODE_DEATH_WAIT_S = 60.0  # a lost worker: how long to wait for Ray to call its node dead
MAX_ATTEMPTS = 2  # a node dies: once more on another node


@dataclass(frozen=True)
class Job:
    """One (model, target) benchmark: its packed job folder and how long it may take."""

    key: str  # "model/target", for messages
    target: str
    archive: Any  # ObjectRef of tasks.pack_job(...) bytes
    settings: dict  # MeasureSettings.to_dict()
    timeout_s: float


@dataclass
class Outcome:
    """How a job ended: the runner's result (or the driver's account of what failed)."""

    job: Job
    result: dict
    outputs: Any = None
    node: str | None = None
    notes: tuple[str, ...] = ()


@dataclass
class _Running:
    job: Job
    node: FleetNode
    ref: Any
    started: float
    cancelled_at: float | None = None
    forced: bool = False


def no_host(job: Job, offered: set[str]) -> Outcome:
    """The outcome for a target that no node of the fleet advertises."""
    have = ", ".join(sorted(offered)) or "none"
    return Outcome(job, {"status": Status.NO_HOST,
                         "error": f"no node of the fleet offers {job.target} (offered: {have}); "
                                  f"start one with `quantkit fleet node --targets "
                                  f"{job.target}`"})


def ray_submit(job: Job, node: FleetNode):
    """Start `job` on `node` through Ray: that node only, its target and its bench slot."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from quantkit.fleet.tasks import run_job_here

    task = ray.remote(num_cpus=0, max_retries=0)(run_job_here)
    return task.options(
        resources={job.target: 1, BENCH_SLOT: 1}, name=f"quantkit-bench:{job.key}",
        scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False),
    ).remote(job.archive, job.settings, job.target)


@dataclass
class Scheduler:
    """Runs jobs on `nodes` until each has an outcome (`outcomes`, in finishing order)."""

    nodes: Sequence[FleetNode]
    submit: Callable[[Job, FleetNode], Any] = ray_submit
    alive: Callable[[], set[str]] = alive_node_ids
    on_event: Callable[[str], None] = lambda message: None
    should_stop: Callable[[], bool] = lambda: False
    on_outcome: Callable[[Outcome], None] = lambda outcome: None
    timeout_margin_s: float = TIMEOUT_MARGIN_S
    one_per_machine: bool = True  # nodes sharing an address never measure at once
    outcomes: list[Outcome] = field(default_factory=list)

    def run(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Every job's outcome; on Ctrl-C (should_stop) cancels what runs and raises
        KeyboardInterrupt, with the finished ones kept in `outcomes`."""
        import ray

        offered = set().union(*(node.targets for node in self.nodes)) if self.nodes else set()
        pending: deque[Job] = deque()
        for job in jobs:
            if job.target in offered:
                pending.append(job)
            else:
                self._done(no_host(job, offered))
        self._tried: dict[str, list[str]] = {}
        self._notes: dict[str, list[str]] = {}
        self._running: dict[Any, _Running] = {}
        self._alive, checked = self.alive(), time.monotonic()
        try:
            while pending or self._running:
                if self.should_stop():
                    raise KeyboardInterrupt
                if time.monotonic() - checked > ALIVE_EVERY_S:
                    self._alive, checked = self.alive(), time.monotonic()
                self._place(pending)
                if not self._running:
                    continue  # _place gave every unplaceable job its outcome
                ready, _ = ray.wait(list(self._running), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    self._finish(self._running.pop(ref), pending)
                self._enforce_deadlines()
        except KeyboardInterrupt:
            self._cancel_all()
            raise
        return self.outcomes

    # -- placing ------------------------------------------------------------------------

    def _place(self, pending: deque) -> None:
        busy_nodes = {run.node.node_id for run in self._running.values()}
        busy_machines = {run.node.address for run in self._running.values()}
        for job in list(pending):
            tried = self._tried.get(job.key, [])
            offering = [node for node in self.nodes if job.target in node.targets
                        and node.node_id in self._alive and node.name not in tried]
            if not offering:
                pending.remove(job)
                self._done(self._unplaceable(job, tried))
                continue
            free = [node for node in offering if node.node_id not in busy_nodes
                    and not (self.one_per_machine and node.address in busy_machines)]
            if not free:
                continue
            node = free[0]
            pending.remove(job)
            self._tried.setdefault(job.key, []).append(node.name)
            self.on_event(f"  {job.key}: started on node {node.name}")
            ref = self.submit(job, node)
            self._running[ref] = _Running(job, node, ref, time.monotonic())
            busy_nodes.add(node.node_id)
            busy_machines.add(node.address)

    def _unplaceable(self, job: Job, tried: list[str]) -> Outcome:
        if tried:
            last = self._notes.get(job.key, ["its node died"])[-1]
            return self._failed(job, f"{last}; no other alive node offers {job.target}",
                                tried[-1])
        gone = [node.name for node in self.nodes if job.target in node.targets]
        return self._failed(job, f"node(s) {', '.join(gone)} offering {job.target} died "
                                 "before it could start; no other node offers it", None)

    # -- finishing ----------------------------------------------------------------------

    def _finish(self, run: _Running, pending: deque) -> None:
        import ray
        from ray import exceptions as rayerr

        job, node = run.job, run.node
        try:
            value = ray.get(run.ref)
        except rayerr.TaskCancelledError:
            if run.cancelled_at is None:
                self._done(Outcome(job, {"status": Status.INTERRUPTED,
                                         "error": "cancelled"}, node=node.name))
            else:
                self._done(self._failed(job, f"timed out after {job.timeout_s:.0f} s "
                                             f"(+{self.timeout_margin_s:.0f} s to start) on "
                                             f"node {node.name}: cancelled (raise --timeout)",
                                        node.name))
            return
        except (rayerr.NodeDiedError, rayerr.WorkerCrashedError, rayerr.ObjectLostError,
                rayerr.LocalRayletDiedError, rayerr.RaySystemError) as exc:
            if self._node_is_gone(node):
                self._node_died(job, node, pending)
            else:
                self._done(Outcome(job, {"status": Status.CRASHED,
                                         "error": f"the fleet worker on node {node.name} "
                                                  f"died: {first_line(exc)}",
                                         "host": node.name, "machine": node.machine},
                                   node=node.name, notes=self._job_notes(job)))
            return
        except Exception as exc:  # noqa: BLE001 - the task's own error, kept as its record
            self._done(self._failed(job, f"on node {node.name}: {first_line(exc)}",
                                    node.name))
            return
        self._done(Outcome(job, value["result"], value.get("outputs"),
                           node=value.get("node", node.name), notes=self._job_notes(job)))

    def _node_is_gone(self, node: FleetNode) -> bool:
        """A lost worker: its node died, or only the worker did (wait for Ray's verdict)."""
        deadline = time.monotonic() + NODE_DEATH_WAIT_S
        while True:
            self._alive = self.alive()
            if node.node_id not in self._alive:
                return True
            if time.monotonic() > deadline or self.should_stop():
                return False
            time.sleep(POLL_S)

    def _node_died(self, job: Job, node: FleetNode, pending: deque) -> None:
        message = f"node {node.name} died while measuring {job.target}"
        self._notes.setdefault(job.key, []).append(message)
        attempts = len(self._tried.get(job.key, []))
        others = [other for other in self.nodes if job.target in other.targets
                  and other.node_id in self._alive
                  and other.name not in self._tried.get(job.key, [])]
        if attempts < MAX_ATTEMPTS and others:
            self.on_event(f"  {job.key}: {message}; retrying on another node")
            pending.appendleft(job)
        else:
            why = (f"; no other alive node offers {job.target}" if not others
                   else f"; not retried again ({attempts} attempts)")
            self.on_event(f"  {job.key}: {message}{why}")
            self._done(self._failed(job, message + why, node.name))

    def _job_notes(self, job: Job) -> tuple[str, ...]:
        notes = self._notes.get(job.key, [])
        tried = self._tried.get(job.key, [])
        if notes and len(tried) > 1:
            return (f"retried on node {tried[-1]}: {notes[-1]}",)
        return tuple(notes)

    def _failed(self, job: Job, error: str, node: str | None) -> Outcome:
        machine = next((n.machine for n in self.nodes if n.name == node), {})
        result = {"status": Status.FAILED, "error": error, "machine": machine}
        if node is not None:
            result["host"] = node
        return Outcome(job, result, node=node, notes=self._job_notes(job))

    def _done(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        status = outcome.result.get("status")
        if status != Status.OK:
            self.on_event(f"  {outcome.job.key}: {status}: {outcome.result.get('error')}")
        else:
            self.on_event(f"  {outcome.job.key}: done on node {outcome.node}")
        self.on_outcome(outcome)

    # -- time limits and stopping -------------------------------------------------------

    def _enforce_deadlines(self) -> None:
        import ray

        now = time.monotonic()
        for run in self._running.values():
            limit = run.job.timeout_s + self.timeout_margin_s
            if run.cancelled_at is None and now - run.started > limit:
                self.on_event(f"  {run.job.key}: over {limit:.0f} s on node {run.node.name}; "
                              "cancelling")
                ray.cancel(run.ref, force=False)  # the task's runner is killed with it
                run.cancelled_at = now
            elif run.cancelled_at is not None and not run.forced \
                    and now - run.cancelled_at > CANCEL_GRACE_S:
                ray.cancel(run.ref, force=True)
                run.forced = True

    def _cancel_all(self) -> None:
        import ray

        refs = list(self._running)
        for ref in refs:
            ray.cancel(ref, force=False)
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=CANCEL_GRACE_S)
        for ref in refs:
            ray.cancel(ref, force=True)
