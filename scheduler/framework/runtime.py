"""The framework runtime: one scheduling profile's plugins, called at each extension point in order.

:class:`Framework` is built from a :class:`~scheduler.config.Profile` and the plugin registry. The
scheduling cycle calls, synchronously and in this order: :meth:`run_pre_filter`,
:meth:`find_feasible_nodes` (Filter over the nodes, starting where the previous pod stopped, until
enough feasible nodes are found — ``percentageOfNodesToScore``), :meth:`prioritize` (PreScore, Score,
NormalizeScore, weights) and :meth:`select_host`; then :meth:`run_reserve` and :meth:`run_permit`. The
binding cycle (async) awaits :meth:`wait_on_permit`, then PreBind, Bind and PostBind. PostFilter
(preemption) runs only when no node fits.

Python runs Filter over nodes one after another: a per-node Filter costs microseconds, less than
handing chunks to threads or processes would (kube-scheduler parallelises with goroutines).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from scheduler.config import EXTENSION_POINTS, Profile
from scheduler.framework import interface as fw
from scheduler.framework.status import Code, Status, error, skip
from scheduler.framework.types import NodeInfo, PodInfo, QueuedPodInfo, Snapshot

log = logging.getLogger(__name__)

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE = 5
DEFAULT_PERCENTAGE_BASE = 50  # adaptive: 50% - nodes/125, at least 5%
MAX_PERMIT_WAIT = 15 * 60.0

# which protocol a plugin must implement to take part in each extension point
_POINT_PROTOCOLS: dict[str, type] = {
    "preEnqueue": fw.PreEnqueuePlugin, "queueSort": fw.QueueSortPlugin, "preFilter": fw.PreFilterPlugin,
    "filter": fw.FilterPlugin, "postFilter": fw.PostFilterPlugin, "preScore": fw.PreScorePlugin,
    "score": fw.ScorePlugin, "reserve": fw.ReservePlugin, "permit": fw.PermitPlugin, "preBind": fw.PreBindPlugin,
    "bind": fw.BindPlugin, "postBind": fw.PostBindPlugin,
}


@dataclass
class Diagnosis:
    """Why a pod fits nowhere: each rejected node's status, and what PreFilter/PostFilter said."""

    node_statuses: dict[str, Status] = field(default_factory=dict)
    unschedulable_plugins: set[str] = field(default_factory=set)
    pre_filter_message: str = ""
    post_filter_message: str = ""


class FitError(Exception):
    """No node fits the pod; ``str()`` is kube-scheduler's "0/3 nodes are available: ..." message."""

    def __init__(self, pod_info: PodInfo, num_all_nodes: int, diagnosis: Diagnosis) -> None:
        super().__init__()
        self.pod_info = pod_info
        self.num_all_nodes = num_all_nodes
        self.diagnosis = diagnosis

    def __str__(self) -> str:
        return fit_error_message(self.num_all_nodes, self.diagnosis)


NO_NODES_AVAILABLE = "no nodes available to schedule pods"


def fit_error_message(num_all_nodes: int, diagnosis: Diagnosis) -> str:
    if num_all_nodes == 0:
        return NO_NODES_AVAILABLE
    message = f"0/{num_all_nodes} nodes are available:"
    if diagnosis.pre_filter_message:
        message += f" {diagnosis.pre_filter_message}."
    else:
        message += f" {reasons_histogram(diagnosis.node_statuses.values())}."
    if diagnosis.post_filter_message:
        # as kube-scheduler formats it: " %v." — so a PostFilter message ending in "." ends in ".."
        message += f" {diagnosis.post_filter_message}."
    return message


def reasons_histogram(statuses) -> str:
    """``"1 Insufficient cpu, 2 node(s) had untolerated taint {a: b}"`` (sorted as strings, like Kubernetes)."""
    counts: dict[str, int] = {}
    for status in statuses:
        for reason in status.reasons:
            counts[reason] = counts.get(reason, 0) + 1
    return ", ".join(sorted(f"{count} {reason}" for reason, count in counts.items()))


