"""DefaultPreemption: when a pod fits nowhere, evict lower-priority pods from one node to make room for it.

This is kube-scheduler's PostFilter plugin (``pkg/scheduler/framework/preemption`` plus
``plugins/defaultpreemption``), run by the framework only when Filter rejected every node:

1. **Eligibility.** A pod with ``preemptionPolicy: Never`` does not preempt. A pod already nominated
   to a node where a lower-priority pod is terminating *because the scheduler preempted it* (deletion
   started, ``DisruptionTarget`` condition with reason ``PreemptionByScheduler``) waits for that instead
   of preempting again — unless Filter now calls its nominated node unresolvable.
2. **Candidates.** Only nodes Filter rejected as ``UNSCHEDULABLE`` (not ``UNSCHEDULABLE_AND_UNRESOLVABLE``,
   and not nodes PreFilter already ruled out) can be helped. Starting at a random offset, each is dry-run
   on a clone of its NodeInfo and of the CycleState: remove every lower-priority pod; if the pod still does
   not fit, the node is no candidate; otherwise add victims back one at a time — first the ones whose
   eviction would violate a PodDisruptionBudget, then the rest, each group from the most important
   (higher priority, then earlier start) — keeping each one the pod still fits beside. The search stops
   once it has ``max(nodes * minCandidateNodesPercentage / 100, minCandidateNodesAbsolute)`` candidates
   and at least one of them violates no PDB.
3. **Choice** (``pickOneNodeForPreemption``): fewest PDB violations; lowest highest-victim priority;
   smallest sum of victim priorities (each shifted by 2^31, as Kubernetes does, so that a node with more
   victims loses even when their priorities are negative); fewest victims; latest start time of the
   highest-priority victims; the first.
4. **Act.** Each victim that is not already terminating gets the ``DisruptionTarget`` condition and a graceful
   DELETE (a victim still waiting at Permit is rejected instead); a ``Preempted`` Event is recorded on it.
   Lower-priority pods nominated to the same node lose their nomination, and the preemptor's
   ``status.nominatedNodeName`` is set to the node.

Failure messages are kube-scheduler's: ``preemption: 0/N nodes are available: 2 Insufficient cpu,
1 No preemption victims found for incoming pod, 3 Preemption is not helpful for scheduling.`` — a node with
no lower-priority pods says "No preemption victims found for incoming pod", a node that would still not
fit without them repeats its Filter reason, and every node that was not a candidate says "Preemption is
not helpful for scheduling".

What this plugin finds through the handle (documented here because :class:`Handle` does not spell it out):

- ``handle.extra["pre_filter_plugins"]`` (a list, or a callable returning one) — the profile's PreFilter
  plugins. Those with optional ``add_pod(state, pod_info_to_schedule, pod_info_to_add, node_info)`` /
  ``remove_pod(...)`` methods (Kubernetes' PreFilterExtensions: InterPodAffinity, PodTopologySpread) are told
  about every pod the dry run removes or adds, on the cloned state. Without the key, the plugins of the
  Framework that owns ``handle.run_filter`` are used; plugins without the methods are skipped (their
  PreFilter state then does not follow the dry run).
- ``handle.extra["nominated_pods_for_node"]`` (``node_name -> list[PodInfo]``), else the owning Framework's
  ``nominated_pods_for_node``: pods nominated to a node with priority ≥ the preemptor's count as present
  during the dry run (RunFilterPluginsWithNominatedPods), and lower-priority ones lose their nomination.

Simplified vs Kubernetes: preemption runs synchronously in the scheduling loop (kube-scheduler v1.35
defaults to asynchronous preemption with a PreEnqueue gate); there are no extenders; on failure the plugin
returns no PostFilterResult and clears a stale ``nominatedNodeName`` itself with a status patch.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from machinery.client import POD_DISRUPTION_BUDGETS, PODS
from machinery.errors import StatusError, is_not_found
from machinery.labels import Selector, SelectorError, selector_from_label_selector
from machinery.meta import is_being_deleted, namespace_of, now_rfc3339, parse_rfc3339
from scheduler import metrics
from scheduler.framework.interface import CycleState, Handle, PostFilterResult
from scheduler.framework.runtime import reasons_histogram
from scheduler.framework.status import Code, Status
from scheduler.framework.types import NodeInfo, PodInfo, Snapshot

log = logging.getLogger(__name__)

Obj = dict[str, Any]

DEFAULT_MIN_CANDIDATE_NODES_PERCENTAGE = 10
DEFAULT_MIN_CANDIDATE_NODES_ABSOLUTE = 100
NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NOT_ELIGIBLE_NEVER = "not eligible due to preemptionPolicy=Never."
NOT_ELIGIBLE_TERMINATING = "not eligible due to a terminating pod on the nominated node."
DISRUPTION_TARGET = "DisruptionTarget"
PREEMPTION_BY_SCHEDULER = "PreemptionByScheduler"
_PRIORITY_SHIFT = 2**31  # MaxInt32 + 1: makes every priority non-negative before summing


@dataclass(slots=True)
class Budget:
    """One PodDisruptionBudget, digested once per preemption attempt."""

    namespace: str
    selector: Selector
    disruptions_allowed: int
    disrupted_pods: frozenset[str]


@dataclass(slots=True)
class Candidate:
    """A node the preemptor fits on once ``victims`` (most important first) are gone."""

    node_name: str
    victims: list[PodInfo] = field(default_factory=list)
    num_pdb_violations: int = 0


class _ExtensionError(Exception):
    """A PreFilter extension (add_pod/remove_pod) failed during the dry run."""


def parse_budgets(pdbs: Iterable[Mapping[str, Any]]) -> list[Budget]:
    """The PDBs that can select pods: invalid, nil and empty selectors select nothing (as Kubernetes)."""
    budgets = []
    for pdb in pdbs:
        try:
            selector = selector_from_label_selector((pdb.get("spec") or {}).get("selector"))
        except SelectorError:
            continue
        if selector.empty or selector.matches_nothing:
            continue
        status = pdb.get("status") or {}
        budgets.append(Budget(namespace_of(pdb), selector, int(status.get("disruptionsAllowed") or 0),
                              frozenset(status.get("disruptedPods") or ())))
    return budgets


def split_by_pdb_violation(pods: list[PodInfo], budgets: list[Budget]) -> tuple[list[PodInfo], list[PodInfo]]:
    """(violating, non-violating), each keeping the input order; each pod uses up its PDBs' budgets in turn."""
    allowed = [b.disruptions_allowed for b in budgets]
    violating: list[PodInfo] = []
    non_violating: list[PodInfo] = []
    for pod_info in pods:
        violated = False
        labels = pod_info.labels
        if labels:
            for i, budget in enumerate(budgets):
                if budget.namespace != pod_info.namespace or not budget.selector.matches(labels):
                    continue
                if pod_info.name in budget.disrupted_pods:
                    continue  # the API server already counted this disruption
                allowed[i] -= 1
                if allowed[i] < 0:
                    violated = True
        (violating if violated else non_violating).append(pod_info)
    return violating, non_violating


