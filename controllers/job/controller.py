"""The Job controller: run pods until enough succeed, or give up, and account for every pod exactly once.

Each reconcile of a Job claims its pods, then:

1. *Counts* finished pods with the tracking-finalizer protocol of Kubernetes: UIDs of newly finished
   pods are first recorded in ``status.uncountedTerminatedPods`` (written), then the pods' finalizers
   are removed, then the UIDs move into ``succeeded``/``failed`` (written with the rest of status).
   A crash between steps never loses or double counts a pod; pods whose finalizer removal the pod
   cache has not shown yet are remembered and skipped.
2. *Decides* whether the Job is done: success (completions reached / all indexes completed / for a
   work queue one success and nothing active) → ``SuccessCriteriaMet``; failure (``failed`` above
   ``backoffLimit``, ``activeDeadlineSeconds`` passed, a ``FailJob`` pod failure policy rule) →
   ``FailureTarget``. Remaining active pods are deleted, and once none is terminating the terminal
   ``Complete`` / ``Failed`` condition follows with the same reason, as 1.35 does.
3. Otherwise *manages* pods: suspended Jobs lose their active pods; running ones get pods created
   (after the exponential backoff — 10 s doubling per consecutive failure, capped at 6 min) or deleted
   toward ``parallelism`` (bounded by the remaining completions; for Indexed Jobs per missing index).
4. Finished Jobs with ``ttlSecondsAfterFinished`` are deleted (propagationPolicy Background) once due.

Finished Jobs, Jobs being deleted and Jobs that are gone (or were replaced by a new Job of the same
name) release the tracking finalizer of every pod still carrying it, so no pod is held forever.
A reconcile that wrote status ignores the cached Job until the cache shows that write (the Job's
update event brings the key back), so a stale ``succeeded`` never causes an extra pod.

Simplifications relative to Kubernetes 1.35: the TTL cleanup (its own controller in Kubernetes) lives
here; backoff records are kept in memory and timed from when a failure is counted, not from the pods'
finish times (a restarted controller forgets consecutive failures); ``backoffLimitPerIndex`` /
``FailIndex`` / ``failedIndexes``, ``successPolicy``, ``managedBy`` and slow-start creation batches are
not implemented (FailIndex counts as Count); pods this controller deletes (scale down, suspend, finish)
lose their finalizer first and are not counted as failed; pods being deleted by others count as failed
(with podReplacementPolicy Failed only once Failed, or at once when never scheduled).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controllers.claim import ControllerRefManager, cached_controller
from controllers.controller import Controller, ControllerContext
from controllers.expectations import Expectations
from controllers.job import util
from controllers.job.pods import indexed_plan, new_job_pod, non_indexed_plan
from controllers.job.status import StatusBuilder
from controllers.podcontrol import create_in_batches
from controllers.podutil import is_active, is_terminating
from machinery.cache import NAMESPACE_INDEX
from machinery.client import JOBS, PODS
from machinery.errors import StatusError, is_invalid, is_not_found
from machinery.labels import selector_from_label_selector
from machinery.meta import (
    controller_ref,
    deep_copy,
    is_being_deleted,
    key_of,
    name_of,
    namespace_of,
    parse_rfc3339,
    resource_version_of,
    split_key,
    uid_of,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]

BURST = 500  # at most this many creations per reconcile


@dataclass
class _Backoff:
    failures: int = 0  # consecutive failures since the last success
    last_failure: datetime | None = None


class JobController(Controller):
    NAME = "job"
    WORKERS = 5

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.expectations = Expectations(ctx.clock)
        self.backoffs: dict[str, _Backoff] = {}
        self.finalizers_removed: dict[str, set[str]] = {}  # job key → pod UIDs not yet seen without finalizer
        self.stale_versions: dict[str, set[str]] = {}  # job key → resourceVersions our status writes replaced
        self.jobs = self.informer(JOBS)
        self.pods = self.informer(PODS)
        self.jobs.add_event_handler(self.enqueue, self.on_job_update, self.on_job_delete)
        self.pods.add_event_handler(self.on_pod_add, self.on_pod_update, self.on_pod_delete)

    # --- event handlers: they only enqueue ---------------------------------------------------------

    def on_job_update(self, old: Obj, new: Obj) -> None:
        self.enqueue(new)

    def on_job_delete(self, job: Obj) -> None:
        self.enqueue(job)  # its pods' finalizers must go

    def _forget(self, key: str) -> None:
        for table in (self.backoffs, self.finalizers_removed, self.stale_versions):
            table.pop(key, None)
        self.expectations.forget(key)

    def on_pod_add(self, pod: Obj) -> None:
        job = self._owner_of(pod)
        if job is not None:
            self.expectations.creation_observed(key_of(job))
            self.enqueue(job)
        else:
            self._enqueue_orphan(pod)

    def on_pod_update(self, old: Obj, new: Obj) -> None:
        job = self._owner_of(new) or self._owner_of(old)
        if job is None:
            self._enqueue_orphan(new)
            return
        if is_terminating(new) and not is_terminating(old):
            self.expectations.deletion_observed(key_of(job), key_of(new))
        self.enqueue(job)

    def on_pod_delete(self, pod: Obj) -> None:
        job = self._owner_of(pod)
        if job is not None:
            self.expectations.deletion_observed(key_of(job), key_of(pod))
            self.enqueue(job)

    def _enqueue_orphan(self, pod: Obj) -> None:
        """A pod still tracked by a Job no longer in the cache: its key's reconcile releases the pod."""
        ref = controller_ref(pod)
        if ref is not None and ref.get("kind") == "Job" and util.has_tracking_finalizer(pod):
            self.queue.add(f"{namespace_of(pod)}/{ref.get('name') or ''}")

    def _owner_of(self, pod: Mapping[str, Any]) -> Obj | None:
        return cached_controller(self.jobs.store, pod, "Job")

    # --- reconcile -------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        job = self.jobs.store.get(key)
        if job is None:
            self._forget(key)
            await self._release_orphans(key, None)
            return None
        if resource_version_of(job) in self.stale_versions.get(key, ()):
            return None  # the cache has not seen our last status write yet: its update event brings us back
        self.stale_versions.pop(key, None)
        job = deep_copy(job)  # status writes below refresh its resourceVersion and status
        await self._release_orphans(key, uid_of(job))  # pods of a deleted Job of the same name
        if util.is_finished(job) or is_being_deleted(job):
            # nothing more to count or create: its pods must not be held by the finalizer
            await self._release_pods(job, [p for p in self._owned_pods(job) if util.has_tracking_finalizer(p)])
            self._forget(key)  # its counting memory is no longer needed
            return None if is_being_deleted(job) else await self._cleanup_after_ttl(job)
        selector = selector_from_label_selector(util.spec_of(job).get("selector"))
        manager = ControllerRefManager(self.client, job, selector, PODS, JOBS)
        pods = await manager.claim(self.pods.store.by_index(NAMESPACE_INDEX, namespace_of(job)),
                                   adoptable=util.has_tracking_finalizer)
        now = self.clock.now()
        status = StatusBuilder(job, now)
        await self._count_finished(job, pods, status)
        try:
            requeue = await self._decide(job, pods, status)
        finally:  # as Kubernetes: the status (startTime, counts) is written even when creating pods failed
            await self._write_status(job, status)
        return requeue

    async def _release_orphans(self, key: str, current_uid: str | None) -> None:
        """Remove the tracking finalizer from pods of a Job named ``key`` that is gone (not ``current_uid``);
        the Job's absence is checked with a live read, as Kubernetes does."""
        namespace, name = split_key(key)
        orphans = [p for p in self.pods.store.by_index(NAMESPACE_INDEX, namespace)
                   if util.has_tracking_finalizer(p) and (controller_ref(p) or {}).get("kind") == "Job"
                   and (controller_ref(p) or {}).get("name") == name
                   and (controller_ref(p) or {}).get("uid") != current_uid]
        if not orphans:
            return
        try:
            live = await self.client.get(JOBS, name, namespace)
        except StatusError as err:
            if not is_not_found(err):
                raise
            live = None
        gone = [p for p in orphans if live is None or (controller_ref(p) or {}).get("uid") != uid_of(live)]
        if gone:
            await self._release_pods({"metadata": {"namespace": namespace, "name": "orphans:" + name}}, gone)
            self.finalizers_removed.pop(f"{namespace}/orphans:{name}", None)

    # --- 1. counting -----------------------------------------------------------------------------

    async def _count_finished(self, job: Obj, pods: list[Obj], status: StatusBuilder) -> None:
        """Record newly finished pods as uncounted, remove their finalizers, then count them."""
        key = key_of(job)
        removed = self.finalizers_removed.setdefault(key, set())
        removed &= {uid_of(p) for p in pods if util.has_tracking_finalizer(p)}
        release: list[Obj] = []
        recorded = False
        for pod in pods:
            uid = uid_of(pod)
            if not util.has_tracking_finalizer(pod) or uid in removed:
                continue
            if status.is_uncounted(uid):
                release.append(pod)
                continue
            verdict = status.classify_finished(pod)
            if verdict is None:
                continue
            release.append(pod)
            recorded |= verdict != "ignored"
        if recorded:
            await self._write_status(job, status)
        await self._release_pods(job, release)
        new_failures, new_successes = status.count_uncounted()
        self._record_backoff(key, new_failures, new_successes)

    def _record_backoff(self, key: str, failures: int, successes: int) -> None:
        record = self.backoffs.setdefault(key, _Backoff())
        if successes:
            record.failures, record.last_failure = 0, None
        if failures:
            record.failures += failures
            record.last_failure = self.clock.now()

    def _backoff_remaining(self, key: str) -> float:
        record = self.backoffs.get(key)
        if record is None or record.last_failure is None:
            return 0.0
        elapsed = (self.clock.now() - record.last_failure).total_seconds()
        return max(util.backoff_delay(record.failures) - elapsed, 0.0)

    async def _still_tracked(self, pod: Obj) -> bool:
        try:
            live = await self.client.get(PODS, name_of(pod), namespace_of(pod))
        except StatusError as err:
            if is_not_found(err):
                return False
            raise
        return util.TRACKING_FINALIZER in ((live.get("metadata") or {}).get("finalizers") or [])

    async def _release_pods(self, job: Obj, pods: list[Obj]) -> None:
        """Remove the tracking finalizer from ``pods`` (a JSON patch tested against the finalizer's position)."""
        removed = self.finalizers_removed.setdefault(key_of(job), set())

        async def release(pod: Obj) -> None:
            finalizers = (pod.get("metadata") or {}).get("finalizers") or []
            if util.TRACKING_FINALIZER not in finalizers or uid_of(pod) in removed:
                return  # (a lagging cache may still show a finalizer this controller already removed)
            i = finalizers.index(util.TRACKING_FINALIZER)
            patch = [{"op": "test", "path": f"/metadata/finalizers/{i}", "value": util.TRACKING_FINALIZER},
                     {"op": "remove", "path": f"/metadata/finalizers/{i}"}]
            try:
                await self.client.patch(PODS, name_of(pod), patch, namespace_of(pod), patch_type="json")
            except StatusError as err:
                if is_invalid(err) and not await self._still_tracked(pod):
                    pass  # the cache lagged: the finalizer was already gone (or moved and removed since)
                elif not is_not_found(err):
                    raise
            removed.add(uid_of(pod))

        results = await asyncio.gather(*(release(p) for p in pods), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    # --- 2./3. deciding and managing -------------------------------------------------------------

    async def _decide(self, job: Obj, pods: list[Obj], status: StatusBuilder) -> float | None:
        active = [p for p in pods if is_active(p)]
        terminating = [p for p in pods if is_terminating(p) and util.phase_of(p) not in ("Succeeded", "Failed")]
        status.observe_pods(active, terminating)
        if status.finishing_condition() is None:
            if not util.is_suspended(job) and status.resume():  # first, so the deadline counts from now
                self.recorder.event(job, "Normal", "Resumed", "Job resumed")
            status.check_finished(len(active))
        if status.finishing_condition() is not None:
            await self._delete_pods(job, active)
            status.observe_pods([], terminating)
            if not active and not terminating:
                self._record_finish(job, status.finish())
            return None
        if util.is_suspended(job):
            await self._delete_pods(job, active)
            status.observe_pods([], terminating)
            if status.suspend():
                self.recorder.event(job, "Normal", "Suspended", "Job suspended")
            return None
        requeue = await self._manage(job, active, terminating, status)
        deadline = status.deadline_remaining()
        if deadline is not None:
            requeue = max(deadline, 0.0) if requeue is None else min(requeue, max(deadline, 0.0))
        return requeue

    async def _manage(self, job: Obj, active: list[Obj], terminating: list[Obj],
                      status: StatusBuilder) -> float | None:
        """Create or delete pods toward the wanted number of active pods; a backoff delay is returned."""
        key = key_of(job)
        if not self.expectations.satisfied(key):
            return None
        blocked = len(terminating) if util.spec_of(job).get("podReplacementPolicy") == "Failed" else 0
        if util.is_indexed(job):
            completions = util.completions(job) or 0
            can_create = util.parallelism(job) - len(active) - blocked
            indexes, delete = indexed_plan(active, completions, util.parallelism(job), status.completed_indexes,
                                           can_create)
        else:
            want = status.wanted_active(len(active))
            count, delete = non_indexed_plan(active, want, want - len(active) - blocked)
            indexes = [None] * count
        if delete:
            await self._delete_pods(job, delete)
            status.observe_pods([p for p in active if p not in delete], terminating)
        if not indexes:
            return None
        remaining = self._backoff_remaining(key)
        if remaining > 0:
            return remaining
        await self._create_pods(job, indexes[:BURST])
        status.created(len(indexes[:BURST]))
        return None

    async def _create_pods(self, job: Obj, indexes: list[int | None]) -> None:
        key = key_of(job)
        self.expectations.expect_creations(key, len(indexes))
        outcome = await create_in_batches(indexes,
                                          lambda i: self.client.create(PODS, new_job_pod(job, i), namespace_of(job)))
        for pod in outcome.created:
            self.recorder.event(job, "Normal", "SuccessfulCreate", f"Created pod: {name_of(pod)}")
        for error in outcome.errors:
            message = error.message if isinstance(error, StatusError) else str(error)
            self.recorder.event(job, "Warning", "FailedCreate", f"Error creating: {message}")
        for _ in range(len(outcome.errors) + outcome.skipped):
            self.expectations.creation_observed(key)  # failed and skipped creations will never be observed
        if outcome.errors:
            raise outcome.errors[0]

    async def _delete_pods(self, job: Obj, pods: list[Obj]) -> None:
        """Delete pods this controller no longer wants: finalizer first (they are not counted), then the pod."""
        if not pods:
            return
        key = key_of(job)
        await self._release_pods(job, pods)
        self.expectations.expect_deletions(key, [key_of(p) for p in pods])

        async def delete(pod: Obj) -> None:
            try:
                await self.client.delete(PODS, name_of(pod), namespace_of(pod), preconditions={"uid": uid_of(pod)})
                self.recorder.event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {name_of(pod)}")
            except StatusError as err:
                if not is_not_found(err):
                    self.expectations.deletion_observed(key, key_of(pod))
                    raise

        results = await asyncio.gather(*(delete(p) for p in pods), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    def _record_finish(self, job: Obj, finished: tuple[str, str, str]) -> None:
        kind, reason, message = finished
        if kind == util.COMPLETE:
            self.recorder.event(job, "Normal", "Completed", "Job completed")
        else:
            self.recorder.event(job, "Warning", reason, message)

    # --- status ----------------------------------------------------------------------------------

    async def _write_status(self, job: Obj, status: StatusBuilder) -> None:
        """PUT status when it changed, with the cached resourceVersion (a conflict retries the key).

        ``job`` is this reconcile's copy: it takes the written resourceVersion and status."""
        new_status = status.build()
        if new_status == (job.get("status") or {}):
            return
        updated = deep_copy(job)
        updated["status"] = new_status
        written = await self.client.replace_status(JOBS, updated)
        if resource_version_of(written) != resource_version_of(job):  # a no-op write keeps the version
            self.stale_versions.setdefault(key_of(job), set()).add(resource_version_of(job))
        job["metadata"]["resourceVersion"] = resource_version_of(written)
        job["status"] = deep_copy(new_status)

    # --- 4. TTL after finished -------------------------------------------------------------------

    def _owned_pods(self, job: Obj) -> list[Obj]:
        return [p for p in self.pods.store.by_index(NAMESPACE_INDEX, namespace_of(job))
                if (controller_ref(p) or {}).get("uid") == uid_of(job)]

    async def _cleanup_after_ttl(self, job: Obj) -> float | None:
        ttl = util.spec_of(job).get("ttlSecondsAfterFinished")
        if ttl is None:
            return None
        finished_at = _finish_time(job)
        if finished_at is None:
            return None
        remaining = (finished_at - self.clock.now()).total_seconds() + int(ttl)
        if remaining > 0:
            return remaining
        try:
            await self.client.delete(JOBS, name_of(job), namespace_of(job), propagation_policy="Background",
                                     preconditions={"uid": uid_of(job)})
        except StatusError as err:
            if not is_not_found(err):
                raise
        return None


def _finish_time(job: Mapping[str, Any]) -> datetime | None:
    status = job.get("status") or {}
    if status.get("completionTime"):
        return parse_rfc3339(status["completionTime"])
    for type_ in (util.FAILED, util.COMPLETE):
        cond = util.condition(job, type_)
        if cond is not None and cond.get("status") == "True" and cond.get("lastTransitionTime"):
            return parse_rfc3339(cond["lastTransitionTime"])
    return None
