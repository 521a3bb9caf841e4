"""NodeResourcesFit: a pod goes only where its requests fit, and nodes are scored by how full they would be.

Filter (kube-scheduler's ``fitsRequest``): one more pod must not exceed the node's ``pods`` allocatable
("Too many pods"), and each requested amount of cpu, memory, ephemeral-storage and every scalar
resource (extended resources, hugepages) must fit in allocatable minus what the node's pods already
request ("Insufficient cpu", ..., "Insufficient nvidia.com/gpu"). Every failing resource is a separate
reason, all with code UNSCHEDULABLE (evicting pods may free the room). Extended resources named in
``ignoredResources``, or whose prefix (before "/") is in ``ignoredResourceGroups``, are not checked.

Score uses ``scoringStrategy`` (default LeastAllocated over cpu and memory, weight 1 each):
LeastAllocated ``(allocatable - requested) * 100 / allocatable``, MostAllocated
``requested * 100 / allocatable``, RequestedToCapacityRatio (a broken-linear ``shape`` over utilization,
its 0..10 scores scaled to 0..100), each a weighted average over the configured resources. As in
Kubernetes, "requested" for cpu and memory is the node's non-zero requests plus the pod's (a container
without a request counts as 100m / 200Mi), so best-effort pods still spread. The integer arithmetic
(truncating divisions, Go's rounding) is Kubernetes' exactly, so scores match kube-scheduler's.

:class:`ResourceAllocationScorer` is shared with NodeResourcesBalancedAllocation.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from scheduler.framework import ClusterEvent, CycleState, Handle, NodeInfo, PodInfo, PreFilterResult, Status
from scheduler.framework.status import unschedulable
from scheduler.framework.types import CPU, EPHEMERAL_STORAGE, MEMORY, Resources

LEAST_ALLOCATED = "LeastAllocated"
MOST_ALLOCATED = "MostAllocated"
REQUESTED_TO_CAPACITY_RATIO = "RequestedToCapacityRatio"
DEFAULT_RESOURCES: tuple[tuple[str, int], ...] = ((CPU, 1), (MEMORY, 1))
MAX_NODE_SCORE = 100
MAX_CUSTOM_PRIORITY_SCORE = 10  # RequestedToCapacityRatio shape scores are 0..10
MAX_UTILIZATION = 100

PRE_FILTER_KEY = "PreFilterNodeResourcesFit"
PRE_SCORE_KEY = "PreScoreNodeResourcesFit"

TOO_MANY_PODS = "Too many pods"
INSUFFICIENT_CPU = "Insufficient cpu"
INSUFFICIENT_MEMORY = "Insufficient memory"
INSUFFICIENT_EPHEMERAL_STORAGE = "Insufficient ephemeral-storage"

# (requested, allocatable, weight) per resource whose allocatable is not zero
Amounts = list[tuple[int, int, int]]


def is_extended_resource_name(name: str) -> bool:
    """Outside the kubernetes.io namespace and prefixed by a domain (``example.com/dongle``)."""
    return "/" in name and "kubernetes.io/" not in name and not name.startswith("requests.")


def resource_specs(raw: Iterable[Mapping[str, Any]] | None, *, max_weight: int = 100) -> tuple[tuple[str, int], ...]:
    """``[{"name": "cpu", "weight": 1}, ...]`` with v1 defaults (cpu+memory when empty, weight 0 → 1), validated."""
    specs = tuple((str(r.get("name") or ""), int(r.get("weight") or 1)) for r in raw or ()) or DEFAULT_RESOURCES
    seen: set[str] = set()
    for name, weight in specs:
        if not name:
            raise ValueError("scoring resources: name is required")
        if name in seen:
            raise ValueError(f"scoring resources: duplicate resource {name!r}")
        seen.add(name)
        if not 1 <= weight <= max_weight:
            raise ValueError(f"resource weight of {name} not in valid range [1, {max_weight}]")
    return specs


def _go_div(a: int, b: int) -> int:
    """Integer division truncating toward zero, as Go's ``/`` (Python's ``//`` floors)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _go_round(x: float) -> int:
    """Go's math.Round for non-negative values: half away from zero."""
    return math.floor(x + 0.5)


