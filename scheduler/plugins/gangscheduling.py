"""GangScheduling: all-or-nothing scheduling of a pod group (KEP-4671, alpha in Kubernetes 1.35).

A distributed training job with 4 workers is useless with 3 of them running, and 3 running workers
hold resources another gang needs: both gangs can deadlock half-scheduled. A gang's pods are
therefore placed one by one as usual but held at Permit (reserved on their node, not bound) until
``minCount`` of them have a place; then all are released to bind together. If the gang does not
complete within ``permitWaitingTimeSeconds`` (default 60), the waiting pods are rejected, their
reservations released, and the whole gang retries later.

kubemini uses Kubernetes 1.35's own API for gangs: a ``scheduling.k8s.io/v1alpha1`` Workload lists
pod groups (``spec.podGroups[].policy.gang.minCount``, or ``basic`` for ordinary scheduling) and a
pod joins one with ``spec.workloadRef: {name, podGroup, podGroupReplicaKey}``; each replica key is a
separate gang of the same group. That is the upstream shape in 1.35 (served by kubemini's API
server like any built-in kind), so no out-of-tree PodGroup CRD (scheduler-plugins' coscheduling)
is needed and manifests written for a real 1.35 cluster work unchanged.

Extension points:

* PreEnqueue keeps a pod out of the active queue while its Workload does not exist ("waiting for
  workload W") or fewer than ``minCount`` pods of its gang exist ("waiting for N more pods of gang
  W/G"), so nobody reserves capacity for a gang that cannot complete yet.
* Permit counts the gang's members that are bound, already let through, or waiting; with this pod
  that makes ``minCount`` → allow every waiting member, else wait.
* Unreserve (a member timed out, was rejected or failed to bind) rejects the other waiting members,
  so the gang gives its reservations back and retries as a whole.

Members are found through an index on the shared pod informer's store (namespace, workload, group,
replica key), so nothing here scans all pods.

Pods held at PreEnqueue are woken by the plugin itself, as Kubernetes plugins do with
``Handle.Activate``: when a gang's PreEnqueue succeeds (its last missing member arrived) or its Workload
appears, the pods it held are handed to ``handle.extra["activate"]`` (``pods -> None``: re-run
PreEnqueue for gated ones, move unschedulable/backing-off ones to the active queue), called soon
after, not from inside the queue's own call to PreEnqueue. Without that hook they wait for the
queue's own retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from machinery.client import PODS, Resource
from machinery.meta import namespace_of
from scheduler.framework import ClusterEvent, CycleState, Handle, PodInfo, Status, unresolvable
from scheduler.framework.status import Code

NAME = "GangScheduling"
WORKLOADS = Resource("scheduling.k8s.io", "v1alpha1", "workloads", "Workload")
GANG_INDEX = "gangscheduling.workloadRef"
DEFAULT_PERMIT_WAITING_TIME_SECONDS = 60.0

Obj = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class GangKey:
    """One gang: a pod group of a Workload, one replica of it (``replica_key`` "" when unset)."""

    namespace: str
    workload: str
    pod_group: str
    replica_key: str = ""

    @property
    def index_value(self) -> str:
        return f"{self.namespace}/{self.workload}/{self.pod_group}/{self.replica_key}"

    def __str__(self) -> str:
        base = f"{self.workload}/{self.pod_group}"
        return f"{base}/{self.replica_key}" if self.replica_key else base


def gang_key(pod: Obj) -> GangKey | None:
    """The gang a pod names in ``spec.workloadRef`` (None for pods without one)."""
    ref = (pod.get("spec") or {}).get("workloadRef")
    if not ref or not ref.get("name") or not ref.get("podGroup"):
        return None
    return GangKey(namespace_of(pod), ref["name"], ref["podGroup"], ref.get("podGroupReplicaKey") or "")


def _index_by_gang(pod: Obj) -> Iterable[str]:
    key = gang_key(pod)
    return (key.index_value,) if key is not None else ()


def _active(pod: Obj) -> bool:
    """Still a member that counts: not being deleted, not finished."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _uid(pod: Obj) -> str:
    return (pod.get("metadata") or {}).get("uid") or ""


def permit_timeout(args: Mapping[str, Any]) -> float:
    value = args.get("permitWaitingTimeSeconds", DEFAULT_PERMIT_WAITING_TIME_SECONDS)
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{NAME}: permitWaitingTimeSeconds must be a positive number of seconds, got {value!r}")
    return float(value)


