"""TaintToleration: a node's taints repel pods that do not tolerate them.

Filter rejects a node with a ``NoSchedule`` or ``NoExecute`` taint none of the pod's tolerations
matches — UNSCHEDULABLE_AND_UNRESOLVABLE, since evicting pods removes no taint — naming the first such
taint as Kubernetes does: ``node(s) had untolerated taint {key: value}``. Score counts the node's
``PreferNoSchedule`` taints the pod does not tolerate; NormalizeScore reverses the counts so the node
with the fewest gets 100.

The toleration rules (``v1.Toleration.ToleratesTaint``) are shared with PodTopologySpread's
``nodeTaintsPolicy: Honor`` through :func:`find_untolerated_taint`.
"""

from __future__ import annotations

from typing import Any

from machinery.taints import (  # noqa: F401 - re-exported for the plugins that use them
    DO_NOT_SCHEDULE_EFFECTS,
    NO_EXECUTE,
    NO_SCHEDULE,
    PREFER_NO_SCHEDULE,
    Obj,
    find_untolerated_taint,
    tolerates,
    tolerations_tolerate,
)
from scheduler.framework import ClusterEvent, CycleState, Handle, NodeInfo, NodeScore, PodInfo, Status
from scheduler.framework.interface import MAX_NODE_SCORE
from scheduler.framework.status import unresolvable

PRE_SCORE_KEY = "PreScoreTaintToleration"


def node_taints(node_info: NodeInfo) -> list[Obj]:
    node = node_info.node
    return ((node.get("spec") or {}).get("taints") or []) if node is not None else []


def pod_tolerations(pod_info: PodInfo) -> list[Obj]:
    return (pod_info.pod.get("spec") or {}).get("tolerations") or []


def untolerated_reason(taint: Obj) -> str:
    return f"node(s) had untolerated taint {{{taint.get('key') or ''}: {taint.get('value') or ''}}}"


def default_normalize_score(scores: list[NodeScore], reverse: bool) -> None:
    """helper.DefaultNormalizeScore: scale to 0..100 by the highest score (reversed: 100 - that)."""
    highest = max((s.score for s in scores), default=0)
    if highest <= 0:
        if reverse:
            for s in scores:
                s.score = MAX_NODE_SCORE
        return
    for s in scores:
        scaled = MAX_NODE_SCORE * s.score // highest
        s.score = MAX_NODE_SCORE - scaled if reverse else scaled


class TaintToleration:
    NAME = "TaintToleration"

    def __init__(self, args: dict[str, Any] | None = None, handle: Handle | None = None) -> None:
        del args, handle  # no configuration

    def filter(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo) -> Status | None:
        node = node_info.node
        if node is None:
            return None
        taints = (node.get("spec") or {}).get("taints")
        if not taints:
            return None
        taint = find_untolerated_taint(taints, pod_tolerations(pod_info))
        if taint is None:
            return None
        return unresolvable(untolerated_reason(taint))

    def pre_score(self, state: CycleState, pod_info: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        # only the tolerations that can match a PreferNoSchedule taint matter for scoring
        state.write(PRE_SCORE_KEY, [t for t in pod_tolerations(pod_info)
                                    if (t.get("effect") or "") in ("", PREFER_NO_SCHEDULE)])
        return None

    def score(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo) -> int:
        node = node_info.node
        taints = ((node.get("spec") or {}).get("taints") if node is not None else None)
        if not taints:
            return 0
        tolerations = state.get(PRE_SCORE_KEY)
        if tolerations is None:
            tolerations = pod_tolerations(pod_info)
        return sum(1 for taint in taints
                   if taint.get("effect") == PREFER_NO_SCHEDULE and not tolerations_tolerate(tolerations, taint))

    def normalize_score(self, state: CycleState, pod_info: PodInfo, scores: list[NodeScore]) -> None:
        default_normalize_score(scores, reverse=True)

    def score_nodes(self, state: CycleState, pod_info: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        """Final (normalized) scores of all nodes at once: on nodes without taints — the usual case —
        no per-node call and no NodeScore objects."""
        counts = [self.score(state, pod_info, node) if node.node is not None and
                  (node.node.get("spec") or {}).get("taints") else 0 for node in nodes]
        if not any(counts):
            return [MAX_NODE_SCORE] * len(nodes)
        scores = [NodeScore(node.name, count) for node, count in zip(nodes, counts, strict=True)]
        default_normalize_score(scores, reverse=True)
        return [s.score for s in scores]

    def events_to_register(self) -> list[ClusterEvent]:
        return [ClusterEvent("Node", "Add"), ClusterEvent("Node", "UpdateNodeTaint"),
                ClusterEvent("Pod", "UpdatePodToleration")]
