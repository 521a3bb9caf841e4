"""One worker per pod, each a small state machine: syncing → terminating → terminated.

The kubelet's pod workers, reduced to what matters: a worker owns everything done to its pod, so two
syncs of one pod never overlap, while different pods proceed in parallel. A worker wakes when the pod
changes in the API, when the runtime reports a change (:mod:`kubelet.pods.pleg`), when a probe result
changes, or when its requeue time comes.

- **syncing**: run :meth:`PodSyncer.sync` and hand the status to the status manager. A pod being deleted,
  gone from the API, or finished (every container done for good) moves on to terminating.
- **terminating**: stop its containers with the grace period and its sandbox, write the final status and
  wait until it is written.
- **terminated**: for a deleted pod, remove every trace (containers, sandbox, volumes) and delete the pod
  object with grace 0 — the signal that the node has let go of it; then the worker ends. A finished pod
  that is not deleted stays terminated, its containers kept for ``kubectl logs``, until it is.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from typing import Any

from kubelet import metrics
from kubelet.pods import podspec
from kubelet.pods.admission import admit
from kubelet.pods.statusmanager import StatusManager
from kubelet.pods.sync import PodNotes, PodSyncer
from machinery.client import ApiClient
from machinery.client.resources import PODS
from machinery.clock import REAL_CLOCK, Clock
from machinery.errors import StatusError, is_conflict, is_not_found
from machinery.meta import is_being_deleted, parse_rfc3339

log = logging.getLogger(__name__)

ERROR_BACKOFF = (1.0, 30.0)  # a sync that raised is retried after 1 s, doubling up to 30 s


class WorkerState(enum.Enum):
    SYNCING = "syncing"
    TERMINATING = "terminating"
    TERMINATED = "terminated"


class PodWorker:
    def __init__(self, owner: PodWorkers, pod: dict[str, Any]) -> None:
        self.owner = owner
        self.pod = pod
        self.uid: str = pod["metadata"]["uid"]
        self.state = WorkerState.SYNCING
        self.gone = False  # the pod no longer exists in the API
        self.notes = PodNotes()
        self._wake = asyncio.Event()
        self._errors = 0
        self._start_observed = False
        self._step_task: asyncio.Future[bool] | None = None
        self._interrupted = False

    @property
    def key(self) -> str:
        return f"{self.pod['metadata']['namespace']}/{self.pod['metadata']['name']}"

    def update(self, pod: dict[str, Any]) -> None:
        deleting = not is_being_deleted(self.pod) and is_being_deleted(pod)
        self.pod = pod
        if deleting:
            self.interrupt()
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def interrupt(self) -> None:
        """Cancel a sync in progress (a hung hook, a slow pull) so a deletion is acted on at once, as the
        kubelet cancels an in-flight sync when the pod is killed."""
        if self.state is WorkerState.SYNCING and self._step_task is not None and not self._step_task.done():
            self._interrupted = True
            self._step_task.cancel()

    async def run(self) -> None:
        while True:
            self._wake.clear()  # a wake from now on, even one during the step, ends the step's sleep at once
            self._step_task = asyncio.ensure_future(self._step())
            try:
                finished = await self._step_task
            except asyncio.CancelledError:
                if not self._interrupted:
                    raise
                self._interrupted = False
                log.info("pod %s: sync interrupted by its deletion", self.key)
                continue
            except Exception:
                metrics.SYNC_ERRORS.inc()
                self._errors += 1
                delay = min(ERROR_BACKOFF[0] * 2 ** (self._errors - 1), ERROR_BACKOFF[1])
                log.exception("pod %s: %s failed; retrying in %.0fs", self.key, self.state.value, delay)
                await self._sleep(delay)
                continue
            self._errors = 0
            if finished:
                return

    async def _step(self) -> bool:
        """One turn of the state machine; True when the worker is done for good."""
        owner = self.owner
        if self.state is WorkerState.SYNCING:
            if self.gone or is_being_deleted(self.pod):
                self.state = WorkerState.TERMINATING
                return False
            with metrics.SYNC_DURATION.labels("sync").time():
                result = await owner.syncer.sync(self.pod, self.notes)
            owner.statuses.set_status(self.pod, result.status)
            self._observe_start(result.status)
            if result.done:
                self.state = WorkerState.TERMINATING
                return False
            await self._sleep(result.requeue_after)
            return False
        if self.state is WorkerState.TERMINATING:
            # A finished pod's sidecars get the same grace as a deleted pod's containers.
            grace = podspec.grace_period(self.pod)
            with metrics.SYNC_DURATION.labels("terminate").time():
                status = await owner.syncer.terminate(self.pod, self.notes, grace)
            if not self.gone:
                owner.statuses.set_status(self.pod, status)
                await owner.statuses.flush(self.uid)
            self.state = WorkerState.TERMINATED
            return False
        if self.gone or is_being_deleted(self.pod):
            await owner.syncer.cleanup(self.uid)
            if not self.gone:
                await owner.delete_pod(self.pod)
            owner.statuses.forget(self.uid)
            return True
        await self._sleep(None)  # finished but not deleted: wait for the deletion
        return False

    def _observe_start(self, status: dict[str, Any]) -> None:
        """The pod start SLI: creation until every container reported started, once per pod."""
        if self._start_observed or status.get("phase") != "Running":
            return
        statuses = status.get("containerStatuses") or []
        if statuses and all(s.get("started") for s in statuses):
            self._start_observed = True
            try:
                created = parse_rfc3339(self.pod["metadata"].get("creationTimestamp") or "")
            except ValueError:
                return
            metrics.POD_START.observe(max(0.0, (self.owner.clock.now() - created).total_seconds()))

    async def _sleep(self, seconds: float | None) -> None:
        if seconds is not None and seconds <= 0:
            return
        waiter = asyncio.ensure_future(self._wake.wait())
        sleeper = asyncio.ensure_future(self.owner.clock.sleep(seconds)) if seconds is not None else None
        try:
            await asyncio.wait({f for f in (waiter, sleeper) if f is not None}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (waiter, sleeper):
                if future is not None:
                    future.cancel()


class PodWorkers:
    """The set of workers, keyed by pod uid; pods arrive through :meth:`update` and :meth:`remove`."""

    def __init__(self, client: ApiClient, syncer: PodSyncer, statuses: StatusManager, *,
                 node: Callable[[], dict[str, Any] | None], clock: Clock = REAL_CLOCK,
                 on_reject: Callable[[dict[str, Any], str, str], None] = lambda pod, reason, message: None) -> None:
        self.client = client
        self.syncer = syncer
        self.statuses = statuses
        self.node = node
        self.clock = clock
        self.on_reject = on_reject
        self.workers: dict[str, PodWorker] = {}
        self._tasks: asyncio.TaskGroup | None = None
        self._ready = asyncio.Event()

    async def run(self) -> None:
        """Own the workers' tasks until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            self._ready.set()
            await asyncio.Event().wait()

    def update(self, pod: dict[str, Any], *, known: bool = False) -> None:
        """A pod bound to this node was added or changed. ``known``: it already runs here (found in the
        runtime after a restart), so it was admitted before and is not checked again."""
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(pod)
            return
        if self._tasks is None:
            raise RuntimeError("PodWorkers.run() is not running")
        worker = PodWorker(self, pod)
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            worker.state = WorkerState.TERMINATING
        elif not known and not is_being_deleted(pod) and not self._admit(pod):
            worker.state = WorkerState.TERMINATED
        self.workers[uid] = worker
        task = self._tasks.create_task(worker.run(), name=f"pod {worker.key}")
        task.add_done_callback(lambda _t, uid=uid, w=worker: self._finished(uid, w))

    def _admit(self, pod: dict[str, Any]) -> bool:
        node = self.node()
        if node is None:
            return True
        rejection = admit(pod, node, self.running_pods())  # terminating pods still hold what they use
        if rejection is None:
            return True
        status = {"phase": "Failed", "reason": rejection.reason,
                  "message": f"Pod was rejected: {rejection.message}"}
        self.statuses.set_status(pod, status)
        self.on_reject(pod, rejection.reason, rejection.message)
        return False

    def remove(self, pod: dict[str, Any]) -> None:
        """The pod is gone from the API (deleted with grace 0 or by someone else)."""
        worker = self.workers.get(pod["metadata"]["uid"])
        if worker is not None:
            worker.gone = True
            worker.interrupt()
            worker.wake()

    def wake(self, uid: str) -> None:
        worker = self.workers.get(uid)
        if worker is not None:
            worker.wake()

    def _finished(self, uid: str, worker: PodWorker) -> None:
        if self.workers.get(uid) is worker:
            del self.workers[uid]

    def running_pods(self) -> list[dict[str, Any]]:
        return [w.pod for w in self.workers.values() if w.state is not WorkerState.TERMINATED]

    async def delete_pod(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(PODS, meta["name"], meta["namespace"], grace_period_seconds=0,
                                     preconditions={"uid": meta["uid"]})
        except StatusError as err:
            if not (is_not_found(err) or is_conflict(err)):
                raise
