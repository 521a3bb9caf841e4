"""What a hollow node does with the pods bound to it: report them Running and Ready, and let them go.

No container is ever started. A pod bound to one of the fleet's nodes gets, ``--pod-ready-delay``
seconds after it was first seen bound, the ``pods/status`` a healthy kubelet would write once every
container started and passed readiness (:func:`running_status`): phase Running, a podIP from its
node's fake /24 (:class:`PodAddresses`), hostIP, startTime, the five pod conditions True, a running
ready status per container and a Completed one per init container. A pod whose deletion was asked
for (deletionTimestamp set) is deleted for good — gracePeriodSeconds 0 with a uid precondition — as
a kubelet does once its containers stopped.

Simplified relative to Kubernetes: pods run for ever (restartPolicy, probes, readiness gates and
resource limits are ignored; a pod never Succeeds or Fails), and a status write replaces the
container statuses wholesale (JSON merge patch) instead of computing a strategic two-way diff.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubelet.hollow.metrics import HollowMetrics
from machinery.client import PODS, ApiClient
from machinery.clock import Clock
from machinery.errors import StatusError, is_conflict, is_not_found
from machinery.meta import format_rfc3339, key_of, name_of, namespace_of, split_key, uid_of
from machinery.podspec import is_sidecar
from machinery.workqueue import QueueShutDown, WorkQueue

log = logging.getLogger(__name__)

Obj = dict[str, Any]

POD_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready", "PodScheduled")
TERMINAL_PHASES = ("Succeeded", "Failed")
BOUND_PODS = "spec.nodeName!="  # the one field selector the fleet's pod watch uses


class AddressesExhausted(RuntimeError):
    """A node's pod CIDR has no free address left."""


@dataclass
class PodAddresses:
    """Pod IPs of one node's /24, handed out lowest first (.1 is the node's bridge, as with a real CNI)."""

    cidr: ipaddress.IPv4Network
    by_uid: dict[str, str] = field(default_factory=dict)

    def assign(self, uid: str, wanted: str = "") -> str:
        """The pod's address: the one it has (``wanted``, when inside this CIDR and free) or a new one."""
        if uid in self.by_uid:
            return self.by_uid[uid]
        taken = set(self.by_uid.values())
        if wanted and wanted not in taken and _inside(wanted, self.cidr):
            self.by_uid[uid] = wanted
            return wanted
        for host in range(2, self.cidr.num_addresses - 1):
            candidate = str(self.cidr.network_address + host)
            if candidate not in taken:
                self.by_uid[uid] = candidate
                return candidate
        raise AddressesExhausted(f"no free pod address left in {self.cidr}")

    def release(self, uid: str) -> None:
        self.by_uid.pop(uid, None)

    def __len__(self) -> int:
        return len(self.by_uid)


def _inside(ip: str, cidr: ipaddress.IPv4Network) -> bool:
    try:
        return ipaddress.ip_address(ip) in cidr
    except ValueError:
        return False


@dataclass
class PodHost:
    """What the pod side needs to know about one hollow node."""

    name: str
    ip: str
    addresses: PodAddresses


# --- the pure part ------------------------------------------------------------------------------------


def is_ready_and_running(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())
    return ready and status.get("phase") == "Running" and bool(status.get("podIP"))


def needs_running_status(pod: Mapping[str, Any]) -> bool:
    """A live pod whose status does not yet say Running and Ready with an IP (must not mutate)."""
    status = pod.get("status") or {}
    if (pod.get("metadata") or {}).get("deletionTimestamp") or status.get("phase") in TERMINAL_PHASES:
        return False
    return not is_ready_and_running(pod)


