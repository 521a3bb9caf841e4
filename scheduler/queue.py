"""The scheduling queue: which pending pod the scheduler tries next, and when a failed pod is retried.

kube-scheduler's PriorityQueue, in three parts. ``activeQ`` is a heap ordered by the QueueSort plugin's
``less`` (priority, then time in queue); ``pop`` takes its head. ``backoffQ`` holds pods that failed
recently, ordered by when their backoff (1 s doubling per attempt up to 10 s) ends; ``run`` moves them
to activeQ once it has. ``unschedulablePods`` holds pods that no node fits, with the plugins that
rejected them; they stay there until a cluster event those plugins registered for
(:meth:`SchedulingQueue.move_all_to_active_or_backoff`) might have changed the verdict, or until they
have waited five minutes. A pod whose PreEnqueue check fails (scheduling gates) is held aside and never
popped until an update lets it through.

The race the queue must not lose: a pod is popped, an event that would make it schedulable arrives
while its cycle is running, then the cycle fails. Parking the pod as unschedulable would wait for a
second such event, so every move request records the scheduling cycle (``moveRequestCycle``) and a
pod whose cycle started no later than the last move request goes to backoffQ instead. Everything
here runs on the event loop's thread, so no locks are needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from machinery.clock import REAL_CLOCK, Clock
from machinery.meta import key_of, uid_of
from scheduler.framework.interface import ClusterEvent
from scheduler.framework.types import PodInfo, QueuedPodInfo

Obj = dict[str, Any]
Less = Callable[[QueuedPodInfo, QueuedPodInfo], bool]

BACKOFF_FLUSH_INTERVAL = 1.0  # how often completed backoffs move to activeQ
UNSCHEDULABLE_FLUSH_INTERVAL = 30.0  # how often long-unschedulable pods are retried regardless of events
UNSCHEDULABLE_TIMEOUT = ClusterEvent("*", "UnschedulableTimeout")
_WILDCARDS = ("*", "All")


class QueueClosed(Exception):
    """Raised by :meth:`SchedulingQueue.pop` once the queue is closed."""


class _Heap:
    """A binary heap of queued pods indexed by pod key, so an entry can be found, changed or removed cheaply."""

    def __init__(self, less: Less) -> None:
        self._less = less
        self._items: list[QueuedPodInfo] = []
        self._index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def get(self, key: str) -> QueuedPodInfo | None:
        i = self._index.get(key)
        return None if i is None else self._items[i]

    def peek(self) -> QueuedPodInfo | None:
        return self._items[0] if self._items else None

    def push(self, qpi: QueuedPodInfo) -> None:
        """Add ``qpi``, or replace the entry with the same key and restore the order."""
        key = qpi.pod_info.key
        i = self._index.get(key)
        if i is None:
            self._items.append(qpi)
            i = len(self._items) - 1
            self._index[key] = i
        else:
            self._items[i] = qpi
        self._fix(i)

    def pop(self) -> QueuedPodInfo:
        return self._remove_at(0)

    def remove(self, key: str) -> QueuedPodInfo | None:
        i = self._index.get(key)
        return None if i is None else self._remove_at(i)

    def fix(self, key: str) -> None:
        """Restore the order after the entry under ``key`` changed."""
        i = self._index.get(key)
        if i is not None:
            self._fix(i)

    def _remove_at(self, i: int) -> QueuedPodInfo:
        items = self._items
        removed = items[i]
        last = items.pop()
        del self._index[removed.pod_info.key]
        if i < len(items):
            items[i] = last
            self._index[last.pod_info.key] = i
            self._fix(i)
        return removed

    def _fix(self, i: int) -> None:
        if not self._sift_up(i):
            self._sift_down(i)

    def _swap(self, i: int, j: int) -> None:
        items = self._items
        items[i], items[j] = items[j], items[i]
        self._index[items[i].pod_info.key] = i
        self._index[items[j].pod_info.key] = j

    def _sift_up(self, i: int) -> bool:
        moved = False
        while i > 0:
            parent = (i - 1) // 2
            if not self._less(self._items[i], self._items[parent]):
                break
            self._swap(i, parent)
            i, moved = parent, True
        return moved

    def _sift_down(self, i: int) -> None:
        n = len(self._items)
        while True:
            smallest, left, right = i, 2 * i + 1, 2 * i + 2
            if left < n and self._less(self._items[left], self._items[smallest]):
                smallest = left
            if right < n and self._less(self._items[right], self._items[smallest]):
                smallest = right
            if smallest == i:
                return
            self._swap(i, smallest)
            i = smallest


@dataclass(slots=True)
class _InFlight:
    """What happened to a popped pod while the scheduler worked on it."""

    popped: PodInfo  # the version handed to the scheduler
    newer: PodInfo | None = None  # the latest version received meanwhile
    changed: bool = False  # spec/labels changed meanwhile: retry soon rather than park as unschedulable
    deleted: bool = False  # gone (or bound): never requeue


def event_matches(registered: ClusterEvent, event: ClusterEvent) -> bool:
    """Whether a plugin that registered ``registered`` cares about ``event`` ("*"/"All" are wildcards; the
    generic "Update" action covers the specific ones such as "UpdateNodeLabel", in both directions)."""
    if registered.resource != event.resource and "*" not in (registered.resource, event.resource):
        return False
    wanted, got = registered.action, event.action
    if wanted == got or wanted in _WILDCARDS or got in _WILDCARDS:
        return True
    return (wanted == "Update" and got.startswith("Update")) or (got == "Update" and wanted.startswith("Update"))


def is_pod_updated(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether an update may change the scheduling verdict (Kubernetes' ``isPodUpdated``): anything but
    status, resourceVersion, generation, managedFields and finalizers changed."""
    return _scheduling_relevant(old) != _scheduling_relevant(new)


