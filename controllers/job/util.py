"""Job facts the controller decides on: conditions, completion indexes, pod failure policy, backoff.

Pure functions over Job and Pod objects, kept apart from :mod:`controllers.job.controller` so the rules
(Kubernetes 1.35's ``pkg/controller/job`` semantics) can be tested without an API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from machinery.meta import now_rfc3339

Obj = dict[str, Any]

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_JOB_NAME_LABEL = "job-name"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"

BACKOFF_BASE = 10.0  # seconds: the first recreation delay after a failure, doubled per consecutive failure
BACKOFF_MAX = 360.0  # 6 minutes

COMPLETE, FAILED, SUSPENDED = "Complete", "Failed", "Suspended"
SUCCESS_CRITERIA_MET, FAILURE_TARGET = "SuccessCriteriaMet", "FailureTarget"

COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")
BACKOFF_LIMIT_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")
POD_FAILURE_POLICY = "PodFailurePolicy"


# --- spec ------------------------------------------------------------------------------------------


def spec_of(job: Mapping[str, Any]) -> Mapping[str, Any]:
    return job.get("spec") or {}


def is_indexed(job: Mapping[str, Any]) -> bool:
    return spec_of(job).get("completionMode") == "Indexed"


def completions(job: Mapping[str, Any]) -> int | None:
    value = spec_of(job).get("completions")
    return None if value is None else int(value)


def parallelism(job: Mapping[str, Any]) -> int:
    value = spec_of(job).get("parallelism")
    return 1 if value is None else int(value)


def backoff_limit(job: Mapping[str, Any]) -> int:
    value = spec_of(job).get("backoffLimit")
    return 6 if value is None else int(value)


def is_suspended(job: Mapping[str, Any]) -> bool:
    return bool(spec_of(job).get("suspend"))


# --- conditions ------------------------------------------------------------------------------------


def condition(job: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or ():
        if cond.get("type") == type_:
            return cond
    return None


def has_condition(job: Mapping[str, Any], type_: str) -> bool:
    cond = condition(job, type_)
    return cond is not None and cond.get("status") == "True"


def is_finished(job: Mapping[str, Any]) -> bool:
    return has_condition(job, COMPLETE) or has_condition(job, FAILED)


def set_condition(status: Obj, type_: str, cond_status: str, reason: str, message: str, now: datetime) -> bool:
    """Add or update a condition in ``status``; the transition time changes only with the status. True if changed."""
    conditions = status.setdefault("conditions", [])
    for cond in conditions:
        if cond.get("type") != type_:
            continue
        if (cond.get("status"), cond.get("reason"), cond.get("message")) == (cond_status, reason, message):
            return False
        if cond.get("status") != cond_status:
            cond["lastTransitionTime"] = now_rfc3339(now)
        cond.update(status=cond_status, reason=reason, message=message, lastProbeTime=now_rfc3339(now))
        return True
    conditions.append({"type": type_, "status": cond_status, "lastProbeTime": now_rfc3339(now),
                       "lastTransitionTime": now_rfc3339(now), "reason": reason, "message": message})
    return True


# --- pods ------------------------------------------------------------------------------------------


def phase_of(pod: Mapping[str, Any]) -> str:
    return (pod.get("status") or {}).get("phase") or ""


def has_tracking_finalizer(pod: Mapping[str, Any]) -> bool:
    return TRACKING_FINALIZER in ((pod.get("metadata") or {}).get("finalizers") or ())


def completion_index(pod: Mapping[str, Any]) -> int | None:
    """The pod's index from its annotation (or label); None when absent or not a number."""
    meta = pod.get("metadata") or {}
    value = (meta.get("annotations") or {}).get(COMPLETION_INDEX) or (meta.get("labels") or {}).get(COMPLETION_INDEX)
    try:
        index = int(value) if value is not None else None
    except ValueError:
        return None
    return index if index is not None and index >= 0 else None


# --- completed indexes ("1,3-5") -------------------------------------------------------------------


def parse_indexes(text: str | None, limit: int | None = None) -> set[int]:
    """The set of indexes in a ``completedIndexes`` string, ignoring those ≥ ``limit``."""
    indexes: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        first, _, last = part.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            continue
        indexes.update(i for i in range(low, high + 1) if limit is None or i < limit)
    return indexes


def format_indexes(indexes: Iterable[int]) -> str:
    """Sorted intervals: {1, 3, 4, 5} → ``"1,3-5"``."""
    parts: list[str] = []
    ordered = sorted(set(indexes))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


# --- pod failure policy ----------------------------------------------------------------------------


def match_pod_failure_policy(job: Mapping[str, Any], pod: Mapping[str, Any]) -> tuple[str | None, str]:
    """The action of the first rule of spec.podFailurePolicy matching the failed ``pod`` and a message.

    ``(None, "")`` when there is no policy or no rule matches (the failure counts, as with ``Count``).
    FailIndex (needs backoffLimitPerIndex) is treated as Count: a documented simplification.
    """
    policy = spec_of(job).get("podFailurePolicy") or {}
    for i, rule in enumerate(policy.get("rules") or ()):
        action = rule.get("action") or ""
        on_exit = rule.get("onExitCodes")
        if on_exit:
            container = _matching_exit_code(on_exit, pod)
            if container is not None:
                name, code = container
                return action, (f"Container {name} for pod {_pod_ref(pod)} failed with exit code {code} "
                                f"matching {action} rule at index {i}")
        for pattern in rule.get("onPodConditions") or ():
            if _has_pod_condition(pod, pattern.get("type") or "", pattern.get("status") or "True"):
                return action, (f"Pod {_pod_ref(pod)} has condition {pattern.get('type')} matching {action} "
                                f"rule at index {i}")
    return None, ""


def _matching_exit_code(on_exit: Mapping[str, Any], pod: Mapping[str, Any]) -> tuple[str, int] | None:
    status = pod.get("status") or {}
    wanted = {int(v) for v in on_exit.get("values") or ()}
    operator = on_exit.get("operator") or "In"
    only = on_exit.get("containerName")
    for cs in [*(status.get("containerStatuses") or ()), *(status.get("initContainerStatuses") or ())]:
        if only and cs.get("name") != only:
            continue
        terminated = (cs.get("state") or {}).get("terminated")
        if not terminated:
            continue
        code = int(terminated.get("exitCode") or 0)
        if code == 0:
            continue  # only failures are matched, for both operators
        if (code in wanted) == (operator == "In"):
            return cs.get("name") or "", code
    return None


def _has_pod_condition(pod: Mapping[str, Any], type_: str, status: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == status
               for c in (pod.get("status") or {}).get("conditions") or ())


def _pod_ref(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


# --- backoff -----------------------------------------------------------------------------------------


def backoff_delay(consecutive_failures: int) -> float:
    """Pod recreation delay after ``consecutive_failures`` failures since the last success: 10 s doubling, 6 min cap."""
    if consecutive_failures <= 0:
        return 0.0
    return min(BACKOFF_BASE * 2 ** (consecutive_failures - 1), BACKOFF_MAX)
