"""A pod's quality-of-service class, computed the one way every component needs it.

The API server stamps ``status.qosClass`` at creation and refuses a resize that would change it; the
kubelet places the pod's cgroup and sets its OOM score from it. Both use this module so they can
never disagree. The rule (Kubernetes' ``ComputePodQOS``): pods with no cpu/memory requests or limits
are BestEffort; pods whose every container (init containers included) has cpu and memory limits,
with summed requests equal to summed limits, are Guaranteed; everything else is Burstable. When the
pod sets pod-level ``spec.resources``, those decide alone.

Pure and tolerant: a wrong type or an unparseable quantity counts as absent, never raises.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from machinery.quantity import Quantity, parse_quantity_or_none

QOS_RESOURCES = ("cpu", "memory")
GUARANTEED = "Guaranteed"
BURSTABLE = "Burstable"
BEST_EFFORT = "BestEffort"


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _containers(spec: Mapping[str, Any], kind: str) -> Iterator[dict[str, Any]]:
    items = spec.get(kind)
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict):
            yield item


def _add_positive(totals: dict[str, Quantity], resources: Any) -> set[str]:
    """Add the positive cpu/memory values into ``totals``; return which were found."""
    found = set()
    for name, value in _as_dict(resources).items():
        parsed = parse_quantity_or_none(value)
        if name not in QOS_RESOURCES or parsed is None or parsed.sign() <= 0:
            continue
        found.add(name)
        totals[name] = totals[name] + parsed if name in totals else parsed
    return found


def pod_qos_class(pod: Mapping[str, Any]) -> str:
    """The QoS class the pod's spec gives it (ignores ``status.qosClass``). Must not mutate ``pod``."""
    spec = _as_dict(pod.get("spec"))
    requests: dict[str, Quantity] = {}
    limits: dict[str, Quantity] = {}
    guaranteed = True
    pod_level = spec.get("resources")
    if isinstance(pod_level, dict):
        _add_positive(requests, pod_level.get("requests"))
        if _as_dict(pod_level.get("limits")):
            found = _add_positive(limits, pod_level.get("limits"))
            guaranteed = found >= set(QOS_RESOURCES)
    else:
        for kind in ("containers", "initContainers"):
            for ctr in _containers(spec, kind):
                resources = _as_dict(ctr.get("resources"))
                _add_positive(requests, resources.get("requests"))
                if not _add_positive(limits, resources.get("limits")) >= set(QOS_RESOURCES):
                    guaranteed = False
    if not requests and not limits:
        return BEST_EFFORT
    matched = all(name in limits and limits[name] == req for name, req in requests.items())
    if guaranteed and matched and len(requests) == len(limits):
        return GUARANTEED
    return BURSTABLE