# --- scorers: Amounts -> 0..100 ---------------------------------------------------------------------


def least_allocated(amounts: Amounts) -> int:
    score = weight_sum = 0
    for requested, allocatable, weight in amounts:
        if requested <= allocatable:
            score += (allocatable - requested) * MAX_NODE_SCORE // allocatable * weight
        weight_sum += weight
    return score // weight_sum if weight_sum else 0


def most_allocated(amounts: Amounts) -> int:
    score = weight_sum = 0
    for requested, allocatable, weight in amounts:
        # requested may exceed allocatable because pods without requests count the non-zero defaults
        score += min(requested, allocatable) * MAX_NODE_SCORE // allocatable * weight
        weight_sum += weight
    return score // weight_sum if weight_sum else 0


def parse_shape(raw: Iterable[Mapping[str, Any]] | None) -> tuple[tuple[int, int], ...]:
    """Validate ``requestedToCapacityRatio.shape`` and scale its scores from 0..10 to 0..100."""
    points = tuple((int(p.get("utilization") or 0), int(p.get("score") or 0)) for p in raw or ())
    if not points:
        raise ValueError("requestedToCapacityRatio.shape: at least one point must be specified")
    for (u0, _), (u1, _) in itertools.pairwise(points):
        if u0 >= u1:
            raise ValueError("requestedToCapacityRatio.shape: utilization values must be sorted in increasing order")
    for utilization, score in points:
        if not 0 <= utilization <= MAX_UTILIZATION:
            raise ValueError(f"requestedToCapacityRatio.shape: utilization {utilization} not in [0, 100]")
        if not 0 <= score <= MAX_CUSTOM_PRIORITY_SCORE:
            raise ValueError(f"requestedToCapacityRatio.shape: score {score} not in [0, 10]")
    scale = MAX_NODE_SCORE // MAX_CUSTOM_PRIORITY_SCORE
    return tuple((u, s * scale) for u, s in points)


def broken_linear(shape: Sequence[tuple[int, int]], utilization: int) -> int:
    """The piecewise-linear function through ``shape``'s points, flat before the first and after the last."""
    for i, (u, s) in enumerate(shape):
        if utilization <= u:
            if i == 0:
                return s
            u0, s0 = shape[i - 1]
            return s0 + _go_div((s - s0) * (utilization - u0), u - u0)
    return shape[-1][1]


def requested_to_capacity_ratio(shape: Sequence[tuple[int, int]]) -> Callable[[Amounts], int]:
    def scorer(amounts: Amounts) -> int:
        score = weight_sum = 0
        for requested, allocatable, weight in amounts:
            utilization = MAX_UTILIZATION if requested > allocatable else requested * MAX_UTILIZATION // allocatable
            resource_score = broken_linear(shape, utilization)
            if resource_score > 0:
                score += resource_score * weight
                weight_sum += weight
        return _go_round(score / weight_sum) if weight_sum else 0
    return scorer