def _image_id(image: str) -> str:
    """A stable fake digest reference ``repo@sha256:...`` for an image reference."""
    repo = image.split("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    if ":" in last:
        repo = repo[: len(repo) - len(last)] + last.split(":", 1)[0]
    return f"{repo}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def _running(container: Mapping[str, Any], uid: str, started: str) -> Obj:
    image = container.get("image") or ""
    return {"name": container.get("name") or "", "image": image, "imageID": _image_id(image),
            "containerID": f"hollow://{uid}/{container.get('name') or ''}", "ready": True, "started": True,
            "restartCount": 0, "state": {"running": {"startedAt": started}}, "lastState": {}}


def _completed(container: Mapping[str, Any], uid: str, started: str) -> Obj:
    status = _running(container, uid, started)
    container_id = status["containerID"]
    status.update(started=False, state={"terminated": {
        "exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": started,
        "containerID": container_id}})
    return status


def running_status(pod: Mapping[str, Any], *, host_ip: str, pod_ip: str, now: datetime) -> Obj:
    """The ``status`` a healthy kubelet reports for ``pod`` once all its containers run and are ready.

    Keeps what the pod already has where a kubelet would (startTime, the transition time of
    conditions already True, conditions it does not own, qosClass). Must not mutate ``pod``.
    """
    meta, spec, old = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    stamp = format_rfc3339(now)
    uid = meta.get("uid") or ""
    start = old.get("startTime") or stamp
    generation = meta.get("generation")
    previous = {c.get("type"): c for c in old.get("conditions") or () if isinstance(c, dict)}
    conditions = []
    for kind in POD_CONDITIONS:
        before = previous.pop(kind, None) or {}
        since = before.get("lastTransitionTime") if before.get("status") == "True" else None
        condition: Obj = {"type": kind, "status": "True", "lastProbeTime": None,
                          "lastTransitionTime": since or stamp}
        if generation is not None:
            condition["observedGeneration"] = generation
        conditions.append(condition)
    conditions.extend(previous.values())  # readiness gates and other owners' conditions stay
    init = [_running(c, uid, start) if is_sidecar(c) else _completed(c, uid, start)
            for c in spec.get("initContainers") or () if isinstance(c, dict)]
    status: Obj = {
        "phase": "Running", "conditions": conditions,
        "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
        "startTime": start,
        "containerStatuses": [_running(c, uid, start) for c in spec.get("containers") or () if isinstance(c, dict)],
    }
    if init:
        status["initContainerStatuses"] = init
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def status_patch(pod: Mapping[str, Any], status: Obj) -> Obj:
    """A JSON merge patch of ``pods/status``; the uid makes it a precondition (never write a re-created pod)."""
    return {"metadata": {"uid": uid_of(pod)}, "status": status}


# --- the loop ------------------------------------------------------------------------------------------


class HollowPods:
    """Informer handlers queue ``ns/name`` keys of pods bound to the fleet; workers reconcile them.

    ``store`` is the (read-only) store of the one informer on bound pods; ``hosts`` maps node name →
    :class:`PodHost` for the fleet's nodes only.
    """

    def __init__(self, client: ApiClient, store, hosts: Mapping[str, PodHost], clock: Clock,
                 metrics: HollowMetrics, *, ready_delay: float = 0.0) -> None:
        self.client = client
        self.store = store
        self.hosts = hosts
        self.clock = clock
        self.metrics = metrics
        self.ready_delay = ready_delay
        self.queue: WorkQueue[str] = WorkQueue("hollow-pods", clock=clock)
        self._first_seen: dict[str, float] = {}  # uid -> monotonic time it was first seen bound here

    # --- handlers (quick: they only queue) ------------------------------------------------------------

    def on_pod(self, pod: Obj) -> None:
        host = self.hosts.get((pod.get("spec") or {}).get("nodeName") or "")
        if host is None:
            return
        uid = uid_of(pod)
        if is_ready_and_running(pod):
            host.addresses.assign(uid, (pod.get("status") or {}).get("podIP") or "")
            self._update_gauge()
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            self.queue.add(key_of(pod))
        elif needs_running_status(pod):
            self._first_seen.setdefault(uid, self.clock.monotonic())
            self.queue.add_after(key_of(pod), self._wait_left(uid))

    def on_pod_update(self, _old: Obj, new: Obj) -> None:
        self.on_pod(new)

    def on_pod_delete(self, pod: Obj) -> None:
        host = self.hosts.get((pod.get("spec") or {}).get("nodeName") or "")
        if host is not None:
            host.addresses.release(uid_of(pod))
            self._first_seen.pop(uid_of(pod), None)
            self._update_gauge()

    def _wait_left(self, uid: str) -> float:
        return self._first_seen.get(uid, self.clock.monotonic()) + self.ready_delay - self.clock.monotonic()

    def _update_gauge(self) -> None:
        self.metrics.pods_running.set(sum(len(h.addresses) for h in self.hosts.values()))

    # --- workers --------------------------------------------------------------------------------------

    async def run_worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except QueueShutDown:
                return
            try:
                await self.sync_pod(key)
            except Exception as exc:  # the API server failed: retry with backoff
                self.metrics.errors.labels("pod").inc()
                log.warning("pod %s: %s; will retry", key, exc)
                self.queue.add_rate_limited(key)
            else:
                self.queue.forget(key)
            finally:
                self.queue.done(key)

    async def sync_pod(self, key: str) -> None:
        """Bring one pod to where a healthy kubelet would have it (idempotent; reads the store)."""
        pod = self.store.get(key)
        if pod is None or (pod.get("spec") or {}).get("nodeName") not in self.hosts:
            return
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            await self._finish_deletion(pod)
        elif needs_running_status(pod):
            wait = self._wait_left(uid_of(pod))
            if wait > 0:
                self.queue.add_after(key, wait)
                return
            await self._report_running(pod)

    async def _finish_deletion(self, pod: Obj) -> None:
        try:
            await self.client.delete(PODS, name_of(pod), namespace_of(pod), grace_period_seconds=0,
                                     preconditions={"uid": uid_of(pod)})
        except StatusError as err:
            if not (is_not_found(err) or is_conflict(err)):  # gone already, or a new pod took the name
                raise
        self.metrics.pod_deletions.inc()

    async def _report_running(self, pod: Obj) -> None:
        """Patch the status; after a conflict (the uid no longer matches) re-read and go on with the fresh pod."""
        for _ in range(3):
            host = self.hosts[pod["spec"]["nodeName"]]
            pod_ip = host.addresses.assign(uid_of(pod), (pod.get("status") or {}).get("podIP") or "")
            self._update_gauge()
            status = running_status(pod, host_ip=host.ip, pod_ip=pod_ip, now=self.clock.now())
            try:
                await self.client.patch(PODS, name_of(pod), status_patch(pod, status), namespace_of(pod),
                                        subresource="status")
            except StatusError as err:
                if is_not_found(err):
                    return
                if not is_conflict(err):
                    raise
                namespace, name = split_key(key_of(pod))
                try:
                    pod = await self.client.get(PODS, name, namespace)
                except StatusError as again:
                    if is_not_found(again):
                        return
                    raise
                if (pod.get("spec") or {}).get("nodeName") not in self.hosts or not needs_running_status(pod):
                    return
                continue
            self.metrics.pod_status_writes.inc()
            return