class GangScheduling:
    NAME = NAME

    def __init__(self, args: dict[str, Any], handle: Handle) -> None:
        self.handle = handle
        self.timeout = permit_timeout(args or {})
        self._workloads = handle.informers.informer(WORKLOADS)
        self._pods = handle.informers.informer(PODS)
        try:
            self._pods.store.add_indexers({GANG_INDEX: _index_by_gang})
        except ValueError:
            pass  # another profile's instance already indexed the shared pod store
        # pods let through Permit whose binding the pod informer has not shown yet, by gang
        self._permitted: dict[GangKey, set[str]] = {}
        # pods PreEnqueue turned away, by gang (uid -> pod), to wake once the gang can go
        self._held: dict[GangKey, dict[str, Obj]] = {}
        self._workloads.add_event_handler(on_add=self._workload_added)

    # --- the gang's policy and members ---------------------------------------------------------------

    def min_count(self, key: GangKey) -> tuple[int, Status | None]:
        """The gang's ``minCount`` (0 for a ``basic`` group), or why the pod must wait for its Workload."""
        workload = self._workloads.store.get_by_name(key.namespace, key.workload)
        if workload is None:
            return 0, unresolvable(f"waiting for workload {key.workload}")
        for group in (workload.get("spec") or {}).get("podGroups") or ():
            if group.get("name") == key.pod_group:
                gang = (group.get("policy") or {}).get("gang")
                return (int(gang.get("minCount") or 0), None) if gang else (0, None)
        return 0, unresolvable(f"waiting for pod group {key.pod_group} in workload {key.workload}")

    def _members(self, key: GangKey) -> list[Obj]:
        return [p for p in self._pods.store.by_index(GANG_INDEX, key.index_value) if _active(p)]

    def _waiting(self, key: GangKey, exclude: str = "") -> Iterator[tuple[str, Any]]:
        """Members waiting at Permit (any profile's), except ``exclude``."""
        for uid, waiting in list(self.handle.waiting_pods.items()):
            if uid != exclude and gang_key(waiting.pod_info.pod) == key:
                yield uid, waiting

    def _placed(self, key: GangKey) -> set[str]:
        """Members bound (in the pod store) or let through Permit and binding; forgets let-through pods
        that are bound by now (the store counts them) or gone."""
        bound: set[str] = set()
        pending: set[str] = set()
        for pod in self._members(key):
            (bound if (pod.get("spec") or {}).get("nodeName") else pending).add(_uid(pod))
        permitted = self._permitted.get(key)
        if permitted is not None:
            permitted &= pending
            if not permitted:
                del self._permitted[key]
            else:
                bound |= permitted
        return bound

    # --- extension points ------------------------------------------------------------------------

    def pre_enqueue(self, pod_info: PodInfo) -> Status | None:
        key = gang_key(pod_info.pod)
        if key is None:
            return None
        status = self._pre_enqueue_status(key, pod_info.uid)
        if status is not None:
            self._held.setdefault(key, {})[pod_info.uid] = pod_info.pod
            return status
        held = self._held.pop(key, None)
        if held:
            held.pop(pod_info.uid, None)
            self._wake(list(held.values()))
        return None

    def _pre_enqueue_status(self, key: GangKey, uid: str) -> Status | None:
        min_count, status = self.min_count(key)
        if status is not None or min_count <= 1:
            return status
        uids = {_uid(p) for p in self._members(key)}
        uids.add(uid)
        if len(uids) < min_count:
            return unresolvable(f"waiting for {min_count - len(uids)} more pods of gang {key}")
        return None

    def _workload_added(self, workload: Obj) -> None:
        """The pods held for this Workload may go now (or are held again, for the count)."""
        meta = workload.get("metadata") or {}
        keys = [k for k in self._held if k.namespace == meta.get("namespace") and k.workload == meta.get("name")]
        self._wake([pod for key in keys for pod in self._held.pop(key).values()])

    def _wake(self, pods: list[Obj]) -> None:
        activate = self.handle.extra.get("activate")
        if not pods or activate is None:
            return
        try:
            asyncio.get_running_loop().call_soon(activate, pods)
        except RuntimeError:  # no event loop (tests calling in sync code): nothing is mid-call, call now
            activate(pods)

    def reserve(self, state: CycleState, pod_info: PodInfo, node_name: str) -> Status | None:
        return None

    def permit(self, state: CycleState, pod_info: PodInfo, node_name: str) -> tuple[Status | None, float]:
        key = gang_key(pod_info.pod)
        if key is None:
            return None, 0.0
        min_count, status = self.min_count(key)
        if status is not None:
            return status, 0.0
        if min_count <= 1:
            return None, 0.0
        waiting = list(self._waiting(key, exclude=pod_info.uid))
        ready = self._placed(key) | {uid for uid, _ in waiting}
        ready.add(pod_info.uid)
        if len(ready) < min_count:
            return Status(Code.WAIT, (f"waiting for {min_count - len(ready)} more pods of gang {key}",)), self.timeout
        permitted = self._permitted.setdefault(key, set())
        permitted.add(pod_info.uid)
        for uid, member in waiting:
            permitted.add(uid)
            member.allow(NAME)
        return None, 0.0

    def unreserve(self, state: CycleState, pod_info: PodInfo, node_name: str) -> None:
        key = gang_key(pod_info.pod)
        if key is None:
            return
        permitted = self._permitted.get(key)
        if permitted is not None:
            permitted.discard(pod_info.uid)
        for _, member in self._waiting(key, exclude=pod_info.uid):
            member.reject(NAME, f"gang {key} was rejected")

    def events_to_register(self) -> list[ClusterEvent]:
        # Pod Add: a new member (or a bound one); Node Add: room for the gang; Workload Add: the gang's
        # definition appeared; Pod Delete: a gang that timed out may fit once other pods are gone.
        return [ClusterEvent("Pod", "Add"), ClusterEvent("Node", "Add"), ClusterEvent("Workload", "Add"),
                ClusterEvent("Pod", "Delete")]