class ResourceAllocationScorer:
    """Per-node (requested, allocatable) for the configured resources, fed to a scoring function.

    ``use_requested`` False (NodeResourcesFit): cpu/memory use non-zero requests, for the node and the
    pod; True (BalancedAllocation): the real requests. Ephemeral storage and scalar resources always use
    real requests; a scalar resource the pod does not request, or the node does not have, is left out.
    """

    __slots__ = ("cpu_memory_only", "names", "scorer", "use_requested", "weights")

    def __init__(self, specs: Sequence[tuple[str, int]], scorer: Callable[[Amounts], int], *,
                 use_requested: bool) -> None:
        self.names = tuple(name for name, _ in specs)
        self.weights = tuple(weight for _, weight in specs)
        self.scorer = scorer
        self.use_requested = use_requested
        self.cpu_memory_only = self.names == (CPU, MEMORY)  # the default: a shorter path per node

    def pod_requests(self, pod_info: PodInfo) -> tuple[int, ...]:
        requests = pod_info.requests if self.use_requested else pod_info.non_zero_requests
        return tuple(requests.get(name) for name in self.names)

    def amounts(self, node_info: NodeInfo, pod_requests: Sequence[int]) -> Amounts:
        allocatable = node_info.allocatable
        requested = node_info.requested
        cpu_memory = requested if self.use_requested else node_info.non_zero_requested
        if self.cpu_memory_only and allocatable.milli_cpu and allocatable.memory:
            return [(cpu_memory.milli_cpu + pod_requests[0], allocatable.milli_cpu, self.weights[0]),
                    (cpu_memory.memory + pod_requests[1], allocatable.memory, self.weights[1])]
        out: Amounts = []
        for name, weight, pod_request in zip(self.names, self.weights, pod_requests, strict=True):
            if name == CPU:
                alloc, used = allocatable.milli_cpu, cpu_memory.milli_cpu
            elif name == MEMORY:
                alloc, used = allocatable.memory, cpu_memory.memory
            elif name == EPHEMERAL_STORAGE:
                alloc, used = allocatable.ephemeral_storage, requested.ephemeral_storage
            else:
                if pod_request == 0:
                    continue
                alloc, used = allocatable.scalar.get(name, 0), requested.scalar.get(name, 0)
            if alloc:
                out.append((used + pod_request, alloc, weight))
        return out

    def score(self, node_info: NodeInfo, pod_requests: Sequence[int]) -> int:
        return self.scorer(self.amounts(node_info, pod_requests))


class _FitRequest:
    """What Filter checks, computed once per pod: the requested amounts, ignored scalars already dropped."""

    __slots__ = ("empty", "ephemeral_storage", "memory", "milli_cpu", "scalars")

    def __init__(self, requests: Resources, checked_scalars: tuple[tuple[str, int], ...]) -> None:
        self.milli_cpu = requests.milli_cpu
        self.memory = requests.memory
        self.ephemeral_storage = requests.ephemeral_storage
        self.scalars = checked_scalars
        self.empty = not (self.milli_cpu or self.memory or self.ephemeral_storage or any(requests.scalar.values()))


def _scorer_for(strategy: Mapping[str, Any]) -> Callable[[Amounts], int]:
    kind = strategy.get("type") or LEAST_ALLOCATED
    if kind == LEAST_ALLOCATED:
        return least_allocated
    if kind == MOST_ALLOCATED:
        return most_allocated
    if kind == REQUESTED_TO_CAPACITY_RATIO:
        shape = (strategy.get("requestedToCapacityRatio") or {}).get("shape")
        return requested_to_capacity_ratio(parse_shape(shape))
    raise ValueError(f"scoringStrategy.type: unsupported value {kind!r} (LeastAllocated, MostAllocated, "
                     "RequestedToCapacityRatio)")