def _scheduling_relevant(pod: Mapping[str, Any]) -> dict[str, Any]:
    ignored = ("resourceVersion", "generation", "managedFields", "finalizers")
    meta = {k: v for k, v in (pod.get("metadata") or {}).items() if k not in ignored}
    return {**{k: v for k, v in pod.items() if k not in ("status", "metadata")}, "metadata": meta}


class SchedulingQueue:
    """kube-scheduler's PriorityQueue: activeQ, backoffQ, unschedulablePods, gated pods and nominations."""

    def __init__(self, less: Less, *, clock: Clock = REAL_CLOCK, initial_backoff: float = 1.0,
                 max_backoff: float = 10.0, max_unschedulable_seconds: float = 300.0,
                 pre_enqueue: Callable[[PodInfo], bool] | None = None) -> None:
        self._clock = clock
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._max_unschedulable_seconds = max_unschedulable_seconds
        self._pre_enqueue = pre_enqueue
        self._active = _Heap(less)
        self._backoff = _Heap(lambda a, b: self.backoff_expiry(a) < self.backoff_expiry(b))
        self._unschedulable: dict[str, QueuedPodInfo] = {}
        self._gated: dict[str, QueuedPodInfo] = {}
        self._in_flight: dict[str, _InFlight] = {}  # by uid
        self._plugin_events: dict[str, list[ClusterEvent]] = {}
        self._interested: dict[ClusterEvent, frozenset[str]] = {}  # cache: event -> plugins that registered it
        self._scheduling_cycle = 0
        self._move_request_cycle = -1
        self._nominated_node: dict[str, str] = {}  # uid -> node name
        self._nominated: dict[str, dict[str, PodInfo]] = {}  # node name -> uid -> pod
        self._wakeup = asyncio.Event()
        self._closed = False

    # ----- configuration and counters

    def set_plugin_events(self, plugin_events: Mapping[str, Iterable[ClusterEvent]]) -> None:
        """Which cluster events each plugin registered (EnqueueExtensions). A rejecting plugin missing
        from the map is assumed to care about every event, as Kubernetes does for plugins without
        EnqueueExtensions; one mapped to an empty list is only retried after the unschedulable timeout."""
        self._plugin_events = {name: list(events) for name, events in plugin_events.items()}
        self._interested.clear()

    @property
    def scheduling_cycle(self) -> int:
        """The cycle number of the latest pop; pass it back to :meth:`add_unschedulable`."""
        return self._scheduling_cycle

    def len_active(self) -> int:
        return len(self._active)

    def len_backoff(self) -> int:
        return len(self._backoff)

    def len_unschedulable(self) -> int:
        return len(self._unschedulable)

    def len_gated(self) -> int:
        return len(self._gated)

    def pending_summary(self) -> dict[str, int]:
        """Pending pods per sub-queue, as the ``scheduler_pending_pods`` metric's ``queue`` label."""
        return {"active": len(self._active), "backoff": len(self._backoff),
                "unschedulable": len(self._unschedulable), "gated": len(self._gated)}

    def backoff_duration(self, qpi: QueuedPodInfo) -> float:
        """initial * 2^(attempts-1), capped at the maximum."""
        return min(self._initial_backoff * 2 ** max(qpi.attempts - 1, 0), self._max_backoff)

    def backoff_expiry(self, qpi: QueuedPodInfo) -> float:
        """When the pod's backoff ends (counted from its last failure, ``qpi.timestamp``)."""
        return qpi.timestamp + self.backoff_duration(qpi)

    def is_backing_off(self, qpi: QueuedPodInfo) -> bool:
        return self.backoff_expiry(qpi) > self._clock.monotonic()

    # ----- pending pods from the informer

    def add(self, pod: Obj) -> None:
        """A new pending pod: to activeQ, or held aside when PreEnqueue refuses it. A pod already known
        is updated instead, so adding twice leaves one entry."""
        flight = self._in_flight.get(uid_of(pod))
        if self._find(key_of(pod)) is not None or (flight is not None and not flight.deleted):
            self.update(None, pod)
        else:
            self._add_new(PodInfo(pod))

    def update(self, old: Obj | None, new: Obj) -> None:
        """A pending pod changed: update it where it is. An unschedulable pod whose spec/labels/... changed is
        retried (activeQ, or backoffQ while backing off); a gated pod is checked again; an unknown pod is added."""
        pod_info = PodInfo(new)
        self._update_nomination(old, pod_info)
        flight = self._in_flight.get(pod_info.uid)
        if flight is not None and not flight.deleted:
            latest = flight.newer or flight.popped
            flight.changed = flight.changed or is_pod_updated(latest.pod, new)
            flight.newer = pod_info
            return
        qpi = self._find(pod_info.key)
        if qpi is None:
            self._add_new(pod_info)
            return
        previous = qpi.pod
        qpi.pod_info = pod_info
        key = pod_info.key
        if key in self._active:
            self._active.fix(key)
        elif key in self._backoff:
            self._backoff.fix(key)
        elif key in self._gated:
            del self._gated[key]
            if self._activate(qpi):
                self._wakeup.set()
        elif is_pod_updated(previous, new):
            del self._unschedulable[key]
            self._requeue(qpi)

    def delete(self, pod: Obj) -> None:
        """The pod is gone or no longer pending (bound): remove it from every sub-queue and nomination."""
        key = key_of(pod)
        uid = uid_of(pod)
        self._active.remove(key)
        self._backoff.remove(key)
        self._unschedulable.pop(key, None)
        self._gated.pop(key, None)
        self.delete_nominated(uid)
        flight = self._in_flight.get(uid)
        if flight is not None:
            flight.deleted = True

    def activate(self, pods: Iterable[Obj]) -> None:
        """Move these pods (gated, unschedulable or backing off) to activeQ now, re-running PreEnqueue
        (client-go's ``Handle.Activate``: a plugin knows the pods it held back can go)."""
        woke = False
        for pod in pods:
            key = key_of(pod)
            qpi = self._gated.pop(key, None) or self._unschedulable.pop(key, None) or self._backoff.remove(key)
            if qpi is not None:
                woke = self._activate(qpi) or woke
        if woke:
            self._wakeup.set()

    # ----- the scheduling loop

    async def pop(self) -> QueuedPodInfo:
        """The next pod to schedule (waits for one). Starts a new scheduling cycle and marks the pod in flight
        until :meth:`done`. Raises :class:`QueueClosed` once the queue is closed."""
        while True:
            if self._closed:
                raise QueueClosed("scheduling queue is closed")
            if self._active:
                break
            self._wakeup.clear()
            await self._wakeup.wait()
        qpi = self._active.pop()
        qpi.attempts += 1
        if qpi.initial_attempt_timestamp is None:
            qpi.initial_attempt_timestamp = self._clock.monotonic()
        qpi.unschedulable_plugins.clear()
        qpi.pending_plugins.clear()
        self._scheduling_cycle += 1
        self._in_flight[qpi.pod_info.uid] = _InFlight(qpi.pod_info)
        return qpi

    def done(self, uid: str) -> None:
        """The scheduler finished with the pod (bound, requeued or dropped)."""
        self._in_flight.pop(uid, None)

    def add_unschedulable(self, qpi: QueuedPodInfo, scheduling_cycle: int) -> None:
        """After a failed attempt begun in ``scheduling_cycle``: to backoffQ if a move request (or a change to
        the pod) came in since that cycle began, else to unschedulablePods until a relevant event."""
        if not self._take_back(qpi):
            return
        retry_soon = self._move_request_cycle >= scheduling_cycle
        flight = self._in_flight.get(qpi.pod_info.uid)
        if retry_soon or (flight is not None and flight.changed):
            self._requeue(qpi)
        else:
            self._unschedulable[qpi.pod_info.key] = qpi

    def requeue_with_backoff(self, qpi: QueuedPodInfo) -> None:
        """After an error (not a "no node fits" verdict): retry after the pod's backoff."""
        if self._take_back(qpi):
            self._requeue(qpi)

    def move_all_to_active_or_backoff(self, event: ClusterEvent,
                                      pre_check: Callable[[PodInfo], bool] | None = None) -> None:
        """A cluster event happened: retry the unschedulable pods whose rejecting plugins registered for it
        (pods without a recorded rejecting plugin always) and that pass ``pre_check``."""
        interested = self._interested_plugins(event)
        known = self._plugin_events
        to_move = []
        for qpi in self._unschedulable.values():
            rejecting = qpi.unschedulable_plugins | qpi.pending_plugins
            if rejecting and not any(p in interested or p not in known for p in rejecting):
                continue
            if pre_check is None or pre_check(qpi.pod_info):
                to_move.append(qpi)
        self._move(to_move)

    def assigned_pod_added(self, pod: Obj) -> None:
        """A pod was bound (or assumed bound): may help pods waiting for affinity or spreading."""
        self.move_all_to_active_or_backoff(ClusterEvent("Pod", "Add"))

    def assigned_pod_updated(self, old: Obj, new: Obj) -> None:
        """A bound pod changed (labels, resources): may help pods rejected because of it."""
        self.move_all_to_active_or_backoff(ClusterEvent("Pod", "Update"))

    # ----- background flushing

    async def run(self) -> None:
        """Every second move completed backoffs to activeQ; every 30 s retry pods unschedulable for longer
        than the maximum. Returns within a second of :meth:`close` (or cancel the task)."""
        last_leftover_flush = self._clock.monotonic()
        while not self._closed:
            await self._clock.sleep(BACKOFF_FLUSH_INTERVAL)
            if self._closed:
                return
            self.flush_backoff_completed()
            now = self._clock.monotonic()
            if now - last_leftover_flush >= UNSCHEDULABLE_FLUSH_INTERVAL:
                self.flush_unschedulable_leftover()
                last_leftover_flush = now

    def flush_backoff_completed(self) -> None:
        """Move the pods whose backoff has ended from backoffQ to activeQ."""
        now = self._clock.monotonic()
        activated = False
        while (head := self._backoff.peek()) is not None and self.backoff_expiry(head) <= now:
            self._backoff.pop()
            activated = self._activate(head) or activated
        if activated:
            self._wakeup.set()

    def flush_unschedulable_leftover(self) -> None:
        """Retry pods that have been unschedulable for longer than ``max_unschedulable_seconds``."""
        now = self._clock.monotonic()
        stale = [qpi for qpi in self._unschedulable.values()
                 if now - qpi.timestamp > self._max_unschedulable_seconds]
        if stale:
            self._move(stale)

    def close(self) -> None:
        """Stop: every current and future :meth:`pop` raises :class:`QueueClosed`."""
        self._closed = True
        self._wakeup.set()

    # ----- nominated pods (preemption)

    def add_nominated(self, pod_info: PodInfo, node_name: str) -> None:
        """Record that ``pod_info`` is expected to run on ``node_name`` once victims are gone ("" clears)."""
        self.delete_nominated(pod_info.uid)
        if node_name:
            self._nominated_node[pod_info.uid] = node_name
            self._nominated.setdefault(node_name, {})[pod_info.uid] = pod_info

    def delete_nominated(self, uid: str) -> None:
        node_name = self._nominated_node.pop(uid, None)
        if node_name is not None:
            pods = self._nominated[node_name]
            pods.pop(uid, None)
            if not pods:
                del self._nominated[node_name]

    def nominated_pods_for_node(self, node_name: str) -> list[PodInfo]:
        return list(self._nominated.get(node_name, {}).values())

    def nominated_node(self, uid: str) -> str | None:
        """The node this pod is nominated to, if any."""
        return self._nominated_node.get(uid)

    def nominated_node_names(self) -> Collection[str]:
        """Nodes with nominated pods (a live view: cheap to test membership per node)."""
        return self._nominated.keys()

    def _update_nomination(self, old: Obj | None, pod_info: PodInfo) -> None:
        """Follow status.nominatedNodeName; an update that neither sets nor clears it keeps the in-memory
        nomination (preemption nominates before the API status catches up), refreshed to the new object."""
        new_node = (pod_info.pod.get("status") or {}).get("nominatedNodeName") or ""
        old_node = ((old or {}).get("status") or {}).get("nominatedNodeName") or ""
        if new_node or old_node:
            self.add_nominated(pod_info, new_node)
        elif (current := self._nominated_node.get(pod_info.uid)) is not None:
            self.add_nominated(pod_info, current)

    # ----- internals

    def _find(self, key: str) -> QueuedPodInfo | None:
        return (self._active.get(key) or self._backoff.get(key) or self._unschedulable.get(key)
                or self._gated.get(key))

    def _add_new(self, pod_info: PodInfo) -> None:
        self._update_nomination(None, pod_info)
        if self._activate(QueuedPodInfo(pod_info, timestamp=self._clock.monotonic())):
            self._wakeup.set()

    def _activate(self, qpi: QueuedPodInfo) -> bool:
        """Into activeQ, unless PreEnqueue refuses the pod (then it is held aside as gated)."""
        if self._pre_enqueue is not None and not self._pre_enqueue(qpi.pod_info):
            self._gated[qpi.pod_info.key] = qpi
            return False
        self._active.push(qpi)
        return True

    def _requeue(self, qpi: QueuedPodInfo) -> None:
        """To backoffQ while the pod is backing off, else to activeQ."""
        if self.is_backing_off(qpi):
            self._backoff.push(qpi)
        elif self._activate(qpi):
            self._wakeup.set()

    def _take_back(self, qpi: QueuedPodInfo) -> bool:
        """Prepare a failed pod for requeueing: False when it was deleted meanwhile or is queued already."""
        flight = self._in_flight.get(qpi.pod_info.uid)
        if flight is not None:
            if flight.deleted:
                return False
            if flight.newer is not None:
                qpi.pod_info = flight.newer
        if self._find(qpi.pod_info.key) is not None:
            return False
        qpi.timestamp = self._clock.monotonic()
        return True

    def _move(self, pods: list[QueuedPodInfo]) -> None:
        for qpi in pods:
            del self._unschedulable[qpi.pod_info.key]
            self._requeue(qpi)
        self._move_request_cycle = self._scheduling_cycle

    def _interested_plugins(self, event: ClusterEvent) -> frozenset[str]:
        interested = self._interested.get(event)
        if interested is None:
            interested = frozenset(name for name, events in self._plugin_events.items()
                                   if any(event_matches(registered, event) for registered in events))
            self._interested[event] = interested
        return interested
