"""The probe manager: keeps one worker per (pod, container, probe kind) and answers the kubelet's questions.

The kubelet's pod sync calls :meth:`ProbeManager.update_pod` with each pod it runs and
:meth:`ProbeManager.set_container` with the container instance it found running (or ``None``); it reads
:meth:`readiness` (→ the container's ``ready``, hence the pod's Ready condition and Service endpoints),
:meth:`started` (→ ``started``; FAILURE means the startup probe failed: restart) and :meth:`liveness`
(FAILURE: kill and restart the container). ``on_change(uid)`` tells it when any of those answers changed, so
it can resync the pod at once instead of waiting for its next periodic sync.

Which containers are probed: regular containers, and init containers with ``restartPolicy: Always``
(sidecars), as in Kubernetes. A pod in a terminal phase has its workers stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping

from kubelet.cri.client import RuntimeClient
from kubelet.prober.results import ProbeKind, ProbeSpec, Result
from kubelet.prober.worker import Worker, WorkerHooks, WorkerKey
from machinery.clock import REAL_CLOCK, Clock
from machinery.podspec import is_sidecar

log = logging.getLogger(__name__)

EventSink = Callable[[dict, str, str, str], None]  # pod, type ("Warning"), reason ("Unhealthy"), message


class ProbeManager:
    """Owns the probe workers. The sync methods may be called before or while :meth:`run` runs."""

    def __init__(self, runtime: RuntimeClient, *, clock: Clock = REAL_CLOCK,
                 on_change: Callable[[str], None] = lambda uid: None,
                 on_event: EventSink = lambda pod, type, reason, message: None) -> None:
        self.runtime = runtime
        self.clock = clock
        self.on_change = on_change
        self.on_event = on_event
        self._workers: dict[WorkerKey, Worker] = {}
        self._containers: dict[tuple[str, str], tuple[str | None, float | None]] = {}
        self._group: asyncio.TaskGroup | None = None
        self._hooks = WorkerHooks(published=self._on_published, event=self._on_event, may_probe=self._may_probe)

    # --- the kubelet's side ------------------------------------------------------------------------------

    def update_pod(self, pod: Mapping) -> None:
        """Start/stop workers to match the probes in ``pod``'s spec. Idempotent; ``pod`` is not mutated (it may
        be an informer's read-only object: it is kept by reference, never changed)."""
        uid = _pod_uid(pod)
        if ((pod.get("status") or {}).get("phase")) in ("Succeeded", "Failed"):
            self.remove_pod(uid)
            return
        wanted: dict[WorkerKey, tuple[Mapping, ProbeSpec]] = {}
        for container, kind, probe in _probes(pod):
            key = WorkerKey(uid, container["name"], kind)
            try:
                wanted[key] = (container, ProbeSpec.from_probe(probe, kind))
            except ValueError as err:  # the API server validates probes; never crash on one it let through
                log.warning("pod %s container %s: %s probe ignored: %s", uid, container["name"], kind.value, err)
        for key in [k for k in self._workers if k.pod_uid == uid and k not in wanted]:
            self._stop(key)
        for key, (container, spec) in wanted.items():
            worker = self._workers.get(key)
            if worker is not None and worker.spec == spec:
                worker.container = container
                worker.set_pod(pod)
                continue
            if worker is not None:
                self._stop(key)  # the probe changed: start over with its new settings
            self._start(key, pod, container, spec)

    def set_container(self, pod_uid: str, container_name: str, container_id: str | None,
                      started_at: float | None) -> None:
        """The running instance of a container (``None``: not running) and since when, in ``clock.monotonic()``
        seconds (for a container older than the kubelet: ``clock.monotonic() - its age``; ``None``: now).
        A new id resets that container's workers: counters, initial delay and results. Idempotent."""
        if container_id is not None and started_at is None:
            started_at = self.clock.monotonic()
        elif container_id is None:
            started_at = None
        self._containers[(pod_uid, container_name)] = (container_id, started_at)
        for worker in self._container_workers(pod_uid, container_name):
            worker.set_container(container_id, started_at)

    def remove_pod(self, pod_uid: str) -> None:
        """Stop the pod's workers and forget its results. Idempotent."""
        for key in [k for k in self._workers if k.pod_uid == pod_uid]:
            self._stop(key)
        for key in [k for k in self._containers if k[0] == pod_uid]:
            del self._containers[key]

    def readiness(self, pod_uid: str, name: str) -> Result | None:
        """None: the container has no readiness probe (ready when running and started)."""
        return self._result(pod_uid, name, ProbeKind.READINESS)

    def liveness(self, pod_uid: str, name: str) -> Result | None:
        return self._result(pod_uid, name, ProbeKind.LIVENESS)

    def started(self, pod_uid: str, name: str) -> Result | None:
        """The startup probe's result: UNKNOWN until it passes, SUCCESS once it has, FAILURE when it failed
        ``failureThreshold`` times (the kubelet then restarts the container, as for liveness)."""
        return self._result(pod_uid, name, ProbeKind.STARTUP)

    async def run(self) -> None:
        """Run the workers until cancelled; they are tasks of one TaskGroup, cancelled with it."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            try:
                for worker in self._workers.values():
                    if worker.task is None:
                        worker.task = group.create_task(worker.run())
                await asyncio.Event().wait()  # forever: workers come and go through update_pod/remove_pod
            finally:
                self._group = None
                for worker in self._workers.values():
                    worker.task = None  # cancelled with the group; a later run() starts them again

    # --- workers -----------------------------------------------------------------------------------------

    def _start(self, key: WorkerKey, pod: Mapping, container: Mapping, spec: ProbeSpec) -> None:
        worker = Worker(key, pod, container, spec, runtime=self.runtime, clock=self.clock, hooks=self._hooks)
        self._workers[key] = worker
        container_id, started_at = self._containers.get((key.pod_uid, key.container), (None, None))
        worker.set_container(container_id, started_at)
        if self._group is not None:
            worker.task = self._group.create_task(worker.run())

    def _stop(self, key: WorkerKey) -> None:
        worker = self._workers.pop(key)
        if worker.task is not None:
            worker.task.cancel()

    def _container_workers(self, pod_uid: str, name: str) -> Iterator[Worker]:
        for kind in ProbeKind:
            worker = self._workers.get(WorkerKey(pod_uid, name, kind))
            if worker is not None:
                yield worker

    def _result(self, pod_uid: str, name: str, kind: ProbeKind) -> Result | None:
        worker = self._workers.get(WorkerKey(pod_uid, name, kind))
        return None if worker is None else worker.result

    def _may_probe(self, worker: Worker) -> bool:
        """Liveness and readiness wait for the same container instance's startup probe to succeed."""
        if worker.key.kind is ProbeKind.STARTUP:
            return True
        startup = self._workers.get(WorkerKey(worker.key.pod_uid, worker.key.container, ProbeKind.STARTUP))
        return startup is None or (startup.container_id == worker.container_id and startup.result is Result.SUCCESS)

    def _on_published(self, worker: Worker, old: Result, new: Result) -> None:
        if self._workers.get(worker.key) is not worker:
            return  # a worker being built or already stopped
        if worker.key.kind is ProbeKind.STARTUP:
            for sibling in self._container_workers(worker.key.pod_uid, worker.key.container):
                sibling.wake()  # startup passed (or reset): liveness/readiness may start or must stop
        try:
            self.on_change(worker.key.pod_uid)
        except Exception:
            log.exception("on_change(%s) failed", worker.key.pod_uid)

    def _on_event(self, pod: Mapping, type_: str, reason: str, message: str) -> None:
        try:
            self.on_event(pod, type_, reason, message)
        except Exception:
            log.exception("recording event %s for pod %s failed", reason, _pod_uid(pod))


def _probes(pod: Mapping) -> Iterator[tuple[Mapping, ProbeKind, Mapping]]:
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or [] if is_sidecar(c)]
    for container in [*sidecars, *(spec.get("containers") or [])]:
        if not isinstance(container, Mapping) or not container.get("name"):
            continue
        for kind in ProbeKind:
            probe = container.get(kind.field)
            if probe is not None:
                yield container, kind, probe


def _pod_uid(pod: Mapping) -> str:
    uid = (pod.get("metadata") or {}).get("uid") if isinstance(pod, Mapping) else None
    if not uid:
        raise ValueError("pod has no metadata.uid")
    return str(uid)