class NodeResourcesFit:
    NAME = "NodeResourcesFit"

    def __init__(self, args: dict[str, Any] | None = None, handle: Handle | None = None) -> None:
        args = args or {}
        self.ignored_resources = frozenset(args.get("ignoredResources") or ())
        self.ignored_resource_groups = frozenset(args.get("ignoredResourceGroups") or ())
        for group in self.ignored_resource_groups:
            if "/" in group:
                raise ValueError(f"ignoredResourceGroups: {group!r} must not contain '/'")
        strategy = args.get("scoringStrategy") or {}
        self.scoring_type = strategy.get("type") or LEAST_ALLOCATED
        self.scorer = ResourceAllocationScorer(resource_specs(strategy.get("resources")), _scorer_for(strategy),
                                               use_requested=False)

    # --- filter -------------------------------------------------------------------------------------

    def _ignored(self, name: str) -> bool:
        if not is_extended_resource_name(name):
            return False
        return name in self.ignored_resources or name.split("/", 1)[0] in self.ignored_resource_groups

    def fit_request(self, pod_info: PodInfo) -> _FitRequest:
        requests = pod_info.requests
        checked = tuple(sorted((name, amount) for name, amount in requests.scalar.items()
                               if amount and not self._ignored(name)))
        return _FitRequest(requests, checked)

    def pre_filter(self, state: CycleState, pod_info: PodInfo,
                   nodes: list[NodeInfo]) -> tuple[PreFilterResult | None, Status | None]:
        state.write(PRE_FILTER_KEY, self.fit_request(pod_info))
        return None, None

    def filter(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo) -> Status | None:
        request: _FitRequest | None = state.get(PRE_FILTER_KEY)
        if request is None:  # PreFilter did not run (Kubernetes reports an error; recomputing is as good)
            request = self.fit_request(pod_info)
        allocatable = node_info.allocatable
        reasons = [TOO_MANY_PODS] if len(node_info.pods) + 1 > allocatable.allowed_pods else []
        if not request.empty:
            requested = node_info.requested
            if request.milli_cpu and request.milli_cpu > allocatable.milli_cpu - requested.milli_cpu:
                reasons.append(INSUFFICIENT_CPU)
            if request.memory and request.memory > allocatable.memory - requested.memory:
                reasons.append(INSUFFICIENT_MEMORY)
            if (request.ephemeral_storage
                    and request.ephemeral_storage > allocatable.ephemeral_storage - requested.ephemeral_storage):
                reasons.append(INSUFFICIENT_EPHEMERAL_STORAGE)
            for name, amount in request.scalars:
                if amount > allocatable.scalar.get(name, 0) - requested.scalar.get(name, 0):
                    reasons.append(f"Insufficient {name}")
        return unschedulable(*reasons) if reasons else None

    # --- score --------------------------------------------------------------------------------------

    def pre_score(self, state: CycleState, pod_info: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        state.write(PRE_SCORE_KEY, self.scorer.pod_requests(pod_info))
        return None

    def score(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo) -> int:
        pod_requests = state.get(PRE_SCORE_KEY)
        if pod_requests is None:
            pod_requests = self.scorer.pod_requests(pod_info)
        return self.scorer.score(node_info, pod_requests)

    def score_nodes(self, state: CycleState, pod_info: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        """Every node's score at once: the default LeastAllocated on cpu and memory as one tight loop
        (the same integer arithmetic as :func:`least_allocated`), anything else node by node."""
        pod_requests = state.get(PRE_SCORE_KEY) or self.scorer.pod_requests(pod_info)
        scorer = self.scorer
        if not scorer.cpu_memory_only or scorer.scorer is not least_allocated:
            return [scorer.score(node, pod_requests) for node in nodes]
        pod_cpu, pod_memory = pod_requests
        w_cpu, w_memory = scorer.weights
        w_sum = w_cpu + w_memory
        scores = []
        for node in nodes:
            allocatable, requested = node.allocatable, node.non_zero_requested
            cpu, memory = allocatable.milli_cpu, allocatable.memory
            if not cpu or not memory:
                scores.append(scorer.score(node, pod_requests))
                continue
            used_cpu, used_memory = requested.milli_cpu + pod_cpu, requested.memory + pod_memory
            total = (cpu - used_cpu) * MAX_NODE_SCORE // cpu * w_cpu if used_cpu <= cpu else 0
            if used_memory <= memory:
                total += (memory - used_memory) * MAX_NODE_SCORE // memory * w_memory
            scores.append(total // w_sum)
        return scores

    def events_to_register(self) -> list[ClusterEvent]:
        return [ClusterEvent("Pod", "Delete"), ClusterEvent("Node", "Add"),
                ClusterEvent("Node", "UpdateNodeAllocatable")]
