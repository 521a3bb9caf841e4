"""A Deployment's status: counts from its ReplicaSets, and the Available/Progressing conditions.

What ``kubectl rollout status`` and ``kubectl get deployment`` read. Counts are sums over the
ReplicaSets' statuses (``updatedReplicas`` is the new RS's); ``Available`` says whether at least
``replicas - maxUnavailable`` pods are available; ``Progressing`` tells a rollout's story —
NewReplicaSetCreated / FoundNewReplicaSet / ReplicaSetUpdated while it moves (``lastUpdateTime`` is
bumped at every sign of progress), NewReplicaSetAvailable once complete, ProgressDeadlineExceeded when
``progressDeadlineSeconds`` passed without progress. Mirrors ``deployment/progress.go`` and
``calculateStatus`` in ``sync.go``; the functions here are pure, the writing is :mod:`.sync`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controllers.deployment import util
from machinery.meta import name_of, now_rfc3339, parse_rfc3339

Obj = dict[str, Any]

#: counters written only when non-zero (Go's ``omitempty`` on int32 fields)
_OMIT_WHEN_ZERO = ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                   "unavailableReplicas")


def calculate_status(all_rss: list[Obj], new_rs: Obj | None, d: Mapping[str, Any], now: datetime) -> Obj:
    """calculateStatus: the counts, the old conditions and an up-to-date Available condition."""
    old = d.get("status") or {}
    available = util.available_replica_count(all_rss)
    status: Obj = {
        "observedGeneration": int((d.get("metadata") or {}).get("generation") or 0),
        "replicas": util.actual_replica_count(all_rss),
        "updatedReplicas": util.actual_replica_count([new_rs]),
        "readyReplicas": util.ready_replica_count(all_rss),
        "availableReplicas": available,
        "unavailableReplicas": max(0, util.replica_count(all_rss) - available),
    }
    status = {k: v for k, v in status.items() if v}
    terminating = util.terminating_replica_count(all_rss)
    if terminating is not None:
        status["terminatingReplicas"] = terminating
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = [dict(c) for c in old["conditions"]]
    stamp = now_rfc3339(now)
    if available >= util.spec_replicas(d) - util.max_unavailable(d):
        cond = util.new_condition(util.AVAILABLE, "True", util.MINIMUM_REPLICAS_AVAILABLE,
                                  "Deployment has minimum availability.", stamp)
    else:
        cond = util.new_condition(util.AVAILABLE, "False", util.MINIMUM_REPLICAS_UNAVAILABLE,
                                  "Deployment does not have minimum availability.", stamp)
    util.set_condition(status, cond)
    return status


def status_equal(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Equal once zero counters are ignored (a server may store ``replicas: 0`` where we omit it)."""
    return _normal(a or {}) == _normal(b or {})


def _normal(status: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if not (k in _OMIT_WHEN_ZERO and not v) and v is not None
            and not (k == "conditions" and not v)}


