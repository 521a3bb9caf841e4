"""Taints and tolerations: whether a pod tolerates a node's taints (shared by the scheduler and the kubelet)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

NO_SCHEDULE, PREFER_NO_SCHEDULE, NO_EXECUTE = "NoSchedule", "PreferNoSchedule", "NoExecute"
DO_NOT_SCHEDULE_EFFECTS = frozenset((NO_SCHEDULE, NO_EXECUTE))

Obj = Mapping[str, Any]


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Whether one toleration matches one taint (an empty effect or key matches any; Exists ignores the value)."""
    effect = toleration.get("effect") or ""
    if effect and effect != (taint.get("effect") or ""):
        return False
    key = toleration.get("key") or ""
    if key and key != (taint.get("key") or ""):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False  # Gt/Lt (alpha TaintTolerationComparisonOperators) are not supported


def tolerations_tolerate(tolerations: Iterable[Obj], taint: Obj) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


def find_untolerated_taint(taints: Iterable[Obj] | None, tolerations: Sequence[Obj],
                           effects: frozenset[str] = DO_NOT_SCHEDULE_EFFECTS) -> Obj | None:
    """The first taint with one of ``effects`` that no toleration matches (v1helper.FindMatchingUntoleratedTaint)."""
    for taint in taints or ():
        if taint.get("effect") in effects and not tolerations_tolerate(tolerations, taint):
            return taint
    return None
