"""One probe worker: probes one kind (liveness, readiness or startup) of one container of one pod, on a timer.

It follows the Kubernetes prober's worker: the first probe runs ``initialDelaySeconds`` after the container
started (not a full period later), then one every ``periodSeconds``; a result is published only after
``successThreshold`` / ``failureThreshold`` equal results in a row; a probe that could not run (UNKNOWN) changes
nothing. A new container instance (new id) resets counters, delay and result. A liveness or startup failure puts
the worker on hold until the kubelet restarts the container; a startup probe stops once it has succeeded; while
the startup probe has not succeeded, liveness and readiness workers wait. During pod termination liveness and
startup report SUCCESS and stop, so that the kubelet does not restart what it is stopping.

Simplification: no start-up jitter after a kubelet restart (Kubernetes spreads the first probes of old
containers over one period).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kubelet.cri.client import RuntimeClient
from kubelet.prober.handlers import probe_action
from kubelet.prober.results import ProbeKind, ProbeSpec, Result
from machinery.clock import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerKey:
    pod_uid: str
    container: str
    kind: ProbeKind


@dataclass
class WorkerHooks:
    """How a worker talks back to its manager (all called synchronously from the worker's task)."""

    published: Callable[[Worker, Result, Result], None]  # worker, old, new: the published result changed
    event: Callable[[Mapping, str, str, str], None]  # pod, type, reason, message
    may_probe: Callable[[Worker], bool]  # False while the container's startup probe has not succeeded


class Worker:
    """Owned by :class:`~kubelet.prober.manager.ProbeManager`; its :meth:`run` lives in the manager's TaskGroup."""

    def __init__(self, key: WorkerKey, pod: Mapping, container: Mapping, spec: ProbeSpec, *,
                 runtime: RuntimeClient, clock: Clock, hooks: WorkerHooks) -> None:
        self.key = key
        self.pod = pod
        self.container = container
        self.spec = spec
        self.runtime = runtime
        self.clock = clock
        self.hooks = hooks
        self.container_id: str | None = None
        self.started_at: float | None = None
        self.result: Result = self._initial()
        self.task: asyncio.Task | None = None
        self._last: Result | None = None  # the last probe's outcome, and how many times in a row
        self._run = 0
        self._on_hold = False
        self._last_probe: float | None = None
        self._wake = asyncio.Event()

    # --- state changes (from the manager, synchronous) ---------------------------------------------------

    def set_container(self, container_id: str | None, started_at: float | None) -> None:
        """Idempotent for the same id; a different id (or ``None``: not running) starts from scratch."""
        if container_id == self.container_id:
            return
        self.container_id, self.started_at = container_id, started_at
        self._last, self._run, self._on_hold, self._last_probe = None, 0, False, None
        self._publish(Result.SUCCESS if self._was_ready(container_id) else self._initial())
        self.wake()

    def _was_ready(self, container_id: str | None) -> bool:
        """Restart safety (Kubernetes 1.35): a readiness (startup) worker for a container the pod's status already
        reports ready (started) — the kubelet restarted under it — starts from that verdict instead of "not
        ready" ("not started"), so the pod does not leave its Services until a probe actually fails."""
        field = {ProbeKind.READINESS: "ready", ProbeKind.STARTUP: "started"}.get(self.key.kind)
        if field is None or container_id is None:
            return False
        for status in (self.pod.get("status") or {}).get("containerStatuses") or []:
            if status.get("name") == self.key.container:
                return status.get(field) is True and \
                    (status.get("containerID") or "").split("://", 1)[-1] == container_id
        return False

    def set_pod(self, pod: Mapping) -> None:
        self.pod = pod
        if self._stands_down():
            self._publish(Result.SUCCESS)
        self.wake()

    def _initial(self) -> Result:
        return Result.SUCCESS if self._stands_down() else self.key.kind.initial

    def _stands_down(self) -> bool:
        """Liveness and startup stop (reporting SUCCESS) once the pod is terminating."""
        return self.key.kind is not ProbeKind.READINESS and self.terminating

    def wake(self) -> None:
        """Make the worker recompute when it is due (state changed)."""
        self._wake.set()

    @property
    def terminating(self) -> bool:
        return bool((self.pod.get("metadata") or {}).get("deletionTimestamp"))

    def next_due(self) -> float | None:
        """When the next probe should run (clock.monotonic() seconds), or ``None``: not until something changes."""
        if self.container_id is None or self.started_at is None or self._on_hold:
            return None
        if self._stands_down():
            return None
        if self.key.kind is ProbeKind.STARTUP and self.result is Result.SUCCESS:
            return None  # started: the startup probe is done for this container
        if not self.hooks.may_probe(self):
            return None
        first = self.started_at + self.spec.initial_delay
        if self._last_probe is None:
            return first
        return max(first, self._last_probe + self.spec.period)

    # --- the loop ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Probe whenever due until cancelled. Never raises anything but CancelledError."""
        while True:
            self._wake.clear()
            due = self.next_due()
            if due is None:
                await self._wake.wait()
                continue
            delay = due - self.clock.monotonic()
            if delay > 0 and await self._woken_before(delay):
                continue
            try:
                await self.probe_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not kill the manager's TaskGroup; the next period retries
                log.exception("%s probe of %s/%s crashed", self.key.kind.value, self.key.pod_uid, self.key.container)

    async def _woken_before(self, delay: float) -> bool:
        """Sleep ``delay`` seconds on the clock; True if :meth:`wake` came first."""
        sleep = asyncio.ensure_future(self.clock.sleep(delay))
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((sleep, woken), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleep.cancel()
            woken.cancel()
        return self._wake.is_set()

    async def probe_once(self) -> None:
        """Run the probe once and fold its outcome into the counters (public so tests can drive it)."""
        container_id = self.container_id
        self._last_probe = self.clock.monotonic()
        result, message = await probe_action(
            self.spec.action, pod=self.pod, container=self.container, container_id=container_id,
            runtime=self.runtime, timeout=self.spec.timeout, clock=self.clock)
        if container_id != self.container_id or self._stands_down():
            return  # the container changed (or the pod began terminating) while probing: discard
        self._report(result, message)
        if result is Result.UNKNOWN:
            return
        self._run = self._run + 1 if result is self._last else 1
        self._last = result
        threshold = self.spec.failure_threshold if result is Result.FAILURE else self.spec.success_threshold
        if self._run < threshold:
            return
        self._publish(result)
        if result is Result.FAILURE and self.key.kind is not ProbeKind.READINESS:
            self._on_hold, self._run = True, 0  # the kubelet restarts the container; a new id lifts the hold

    def _report(self, result: Result, message: str) -> None:
        kind = self.key.kind.value
        if result is Result.FAILURE:
            self.hooks.event(self.pod, "Warning", "Unhealthy", f"{kind} probe failed: {message}")
        elif result is Result.UNKNOWN:
            self.hooks.event(self.pod, "Warning", "Unhealthy", f"{kind} probe errored: {message}")
            log.debug("%s probe of %s/%s errored: %s", kind, self.key.pod_uid, self.key.container, message)

    def _publish(self, result: Result) -> None:
        old, self.result = self.result, result
        if old is not result:
            self.hooks.published(self, old, result)