class WaitingPod:
    """A pod held at Permit until every waiting plugin allows it (or one rejects it, or time runs out)."""

    def __init__(self, pod_info: PodInfo, pending: Mapping[str, float], clock) -> None:
        self.pod_info = pod_info
        self.pending = set(pending)
        self._future: asyncio.Future[Status] = asyncio.get_running_loop().create_future()
        self._timers = [asyncio.ensure_future(self._timeout(name, seconds, clock)) for name, seconds in
                        pending.items()]

    async def _timeout(self, plugin: str, seconds: float, clock) -> None:
        await clock.sleep(seconds)
        self.reject(plugin, f"rejected due to timeout after waiting {seconds:g}s at plugin {plugin}")

    def allow(self, plugin: str) -> None:
        self.pending.discard(plugin)
        if not self.pending:
            self._finish(Status())

    def reject(self, plugin: str, message: str) -> None:
        self._finish(Status(Code.UNSCHEDULABLE, (message,), plugin))

    def _finish(self, status: Status) -> None:
        if not self._future.done():
            self._future.set_result(status)
        for timer in self._timers:
            timer.cancel()

    async def wait(self) -> Status:
        return await self._future


class Framework:
    """One profile: its plugins by extension point, with weights and the pod's waiting room."""

    def __init__(self, profile: Profile, registry: Mapping[str, Callable[..., Any]], handle: fw.Handle, *,
                 percentage_of_nodes_to_score: int = 0) -> None:
        self.profile = profile
        self.handle = handle
        self.percentage = profile.percentage_of_nodes_to_score
        if self.percentage is None:
            self.percentage = percentage_of_nodes_to_score
        self.plugins: dict[str, Any] = {}
        self.weights: dict[str, int] = {}
        self.points: dict[str, list[Any]] = {point: [] for point in EXTENSION_POINTS}
        self._build(registry)
        self.queue_sort = self.points["queueSort"][0] if self.points["queueSort"] else None
        self._next_start = 0
        self.nominated_pods_for_node: Callable[[str], list[PodInfo]] = lambda _node: []
        self.nominated_node_names: Callable[[], Collection[str]] = lambda: ()
        handle.run_filter = self.run_filter

    @property
    def scheduler_name(self) -> str:
        return self.profile.scheduler_name

    def _instance(self, name: str, registry: Mapping[str, Callable[..., Any]]) -> Any:
        if name not in self.plugins:
            factory = registry.get(name)
            if factory is None:
                raise ValueError(f"profile {self.scheduler_name}: plugin {name!r} is not registered")
            try:
                self.plugins[name] = factory(self.profile.plugin_args.get(name, {}), self.handle)
            except ValueError as exc:  # bad args: say whose
                raise ValueError(f"profile {self.scheduler_name}, plugin {name}: {exc}") from exc
        return self.plugins[name]

    def _build(self, registry: Mapping[str, Callable[..., Any]]) -> None:
        for name, weight in self.profile.multi_point.enabled:
            plugin = self._instance(name, registry)
            for point, protocol in _POINT_PROTOCOLS.items():
                if isinstance(plugin, protocol):
                    self.points[point].append(plugin)
            if isinstance(plugin, fw.ScorePlugin):
                self.weights[name] = weight or 1
        for point, plugin_set in self.profile.points.items():
            current = [] if "*" in plugin_set.disabled else [
                p for p in self.points[point] if p.NAME not in plugin_set.disabled]
            for name, weight in plugin_set.enabled:
                plugin = self._instance(name, registry)
                if not isinstance(plugin, _POINT_PROTOCOLS[point]):
                    raise ValueError(f"profile {self.scheduler_name}: plugin {name} does not implement {point}")
                current = [p for p in current if name != p.NAME] + [plugin]
                if point == "score":
                    self.weights[name] = weight or self.weights.get(name) or 1
            self.points[point] = current
        if len(self.points["queueSort"]) > 1:
            raise ValueError(f"profile {self.scheduler_name}: only one queueSort plugin may be enabled")
        if not self.points["bind"]:
            raise ValueError(f"profile {self.scheduler_name}: at least one bind plugin is required")

    def events_to_register(self) -> dict[str, list[fw.ClusterEvent]]:
        return {name: plugin.events_to_register() for name, plugin in self.plugins.items()
                if isinstance(plugin, fw.EnqueueExtensions)}

    # --- queueing -----------------------------------------------------------------------------------

    def less(self, a: QueuedPodInfo, b: QueuedPodInfo) -> bool:
        if self.queue_sort is None:
            return a.timestamp < b.timestamp
        return self.queue_sort.less(a, b)

    def pre_enqueue(self, pod_info: PodInfo) -> Status | None:
        for plugin in self.points["preEnqueue"]:
            try:
                status = plugin.pre_enqueue(pod_info)
            except Exception as exc:  # the queue calls this from informer handlers and its flush loop
                log.exception("PreEnqueue plugin %s failed for %s", plugin.NAME, pod_info.key)
                return error(exc).with_plugin(plugin.NAME)
            if status is not None and not status.is_success():
                return status.with_plugin(plugin.NAME)
        return None

    # --- the scheduling cycle -----------------------------------------------------------------------

    def run_pre_filter(self, state: fw.CycleState, pod_info: PodInfo,
                       nodes: list[NodeInfo]) -> tuple[set[str] | None, Status | None]:
        """The node names PreFilter restricts the pod to (None: all), or a rejecting status."""
        allowed: set[str] | None = None
        for plugin in self.points["preFilter"]:
            try:
                result, status = plugin.pre_filter(state, pod_info, nodes)
            except Exception as exc:
                log.exception("PreFilter plugin %s failed", plugin.NAME)
                return None, error(exc).with_plugin(plugin.NAME)
            if status is not None and status.is_skip():
                state.skip_filter_plugins.add(plugin.NAME)
                continue
            if status is not None and not status.is_success():
                return None, status.with_plugin(plugin.NAME)
            if result is not None and result.node_names is not None:
                allowed = set(result.node_names) if allowed is None else allowed & result.node_names
                if not allowed:
                    names = "" if result.node_names else "(none)"
                    return None, Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                                        (f"node(s) didn't satisfy plugin(s) [{plugin.NAME}]{names}",), plugin.NAME)
        return allowed, None

    def run_filter(self, state: fw.CycleState, pod_info: PodInfo, node_info: NodeInfo) -> Status | None:
        """Every Filter plugin on one node; the first rejection wins (None: the node fits)."""
        return self._run_filters(self._active_filters(state), state, pod_info, node_info)

    def _active_filters(self, state: fw.CycleState) -> list[tuple[str, Callable[..., Status | None]]]:
        return [(p.NAME, p.filter) for p in self.points["filter"] if p.NAME not in state.skip_filter_plugins]

    @staticmethod
    def _run_filters(filters: list[tuple[str, Callable[..., Status | None]]], state: fw.CycleState,
                     pod_info: PodInfo, node_info: NodeInfo) -> Status | None:
        for name, run in filters:
            status = run(state, pod_info, node_info)
            if status is not None and not status.is_success():
                return status.with_plugin(name)
        return None

    def _filter_with_nominated(self, state: fw.CycleState, pod_info: PodInfo, node_info: NodeInfo) -> Status | None:
        """Filter as if pods nominated to this node with priority ≥ this pod's were already there.

        Simplified from Kubernetes: plugins' PreFilter state is not updated for the nominated pods
        (it matters for inter-pod affinity and topology spread); resources, ports and counts are.
        """
        nominated = [p for p in self.nominated_pods_for_node(node_info.name)
                     if p.uid != pod_info.uid and p.priority >= pod_info.priority]
        if nominated:
            with_nominated = node_info.clone()
            for other in nominated:
                with_nominated.add_pod(other)
            status = self.run_filter(state, pod_info, with_nominated)
            if status is not None:
                return status
        return self.run_filter(state, pod_info, node_info)

    def num_feasible_nodes_to_find(self, num_all_nodes: int) -> int:
        """How many feasible nodes are enough (percentageOfNodesToScore, adaptive when 0)."""
        if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND:
            return num_all_nodes
        percentage = self.percentage or 0
        if percentage == 0:
            percentage = max(DEFAULT_PERCENTAGE_BASE - num_all_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE)
        return max(num_all_nodes * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)

    def find_feasible_nodes(self, state: fw.CycleState, pod_info: PodInfo,
                            snapshot: Snapshot) -> tuple[list[NodeInfo], Diagnosis]:
        diagnosis = Diagnosis()
        nodes = snapshot.node_infos
        allowed, status = self.run_pre_filter(state, pod_info, nodes)
        if status is not None:
            if status.code == Code.ERROR:
                raise RuntimeError(f"running PreFilter plugin {status.plugin}: {status.message()}")
            diagnosis.pre_filter_message = status.message()
            diagnosis.unschedulable_plugins.add(status.plugin)
            diagnosis.node_statuses = {n.name: status for n in nodes}
            return [], diagnosis
        candidates = nodes if allowed is None else [n for n in (snapshot.get(name) for name in allowed) if n]
        if not candidates:
            return [], diagnosis
        to_find = self.num_feasible_nodes_to_find(len(candidates))
        start = self._next_start % len(candidates) if allowed is None else 0
        feasible: list[NodeInfo] = []
        processed = 0
        count = len(candidates)
        nominated_nodes = self.nominated_node_names()
        filters, run_filters = self._active_filters(state), self._run_filters
        for i in range(count):
            node = candidates[(start + i) % count]
            processed += 1
            if nominated_nodes and node.name in nominated_nodes:
                status = self._filter_with_nominated(state, pod_info, node)
            else:
                status = run_filters(filters, state, pod_info, node)
            if status is None:
                feasible.append(node)
                if len(feasible) >= to_find:
                    break
            elif status.code == Code.ERROR:
                raise RuntimeError(f"running Filter plugin {status.plugin} on node {node.name}: {status.message()}")
            else:
                diagnosis.node_statuses[node.name] = status
                diagnosis.unschedulable_plugins.add(status.plugin)
        if allowed is None:
            self._next_start = (start + processed) % count
        return feasible, diagnosis

    def prioritize(self, state: fw.CycleState, pod_info: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        """Each node's weighted total score (same order as ``nodes``)."""
        for plugin in self.points["preScore"]:
            status = plugin.pre_score(state, pod_info, nodes)
            if status is not None and status.is_skip():
                state.skip_score_plugins.add(plugin.NAME)
            elif status is not None and not status.is_success():
                raise RuntimeError(f"running PreScore plugin {plugin.NAME}: {status.message()}")
        totals = [0] * len(nodes)
        for plugin in self.points["score"]:
            if plugin.NAME in state.skip_score_plugins:
                continue
            score_nodes = getattr(plugin, "score_nodes", None)
            normalize = getattr(plugin, "normalize_score", None)
            if score_nodes is not None:  # final scores, already normalized
                values = score_nodes(state, pod_info, nodes)
                normalize = None
            else:
                score = plugin.score
                values = [score(state, pod_info, node) for node in nodes]
            if normalize is not None:
                scores = [fw.NodeScore(node.name, value) for node, value in zip(nodes, values, strict=True)]
                normalize(state, pod_info, scores)
                values = [s.score for s in scores]
            if min(values) < fw.MIN_NODE_SCORE or max(values) > fw.MAX_NODE_SCORE:
                bad = next(i for i, v in enumerate(values) if not fw.MIN_NODE_SCORE <= v <= fw.MAX_NODE_SCORE)
                raise RuntimeError(f"plugin {plugin.NAME} scored node {nodes[bad].name} {values[bad]}, "
                                   "outside [0, 100]")
            weight = self.weights.get(plugin.NAME, 1)
            totals = [total + value * weight for total, value in zip(totals, values, strict=True)]
        return totals

    @staticmethod
    def select_host(nodes: list[NodeInfo], totals: list[int]) -> NodeInfo:
        """The best-scored node; ties broken uniformly at random (as Kubernetes' reservoir sampling does)."""
        best = max(totals)
        tied = [i for i, total in enumerate(totals) if total == best]
        return nodes[tied[0] if len(tied) == 1 else random.choice(tied)]

    async def run_post_filter(self, state: fw.CycleState, pod_info: PodInfo,
                              statuses: Mapping[str, Status]) -> tuple[fw.PostFilterResult | None, Status]:
        messages: list[str] = []
        for plugin in self.points["postFilter"]:
            result, status = await plugin.post_filter(state, pod_info, statuses)
            if status.is_success():
                return result, status.with_plugin(plugin.NAME)
            if status.code == Code.ERROR:
                return None, status.with_plugin(plugin.NAME)
            if status.reasons:
                messages.append(status.message())
        return None, Status(Code.UNSCHEDULABLE, tuple(messages))

    def run_reserve(self, state: fw.CycleState, pod_info: PodInfo, node_name: str) -> Status | None:
        for plugin in self.points["reserve"]:
            status = plugin.reserve(state, pod_info, node_name)
            if status is not None and not status.is_success():
                return status.with_plugin(plugin.NAME)
        return None

    def run_unreserve(self, state: fw.CycleState, pod_info: PodInfo, node_name: str) -> None:
        for plugin in reversed(self.points["reserve"]):
            try:
                plugin.unreserve(state, pod_info, node_name)
            except Exception:
                log.exception("Unreserve plugin %s failed for %s", plugin.NAME, pod_info.key)

    def run_permit(self, state: fw.CycleState, pod_info: PodInfo, node_name: str) -> Status | None:
        """Allow (None), reject (a status), or park the pod in the waiting room (WAIT)."""
        waits: dict[str, float] = {}
        for plugin in self.points["permit"]:
            status, timeout = plugin.permit(state, pod_info, node_name)
            if status is None or status.is_success():
                continue
            if status.is_wait():
                waits[plugin.NAME] = min(max(timeout, 0.0), MAX_PERMIT_WAIT)
                continue
            return status.with_plugin(plugin.NAME)
        if waits:
            self.handle.waiting_pods[pod_info.uid] = WaitingPod(pod_info, waits, self.handle.clock)
            return Status(Code.WAIT)
        return None

    async def wait_on_permit(self, pod_info: PodInfo) -> Status | None:
        waiting = self.handle.waiting_pods.get(pod_info.uid)
        if waiting is None:
            return None
        try:
            status = await waiting.wait()
        finally:
            self.handle.waiting_pods.pop(pod_info.uid, None)
        return None if status.is_success() else status

    async def run_pre_bind(self, state: fw.CycleState, pod_info: PodInfo, node_name: str) -> Status | None:
        for plugin in self.points["preBind"]:
            status = await plugin.pre_bind(state, pod_info, node_name)
            if status is not None and not status.is_success():
                return status.with_plugin(plugin.NAME)
        return None

    async def run_bind(self, state: fw.CycleState, pod_info: PodInfo, node_name: str) -> Status | None:
        for plugin in self.points["bind"]:
            status = await plugin.bind(state, pod_info, node_name)
            if status is not None and status.is_skip():
                continue
            if status is not None and not status.is_success():
                return status.with_plugin(plugin.NAME)
            return None
        return skip()

    def run_post_bind(self, state: fw.CycleState, pod_info: PodInfo, node_name: str) -> None:
        for plugin in self.points["postBind"]:
            try:
                plugin.post_bind(state, pod_info, node_name)
            except Exception:
                log.exception("PostBind plugin %s failed for %s", plugin.NAME, pod_info.key)
