"""Taint-based eviction rules: which pods a node's NoExecute taints remove, and when.

A pod on a node with a NoExecute taint it does not tolerate is evicted at once; a pod that tolerates every
NoExecute taint with some ``tolerationSeconds`` is evicted that many seconds (the smallest of them) after the
taint was added; a pod tolerating them forever stays. Kubernetes' taint-eviction controller counts from the
moment it noticed the pod on the tainted node; here the taint's ``timeAdded`` is used, which survives a
controller restart (a taint without one counts from when this controller first saw it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from machinery.taints import NO_EXECUTE, tolerates

Obj = dict[str, Any]

DISRUPTION_TARGET = "DisruptionTarget"
EVICTION_REASON = "DeletionByTaintManager"
EVICTION_MESSAGE = "Taint manager: deleting due to NoExecute taint"


def no_execute_taints(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [t for t in (node.get("spec") or {}).get("taints") or () if t.get("effect") == NO_EXECUTE]


def toleration_window(pod: Mapping[str, Any], taints: Iterable[Mapping[str, Any]]) -> float:
    """Seconds the pod may stay on a node with ``taints`` (NoExecute ones): 0 when one is not tolerated,
    ``inf`` when all are tolerated forever, else the smallest tolerationSeconds of the tolerations used."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or ()
    window = float("inf")
    for taint in taints:
        used = [t for t in tolerations if tolerates(t, taint)]
        if not used:
            return 0.0
        for toleration in used:
            seconds = toleration.get("tolerationSeconds")
            if seconds is not None:
                window = min(window, max(0.0, float(seconds)))
    return window


def eviction_due(pod: Mapping[str, Any], taints: list[Mapping[str, Any]], added: datetime,
                 now: datetime) -> float | None:
    """None when the pod is never evicted for these taints; else seconds until it is (≤ 0: now).

    ``added`` is when the newest of the taints appeared (the window runs from then).
    """
    if not taints:
        return None
    window = toleration_window(pod, taints)
    if window == float("inf"):
        return None
    return window - (now - added).total_seconds()


def disruption_condition(now_stamp: str) -> Obj:
    return {"type": DISRUPTION_TARGET, "status": "True", "reason": EVICTION_REASON,
            "message": EVICTION_MESSAGE, "lastTransitionTime": now_stamp}
