"""The Node's status as the kubelet writes it: capacity/allocatable, nodeInfo, addresses, images, conditions.

Pure functions from host facts, the runtime's state and the previous status to the new one, plus
:func:`status_patch`, which decides what changed. A status write is needed when anything but the
conditions' heartbeat times differs; ``lastTransitionTime`` moves only when a condition's status does.

Simplifications: hugepages capacity is always ``"0"`` (the machine's pools are not read); Ready depends on
the runtime only (no PLEG, storage or shutdown-manager checks); ``status.declaredFeatures`` (alpha in 1.35,
off by default) is not written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubelet.node.config import NodeConfig
from kubelet.node.host import FsStats, MemoryStats, SystemIdentity
from kubelet.node.pressure import DISK_PRESSURE, MEMORY_PRESSURE, PID_PRESSURE
from kubelet.node.runtime_state import RuntimeState
from machinery.quantity import BINARY_SI, DECIMAL_SI, Quantity, parse_quantity

KUBELET_VERSION = "v1.35.0-kubemini"  # semver-valid, and what our API server's /version says
READY = "Ready"
CONDITION_TYPES = (MEMORY_PRESSURE, DISK_PRESSURE, PID_PRESSURE, READY)
EVICTION_MEMORY_AVAILABLE = 100 * 1024 * 1024  # hard eviction threshold held back from allocatable memory
EVICTION_NODEFS_FRACTION = 0.10  # nodefs.available<10%, held back from allocatable ephemeral-storage
OWNED_STATUS_FIELDS = ("capacity", "allocatable", "conditions", "addresses", "daemonEndpoints", "nodeInfo",
                       "images", "runtimeHandlers", "features")

# condition type → (reason, message) when False (no pressure / not ready) and when True
_PRESSURE_TEXT = {
    MEMORY_PRESSURE: (("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                      ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available")),
    DISK_PRESSURE: (("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    ("KubeletHasDiskPressure", "kubelet has disk pressure")),
    PID_PRESSURE: (("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                   ("KubeletHasInsufficientPID", "kubelet has insufficient PID available")),
}


@dataclass(frozen=True)
class Condition:
    """A node condition without its times."""

    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str


# --- resources ----------------------------------------------------------------------------------------


def capacity(config: NodeConfig, cpus: int, memory: MemoryStats, nodefs: FsStats | None) -> dict[str, str]:
    """cpu, memory, ephemeral-storage, pods and hugepages, then the configured overrides on top."""
    result = {
        "cpu": str(Quantity.from_int(cpus, DECIMAL_SI)),
        "memory": str(Quantity.from_int(memory.total_bytes, BINARY_SI)),
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "pods": str(config.max_pods),
    }
    if nodefs is not None:
        result["ephemeral-storage"] = str(Quantity.from_int(nodefs.capacity_bytes, BINARY_SI))
    result.update({name: str(parse_quantity(value)) for name, value in config.capacity_overrides.items()})
    return result


def allocatable(capacity_: Mapping[str, str], system_reserved: Mapping[str, str]) -> dict[str, str]:
    """capacity - system-reserved - hard eviction thresholds (memory 100Mi, nodefs 10%), never below zero."""
    result: dict[str, str] = {}
    for name, value in capacity_.items():
        total = parse_quantity(value)
        held = parse_quantity(system_reserved.get(name, "0"))
        if name == "memory":
            held = held + Quantity.from_int(EVICTION_MEMORY_AVAILABLE, BINARY_SI)
        elif name == "ephemeral-storage":
            held = held + Quantity.from_int(int(total.value() * EVICTION_NODEFS_FRACTION), BINARY_SI)
        left = total - held
        result[name] = str(left if left.sign() > 0 else Quantity.from_int(0, total.format))
    return result


# --- identity and addresses ----------------------------------------------------------------------------


def node_info(identity: SystemIdentity, runtime_version: str, swap_bytes: int) -> dict[str, Any]:
    return {
        "machineID": identity.machine_id,
        "systemUUID": identity.system_uuid,
        "bootID": identity.boot_id,
        "kernelVersion": identity.kernel_version,
        "osImage": identity.os_image,
        "containerRuntimeVersion": runtime_version,
        "kubeletVersion": KUBELET_VERSION,
        "kubeProxyVersion": "",
        "operatingSystem": "linux",
        "architecture": identity.architecture,
        "swap": {"capacity": swap_bytes},
    }


def addresses(node_name: str, node_ip: str) -> list[dict[str, str]]:
    return [{"type": "InternalIP", "address": node_ip}, {"type": "Hostname", "address": node_name}]


# --- conditions ---------------------------------------------------------------------------------------


def pressure_condition(condition_type: str, under_pressure: bool) -> Condition:
    reason, message = _PRESSURE_TEXT[condition_type][under_pressure]
    return Condition(condition_type, "True" if under_pressure else "False", reason, message)


READY_CONDITION = Condition(READY, "True", "KubeletReady", "kubelet is posting ready status")


def healthy_conditions() -> list[Condition]:
    """The conditions of a node without pressure whose runtime is ready, in the kubelet's order."""
    return [*(pressure_condition(kind, False) for kind in CONDITION_TYPES if kind != READY), READY_CONDITION]


