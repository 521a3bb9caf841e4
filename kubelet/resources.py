"""From a pod's requests and limits to what the runtime enforces: QoS cgroup, CRI linux resources.

The kubelet turns each container's (allocated) resources into ``cri.LinuxContainerResources`` when it
creates the container and again when it resizes it in place, places the pod's cgroup under the QoS
tier of its class, and sums a pod's effective requests (to decide whether a resize fits the node) and
limits (to size a memory-backed emptyDir).
Everything here is pure: no I/O, never mutates its arguments.

Simplified relative to Kubernetes (kubelet ``kuberuntime_container_linux.go`` and ``qos/policy.go``):

- cgroupfs paths only (no systemd slice names); the pod cgroup is ``/kubepods[/<tier>]/pod<uid>``;
- a node-critical pod is one with ``priorityClassName: system-node-critical`` (static and mirror pods
  are not special-cased);
- pod-level ``spec.resources`` do not feed the OOM score (Kubernetes spreads the pod's memory request
  over its containers there);
- only the hugepage sizes the container names get a limit (Kubernetes also sends 0 for every other
  size the node supports);
- ``cpu_period``/``cpu_quota`` are sent only with a cpu limit (the kubelet always sends the period).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from machinery.podspec import is_sidecar
from machinery.qos import BEST_EFFORT, BURSTABLE, GUARANTEED, pod_qos_class
from machinery.quantity import Quantity, parse_quantity_or_none
from proto.cri import api_pb2 as cri

CGROUP_ROOT = "/kubepods"
CPU_PERIOD_US = 100_000
MIN_CPU_SHARES = 2
MAX_CPU_SHARES = 262_144
MIN_CPU_QUOTA_US = 1_000
GUARANTEED_OOM_SCORE_ADJ = -997
BEST_EFFORT_OOM_SCORE_ADJ = 1000
NODE_CRITICAL_PRIORITY_CLASS = "system-node-critical"
HUGEPAGES_PREFIX = "hugepages-"

Obj = Mapping[str, Any]


# --- small tolerant accessors ---------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


# --- QoS and cgroups --------------------------------------------------------------------------------


def qos_class(pod: Obj) -> str:
    """``status.qosClass`` when the API server set it (it never changes), else computed from the spec."""
    stored = _dict(pod.get("status")).get("qosClass")
    if stored in (GUARANTEED, BURSTABLE, BEST_EFFORT):
        return stored
    return pod_qos_class(pod)


def pod_cgroup_parent(pod: Obj) -> str:
    """The pod's cgroupfs parent: Guaranteed pods sit directly under ``/kubepods``, the others under
    their QoS tier (``/kubepods/burstable``, ``/kubepods/besteffort``)."""
    uid = str(_dict(pod.get("metadata")).get("uid") or "")
    tier = {GUARANTEED: "", BURSTABLE: "/burstable", BEST_EFFORT: "/besteffort"}[qos_class(pod)]
    return f"{CGROUP_ROOT}{tier}/pod{uid}"


# --- CRI linux resources ------------------------------------------------------------------------------


def milli_cpu_to_shares(milli_cpu: int) -> int:
    """cpu.shares for a cpu request: 1024 per cpu, at least 2 (also for no request), at most 262144."""
    if milli_cpu <= 0:
        return MIN_CPU_SHARES
    return max(MIN_CPU_SHARES, min(MAX_CPU_SHARES, milli_cpu * 1024 // 1000))


def milli_cpu_to_quota(milli_cpu: int, period: int = CPU_PERIOD_US) -> int:
    """cfs quota for a cpu limit over ``period`` µs; 0 (unlimited) without a limit, at least 1000 µs."""
    if milli_cpu <= 0:
        return 0
    return max(MIN_CPU_QUOTA_US, milli_cpu * period // 1000)


def container_resources(
    pod: Obj,
    container: Obj,
    *,
    node_memory_capacity: int,
    resources: Mapping[str, Any] | None = None,
) -> cri.LinuxContainerResources:
    """The CRI resources for ``container`` of ``pod``.

    ``resources`` is the container's ``{requests, limits}`` to apply — the kubelet passes the
    *allocated* ones — and defaults to ``container["resources"]``. A cpu request defaults to the cpu
    limit (as the API server defaults it). ``oom_score_adj`` is the kubelet's value even where the
    runtime has to clamp it.
    """
    res = _dict(container.get("resources") if resources is None else resources)
    requests, limits = _dict(res.get("requests")), _dict(res.get("limits"))
    cpu_request = parse_quantity_or_none(requests.get("cpu"))
    cpu_limit = parse_quantity_or_none(limits.get("cpu"))
    if (cpu_request is None or cpu_request.is_zero()) and cpu_limit is not None:
        cpu_request = cpu_limit
    out = cri.LinuxContainerResources(
        cpu_shares=milli_cpu_to_shares(cpu_request.milli_value() if cpu_request is not None else 0),
        oom_score_adj=oom_score_adj(pod, container, node_memory_capacity=node_memory_capacity,
                                    memory_request=_memory_value(requests)),
    )
    if cpu_limit is not None and cpu_limit.milli_value() > 0:
        out.cpu_period = CPU_PERIOD_US
        out.cpu_quota = milli_cpu_to_quota(cpu_limit.milli_value())
    memory_limit = _memory_value(limits)
    if memory_limit > 0:
        out.memory_limit_in_bytes = memory_limit
        out.memory_swap_limit_in_bytes = memory_limit  # cgroup v1 without swap: memsw = memory limit
    out.hugepage_limits.extend(hugepage_limits(limits))
    return out


def _memory_value(resource_list: Mapping[str, Any]) -> int:
    parsed = parse_quantity_or_none(resource_list.get("memory"))
    return max(parsed.value(), 0) if parsed is not None else 0


def hugepage_limits(limits: Mapping[str, Any]) -> list[cri.HugepageLimit]:
    """``hugepages-2Mi: 4Mi`` → ``HugepageLimit(page_size="2MB", limit=4194304)``; bad sizes skipped."""
    out = []
    for name, value in sorted(limits.items()):
        if not name.startswith(HUGEPAGES_PREFIX):
            continue
        size, amount = parse_quantity_or_none(name[len(HUGEPAGES_PREFIX):]), parse_quantity_or_none(value)
        if size is None or amount is None or size.value() <= 0:
            continue
        out.append(cri.HugepageLimit(page_size=hugepage_size_name(size.value()), limit=max(amount.value(), 0)))
    return out


def hugepage_size_name(size_bytes: int) -> str:
    """The cgroup's name for a page size: 2097152 → "2MB", 1073741824 → "1GB", 65536 → "64KB"."""
    units = ["B", "KB", "MB", "GB", "TB", "PB"]
    index = 0
    while size_bytes >= 1024 and size_bytes % 1024 == 0 and index < len(units) - 1:
        size_bytes //= 1024
        index += 1
    return f"{size_bytes}{units[index]}"


