"""The scheduling loop: pop a pod, find it a node, assume it there, bind it in the background.

Pods reach the queue through the pod informer (unassigned, not finished, for one of our
profiles' ``schedulerName``s); bound pods and nodes feed the cache. One coroutine runs scheduling
cycles one pod at a time — the Filter/Score part is synchronous, so every cycle sees a consistent
snapshot — and each successful cycle starts a binding cycle task (Permit wait, PreBind, Bind) so the
next pod is scheduled without waiting for the API round trip. A pod that fits nowhere gets
kube-scheduler's explanation as a ``FailedScheduling`` Event and a ``PodScheduled=False`` condition,
and waits in the queue until a cluster event may help (or its backoff expires).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from machinery.client import NODES, PODS, ApiClient
from machinery.clock import REAL_CLOCK, Clock
from machinery.errors import StatusError, is_not_found
from machinery.events import EventRecorder
from machinery.informer import SharedInformerFactory
from machinery.meta import is_being_deleted, labels_of, now_rfc3339, uid_of
from scheduler import metrics
from scheduler.cache import SchedulerCache
from scheduler.framework.interface import ClusterEvent, CycleState
from scheduler.framework.runtime import Diagnosis, FitError, Framework
from scheduler.framework.status import Code, Status
from scheduler.framework.types import PodInfo, QueuedPodInfo
from scheduler.queue import QueueClosed, SchedulingQueue

log = logging.getLogger(__name__)
SCHEDULING_SLICE = 0.05  # seconds of back-to-back scheduling cycles before the event loop gets a turn

Obj = dict[str, Any]

NODE_ADD = ClusterEvent("Node", "Add")
POD_DELETE = ClusterEvent("Pod", "Delete")


def is_assigned(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def is_finished(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def node_update_events(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[ClusterEvent]:
    """The specific kinds of node update (plugins register for the ones that can help them)."""
    events = []
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    old_status, new_status = old.get("status") or {}, new.get("status") or {}
    if labels_of(old) != labels_of(new):
        events.append(ClusterEvent("Node", "UpdateNodeLabel"))
    if old_spec.get("taints") != new_spec.get("taints") or \
            old_spec.get("unschedulable") != new_spec.get("unschedulable"):
        events.append(ClusterEvent("Node", "UpdateNodeTaint"))
    if old_status.get("allocatable") != new_status.get("allocatable"):
        events.append(ClusterEvent("Node", "UpdateNodeAllocatable"))
    if old_status.get("conditions") != new_status.get("conditions"):
        events.append(ClusterEvent("Node", "UpdateNodeCondition"))
    return events


class Scheduler:
    def __init__(self, client: ApiClient, informers: SharedInformerFactory, profiles: Mapping[str, Framework],
                 queue: SchedulingQueue, cache: SchedulerCache, recorder: EventRecorder, *,
                 clock: Clock = REAL_CLOCK) -> None:
        self.client = client
        self.informers = informers
        self.profiles = dict(profiles)
        self.queue = queue
        self.cache = cache
        self.recorder = recorder
        self.clock = clock
        self.pods = informers.informer(PODS)
        self.nodes = informers.informer(NODES)
        self.pods.add_event_handler(self.on_pod_add, self.on_pod_update, self.on_pod_delete)
        self.nodes.add_event_handler(self.on_node_add, self.on_node_update, self.on_node_delete)
        events: dict[str, list[ClusterEvent]] = {}
        for framework in self.profiles.values():
            events.update(framework.events_to_register())
            framework.nominated_pods_for_node = queue.nominated_pods_for_node
            framework.nominated_node_names = queue.nominated_node_names
        queue.set_plugin_events(events)
        self._binding_tasks: set[asyncio.Task[None]] = set()

    def responsible_for(self, pod: Mapping[str, Any]) -> bool:
        return ((pod.get("spec") or {}).get("schedulerName") or "default-scheduler") in self.profiles

    # --- informer handlers -------------------------------------------------------------------------

    def on_pod_add(self, pod: Obj) -> None:
        if is_assigned(pod):
            if not is_finished(pod):
                self.cache.add_pod(pod)
                self.queue.assigned_pod_added(pod)
        elif self.responsible_for(pod) and not is_finished(pod) and not is_being_deleted(pod):
            self.queue.add(pod)
            self._track_nomination(pod)

    def on_pod_update(self, old: Obj, new: Obj) -> None:
        if uid_of(old) != uid_of(new):
            # a delete and a re-create under the same name, merged into one update by a relist
            self.on_pod_delete(old)
            self.on_pod_add(new)
            return
        if is_assigned(new):
            if not is_assigned(old):
                self.queue.delete(old)  # bound (by us or by someone else)
            if is_finished(new):
                self.cache.remove_pod(new)  # its resources are free again
                self.queue.move_all_to_active_or_backoff(POD_DELETE)
            else:
                self.cache.update_pod(old, new)
                self.queue.assigned_pod_updated(old, new)
        elif self.responsible_for(new):
            if is_finished(new) or is_being_deleted(new):
                self.queue.delete(new)
            elif not self.cache.is_assumed(uid_of(new)):
                # an assumed pod is being bound (or was, and the informer lags): requeueing it would schedule
                # it twice (kube-scheduler skips such updates too)
                self.queue.update(old, new)
                self._track_nomination(new)

    def on_pod_delete(self, pod: Obj) -> None:
        if is_assigned(pod):
            self.cache.remove_pod(pod)
            self.queue.move_all_to_active_or_backoff(POD_DELETE)
        else:
            # after a relist the object is the last one the informer saw, which may predate our binding:
            # a pod we assumed (or bound) must still leave the cache
            if self.cache.remove_pod(pod):
                self.queue.move_all_to_active_or_backoff(POD_DELETE)
            self.queue.delete(pod)
            self.queue.delete_nominated((pod.get("metadata") or {}).get("uid") or "")
            for framework in self.profiles.values():
                waiting = framework.handle.waiting_pods.get((pod.get("metadata") or {}).get("uid") or "")
                if waiting is not None:
                    waiting.reject("", "pod was deleted while waiting at Permit")

    def _track_nomination(self, pod: Obj) -> None:
        node = (pod.get("status") or {}).get("nominatedNodeName")
        if node:
            self.queue.add_nominated(PodInfo(pod), node)

    def on_node_add(self, node: Obj) -> None:
        self.cache.add_node(node)
        self.queue.move_all_to_active_or_backoff(NODE_ADD)

    def on_node_update(self, old: Obj, new: Obj) -> None:
        self.cache.update_node(new)
        for event in node_update_events(old, new):
            self.queue.move_all_to_active_or_backoff(event)

    def on_node_delete(self, node: Obj) -> None:
        self.cache.remove_node(node)

    # --- the loop ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Wait for the caches, then schedule until cancelled."""
        await self.informers.wait_for_sync()  # pods, nodes and whatever the plugins asked for
        log.info("scheduler caches synced: %d nodes, %d pods", self.cache.node_count(), self.cache.pod_count())
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.queue.run(), name="scheduling queue")
                tasks.create_task(self._report_queue_sizes(), name="queue metrics")
                slice_started = self.clock.monotonic()
                while True:
                    try:
                        queued = await self.queue.pop()
                    except QueueClosed:
                        return
                    try:
                        await self.schedule_one(queued)
                    except Exception:  # one bad pod must never stop scheduling
                        log.exception("scheduling cycle for %s failed", queued.pod_info.key)
                        self.queue.requeue_with_backoff(queued)
                        self.queue.done(queued.pod_info.uid)
                    # pop() never suspends while pods are queued: without a turn of the loop now and then, a long
                    # queue would hold back the bindings, the informers, /healthz and the leader's lease renewals.
                    if self.clock.monotonic() - slice_started >= SCHEDULING_SLICE:
                        await asyncio.sleep(0)
                        slice_started = self.clock.monotonic()
        finally:
            for task in list(self._binding_tasks):
                task.cancel()
            await asyncio.gather(*self._binding_tasks, return_exceptions=True)

    async def _report_queue_sizes(self) -> None:
        while True:
            for queue_name, size in self.queue.pending_summary().items():
                metrics.PENDING_PODS.labels(queue_name).set(size)
            await self.clock.sleep(1.0)

    async def schedule_one(self, queued: QueuedPodInfo) -> None:
        pod_info = queued.pod_info
        framework = self.profiles.get(pod_info.spec.get("schedulerName") or "default-scheduler")
        if framework is None or self._already_handled(pod_info):
            self.queue.done(pod_info.uid)
            return
        started = self.clock.monotonic()
        cycle = self.queue.scheduling_cycle
        state = CycleState()
        try:
            node_name = self._find_node(framework, state, pod_info)
        except FitError as fit:
            await self._preempt(framework, state, fit)
            await self.handle_failure(framework, queued, fit.diagnosis, str(fit), cycle, started)
            return
        except Exception as exc:
            log.exception("scheduling %s failed", pod_info.key)
            await self.handle_failure(framework, queued, None, f"scheduler error: {exc}", cycle, started,
                                      error=True)
            return
        assumed = PodInfo({**pod_info.pod, "spec": {**pod_info.spec, "nodeName": node_name}})
        self.cache.assume_pod(assumed, node_name)
        # counted on its node now: as a nominated pod too it would be counted twice (restored on failure)
        self.queue.delete_nominated(pod_info.uid)
        try:
            status = framework.run_reserve(state, assumed, node_name)
            if status is None:
                status = framework.run_permit(state, assumed, node_name)
                if status is not None and status.is_wait():
                    status = None
        except Exception as exc:
            log.exception("Reserve/Permit for %s failed", pod_info.key)
            status = Status(Code.ERROR, (f"scheduler error: {exc}",))
        if status is not None:
            framework.run_unreserve(state, assumed, node_name)
            self.cache.forget_pod(assumed.uid)
            diagnosis = Diagnosis(unschedulable_plugins={status.plugin})
            await self.handle_failure(framework, queued, diagnosis, status.message(), cycle, started,
                                      error=status.code == Code.ERROR)
            return
        task = asyncio.create_task(self.binding_cycle(framework, state, queued, assumed, node_name, started, cycle),
                                   name=f"bind {pod_info.key}")
        self._binding_tasks.add(task)
        task.add_done_callback(self._binding_tasks.discard)

    def _already_handled(self, pod_info: PodInfo) -> bool:
        """The pod was deleted or bound since it was queued (the informer's copy is the truth)."""
        current = self.pods.store.get(pod_info.key)
        return current is None or (current.get("metadata") or {}).get("uid") != pod_info.uid or \
            is_assigned(current) or is_being_deleted(current) or self.cache.is_assumed(pod_info.uid)

    def _find_node(self, framework: Framework, state: CycleState, pod_info: PodInfo) -> str:
        snapshot = self.cache.snapshot()
        if not len(snapshot):
            raise FitError(pod_info, 0, Diagnosis())
        feasible, diagnosis = framework.find_feasible_nodes(state, pod_info, snapshot)
        if not feasible:
            raise FitError(pod_info, len(snapshot), diagnosis)
        if len(feasible) == 1:
            return feasible[0].name
        totals = framework.prioritize(state, pod_info, feasible)
        return framework.select_host(feasible, totals).name

    async def _preempt(self, framework: Framework, state: CycleState, fit: FitError) -> None:
        if not framework.points["postFilter"] or fit.num_all_nodes == 0:
            return
        metrics.PREEMPTION_ATTEMPTS.inc()
        try:
            result, status = await framework.run_post_filter(state, fit.pod_info, fit.diagnosis.node_statuses)
        except Exception as exc:
            log.exception("PostFilter for %s failed", fit.pod_info.key)
            fit.diagnosis.post_filter_message = f"preemption: error: {exc}"
            return
        if status.is_success() and result is not None and result.nominated_node_name:
            self.queue.add_nominated(fit.pod_info, result.nominated_node_name)
        elif status.reasons:
            fit.diagnosis.post_filter_message = status.message()

    async def binding_cycle(self, framework: Framework, state: CycleState, queued: QueuedPodInfo, assumed: PodInfo,
                            node_name: str, started: float, cycle: int) -> None:
        try:
            status = await framework.wait_on_permit(assumed)
            if status is None:
                status = await framework.run_pre_bind(state, assumed, node_name)
            if status is None:
                status = await framework.run_bind(state, assumed, node_name)
        except Exception as exc:
            log.exception("binding %s failed", assumed.key)
            status = Status(Code.ERROR, (str(exc),))
        if status is not None:
            framework.run_unreserve(state, assumed, node_name)
            self.cache.forget_pod(assumed.uid)
            message = status.message()
            if status.code == Code.ERROR:
                message = f"Binding rejected: {message}"
            await self.handle_failure(framework, queued, Diagnosis(unschedulable_plugins={status.plugin}),
                                      message, cycle, started, error=status.code == Code.ERROR)
            return
        self.cache.finish_binding(assumed.uid)
        self.queue.delete_nominated(assumed.uid)
        self.queue.done(assumed.uid)
        elapsed = self.clock.monotonic() - started
        metrics.SCHEDULE_ATTEMPTS.labels("scheduled", framework.scheduler_name).inc()
        metrics.ATTEMPT_DURATION.labels("scheduled", framework.scheduler_name).observe(elapsed)
        first = queued.initial_attempt_timestamp or queued.timestamp
        metrics.POD_SCHEDULING_DURATION.labels(str(min(queued.attempts, 15))).observe(self.clock.monotonic() - first)
        self.recorder.event(assumed.pod, "Normal", "Scheduled",
                            f"Successfully assigned {assumed.key} to {node_name}")
        framework.run_post_bind(state, assumed, node_name)

    async def handle_failure(self, framework: Framework, queued: QueuedPodInfo, diagnosis: Diagnosis | None,
                             message: str, cycle: int, started: float, *, error: bool = False) -> None:
        """Requeue the pod and tell the user why: an Event and the PodScheduled condition."""
        result = "error" if error else "unschedulable"
        metrics.SCHEDULE_ATTEMPTS.labels(result, framework.scheduler_name).inc()
        metrics.ATTEMPT_DURATION.labels(result, framework.scheduler_name).observe(self.clock.monotonic() - started)
        pod_info = queued.pod_info
        if self.queue.nominated_node(pod_info.uid) is None:  # undo delete_nominated (preemption may have renewed it)
            self._track_nomination(self.pods.store.get(pod_info.key) or pod_info.pod)
        if diagnosis is not None:
            queued.unschedulable_plugins = {p for p in diagnosis.unschedulable_plugins if p}
        if error:
            self.queue.requeue_with_backoff(queued)
        else:
            self.queue.add_unschedulable(queued, cycle)
        self.queue.done(pod_info.uid)
        log.info("unable to schedule %s: %s", pod_info.key, message)
        self.recorder.event(pod_info.pod, "Warning", "FailedScheduling", message)
        await self._set_unschedulable_condition(pod_info, message, "SchedulerError" if error else "Unschedulable")

    async def _set_unschedulable_condition(self, pod_info: PodInfo, message: str,
                                           reason: str = "Unschedulable") -> None:
        """PodScheduled=False with ``reason`` Unschedulable (no node fits) or SchedulerError (something broke)."""
        current = self.pods.store.get(pod_info.key) or pod_info.pod
        for cond in (current.get("status") or {}).get("conditions") or ():
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and \
                    cond.get("reason") == reason and cond.get("message") == message:
                return  # already says so
        condition = {"type": "PodScheduled", "status": "False", "reason": reason, "message": message,
                     "lastTransitionTime": now_rfc3339(self.clock.now()), "lastProbeTime": None}
        patch = {"status": {"conditions": [condition]}}
        try:
            await self.client.patch(PODS, pod_info.name, patch, pod_info.namespace, patch_type="strategic",
                                    subresource="status")
        except StatusError as err:
            if not is_not_found(err):
                log.warning("could not record PodScheduled=False on %s: %s", pod_info.key, err)