def deployment_complete(d: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """DeploymentComplete: every replica updated and available, nothing old left, generation observed."""
    replicas = util.spec_replicas(d)
    return (int(status.get("updatedReplicas") or 0) == replicas
            and int(status.get("replicas") or 0) == replicas
            and int(status.get("availableReplicas") or 0) == replicas
            and int(status.get("observedGeneration") or 0) >= int((d.get("metadata") or {}).get("generation") or 0))


def deployment_progressing(d: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """DeploymentProgressing: more updated, fewer old, more ready or more available replicas than before."""
    old = d.get("status") or {}

    def get(status: Mapping[str, Any], field: str) -> int:
        return int(status.get(field) or 0)

    old_old = get(old, "replicas") - get(old, "updatedReplicas")
    new_old = get(new, "replicas") - get(new, "updatedReplicas")
    return (get(new, "updatedReplicas") > get(old, "updatedReplicas") or new_old < old_old
            or get(new, "readyReplicas") > get(old, "readyReplicas")
            or get(new, "availableReplicas") > get(old, "availableReplicas"))


def deployment_timed_out(d: Mapping[str, Any], status: Mapping[str, Any], now: datetime) -> bool:
    """DeploymentTimedOut: the Progressing condition was last updated more than the deadline ago."""
    deadline = util.progress_deadline(d)
    cond = util.get_condition(status, util.PROGRESSING)
    if deadline is None or cond is None or cond.get("reason") == util.NEW_RS_AVAILABLE_REASON:
        return False
    if cond.get("reason") == util.TIMED_OUT_REASON:
        return True
    last = cond.get("lastUpdateTime")
    return last is not None and (now - parse_rfc3339(last)).total_seconds() > deadline


def rollout_status(all_rss: list[Obj], new_rs: Obj | None, d: Mapping[str, Any], now: datetime) -> Obj:
    """The status syncRolloutStatus writes: calculateStatus plus the Progressing and ReplicaFailure stories."""
    status = calculate_status(all_rss, new_rs, d, now)
    deadline = util.progress_deadline(d)
    if deadline is None:
        util.remove_condition(status, util.PROGRESSING)
    current = util.get_condition(d.get("status") or {}, util.PROGRESSING)
    complete_already = (int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
                        and current is not None and current.get("reason") == util.NEW_RS_AVAILABLE_REASON)
    if deadline is not None and not complete_already:
        _update_progressing(status, current, new_rs, d, now)
    failures = replica_failures(all_rss, new_rs)
    if failures:
        util.set_condition(status, failures[0])
    else:
        util.remove_condition(status, util.REPLICA_FAILURE)
    return status


def _update_progressing(status: Obj, current: Obj | None, new_rs: Obj | None, d: Mapping[str, Any],
                        now: datetime) -> None:
    stamp = now_rfc3339(now)
    subject = f'ReplicaSet "{name_of(new_rs)}"' if new_rs is not None else f'Deployment "{name_of(d)}"'
    if deployment_complete(d, status):
        util.set_condition(status, util.new_condition(util.PROGRESSING, "True", util.NEW_RS_AVAILABLE_REASON,
                                                      f"{subject} has successfully progressed.", stamp))
    elif deployment_progressing(d, status):
        # progress bumps lastUpdateTime even with the same reason; the transition time stays while True
        cond = util.new_condition(util.PROGRESSING, "True", util.RS_UPDATED_REASON, f"{subject} is progressing.",
                                  stamp)
        if current is not None:
            if current.get("status") == "True":
                cond["lastTransitionTime"] = current.get("lastTransitionTime")
            util.remove_condition(status, util.PROGRESSING)
        util.set_condition(status, cond)
    elif deployment_timed_out(d, status, now):
        util.set_condition(status, util.new_condition(util.PROGRESSING, "False", util.TIMED_OUT_REASON,
                                                      f"{subject} has timed out progressing.", stamp))


def replica_failures(all_rss: list[Obj], new_rs: Obj | None) -> list[Obj]:
    """getReplicaFailures: the new RS's ReplicaFailure conditions, else the old ones', as deployment conditions."""
    def of(rs: Obj) -> list[Obj]:
        return [{"type": util.REPLICA_FAILURE, "status": c.get("status"),
                 "lastUpdateTime": c.get("lastTransitionTime"), "lastTransitionTime": c.get("lastTransitionTime"),
                 "reason": c.get("reason"), "message": c.get("message")}
                for c in (rs.get("status") or {}).get("conditions") or () if c.get("type") == util.REPLICA_FAILURE]

    if new_rs is not None and (found := of(new_rs)):
        return found
    return [c for rs in all_rss for c in of(rs)]


def stuck_requeue_after(d: Mapping[str, Any], status: Mapping[str, Any], now: datetime) -> float | None:
    """requeueStuckDeployment: when to look again to notice a missed progress deadline (None: no need).

    Measured from the Progressing condition's lastUpdateTime; a second past the deadline, or 1 second
    (Kubernetes' rate-limited requeue) when the deadline is less than a second away.
    """
    deadline = util.progress_deadline(d)
    cond = util.get_condition(status, util.PROGRESSING)
    if deadline is None or cond is None or not cond.get("lastUpdateTime"):
        return None
    if deployment_complete(d, status) or cond.get("reason") in (util.TIMED_OUT_REASON, util.NEW_RS_AVAILABLE_REASON):
        return None
    after = (parse_rfc3339(cond["lastUpdateTime"]) - now).total_seconds() + deadline
    return 1.0 if after < 1 else after + 1