def oom_score_adj(pod: Obj, container: Obj, *, node_memory_capacity: int, memory_request: int | None = None) -> int:
    """The kubelet's OOM score adjustment (``GetContainerOOMScoreAdjust``).

    Node-critical and Guaranteed pods get -997, BestEffort 1000; a Burstable container gets
    ``1000 - 1000*memoryRequest/nodeMemory`` kept within [3, 999] so it dies after BestEffort and
    before Guaranteed. A sidecar never scores above the pod's smallest-request app container.
    ``memory_request`` defaults to the container's spec request.
    """
    if _dict(pod.get("spec")).get("priorityClassName") == NODE_CRITICAL_PRIORITY_CLASS:
        return GUARANTEED_OOM_SCORE_ADJ
    qos = qos_class(pod)
    if qos == GUARANTEED:
        return GUARANTEED_OOM_SCORE_ADJ
    if qos == BEST_EFFORT:
        return BEST_EFFORT_OOM_SCORE_ADJ
    if memory_request is None:
        memory_request = _memory_value(_dict(_dict(container.get("resources")).get("requests")))
    capacity = max(node_memory_capacity, 1)
    score = 1000 - (1000 * memory_request) // capacity
    if is_sidecar(container) and memory_request:
        smallest = _smallest_app_memory_request(pod)
        if smallest:
            score = min(score, 1000 - (1000 * smallest) // capacity)
    floor = 1000 + GUARANTEED_OOM_SCORE_ADJ
    if score < floor:
        return floor
    return BEST_EFFORT_OOM_SCORE_ADJ - 1 if score >= BEST_EFFORT_OOM_SCORE_ADJ else score


def _smallest_app_memory_request(pod: Obj) -> int:
    """The smallest app-container memory request (0 when any app container has none)."""
    values = [_memory_value(_dict(_dict(c.get("resources")).get("requests")))
              for c in _items(_dict(pod.get("spec")).get("containers"))]
    return min(values) if values else 0


# --- effective pod requests -----------------------------------------------------------------------------


def _add_into(total: dict[str, Quantity], resource_list: Any) -> None:
    for name, value in _dict(resource_list).items():
        parsed = parse_quantity_or_none(value)
        if parsed is not None:
            total[name] = total[name] + parsed if name in total else parsed


def _max_into(total: dict[str, Quantity], other: Mapping[str, Quantity]) -> None:
    for name, value in other.items():
        if name not in total or value > total[name]:
            total[name] = value


def _list_of(container: Obj, overrides: Mapping[str, Mapping[str, Any]] | None, key: str) -> Any:
    if overrides is not None and container.get("name") in overrides:
        return _dict(overrides[container["name"]]).get(key)
    return _dict(container.get("resources")).get(key)


def pod_requests(pod: Obj, resources: Mapping[str, Mapping[str, Any]] | None = None, *,
                 key: str = "requests") -> dict[str, Quantity]:
    """The pod's effective requests, as the scheduler computes them (``resourcehelper.PodRequests``), or with
    ``key="limits"`` its effective limits (``PodLimits``, what the pod's cgroup is sized from).

    App containers and sidecars add up; each regular init container runs beside the sidecars started
    before it, so the pod needs the largest such moment if that is more; pod-level
    ``spec.resources[key]`` replace the containers' figure for the resources they name; overhead
    comes on top (for limits only on the resources that have one). ``resources`` (container name →
    ``{requests, limits}``) overrides the spec's, e.g. with the allocated resources. A container without
    a value for a resource adds nothing: for limits the caller decides whether that means "unlimited".
    """
    if key not in ("requests", "limits"):
        raise ValueError(f"pod_requests: key must be 'requests' or 'limits', not {key!r}")
    spec = _dict(pod.get("spec"))
    total: dict[str, Quantity] = {}
    for container in _items(spec.get("containers")):
        _add_into(total, _list_of(container, resources, key))
    sidecars: dict[str, Quantity] = {}
    init_peak: dict[str, Quantity] = {}
    for container in _items(spec.get("initContainers")):
        values = _list_of(container, resources, key)
        if is_sidecar(container):
            _add_into(sidecars, values)
            moment = dict(sidecars)
        else:
            moment = dict(sidecars)
            _add_into(moment, values)
        _max_into(init_peak, moment)
    for name, value in sidecars.items():
        total[name] = total[name] + value if name in total else value
    _max_into(total, init_peak)
    for name, value in _dict(_dict(spec.get("resources")).get(key)).items():
        parsed = parse_quantity_or_none(value)
        if parsed is not None:
            total[name] = parsed
    overhead = _dict(spec.get("overhead"))
    _add_into(total, overhead if key == "requests" else {n: v for n, v in overhead.items() if n in total})
    return total


def scaled(name: str, quantity: Quantity | None) -> int:
    """The integer the kubelet compares for resource ``name``: cpu in millicores, everything else in whole units
    (bytes for memory); 0 for None."""
    if quantity is None:
        return 0
    return quantity.milli_value() if name == "cpu" else quantity.value()
