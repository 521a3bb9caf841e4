"""A pod's quality-of-service class, computed once at creation as Kubernetes does.

``status.qosClass`` decides eviction order and cgroup placement on the kubelet. The rule: pods with
no cpu/memory requests or limits are BestEffort; pods whose every container (init containers
included) has cpu and memory limits, with summed requests equal to summed limits, are Guaranteed;
everything else is Burstable. When the pod sets pod-level ``spec.resources``, those decide alone.
"""

from __future__ import annotations

from typing import Any

from apiserver.registry.core.common import as_dict, dicts, quantity
from machinery.quantity import Quantity

QOS_RESOURCES = ("cpu", "memory")
GUARANTEED = "Guaranteed"
BURSTABLE = "Burstable"
BEST_EFFORT = "BestEffort"


def _add_positive(totals: dict[str, Quantity], resources: Any) -> set[str]:
    """Add the positive cpu/memory values into ``totals``; return which were found."""
    found = set()
    for name, value in as_dict(resources).items():
        parsed = quantity(value)
        if name not in QOS_RESOURCES or parsed is None or parsed.sign() <= 0:
            continue
        found.add(name)
        totals[name] = totals[name] + parsed if name in totals else parsed
    return found


def pod_qos_class(pod: dict[str, Any]) -> str:
    spec = as_dict(pod.get("spec"))
    requests: dict[str, Quantity] = {}
    limits: dict[str, Quantity] = {}
    guaranteed = True
    pod_level = spec.get("resources")
    if isinstance(pod_level, dict):
        _add_positive(requests, pod_level.get("requests"))
        if as_dict(pod_level.get("limits")):
            found = _add_positive(limits, pod_level.get("limits"))
            guaranteed = found >= set(QOS_RESOURCES)
    else:
        for kind in ("containers", "initContainers"):
            for _, ctr in dicts(spec.get(kind)):
                resources = as_dict(ctr.get("resources"))
                _add_positive(requests, resources.get("requests"))
                if not _add_positive(limits, resources.get("limits")) >= set(QOS_RESOURCES):
                    guaranteed = False
    if not requests and not limits:
        return BEST_EFFORT
    matched = all(name in limits and limits[name] == req for name, req in requests.items())
    if guaranteed and matched and len(requests) == len(limits):
        return GUARANTEED
    return BURSTABLE
