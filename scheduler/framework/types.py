"""What plugins read: resources as integers, pods and nodes pre-digested, the per-cycle snapshot.

Scheduling one pod asks every plugin about hundreds of nodes, so nothing on that path parses a
quantity or walks a pod spec: :class:`PodInfo` computes a pod's effective requests once (containers,
sidecars, init containers, overhead, as Kubernetes' ``PodRequests``), :class:`NodeInfo` keeps each node's
allocatable and requested totals, host ports and pods up to date as pods are added and removed, and
:class:`Snapshot` is the immutable view one scheduling cycle works on. Objects are plain API dicts;
plugins must not change them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from machinery.meta import key_of, labels_of, name_of, namespace_of, uid_of
from machinery.quantity import QuantityError, parse_quantity

Obj = dict[str, Any]

CPU, MEMORY, EPHEMERAL_STORAGE, PODS = "cpu", "memory", "ephemeral-storage", "pods"
DEFAULT_MILLI_CPU_REQUEST = 100  # what scoring assumes for a container without a cpu request
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024  # ... and without a memory request


class Resources:
    """Amounts of resources as integers: milli-CPU, bytes, a pod count, and named scalar resources."""

    __slots__ = ("allowed_pods", "ephemeral_storage", "memory", "milli_cpu", "scalar")

    def __init__(self, milli_cpu: int = 0, memory: int = 0, ephemeral_storage: int = 0, allowed_pods: int = 0,
                 scalar: dict[str, int] | None = None) -> None:
        self.milli_cpu = milli_cpu
        self.memory = memory
        self.ephemeral_storage = ephemeral_storage
        self.allowed_pods = allowed_pods
        self.scalar: dict[str, int] = scalar or {}

    @classmethod
    def from_list(cls, values: Mapping[str, Any] | None) -> Resources:
        """From a ResourceList (``{"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": "1"}``); bad values count 0."""
        res = cls()
        for name, raw in (values or {}).items():
            res.set(name, _amount(name, raw))
        return res

    def get(self, name: str) -> int:
        if name == CPU:
            return self.milli_cpu
        if name == MEMORY:
            return self.memory
        if name == EPHEMERAL_STORAGE:
            return self.ephemeral_storage
        if name == PODS:
            return self.allowed_pods
        return self.scalar.get(name, 0)

    def set(self, name: str, value: int) -> None:
        if name == CPU:
            self.milli_cpu = value
        elif name == MEMORY:
            self.memory = value
        elif name == EPHEMERAL_STORAGE:
            self.ephemeral_storage = value
        elif name == PODS:
            self.allowed_pods = value
        else:
            self.scalar[name] = value

    def names(self) -> Iterable[str]:
        yield from (CPU, MEMORY, EPHEMERAL_STORAGE)
        yield from self.scalar

    def add(self, other: Resources, sign: int = 1) -> None:
        self.milli_cpu += sign * other.milli_cpu
        self.memory += sign * other.memory
        self.ephemeral_storage += sign * other.ephemeral_storage
        for name, value in other.scalar.items():
            self.scalar[name] = self.scalar.get(name, 0) + sign * value

    def max_with(self, other: Resources) -> None:
        self.milli_cpu = max(self.milli_cpu, other.milli_cpu)
        self.memory = max(self.memory, other.memory)
        self.ephemeral_storage = max(self.ephemeral_storage, other.ephemeral_storage)
        for name, value in other.scalar.items():
            self.scalar[name] = max(self.scalar.get(name, 0), value)

    def copy(self) -> Resources:
        return Resources(self.milli_cpu, self.memory, self.ephemeral_storage, self.allowed_pods, dict(self.scalar))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Resources) and (
            self.milli_cpu, self.memory, self.ephemeral_storage, self.allowed_pods, self.scalar
        ) == (other.milli_cpu, other.memory, other.ephemeral_storage, other.allowed_pods, other.scalar)

    def __repr__(self) -> str:
        return (f"Resources(cpu={self.milli_cpu}m, memory={self.memory}, ephemeral={self.ephemeral_storage}, "
                f"pods={self.allowed_pods}, scalar={self.scalar})")


def _amount(name: str, raw: Any) -> int:
    try:
        quantity = parse_quantity(raw)
    except (QuantityError, ValueError, TypeError):
        return 0
    return quantity.scaled_value(-3) if name == CPU else quantity.value()


def _is_sidecar(container: Mapping[str, Any]) -> bool:
    return container.get("restartPolicy") == "Always"


def pod_requests(pod: Mapping[str, Any], *, non_zero: bool = False) -> Resources:
    """A pod's effective requests (resourcehelper.PodRequests).

    App containers add up; sidecars (init containers with ``restartPolicy: Always``) run alongside
    them and add up too; each regular init container runs alone after the sidecars started before
    it, so the pod needs the largest of those moments; overhead comes on top. Pod-level
    ``spec.resources.requests`` (PodLevelResources) replace the containers' sum for the resources they
    name. ``non_zero`` counts a container without a cpu/memory request as 100m / 200Mi (for scoring).
    """
    spec = pod.get("spec") or {}
    total = Resources()
    for container in spec.get("containers") or ():
        total.add(_container_requests(container, non_zero))
    sidecars = Resources()
    init_peak = Resources()
    for container in spec.get("initContainers") or ():
        requests = _container_requests(container, non_zero)
        if _is_sidecar(container):
            sidecars.add(requests)
            moment = sidecars.copy()
        else:
            moment = requests.copy()
            moment.add(sidecars)
        init_peak.max_with(moment)
    total.add(sidecars)
    total.max_with(init_peak)
    pod_level = ((spec.get("resources") or {}).get("requests")) or {}
    for name, raw in pod_level.items():
        total.set(name, _amount(name, raw))
    overhead = spec.get("overhead")
    if overhead:
        total.add(Resources.from_list(overhead))
    return total


def _container_requests(container: Mapping[str, Any], non_zero: bool) -> Resources:
    requests = Resources.from_list((container.get("resources") or {}).get("requests"))
    if non_zero:
        names = (container.get("resources") or {}).get("requests") or {}
        if CPU not in names:
            requests.milli_cpu = DEFAULT_MILLI_CPU_REQUEST
        if MEMORY not in names:
            requests.memory = DEFAULT_MEMORY_REQUEST
    return requests


@dataclass(frozen=True, slots=True)
class HostPort:
    ip: str  # "0.0.0.0" when unset
    protocol: str
    port: int

    def conflicts(self, other: HostPort) -> bool:
        wildcard = self.ip == "0.0.0.0" or other.ip == "0.0.0.0"
        return self.port == other.port and self.protocol == other.protocol and (wildcard or self.ip == other.ip)


class PodInfo:
    """A pod and what the scheduler derives from it, computed once."""

    __slots__ = ("__dict__", "key", "namespace", "pod", "uid")

    def __init__(self, pod: Obj) -> None:
        self.pod = pod
        self.key = key_of(pod)
        self.uid = uid_of(pod)
        self.namespace = namespace_of(pod)

    @property
    def name(self) -> str:
        return name_of(self.pod)

    @property
    def spec(self) -> Mapping[str, Any]:
        return self.pod.get("spec") or {}

    @property
    def labels(self) -> Mapping[str, str]:
        return labels_of(self.pod)

    @functools.cached_property
    def priority(self) -> int:
        return int(self.spec.get("priority") or 0)

    @functools.cached_property
    def requests(self) -> Resources:
        return pod_requests(self.pod)

    @functools.cached_property
    def non_zero_requests(self) -> Resources:
        return pod_requests(self.pod, non_zero=True)

    @functools.cached_property
    def host_ports(self) -> tuple[HostPort, ...]:
        ports = []
        sidecars = [c for c in self.spec.get("initContainers") or () if _is_sidecar(c)]  # run alongside the app
        for container in [*sidecars, *(self.spec.get("containers") or ())]:
            for port in container.get("ports") or ():
                if port.get("hostPort"):
                    ports.append(HostPort(port.get("hostIP") or "0.0.0.0", port.get("protocol") or "TCP",
                                          int(port["hostPort"])))
        return tuple(ports)

    @functools.cached_property
    def has_affinity(self) -> bool:
        affinity = self.spec.get("affinity") or {}
        return bool(affinity.get("podAffinity") or affinity.get("podAntiAffinity"))

    @functools.cached_property
    def has_required_anti_affinity(self) -> bool:
        anti = (self.spec.get("affinity") or {}).get("podAntiAffinity") or {}
        return bool(anti.get("requiredDuringSchedulingIgnoredDuringExecution"))

    def __repr__(self) -> str:
        return f"PodInfo({self.key})"


class NodeInfo:
    """One node and the pods on it (bound or assumed), with running totals."""

    __slots__ = ("allocatable", "generation", "image_sizes", "labels", "name", "node", "non_zero_requested", "pods",
                 "pods_with_affinity", "pods_with_required_anti_affinity", "requested", "used_ports")

    def __init__(self, node: Obj | None = None) -> None:
        self.node: Obj | None = None
        self.name = ""
        self.labels: Mapping[str, str] = {}
        self.pods: list[PodInfo] = []
        self.pods_with_affinity: list[PodInfo] = []
        self.pods_with_required_anti_affinity: list[PodInfo] = []
        self.requested = Resources()
        self.non_zero_requested = Resources()
        self.allocatable = Resources()
        self.used_ports: list[HostPort] = []
        self.image_sizes: dict[str, int] = {}  # image name (every alias) -> size in bytes
        self.generation = 0
        if node is not None:
            self.set_node(node)

    def set_node(self, node: Obj) -> None:
        self.node = node
        self.name = name_of(node)
        self.labels = labels_of(node)
        status = node.get("status") or {}
        self.allocatable = Resources.from_list(status.get("allocatable") or status.get("capacity"))
        self.image_sizes = {}
        for image in status.get("images") or ():
            for name in image.get("names") or ():
                self.image_sizes[name] = int(image.get("sizeBytes") or 0)

    def add_pod(self, pod_info: PodInfo) -> None:
        self.pods.append(pod_info)
        if pod_info.has_affinity:
            self.pods_with_affinity.append(pod_info)
        if pod_info.has_required_anti_affinity:
            self.pods_with_required_anti_affinity.append(pod_info)
        self.requested.add(pod_info.requests)
        self.non_zero_requested.add(pod_info.non_zero_requests)
        self.used_ports.extend(pod_info.host_ports)

    def remove_pod(self, pod_info: PodInfo) -> bool:
        """Remove the pod with this uid; False when it was not here."""
        for i, existing in enumerate(self.pods):
            if existing.uid == pod_info.uid:
                del self.pods[i]
                self.pods_with_affinity = [p for p in self.pods_with_affinity if p.uid != pod_info.uid]
                self.pods_with_required_anti_affinity = [p for p in self.pods_with_required_anti_affinity
                                                         if p.uid != pod_info.uid]
                self.requested.add(existing.requests, -1)
                self.non_zero_requested.add(existing.non_zero_requests, -1)
                for port in existing.host_ports:
                    self.used_ports.remove(port)
                return True
        return False

    def clone(self) -> NodeInfo:
        """A copy whose pod lists and totals can change without affecting this one (for preemption dry runs)."""
        copy = NodeInfo.__new__(NodeInfo)
        copy.node = self.node
        copy.name = self.name
        copy.labels = self.labels
        copy.pods = list(self.pods)
        copy.pods_with_affinity = list(self.pods_with_affinity)
        copy.pods_with_required_anti_affinity = list(self.pods_with_required_anti_affinity)
        copy.requested = self.requested.copy()
        copy.non_zero_requested = self.non_zero_requested.copy()
        copy.allocatable = self.allocatable
        copy.used_ports = list(self.used_ports)
        copy.image_sizes = self.image_sizes
        copy.generation = self.generation
        return copy

    def __repr__(self) -> str:
        return f"NodeInfo({self.name}, pods={len(self.pods)})"


class Snapshot:
    """The nodes one scheduling cycle sees, in a stable order.

    It shares :class:`NodeInfo` objects with the scheduler cache: a cycle's Filter/Score phase runs
    without awaiting, so nothing changes underneath it; work that awaits (preemption) clones what it changes.
    """

    def __init__(self, node_infos: list[NodeInfo] | None = None, by_name: dict[str, NodeInfo] | None = None) -> None:
        self.node_infos: list[NodeInfo] = node_infos if node_infos is not None else []
        self._by_name = by_name if by_name is not None else {n.name: n for n in self.node_infos}

    def get(self, name: str) -> NodeInfo | None:
        return self._by_name.get(name)

    def __len__(self) -> int:
        return len(self.node_infos)

    @functools.cached_property
    def have_pods_with_affinity(self) -> list[NodeInfo]:
        return [n for n in self.node_infos if n.pods_with_affinity]

    @functools.cached_property
    def have_pods_with_required_anti_affinity(self) -> list[NodeInfo]:
        return [n for n in self.node_infos if n.pods_with_required_anti_affinity]

    @functools.cached_property
    def image_node_counts(self) -> dict[str, int]:
        """How many nodes have each image (by every name the nodes report)."""
        counts: dict[str, int] = {}
        for info in self.node_infos:
            for image in info.image_sizes:
                counts[image] = counts.get(image, 0) + 1
        return counts


@dataclass(eq=False)
class QueuedPodInfo:
    """A pod waiting in the scheduling queue, with its scheduling history."""

    pod_info: PodInfo
    timestamp: float  # when it (re-)entered the queue (monotonic)
    attempts: int = 0
    initial_attempt_timestamp: float | None = None
    unschedulable_plugins: set[str] = field(default_factory=set)
    pending_plugins: set[str] = field(default_factory=set)

    @property
    def pod(self) -> Obj:
        return self.pod_info.pod