def ready_condition(runtime: RuntimeState) -> Condition:
    """Ready follows the runtime only (like Kubernetes, not the pressure conditions)."""
    problems = runtime_problems(runtime)
    if not problems:
        return READY_CONDITION
    message = problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
    return Condition(READY, "False", "KubeletNotReady", message)


def runtime_problems(runtime: RuntimeState) -> list[str]:
    """Why the runtime keeps the node from being Ready, in the kubelet's words (empty: it does not)."""
    if not runtime.reachable:
        return ["container runtime is down"]
    problems = []
    runtime_ready = runtime.conditions.get("RuntimeReady")
    if runtime_ready is None:
        problems.append("container runtime status check may not have completed yet")
    elif not runtime_ready.status:
        problems.append("container runtime not ready: " + _describe("RuntimeReady", runtime_ready))
    network_ready = runtime.conditions.get("NetworkReady")
    if network_ready is None or not network_ready.status:
        described = _describe("NetworkReady", network_ready) if network_ready else "NetworkReady=false"
        problems.append("container runtime network not ready: " + described)
    return problems


def _describe(name: str, condition) -> str:
    return f"{name}={str(condition.status).lower()} reason:{condition.reason} message:{condition.message}"


def merge_conditions(previous: list[dict] | None, desired: list[Condition], now: str) -> list[dict]:
    """The new conditions: heartbeat ``now``; transition time kept unless the status changed."""
    before = {c.get("type"): c for c in previous or () if isinstance(c, dict)}
    merged = []
    for condition in desired:
        old = before.get(condition.type)
        transition = old.get("lastTransitionTime") if old and old.get("status") == condition.status else None
        merged.append({"type": condition.type, "status": condition.status, "lastHeartbeatTime": now,
                       "lastTransitionTime": transition or now, "reason": condition.reason,
                       "message": condition.message})
    return merged


def transitions(previous: list[dict] | None, current: list[dict]) -> list[dict]:
    """The conditions in ``current`` whose status differs from ``previous`` (or that are new)."""
    before = {c.get("type"): c.get("status") for c in previous or () if isinstance(c, dict)}
    return [c for c in current if before.get(c["type"]) != c["status"]]


# --- change detection ---------------------------------------------------------------------------------


def status_patch(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any]:
    """The part of ``desired`` that differs from ``current`` ignoring heartbeat times (empty: no change).

    Only the fields the kubelet owns are compared (others, e.g. ``volumesAttached``, belong to controllers);
    maps are diffed key by key with removed keys set to ``None``; conditions, when they changed, are sent
    whole (a strategic merge patch merges them by type).
    """
    current = current or {}
    patch: dict[str, Any] = {}
    for name in OWNED_STATUS_FIELDS:
        if name not in desired:
            continue
        old, new = current.get(name), desired[name]
        if name == "conditions":
            if _without_heartbeats(old) != _without_heartbeats(new):
                patch[name] = new
        elif isinstance(old, dict) and isinstance(new, dict):
            diff = _dict_diff(old, new)
            if diff:
                patch[name] = diff
        elif old != new:
            patch[name] = new
    return patch


def _without_heartbeats(conditions: Any) -> dict[str, tuple]:
    return {c.get("type"): (c.get("status"), c.get("reason"), c.get("message"))
            for c in conditions or () if isinstance(c, dict) and c.get("type") in CONDITION_TYPES}


def _dict_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    diff: dict[str, Any] = {key: None for key in old.keys() - new.keys()}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(before, dict) and isinstance(value, dict):
            nested = _dict_diff(before, value)
            if nested:
                diff[key] = nested
        elif key not in old or before != value:
            diff[key] = value
    return diff
