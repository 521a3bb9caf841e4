"""NodeResourcesBalancedAllocation: prefer nodes whose resources would be used evenly after placing the pod.

For each configured resource (default cpu and memory) the fraction ``(node requested + pod request) /
allocatable`` (capped at 1) is taken; the score is ``(1 - standard deviation of the fractions) * 100``,
truncated — with two resources the deviation is ``|f1 - f2| / 2``. As in Kubernetes v1.35 the real
requests are used (not the 100m / 200Mi non-zero defaults), resources with no allocatable (or scalar
resources the pod does not request) are left out, and best-effort pods (no requests at all) skip this
plugin, so they are not all piled onto the same "balanced" node.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from scheduler.framework import CycleState, Handle, NodeInfo, PodInfo, Status, skip
from scheduler.plugins.noderesources import MAX_NODE_SCORE, Amounts, ResourceAllocationScorer, resource_specs

PRE_SCORE_KEY = "PreScoreNodeResourcesBalancedAllocation"


def balanced_score(amounts: Amounts) -> int:
    if len(amounts) == 2:  # the usual cpu + memory, without building a list
        (r0, a0, _), (r1, a1, _) = amounts
        f0, f1 = min(float(r0) / float(a0), 1.0), min(float(r1) / float(a1), 1.0)
        return int((1 - abs((f0 - f1) / 2)) * MAX_NODE_SCORE)
    fractions = [min(float(requested) / float(allocatable), 1.0) for requested, allocatable, _ in amounts]
    std = 0.0
    if len(fractions) > 2:
        mean = sum(fractions) / len(fractions)
        std = math.sqrt(sum((f - mean) * (f - mean) for f in fractions) / len(fractions))
    return int((1 - std) * MAX_NODE_SCORE)


def _best_effort(pod_requests: Sequence[int]) -> bool:
    return not any(pod_requests)


class NodeResourcesBalancedAllocation:
    NAME = "NodeResourcesBalancedAllocation"

    def __init__(self, args: dict[str, Any] | None = None, handle: Handle | None = None) -> None:
        specs = resource_specs((args or {}).get("resources"), max_weight=1)  # Kubernetes: weights must be 1
        self.scorer = ResourceAllocationScorer(specs, balanced_score, use_requested=True)

    def pre_score(self, state: CycleState, pod_info: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        pod_requests = self.scorer.pod_requests(pod_info)
        if _best_effort(pod_requests):
            return skip()
        state.write(PRE_SCORE_KEY, pod_requests)
        return None

    def score(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo) -> int:
        pod_requests = state.get(PRE_SCORE_KEY)
        if pod_requests is None:
            pod_requests = self.scorer.pod_requests(pod_info)
            if _best_effort(pod_requests):
                return 0
        return self.scorer.score(node_info, pod_requests)

    def score_nodes(self, state: CycleState, pod_info: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        """Every node's score at once (cpu and memory as one tight loop, the arithmetic of :func:`balanced_score`)."""
        pod_requests = state.get(PRE_SCORE_KEY)
        if pod_requests is None or not self.scorer.cpu_memory_only:
            return [self.score(state, pod_info, node) for node in nodes]
        pod_cpu, pod_memory = pod_requests
        scores = []
        for node in nodes:
            allocatable, requested = node.allocatable, node.requested
            cpu, memory = allocatable.milli_cpu, allocatable.memory
            if not cpu or not memory:
                scores.append(self.scorer.score(node, pod_requests))
                continue
            f_cpu = min(float(requested.milli_cpu + pod_cpu) / float(cpu), 1.0)
            f_memory = min(float(requested.memory + pod_memory) / float(memory), 1.0)
            scores.append(int((1 - abs((f_cpu - f_memory) / 2)) * MAX_NODE_SCORE))
        return scores
