"""Pod facts every workload controller needs: active, ready, available, and which pod to delete first.

These mirror Kubernetes' ``podutil``/``controller_utils`` rules so that replica counts, readiness
and scale-down choices agree with what users see in ``kubectl get``: a pod is *active* until it
has succeeded, failed or started terminating; *ready* when its Ready condition is True;
*available* once it has been ready for ``minReadySeconds``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from machinery.meta import is_being_deleted, parse_rfc3339

Pod = Mapping[str, Any]

_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


is_terminating = is_being_deleted  # a pod being deleted is what kubectl shows as Terminating


def is_active(pod: Pod) -> bool:
    """Not finished and not being deleted (controller.IsPodActive)."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not is_terminating(pod)


def ready_condition(pod: Pod) -> Mapping[str, Any] | None:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond
    return None


def is_ready(pod: Pod) -> bool:
    cond = ready_condition(pod)
    return cond is not None and cond.get("status") == "True"


def ready_since(pod: Pod) -> datetime | None:
    cond = ready_condition(pod)
    if cond is None or cond.get("status") != "True" or not cond.get("lastTransitionTime"):
        return None
    return parse_rfc3339(cond["lastTransitionTime"])


def is_available(pod: Pod, min_ready_seconds: int, now: datetime) -> bool:
    """Ready for at least ``min_ready_seconds`` (podutil.IsPodAvailable)."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and (now - since).total_seconds() >= min_ready_seconds


def restart_count(pod: Pod) -> int:
    return sum(int(s.get("restartCount") or 0) for s in (pod.get("status") or {}).get("containerStatuses") or ())


DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"


def deletion_cost(pod: Pod) -> int:
    try:
        return int(((pod.get("metadata") or {}).get("annotations") or {}).get(DELETION_COST_ANNOTATION, 0))
    except ValueError:
        return 0


def deletion_order(pods: Iterable[Pod], pods_per_node: Mapping[str, int] | None = None) -> list[Pod]:
    """Pods sorted so the ones to delete first come first (ActivePodsWithRanks' ordering).

    Unassigned before assigned; Pending before Unknown before Running; not ready before ready;
    lower pod-deletion-cost first; more related pods on the same node first; ready for a shorter
    time first; more restarts first; newer before older.
    """
    per_node = pods_per_node or {}

    def rank(pod: Pod) -> tuple:
        spec, status, meta = pod.get("spec") or {}, pod.get("status") or {}, pod.get("metadata") or {}
        node = spec.get("nodeName") or ""
        since = ready_since(pod)
        return (
            1 if node else 0,
            _PHASE_RANK.get(status.get("phase") or "Pending", 0),
            1 if is_ready(pod) else 0,
            deletion_cost(pod),
            -per_node.get(node, 0) if node else 0,
            -(since.timestamp() if since else 0.0),
            -restart_count(pod),
            _negated_time(meta.get("creationTimestamp")),
        )

    return sorted(pods, key=rank)


def _negated_time(stamp: str | None) -> float:
    return -parse_rfc3339(stamp).timestamp() if stamp else 0.0