def pod_start_time(pod_info: PodInfo, now: float) -> float:
    """``status.startTime`` as epoch seconds; pods not started yet count as starting ``now``."""
    raw = (pod_info.pod.get("status") or {}).get("startTime")
    if raw:
        try:
            return parse_rfc3339(raw).timestamp()
        except ValueError:
            pass
    return now


def importance_key(now: float) -> Callable[[PodInfo], tuple[int, float]]:
    """Sort key putting more important pods first: higher priority, then longer running."""
    return lambda p: (-p.priority, pod_start_time(p, now))


def earliest_start_of_highest_priority(victims: list[PodInfo], now: float) -> float:
    top = max(v.priority for v in victims)
    return min(pod_start_time(v, now) for v in victims if v.priority == top)


def pick_one_node(candidates: list[Candidate], now: float) -> Candidate:
    """kube-scheduler's pickOneNodeForPreemption: each rule narrows the ties left by the previous one."""
    rules: list[Callable[[Candidate], float]] = [
        lambda c: -c.num_pdb_violations,
        lambda c: -max(v.priority for v in c.victims),
        lambda c: -sum(v.priority + _PRIORITY_SHIFT for v in c.victims),
        lambda c: -len(c.victims),
        lambda c: earliest_start_of_highest_priority(c.victims, now),
    ]
    remaining = candidates
    for rule in rules:
        scores = [rule(c) for c in remaining]
        best = max(scores)
        remaining = [c for c, s in zip(remaining, scores, strict=True) if s == best]
        if len(remaining) == 1:
            break
    return remaining[0]


