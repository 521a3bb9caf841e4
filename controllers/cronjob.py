"""The CronJob controller: start a Job at each activation of ``spec.schedule`` and keep the history short.

Each reconcile (Kubernetes 1.35's cronjob_controllerv2 ``sync``) reads the CronJob and the Jobs it
controls from the caches and, on a copy of the CronJob:

1. deletes the oldest finished Jobs beyond ``successfulJobsHistoryLimit`` / ``failedJobsHistoryLimit``
   (by ``status.startTime``, with propagationPolicy Background);
2. reconciles ``status.active`` with the Jobs (finished Jobs leave it — ``SawCompletedJob``; Jobs gone from
   the API server leave it — ``MissingJob``; an unfinished Job it does not list is reported as
   ``UnexpectedJob``) and raises ``status.lastSuccessfulTime`` to the newest succeeded Job's completionTime;
3. unless the CronJob is being deleted, suspended, or its time zone or schedule is invalid, finds the
   latest activation that is due and unhandled (bounded by ``startingDeadlineSeconds``: an activation
   older than that is ``MissSchedule``; more than 100 missed activations is ``TooManyMissedTimes``),
   applies ``concurrencyPolicy`` (Forbid skips while a Job is active — ``JobAlreadyActive``; Replace
   deletes the active Jobs first) and creates the Job ``<cronjob>-<minutes since epoch>`` with the
   ``batch.kubernetes.io/cronjob-scheduled-timestamp`` annotation and a controller ownerReference,
   recording it in ``status.active`` and ``status.lastScheduleTime``;
4. writes status when any of that changed, and asks to be looked at again just after the next
   activation (via the injected clock).

Simplifications relative to Kubernetes 1.35: no metrics (job creation skew); a creation refused because
the namespace is terminating is reported like any other failure (a ``FailedCreate`` event); Jobs are
attributed to a CronJob by controller reference kind and name, as Kubernetes does, without adoption.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from controllers.controller import Controller, ControllerContext
from controllers.cronjob_util import (
    Missed,
    Schedule,
    ScheduleError,
    by_start_time,
    finished_condition,
    format_schedule,
    job_from_template,
    job_name,
    job_ref,
    most_recent_schedule_time,
    next_schedule_delay,
    parse_time,
    unknown_time_zone,
)
from machinery.cache import NAMESPACE_INDEX
from machinery.client import CRON_JOBS, JOBS
from machinery.cron import CronError, parse_cron
from machinery.errors import StatusError, is_already_exists, is_not_found
from machinery.meta import (
    controller_ref,
    deep_copy,
    format_rfc3339,
    is_being_deleted,
    key_of,
    name_of,
    namespace_of,
    resource_version_of,
    uid_of,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class CronJobController(Controller):
    NAME = "cronjob"
    WORKERS = 5

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.cron_jobs = self.informer(CRON_JOBS)
        self.jobs = self.informer(JOBS)
        self.cron_jobs.add_event_handler(self.enqueue, self.on_cron_job_update, self.enqueue)
        self.jobs.add_event_handler(self.on_job_add, self.on_job_update, self.on_job_delete)

    # --- event handlers: they only enqueue ---------------------------------------------------------

    def on_cron_job_update(self, old: Obj, new: Obj) -> None:
        """A new schedule or time zone moves the next look to its next activation; anything else: now."""
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        if old_spec.get("schedule") == new_spec.get("schedule") and old_spec.get("timeZone") == new_spec.get(
                "timeZone"):
            self.enqueue(new)
            return
        try:
            schedule = parse_cron(format_schedule(new))
        except CronError:
            self.recorder.event(new, "Warning", "UnParseableCronJobSchedule",
                                f"unparseable schedule for cronjob: {new_spec.get('schedule')}")
            return
        delay = next_schedule_delay(new, self.clock.now(), schedule)
        if delay is not None:
            self.queue.add_after(key_of(new), max(delay, 0.0))

    def on_job_add(self, job: Obj) -> None:
        if is_being_deleted(job):
            self.on_job_delete(job)  # a restarted controller sees jobs already being deleted as adds
            return
        self._enqueue_owner(job)

    def on_job_update(self, old: Obj, new: Obj) -> None:
        if resource_version_of(old) == resource_version_of(new):
            return  # periodic resync: nothing changed
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref is not None and (new_ref is None or old_ref.get("uid") != new_ref.get("uid")):
            self._enqueue_owner(old)
        self._enqueue_owner(new)

    def on_job_delete(self, job: Obj) -> None:
        self._enqueue_owner(job)

    def _enqueue_owner(self, job: Mapping[str, Any]) -> None:
        ref = controller_ref(job)
        if ref is None or ref.get("kind") != "CronJob":
            return
        cron_job = self.cron_jobs.store.get_by_name(namespace_of(job), ref.get("name") or "")
        if cron_job is not None and uid_of(cron_job) == ref.get("uid"):
            self.enqueue(cron_job)

    # --- reconcile -------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        cached = self.cron_jobs.store.get(key)
        if cached is None:
            return None
        cron_job = deep_copy(cached)
        cron_job["status"] = cron_job.get("status") or {}
        jobs = self.jobs_of(cron_job)
        await self.cleanup_finished_jobs(cron_job, jobs)
        sync_error: StatusError | None = None
        requeue_after: float | None = None
        try:
            requeue_after = await self.sync_cron_job(cron_job, jobs)
        except StatusError as err:
            sync_error = err  # what changed before the failure is still written
        if cron_job["status"] != (cached.get("status") or {}):
            await self.update_status(cron_job)
        if requeue_after is not None:
            return max(requeue_after, 0.0)
        if sync_error is not None:
            raise sync_error
        return None

    def jobs_of(self, cron_job: Mapping[str, Any]) -> list[Obj]:
        """The Jobs whose controller reference names this CronJob (by kind and name, as Kubernetes)."""
        jobs = []
        for job in self.jobs.store.by_index(NAMESPACE_INDEX, namespace_of(cron_job)):
            ref = controller_ref(job)
            if ref is not None and ref.get("kind") == "CronJob" and ref.get("name") == name_of(cron_job):
                jobs.append(job)
        return jobs

    async def sync_cron_job(self, cron_job: Obj, jobs: list[Obj]) -> float | None:
        """Bring ``cron_job``'s status in line with its Jobs and start a due Job.

        Changes ``cron_job`` in place; returns the seconds until the next look (None: no time-driven look).
        Raises StatusError when an API call failed (the caller still writes the status changed so far).
        """
        await self.reconcile_active(cron_job, jobs)
        if is_being_deleted(cron_job):
            return None
        spec = cron_job.get("spec") or {}
        bad_zone = unknown_time_zone(spec.get("timeZone"))
        if bad_zone is not None:
            self.recorder.event(cron_job, "Warning", "UnknownTimeZone",
                                f'invalid timeZone: "{spec.get("timeZone")}": {bad_zone}')
            return None
        if spec.get("suspend"):
            return None
        schedule = self._parse_schedule(cron_job)
        if schedule is None:
            return None
        now = self.clock.now()
        scheduled = self._due_activation(cron_job, now, schedule)
        if scheduled is None or not self._should_start(cron_job, scheduled):
            return next_schedule_delay(cron_job, now, schedule)
        if spec.get("concurrencyPolicy") == "Replace":
            await self.replace_active(cron_job)
        await self.start_job(cron_job, scheduled)
        return next_schedule_delay(cron_job, now, schedule)

    def _parse_schedule(self, cron_job: Obj) -> Schedule | None:
        schedule = (cron_job.get("spec") or {}).get("schedule") or ""
        if "TZ" in schedule:
            self.recorder.event(cron_job, "Warning", "UnsupportedSchedule",
                                f'CRON_TZ or TZ used in schedule "{schedule}" is not officially supported, see '
                                "https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more "
                                "details")
        try:
            return parse_cron(format_schedule(cron_job))
        except CronError as err:
            self.recorder.event(cron_job, "Warning", "UnparseableSchedule",
                                f'unparseable schedule: "{schedule}" : {err}')
            return None

    def _due_activation(self, cron_job: Obj, now: datetime, schedule: Schedule) -> datetime | None:
        """The activation to start now, if any (events for invalid schedules and many missed starts)."""
        try:
            recent = most_recent_schedule_time(cron_job, now, schedule, True)
        except ScheduleError as err:
            self.recorder.event(cron_job, "Warning", "InvalidSchedule",
                                f"invalid schedule: {(cron_job.get('spec') or {}).get('schedule')} : {err}")
            return None
        if recent.time is None or recent.time > now:
            return None
        if recent.missed is Missed.MANY:
            self.recorder.event(cron_job, "Warning", "TooManyMissedTimes",
                                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or "
                                "check clock skew")
        return recent.time

    def _should_start(self, cron_job: Obj, scheduled: datetime) -> bool:
        """Deadline, already-handled and Forbid checks for the activation at ``scheduled``."""
        spec, status = cron_job.get("spec") or {}, cron_job.get("status") or {}
        now = self.clock.now()
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and scheduled.timestamp() + int(deadline) < now.timestamp():
            self.recorder.event(cron_job, "Warning", "MissSchedule",
                                f"Missed scheduled time to start a job: {_rfc1123z(scheduled)}")
            return False
        name = job_name(cron_job, scheduled)
        if any(ref.get("name") == name for ref in status.get("active") or ()) \
                or parse_time(status.get("lastScheduleTime")) == scheduled:
            return False  # this activation was handled already
        if spec.get("concurrencyPolicy") == "Forbid" and status.get("active"):
            self.recorder.event(cron_job, "Normal", "JobAlreadyActive",
                                "Not starting job because prior execution is running and concurrency policy is "
                                "Forbid")
            return False
        return True

    async def start_job(self, cron_job: Obj, scheduled: datetime) -> None:
        """Create the Job for ``scheduled`` and record it in status (raises StatusError on failure)."""
        request = job_from_template(cron_job, scheduled)
        try:
            job = await self.client.create(JOBS, request, namespace_of(cron_job))
        except StatusError as err:
            if not is_already_exists(err):
                self.recorder.event(cron_job, "Warning", "FailedCreate", f"Error creating job: {err.message}")
                raise
            job = await self._own_existing_job(cron_job, request)
            if job is None:
                raise
        else:
            self.recorder.event(cron_job, "Normal", "SuccessfulCreate", f"Created job {name_of(job)}")
        status = cron_job.setdefault("status", {})
        status["active"] = [*(status.get("active") or []), job_ref(job)]
        status["lastScheduleTime"] = format_rfc3339(scheduled)

    async def _own_existing_job(self, cron_job: Obj, request: Obj) -> Obj | None:
        """The Job of this activation when this CronJob created it already (its status write was lost), so it is
        recorded instead of failing with AlreadyExists until the next schedule time."""
        try:
            job = await self.client.get(JOBS, name_of(request), namespace_of(cron_job))
        except StatusError as err:
            if is_not_found(err):
                return None
            raise
        ref = controller_ref(job) or {}
        return job if ref.get("uid") == uid_of(cron_job) else None

    # --- status.active and history -----------------------------------------------------------------

    async def reconcile_active(self, cron_job: Obj, jobs: list[Obj]) -> None:
        """Drop finished and vanished Jobs from status.active and raise status.lastSuccessfulTime."""
        for job in jobs:
            active = _in_active(cron_job, uid_of(job))
            finished = finished_condition(job)
            if not active and finished is None:
                if not await self._listed_in_fresh_copy(cron_job, job):
                    self.recorder.event(cron_job, "Warning", "UnexpectedJob",
                                        f"Saw a job that the controller did not create or forgot: {name_of(job)}")
            elif active and finished is not None:
                _remove_active(cron_job, uid_of(job))
                self.recorder.event(cron_job, "Normal", "SawCompletedJob",
                                    f"Saw completed job: {name_of(job)}, condition: {finished}")
            if finished == "Complete":
                _raise_last_successful(cron_job["status"], job)
        known = {uid_of(j) for j in jobs}
        for ref in list(cron_job["status"].get("active") or ()):
            if ref.get("uid") in known:
                continue
            try:  # the cache may just be late: ask the API server
                await self.client.get(JOBS, ref.get("name") or "", ref.get("namespace") or namespace_of(cron_job))
            except StatusError as err:
                if not is_not_found(err):
                    raise
                self.recorder.event(cron_job, "Normal", "MissingJob", f"Active job went missing: {ref.get('name')}")
                _remove_active(cron_job, ref.get("uid") or "")

    async def _listed_in_fresh_copy(self, cron_job: Obj, job: Obj) -> bool:
        """Whether the API server's CronJob lists ``job`` (our cached copy may predate our own status write);
        if so, continue with the fresh copy's status."""
        try:
            fresh = await self.client.get(CRON_JOBS, name_of(cron_job), namespace_of(cron_job))
        except StatusError as err:
            if is_not_found(err):
                return False
            raise
        if not _in_active(fresh, uid_of(job)):
            return False
        cron_job["status"] = deep_copy(fresh.get("status") or {})
        cron_job["metadata"]["resourceVersion"] = resource_version_of(fresh)
        return True

    async def replace_active(self, cron_job: Obj) -> None:
        """concurrencyPolicy Replace: delete every active Job before starting the new one."""
        for ref in list((cron_job.get("status") or {}).get("active") or ()):
            try:
                job = await self.client.get(JOBS, ref.get("name") or "", ref.get("namespace") or namespace_of(cron_job))
            except StatusError as err:
                self.recorder.event(cron_job, "Warning", "FailedGet", f"Get job: {err.message}")
                raise
            if not await self.delete_job(cron_job, job):
                raise StatusError(500, "InternalError", f"could not replace job {namespace_of(job)}/{name_of(job)}")

    async def cleanup_finished_jobs(self, cron_job: Obj, jobs: list[Obj]) -> None:
        """Delete the oldest finished Jobs beyond the history limits (a failed deletion is only an event)."""
        spec = cron_job.get("spec") or {}
        for condition, limit_key in (("Complete", "successfulJobsHistoryLimit"), ("Failed", "failedJobsHistoryLimit")):
            limit = spec.get(limit_key)
            if limit is None:
                continue
            finished = by_start_time([j for j in jobs if finished_condition(j) == condition])
            for job in finished[:max(len(finished) - int(limit), 0)]:
                await self.delete_job(cron_job, job)

    async def delete_job(self, cron_job: Obj, job: Obj) -> bool:
        """Delete ``job`` (Background propagation) and forget it in status.active; False when that failed."""
        try:
            await self.client.delete(JOBS, name_of(job), namespace_of(job), propagation_policy="Background")
        except StatusError as err:
            if not is_not_found(err):
                self.recorder.event(cron_job, "Warning", "FailedDelete", f"Deleted job: {err.message}")
                return False
        _remove_active(cron_job, uid_of(job))
        self.recorder.event(cron_job, "Normal", "SuccessfulDelete", f"Deleted job {name_of(job)}")
        return True

    async def update_status(self, cron_job: Obj) -> None:
        """Write status (CAS on resourceVersion: a conflict raises and the key is retried)."""
        try:
            await self.client.replace_status(CRON_JOBS, cron_job)
        except StatusError as err:
            if is_not_found(err):
                return
            raise


def _in_active(cron_job: Mapping[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in (cron_job.get("status") or {}).get("active") or ())


def _remove_active(cron_job: Obj, uid: str) -> None:
    status = cron_job.setdefault("status", {})
    remaining = [ref for ref in status.get("active") or () if ref.get("uid") != uid]
    if remaining:
        status["active"] = remaining
    else:
        status.pop("active", None)


def _raise_last_successful(status: Obj, job: Mapping[str, Any]) -> None:
    completed = parse_time((job.get("status") or {}).get("completionTime"))
    last = parse_time(status.get("lastSuccessfulTime"))
    if completed is not None and (last is None or completed > last):
        status["lastSuccessfulTime"] = format_rfc3339(completed)


def _rfc1123z(moment: datetime) -> str:
    """Go's time.RFC1123Z in UTC: ``Mon, 02 Jan 2006 15:04:05 +0000``."""
    return moment.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
