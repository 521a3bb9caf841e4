"""NodeAffinity: ``nodeSelector`` and node affinity decide which nodes a pod may use and which it prefers.

Required rules (Filter): every ``spec.nodeSelector`` label must be on the node, and when the pod has
``requiredDuringSchedulingIgnoredDuringExecution`` one of its ``nodeSelectorTerms`` must match (terms are
ORed, a term's ``matchExpressions`` and ``matchFields`` ANDed; an empty term matches nothing, a term
that does not parse never matches). Failing them is UNSCHEDULABLE_AND_UNRESOLVABLE "node(s) didn't
match Pod's node affinity/selector": preemption cannot relabel a node. The profile's ``addedAffinity``
applies to every pod on top of its own rules. PreFilter compiles the rules once per pod and, when
every term pins ``metadata.name`` with ``In``, tells the runtime the only candidate nodes.

Preferred rules (Score): the sum of the weights of the pod's (and ``addedAffinity``'s) preferred terms
the node matches, normalized so the best node gets 100.

:class:`RequiredNodeAffinity` is reused by PodTopologySpread (``nodeAffinityPolicy: Honor``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from machinery.nodeaffinity import (
    OBJECT_NAME_FIELD,
    NodeSelectorError,
    NodeSelectorTerm,
    compile_node_selector,
    is_empty_term,
    node_selector_matches,
)
from scheduler.framework import ClusterEvent, CycleState, Handle, NodeInfo, NodeScore, PodInfo, PreFilterResult, Status
from scheduler.framework.status import error, skip, unresolvable
from scheduler.plugins.tainttoleration import default_normalize_score

ERR_REASON_POD = "node(s) didn't match Pod's node affinity/selector"
ERR_REASON_ENFORCED = "node(s) didn't match scheduler-enforced node affinity"
ERR_REASON_CONFLICT = "pod affinity terms conflict"
PRE_FILTER_KEY = "PreFilterNodeAffinity"
PRE_SCORE_KEY = "PreScoreNodeAffinity"

Obj = Mapping[str, Any]
Labels = Mapping[str, str]

def compile_preferred(preferred: Sequence[Obj] | None) -> list[tuple[int, NodeSelectorTerm]]:
    """Weighted preferred terms (zero weights and empty terms dropped); raises NodeSelectorError."""
    result = []
    for item in preferred or ():
        weight = int(item.get("weight") or 0)
        preference = item.get("preference")
        if weight == 0 or is_empty_term(preference):
            continue
        term = NodeSelectorTerm(preference)
        if term.error is not None:
            raise term.error
        result.append((weight, term))
    return result


def preferred_score(terms: Sequence[tuple[int, NodeSelectorTerm]], labels: Labels, name: str) -> int:
    total = 0
    for weight, term in terms:
        if term.matches(labels, name):
            total += weight
    return total


class RequiredNodeAffinity:
    """A pod's ``nodeSelector`` AND its required node affinity (nodeaffinity.GetRequiredNodeAffinity)."""

    __slots__ = ("node_selector", "terms")

    def __init__(self, pod: Obj) -> None:
        spec = pod.get("spec") or {}
        self.node_selector: tuple[tuple[str, str], ...] = tuple((spec.get("nodeSelector") or {}).items())
        required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                    .get("requiredDuringSchedulingIgnoredDuringExecution"))
        # None: no required affinity; []: required affinity that matches nothing
        self.terms: list[NodeSelectorTerm] | None = None if required is None else compile_node_selector(required)

    @property
    def empty(self) -> bool:
        return not self.node_selector and self.terms is None

    def matches(self, labels: Labels, name: str) -> bool:
        for key, value in self.node_selector:
            if labels.get(key) != value:
                return False
        return self.terms is None or node_selector_matches(self.terms, labels, name)

    def matches_node(self, node_info: NodeInfo) -> bool:
        return self.matches(node_info.labels, node_info.name)


