"""A Job's next status, built up during one reconcile: counters, uncounted pods, indexes, conditions.

:class:`StatusBuilder` starts from the Job's current status and is told what the reconcile sees and
does (finished pods, active pods, creations); it applies Kubernetes 1.35's rules for when the Job has
met its success criteria or a failure target, and for the terminal condition that follows, and
renders the ``status`` object to write (zero ``active``/``succeeded``/``failed`` omitted, ``ready``,
``terminating`` and ``uncountedTerminatedPods`` always present, as the Job controller writes them).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controllers.job import util
from controllers.podutil import is_ready, is_terminating
from machinery.meta import deep_copy, now_rfc3339, parse_rfc3339, uid_of

Obj = dict[str, Any]


class StatusBuilder:
    def __init__(self, job: Mapping[str, Any], now: datetime) -> None:
        self.job = job
        self.now = now
        old = deep_copy(job.get("status") or {})
        self.succeeded = int(old.get("succeeded") or 0)
        self.failed = int(old.get("failed") or 0)
        uncounted = old.get("uncountedTerminatedPods") or {}
        self.uncounted_succeeded: list[str] = list(uncounted.get("succeeded") or ())
        self.uncounted_failed: list[str] = list(uncounted.get("failed") or ())
        self.indexed = util.is_indexed(job)
        self.completions = util.completions(job)
        self.completed_indexes = (util.parse_indexes(old.get("completedIndexes"), self.completions)
                                  if self.indexed else set())
        self.start_time: str | None = old.get("startTime")
        self.completion_time: str | None = old.get("completionTime")
        self.conditions: Obj = {"conditions": old.get("conditions") or []}
        self.active = int(old.get("active") or 0)
        self.ready = int(old.get("ready") or 0)
        self.terminating = int(old.get("terminating") or 0)
        self.failure_target: tuple[str, str] | None = None  # from a FailJob rule of the pod failure policy

    # --- counting finished pods --------------------------------------------------------------------

    def is_uncounted(self, uid: str) -> bool:
        return uid in self.uncounted_succeeded or uid in self.uncounted_failed

    def classify_finished(self, pod: Mapping[str, Any]) -> str | None:
        """Record a finished pod as uncounted: ``"succeeded"``, ``"failed"``, ``"ignored"`` or None (not finished)."""
        phase = util.phase_of(pod)
        if phase == "Succeeded":
            if self.indexed:
                index = util.completion_index(pod)
                if index is None or index >= (self.completions or 0) or index in self.completed_indexes:
                    return "ignored"
                self.completed_indexes.add(index)
            self.uncounted_succeeded.append(uid_of(pod))
            return "succeeded"
        if phase != "Failed" and not self._counts_as_failed_while_terminating(pod):
            return None
        if phase == "Failed":
            action, message = util.match_pod_failure_policy(self.job, pod)
            if action == "Ignore":
                return "ignored"
            if action == "FailJob" and self.failure_target is None:
                self.failure_target = (util.POD_FAILURE_POLICY, message)
        self.uncounted_failed.append(uid_of(pod))
        return "failed"

    def _counts_as_failed_while_terminating(self, pod: Mapping[str, Any]) -> bool:
        """A pod deleted before finishing counts as failed — with podReplacementPolicy Failed only when it
        never reached a node (nothing would ever mark it Failed; the pod GC does in Kubernetes)."""
        if not is_terminating(pod):
            return False
        if util.spec_of(self.job).get("podReplacementPolicy") == "Failed":
            return not (pod.get("spec") or {}).get("nodeName")
        return True

    def count_uncounted(self) -> tuple[int, int]:
        """Move the uncounted UIDs into the counters (their finalizers are gone); returns (failures, successes)."""
        failures, successes = len(self.uncounted_failed), len(self.uncounted_succeeded)
        self.failed += failures
        if self.indexed:
            self.succeeded = len(self.completed_indexes)
        else:
            self.succeeded += successes
        self.uncounted_failed, self.uncounted_succeeded = [], []
        return failures, successes

    # --- what the reconcile sees and does ------------------------------------------------------------

    def observe_pods(self, active: list[Obj], terminating: list[Obj]) -> None:
        self.active = len(active)
        self.ready = sum(1 for p in active if is_ready(p))
        self.terminating = len(terminating)

    def created(self, count: int) -> None:
        self.active += count

    def wanted_active(self, active: int) -> int:
        parallelism = util.parallelism(self.job)
        if self.completions is None:
            return min(active, parallelism) if self.succeeded > 0 else parallelism
        return max(0, min(parallelism, self.completions - self.succeeded))

    # --- conditions --------------------------------------------------------------------------------

    def finishing_condition(self) -> Mapping[str, Any] | None:
        """The interim FailureTarget or SuccessCriteriaMet condition, when the Job has one."""
        for cond in self.conditions["conditions"]:
            if cond.get("type") in (util.FAILURE_TARGET, util.SUCCESS_CRITERIA_MET) and cond.get("status") == "True":
                return cond
        return None

    def check_finished(self, active: int) -> None:
        """Add FailureTarget (pod failure policy, backoff limit, deadline) or SuccessCriteriaMet when due."""
        failure = self.failure_target
        if failure is None and self.failed > util.backoff_limit(self.job):
            failure = util.BACKOFF_LIMIT_EXCEEDED
        remaining = None if util.is_suspended(self.job) else self.deadline_remaining()  # no clock while suspended
        if failure is None and remaining is not None and remaining <= 0:
            failure = util.DEADLINE_EXCEEDED
        if failure is not None:
            util.set_condition(self.conditions, util.FAILURE_TARGET, "True", *failure, self.now)
        elif self._succeeded(active):
            util.set_condition(self.conditions, util.SUCCESS_CRITERIA_MET, "True", *util.COMPLETIONS_REACHED,
                               self.now)

    def _succeeded(self, active: int) -> bool:
        if self.completions is None:
            return self.succeeded > 0 and active == 0
        if self.indexed:
            return len(self.completed_indexes) >= self.completions
        return self.succeeded >= self.completions

    def finish(self) -> tuple[str, str, str]:
        """The terminal condition following the interim one: (type, reason, message)."""
        interim = self.finishing_condition() or {}
        kind = util.COMPLETE if interim.get("type") == util.SUCCESS_CRITERIA_MET else util.FAILED
        reason, message = interim.get("reason") or "", interim.get("message") or ""
        util.set_condition(self.conditions, kind, "True", reason, message, self.now)
        if kind == util.COMPLETE:
            self.completion_time = now_rfc3339(self.now)
        return kind, reason, message

    def suspend(self) -> bool:
        """Mark the Job suspended; True when it was not already."""
        if util.has_condition({"status": self.conditions}, util.SUSPENDED):
            return False
        util.set_condition(self.conditions, util.SUSPENDED, "True", "JobSuspended", "Job suspended", self.now)
        return True

    def resume(self) -> bool:
        """Start (or restart, after a suspension: the deadline counts anew) the Job; True when it was resumed."""
        if util.has_condition({"status": self.conditions}, util.SUSPENDED):
            util.set_condition(self.conditions, util.SUSPENDED, "False", "JobResumed", "Job resumed", self.now)
            self.start_time = now_rfc3339(self.now)
            return True
        if self.start_time is None:
            self.start_time = now_rfc3339(self.now)
        return False

    def deadline_remaining(self) -> float | None:
        deadline = util.spec_of(self.job).get("activeDeadlineSeconds")
        if deadline is None or not self.start_time:
            return None
        return int(deadline) - (self.now - parse_rfc3339(self.start_time)).total_seconds()

    # --- rendering ---------------------------------------------------------------------------------

    def build(self) -> Obj:
        status: Obj = {}
        if self.conditions["conditions"]:
            status["conditions"] = self.conditions["conditions"]
        if self.start_time:
            status["startTime"] = self.start_time
        if self.completion_time:
            status["completionTime"] = self.completion_time
        for key, value in (("active", self.active), ("succeeded", self.succeeded), ("failed", self.failed)):
            if value:
                status[key] = value
        if self.indexed and self.completed_indexes:
            status["completedIndexes"] = util.format_indexes(self.completed_indexes)
        uncounted: Obj = {}
        if self.uncounted_succeeded:
            uncounted["succeeded"] = list(self.uncounted_succeeded)
        if self.uncounted_failed:
            uncounted["failed"] = list(self.uncounted_failed)
        status["uncountedTerminatedPods"] = uncounted
        status["terminating"] = self.terminating
        status["ready"] = self.ready
        return status