def terminating_by_preemption(pod: Mapping[str, Any]) -> bool:
    if not (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == DISRUPTION_TARGET:
            return condition.get("status") == "True" and condition.get("reason") == PREEMPTION_BY_SCHEDULER
    return False



class DefaultPreemption:
    NAME = "DefaultPreemption"

    def __init__(self, args: dict, handle: Handle) -> None:
        args = args or {}
        self.handle = handle
        self.min_candidate_nodes_percentage = int(args.get("minCandidateNodesPercentage",
                                                           DEFAULT_MIN_CANDIDATE_NODES_PERCENTAGE))
        self.min_candidate_nodes_absolute = int(args.get("minCandidateNodesAbsolute",
                                                         DEFAULT_MIN_CANDIDATE_NODES_ABSOLUTE))
        self._validate()
        # asking for the informers now registers them with the factory, which starts them with the others
        self._pdb_informer = handle.informers.informer(POD_DISRUPTION_BUDGETS)
        self._pod_informer = handle.informers.informer(PODS)
        self.random_offset: Callable[[int], int] = random.randrange  # replaced by tests for determinism

    def _validate(self) -> None:
        pct, absolute = self.min_candidate_nodes_percentage, self.min_candidate_nodes_absolute
        if not 0 <= pct <= 100:
            raise ValueError(f"minCandidateNodesPercentage: Invalid value: {pct}: not in valid range [0, 100]")
        if absolute < 0:
            raise ValueError(f"minCandidateNodesAbsolute: Invalid value: {absolute}: not in valid range [0, inf)")
        if pct == 0 and absolute == 0:
            raise ValueError("minCandidateNodesPercentage and minCandidateNodesAbsolute: both "
                             "minCandidateNodesPercentage and minCandidateNodesAbsolute cannot be zero")

    def num_candidates(self, num_nodes: int) -> int:
        """How many candidates the dry run looks for among ``num_nodes`` potential nodes."""
        n = num_nodes * self.min_candidate_nodes_percentage // 100
        return min(max(n, self.min_candidate_nodes_absolute), num_nodes)

    # --- PostFilter ---------------------------------------------------------------------------------

    async def post_filter(self, state: CycleState, pod_info: PodInfo,
                          statuses: Mapping[str, Status]) -> tuple[PostFilterResult | None, Status]:
        pod = self._latest(pod_info)
        snapshot = self.handle.snapshot()
        reason = self._ineligibility(pod_info, pod, statuses, snapshot)
        if reason:
            return None, Status(Code.UNSCHEDULABLE, (f"preemption: {reason}",))
        if not len(snapshot):
            return None, Status(Code.ERROR, ("preemption: no nodes available",))
        candidates, node_statuses, errors = self.find_candidates(state, pod_info, statuses, snapshot)
        if not candidates:
            if errors:
                return None, Status(Code.ERROR, (f"preemption: {_aggregate(errors)}",))
            await self._set_nominated_node(pod_info, pod, "")
            return None, Status(Code.UNSCHEDULABLE, ("preemption: " + failure_message(len(snapshot), node_statuses),))
        best = pick_one_node(candidates, self.handle.clock.now().timestamp())
        status = await self.prepare_candidate(best, pod_info)
        if status is not None:
            return None, status
        await self._set_nominated_node(pod_info, pod, best.node_name)
        return PostFilterResult(nominated_node_name=best.node_name), Status()

    def _latest(self, pod_info: PodInfo) -> Mapping[str, Any]:
        """The informer's copy of the preemptor (its status may be newer than the queued one)."""
        current = self._pod_informer.store.get(pod_info.key)
        if current is not None and (current.get("metadata") or {}).get("uid") == pod_info.uid:
            return current
        return pod_info.pod

    def _ineligibility(self, pod_info: PodInfo, pod: Mapping[str, Any], statuses: Mapping[str, Status],
                       snapshot: Snapshot) -> str:
        """Why the pod may not preempt now ("" when it may): PodEligibleToPreemptOthers."""
        if (pod.get("spec") or {}).get("preemptionPolicy") == "Never":
            return NOT_ELIGIBLE_NEVER
        nominated = (pod.get("status") or {}).get("nominatedNodeName") or ""
        if not nominated:
            return ""
        status = statuses.get(nominated)
        if status is None or status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
            return ""  # the nominated node can no longer help: preempt again
        node_info = snapshot.get(nominated)
        if node_info is not None:
            for other in node_info.pods:
                if other.priority < pod_info.priority and terminating_by_preemption(other.pod):
                    return NOT_ELIGIBLE_TERMINATING
        return ""

    # --- dry run ------------------------------------------------------------------------------------

    def find_candidates(self, state: CycleState, pod_info: PodInfo, statuses: Mapping[str, Status],
                        snapshot: Snapshot) -> tuple[list[Candidate], dict[str, Status], list[str]]:
        """Candidates (non-violating first), the statuses of nodes that are not candidates, and errors."""
        potential = [n for n in snapshot.node_infos
                     if (s := statuses.get(n.name)) is not None and s.code == Code.UNSCHEDULABLE]
        node_statuses: dict[str, Status] = {}
        errors: list[str] = []
        if not potential:
            return [], node_statuses, errors
        budgets = parse_budgets(self._pdb_informer.store.list())
        wanted = self.num_candidates(len(potential))
        offset = self.random_offset(len(potential))
        non_violating: list[Candidate] = []
        violating: list[Candidate] = []
        for i in range(len(potential)):
            node_info = potential[(offset + i) % len(potential)]
            victims, num_violations, status = self.select_victims_on_node(state, pod_info, node_info, budgets)
            if status is None and victims:
                bucket = violating if num_violations else non_violating
                if len(bucket) < wanted:
                    bucket.append(Candidate(node_info.name, victims, num_violations))
                if non_violating and len(non_violating) + len(violating) >= wanted:
                    break
                continue
            if status is None:
                status = Status(Code.ERROR, (f'expected at least one victim pod on node "{node_info.name}"',))
            if status.code == Code.ERROR:
                errors.append(status.message())
            node_statuses[node_info.name] = status
        return non_violating + violating, node_statuses, errors

    def select_victims_on_node(self, state: CycleState, pod_info: PodInfo, node: NodeInfo,
                               budgets: list[Budget]) -> tuple[list[PodInfo], int, Status | None]:
        """The fewest lower-priority pods to evict from ``node`` so the pod fits, and how many violate a PDB."""
        state = state.clone()
        node_info = node.clone()
        extensions = self._pre_filter_extensions()
        potential = [p for p in node_info.pods if p.priority < pod_info.priority]
        try:
            for victim in potential:
                self._remove(state, pod_info, victim, node_info, extensions)
            if not potential:
                return [], 0, Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (NO_VICTIMS,))
            status = self._filter_with_nominated(state, pod_info, node_info, extensions)
            if status is not None:
                return [], 0, status
            key = importance_key(self.handle.clock.now().timestamp())
            potential.sort(key=key)
            violating, non_violating = split_by_pdb_violation(potential, budgets)
            violating_victims = self._reprieve(state, pod_info, node_info, violating, extensions)
            victims = violating_victims + self._reprieve(state, pod_info, node_info, non_violating, extensions)
        except _ExtensionError as exc:
            return [], 0, Status(Code.ERROR, (str(exc),))
        if violating and non_violating:
            victims.sort(key=key)
        return victims, len(violating_victims), None

    def _reprieve(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo, pods: list[PodInfo],
                  extensions: list[Any]) -> list[PodInfo]:
        """Add ``pods`` back one by one, keeping those the pod still fits beside; the others are victims."""
        victims = []
        for candidate in pods:
            self._add(state, pod_info, candidate, node_info, extensions)
            if self._filter_with_nominated(state, pod_info, node_info, extensions) is not None:
                self._remove(state, pod_info, candidate, node_info, extensions)
                victims.append(candidate)
        return victims

    def _filter_with_nominated(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo,
                               extensions: list[Any]) -> Status | None:
        """RunFilterPluginsWithNominatedPods: the pod must fit both with and without the pods nominated to the
        node whose priority is at least its own."""
        run_filter = self.handle.run_filter
        if run_filter is None:
            raise RuntimeError("DefaultPreemption needs handle.run_filter")
        nominated = [p for p in self._nominated_pods(node_info.name)
                     if p.uid != pod_info.uid and p.priority >= pod_info.priority]
        if nominated:
            present = {p.uid for p in node_info.pods}  # a pod bound meanwhile is already counted
            nominated = [p for p in nominated if p.uid not in present]
        if nominated:
            with_state, with_node = state.clone(), node_info.clone()
            for other in nominated:
                self._add(with_state, pod_info, other, with_node, extensions)
            status = run_filter(with_state, pod_info, with_node)
            if status is not None and not status.is_success():
                return status
        status = run_filter(state, pod_info, node_info)
        return None if status is None or status.is_success() else status

    def _remove(self, state: CycleState, pod_info: PodInfo, victim: PodInfo, node_info: NodeInfo,
                extensions: list[Any]) -> None:
        node_info.remove_pod(victim)
        self._run_extension("remove_pod", state, pod_info, victim, node_info, extensions)

    def _add(self, state: CycleState, pod_info: PodInfo, other: PodInfo, node_info: NodeInfo,
             extensions: list[Any]) -> None:
        node_info.add_pod(other)
        self._run_extension("add_pod", state, pod_info, other, node_info, extensions)

    @staticmethod
    def _run_extension(method: str, state: CycleState, pod_info: PodInfo, other: PodInfo, node_info: NodeInfo,
                       extensions: list[Any]) -> None:
        for plugin in extensions:
            if plugin.NAME in state.skip_filter_plugins:
                continue
            func = getattr(plugin, method, None)
            if func is None:
                continue
            try:
                status = func(state, pod_info, other, node_info)
            except Exception as exc:
                raise _ExtensionError(f"running {method} of PreFilter plugin {plugin.NAME}: {exc}") from exc
            if status is not None and not status.is_success():
                raise _ExtensionError(f"running {method} of PreFilter plugin {plugin.NAME}: {status.message()}")

    def _framework(self) -> Any:
        """The Framework whose ``run_filter`` the handle carries (it installs it there), if any."""
        return getattr(self.handle.run_filter, "__self__", None)

    def _pre_filter_extensions(self) -> list[Any]:
        plugins = self.handle.extra.get("pre_filter_plugins")
        if plugins is None:
            points = getattr(self._framework(), "points", None)
            plugins = points.get("preFilter", []) if isinstance(points, Mapping) else []
        elif callable(plugins):
            plugins = plugins()
        return [p for p in plugins if hasattr(p, "add_pod") or hasattr(p, "remove_pod")]

    def _nominated_pods(self, node_name: str) -> list[PodInfo]:
        lookup = self.handle.extra.get("nominated_pods_for_node")
        if lookup is None:
            lookup = getattr(self._framework(), "nominated_pods_for_node", None)
        return list(lookup(node_name)) if lookup is not None else []

    # --- acting -------------------------------------------------------------------------------------

    async def prepare_candidate(self, candidate: Candidate, preemptor: PodInfo) -> Status | None:
        """Evict the victims (in parallel) and clear lower-priority nominations to the node; an error status
        when a victim could not be preempted."""
        victims = [v for v in candidate.victims if not is_being_deleted(v.pod)]
        results = await asyncio.gather(*(self.preempt_pod(preemptor, v, candidate.node_name) for v in victims),
                                       return_exceptions=True)
        for victim, result in zip(victims, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("preempting %s for %s failed: %s", victim.key, preemptor.key, result)
                return Status(Code.ERROR, (f"preemption: {result}",), error=result)
        metrics.PREEMPTION_VICTIMS.observe(len(candidate.victims))
        for other in self._nominated_pods(candidate.node_name):
            if other.uid != preemptor.uid and other.priority < preemptor.priority:
                await self._set_nominated_node(other, other.pod, "")
        return None

    async def preempt_pod(self, preemptor: PodInfo, victim: PodInfo, node_name: str) -> None:
        """Reject a victim waiting at Permit, or mark it DisruptionTarget and delete it gracefully."""
        waiting = self.handle.waiting_pods.get(victim.uid)
        if waiting is not None:
            waiting.reject(self.NAME, "preempted")
        else:
            scheduler_name = preemptor.spec.get("schedulerName") or "default-scheduler"
            condition: Obj = {"type": DISRUPTION_TARGET, "status": "True", "reason": PREEMPTION_BY_SCHEDULER,
                              "message": f"{scheduler_name}: preempting to accommodate a higher priority pod"}
            client = self.handle.client
            try:
                if not _has_condition(victim.pod, condition):
                    generation = (victim.pod.get("metadata") or {}).get("generation")
                    if isinstance(generation, int) and generation > 0:
                        condition["observedGeneration"] = generation
                    condition["lastTransitionTime"] = now_rfc3339(self.handle.clock.now())
                    await client.patch(PODS, victim.name, {"status": {"conditions": [condition]}}, victim.namespace,
                                       patch_type="strategic", subresource="status")
                await client.delete(PODS, victim.name, victim.namespace)
            except StatusError as err:
                if is_not_found(err):
                    log.info("victim %s of %s is already gone", victim.key, preemptor.key)
                    return
                raise
            log.info("pod %s preempted %s on node %s", preemptor.key, victim.key, node_name)
        if self.handle.recorder is not None:
            self.handle.recorder.event(victim.pod, "Normal", "Preempted",
                                       f"Preempted by pod {preemptor.uid} on node {node_name}")

    async def _set_nominated_node(self, pod_info: PodInfo, pod: Mapping[str, Any], node_name: str) -> None:
        """Patch ``status.nominatedNodeName`` ("" clears it) unless it already says so; errors are logged."""
        current = (pod.get("status") or {}).get("nominatedNodeName") or ""
        if current == node_name:
            return
        patch = {"status": {"nominatedNodeName": node_name or None}}
        try:
            await self.handle.client.patch(PODS, pod_info.name, patch, pod_info.namespace, patch_type="strategic",
                                           subresource="status")
        except StatusError as err:
            level = logging.DEBUG if is_not_found(err) else logging.WARNING
            log.log(level, "could not set nominatedNodeName=%r on %s: %s", node_name, pod_info.key, err)


def _has_condition(pod: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == wanted["type"]:
            return all(condition.get(k) == wanted[k] for k in ("status", "reason", "message"))
    return False


def _aggregate(messages: list[str]) -> str:
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"


def failure_message(num_all_nodes: int, node_statuses: Mapping[str, Status]) -> str:
    """``0/N nodes are available: <histogram>.``; nodes without a status were no candidates."""
    absent = max(num_all_nodes - len(node_statuses), 0)
    not_helpful = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, (NOT_HELPFUL,))
    histogram = reasons_histogram([*node_statuses.values(), *([not_helpful] * absent)])
    return f"0/{num_all_nodes} nodes are available: {histogram}."