def _pinned_node_names(pod: Obj) -> tuple[set[str] | None, bool]:
    """(names, conflict): the nodes every required term restricts ``metadata.name`` to with ``In``.

    None when some term does not pin names (all nodes stay eligible); ``conflict`` when every term
    pins names but their intersections are all empty.
    """
    required = ((((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return None, False
    names: set[str] = set()
    for term in terms:
        term_names: set[str] | None = None
        for expr in term.get("matchFields") or ():
            if expr.get("key") == OBJECT_NAME_FIELD and expr.get("operator") == "In":
                values = set(expr.get("values") or ())
                term_names = values if term_names is None else term_names & values
        if term_names is None:
            return None, False
        names |= term_names
    return (names, False) if names else (None, True)


class _PreScoreState:
    __slots__ = ("preferred",)

    def __init__(self, preferred: list[tuple[int, NodeSelectorTerm]]) -> None:
        self.preferred = preferred


class NodeAffinity:
    NAME = "NodeAffinity"

    def __init__(self, args: dict[str, Any] | None = None, handle: Handle | None = None) -> None:
        added = (args or {}).get("addedAffinity") or {}
        required = added.get("requiredDuringSchedulingIgnoredDuringExecution")
        try:
            self.added_required: list[NodeSelectorTerm] | None = (
                None if required is None else compile_node_selector(required, strict=True))
            self.added_preferred = compile_preferred(added.get("preferredDuringSchedulingIgnoredDuringExecution"))
        except NodeSelectorError as exc:
            raise ValueError(f"NodeAffinity args: addedAffinity: {exc}") from None

    # --- Filter -------------------------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod_info: PodInfo,
                   nodes: list[NodeInfo]) -> tuple[PreFilterResult | None, Status | None]:
        required = RequiredNodeAffinity(pod_info.pod)
        if required.empty and self.added_required is None:
            return None, skip()
        state.write(PRE_FILTER_KEY, required)
        names, conflict = _pinned_node_names(pod_info.pod)
        if conflict:
            return None, unresolvable(ERR_REASON_CONFLICT)
        if names:
            return PreFilterResult(names), None
        return None, None

    def filter(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo) -> Status | None:
        labels = node_info.labels
        if self.added_required is not None and not node_selector_matches(self.added_required, labels,
                                                                         node_info.name):
            return unresolvable(ERR_REASON_ENFORCED)
        required = state.get(PRE_FILTER_KEY)
        if required is None:  # PreFilter disabled: compile once and keep it for the other nodes
            required = RequiredNodeAffinity(pod_info.pod)
            state.write(PRE_FILTER_KEY, required)
        if not required.empty and not required.matches(labels, node_info.name):
            return unresolvable(ERR_REASON_POD)
        return None

    # --- Score --------------------------------------------------------------------------------------

    @staticmethod
    def _pod_preferred(pod_info: PodInfo) -> list[tuple[int, NodeSelectorTerm]]:
        node_affinity = (pod_info.spec.get("affinity") or {}).get("nodeAffinity") or {}
        return compile_preferred(node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution"))

    def pre_score(self, state: CycleState, pod_info: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        if not nodes:
            return None
        try:
            preferred = self._pod_preferred(pod_info)
        except NodeSelectorError as exc:
            return error(exc)
        if not preferred and not self.added_preferred:
            return skip()
        state.write(PRE_SCORE_KEY, _PreScoreState(preferred))
        return None

    def score(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo) -> int:
        labels, name = node_info.labels, node_info.name
        total = preferred_score(self.added_preferred, labels, name) if self.added_preferred else 0
        pre = state.get(PRE_SCORE_KEY)
        if pre is None:  # PreScore disabled
            pre = _PreScoreState(self._pod_preferred(pod_info))
            state.write(PRE_SCORE_KEY, pre)
        if pre.preferred:
            total += preferred_score(pre.preferred, labels, name)
        return total

    def normalize_score(self, state: CycleState, pod_info: PodInfo, scores: list[NodeScore]) -> None:
        default_normalize_score(scores, reverse=False)

    def events_to_register(self) -> list[ClusterEvent]:
        return [ClusterEvent("Node", "Add"), ClusterEvent("Node", "UpdateNodeLabel")]
