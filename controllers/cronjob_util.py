"""Pure helpers of the CronJob controller: schedule arithmetic, job naming and history bookkeeping.

Kept apart from :mod:`controllers.cronjob` so the time logic — which scheduled time is due, how many
were missed, when to look again — can be tested without informers or a client. The functions follow
Kubernetes 1.35's ``pkg/controller/cronjob/utils.go``: the earliest time considered is the later of
``status.lastScheduleTime`` (or the CronJob's creation) and ``now - startingDeadlineSeconds``; missed
activations are counted approximately from the gap between two consecutive activations, and more
than 100 of them is reported (``TooManyMissedTimes``) but never enumerated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import Enum
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from machinery.meta import deep_copy, name_of, new_controller_ref, parse_rfc3339

Obj = dict[str, Any]

SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
NEXT_SCHEDULE_DELTA = 0.1  # seconds added to a requeue so the key is looked at just after the activation
MANY_MISSED = 100  # more missed activations than this are reported, not started one by one


class Schedule(Protocol):
    def next_after(self, dt: datetime) -> datetime | None: ...


class Missed(Enum):
    NONE = 0
    FEW = 1
    MANY = 2


class ScheduleError(ValueError):
    """The schedule never fires twice at least a second apart (e.g. ``0 0 30 2 *``)."""


@dataclass(frozen=True)
class MostRecent:
    earliest: datetime  # where the search for due activations started
    time: datetime | None  # the latest activation in (earliest, now], if any
    missed: Missed


def parse_time(text: str | None) -> datetime | None:
    return parse_rfc3339(text) if text else None


def load_time_zone(name: str | None) -> tzinfo:
    """time.LoadLocation: "" and "UTC" are UTC; raises ZoneInfoNotFoundError/ValueError for unknown zones."""
    if not name or name == "UTC":
        return UTC
    return ZoneInfo(name)


def unknown_time_zone(name: str | None) -> str | None:
    """The error text when ``spec.timeZone`` names no known zone, else None."""
    if name is None:
        return None
    try:
        load_time_zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "America" is a directory, a huge name
        return f"unknown time zone {name}"
    return None


def format_schedule(cron_job: Mapping[str, Any]) -> str:
    """The schedule text to parse: ``spec.timeZone`` becomes a ``TZ=`` prefix (unless it is unknown)."""
    spec = cron_job.get("spec") or {}
    schedule = spec.get("schedule") or ""
    if "TZ" in schedule:
        return schedule
    time_zone = spec.get("timeZone")
    if time_zone is not None and unknown_time_zone(time_zone) is None:
        return f"TZ={time_zone} {schedule}"
    return schedule


def _next(schedule: Schedule, after: datetime) -> datetime:
    nxt = schedule.next_after(after)
    if nxt is None:
        raise ScheduleError("time difference between two schedules is less than 1 second")
    return nxt


def _earliest(cron_job: Mapping[str, Any]) -> datetime:
    last = parse_time((cron_job.get("status") or {}).get("lastScheduleTime"))
    if last is not None:
        return last
    created = parse_time((cron_job.get("metadata") or {}).get("creationTimestamp"))
    return created or datetime(1970, 1, 1, tzinfo=UTC)


def most_recent_schedule_time(cron_job: Mapping[str, Any], now: datetime, schedule: Schedule,
                              include_starting_deadline: bool) -> MostRecent:
    """The latest activation that is due at ``now`` and was not yet handled, with a rough missed count.

    Raises :class:`ScheduleError` when two consecutive activations are less than a second apart.
    """
    earliest = _earliest(cron_job)
    deadline = (cron_job.get("spec") or {}).get("startingDeadlineSeconds")
    if include_starting_deadline and deadline is not None:
        scheduling_deadline = now - timedelta(seconds=int(deadline))
        if scheduling_deadline > earliest:
            earliest = scheduling_deadline
    t1 = _next(schedule, earliest)
    if now < t1:
        return MostRecent(earliest, None, Missed.NONE)
    t2 = _next(schedule, t1)
    if now < t2:
        return MostRecent(earliest, t1, Missed.NONE)
    between = _round_half_away((t2 - t1).total_seconds())
    if between < 1:
        raise ScheduleError("time difference between two schedules is less than 1 second")
    elapsed = math.trunc((now - t1).total_seconds())
    missed_count = elapsed // between + 1
    # start two intervals back from the estimate so irregular schedules (30 6-16/4 * * 1-5) land right
    t = _next(schedule, t1 + timedelta(seconds=(missed_count - 2) * between))
    most_recent: datetime | None = None
    while t <= now:
        most_recent = t
        t = _next(schedule, t)
    missed = Missed.MANY if missed_count > MANY_MISSED else Missed.FEW if missed_count > 0 else Missed.NONE
    return MostRecent(earliest, most_recent, missed)


def next_schedule_delay(cron_job: Mapping[str, Any], now: datetime, schedule: Schedule) -> float | None:
    """Seconds from ``now`` until just after the next activation (None when the schedule never fires)."""
    try:
        recent = most_recent_schedule_time(cron_job, now, schedule, False)
        base = recent.time
        if base is None:
            base = recent.earliest if recent.missed is Missed.NONE else now
    except ScheduleError:
        base = now  # still look again at some point: aim at the next slot from now
    nxt = schedule.next_after(base)
    if nxt is None:
        return None
    return (nxt - now).total_seconds() + NEXT_SCHEDULE_DELTA


def _round_half_away(seconds: float) -> int:
    return math.floor(seconds + 0.5) if seconds >= 0 else -math.floor(-seconds + 0.5)


# --- jobs --------------------------------------------------------------------------------------------


def job_name(cron_job: Mapping[str, Any], scheduled: datetime) -> str:
    """``<cronjob>-<scheduled time in minutes since the epoch>``: one deterministic name per activation."""
    return f"{name_of(cron_job)}-{int(scheduled.timestamp()) // 60}"


def job_from_template(cron_job: Mapping[str, Any], scheduled: datetime) -> Obj:
    """The Job to create for the activation at ``scheduled`` (getJobFromTemplate2)."""
    spec = cron_job.get("spec") or {}
    template = spec.get("jobTemplate") or {}
    template_meta = template.get("metadata") or {}
    location = load_time_zone(spec.get("timeZone"))
    annotations = dict(template_meta.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = _rfc3339_in(scheduled, location)
    metadata: Obj = {
        "name": job_name(cron_job, scheduled),
        "annotations": annotations,
        "ownerReferences": [new_controller_ref(cron_job, api_version="batch/v1", kind="CronJob")],
    }
    labels = template_meta.get("labels")
    if labels:
        metadata["labels"] = dict(labels)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata,
            "spec": deep_copy(template.get("spec") or {})}


def _rfc3339_in(moment: datetime, location: tzinfo) -> str:
    """Go's time.RFC3339 in ``location``: ``Z`` for UTC, ``±hh:mm`` otherwise, whole seconds."""
    local = moment.astimezone(location).replace(microsecond=0)
    if local.utcoffset() == timedelta(0):
        return local.strftime("%Y-%m-%dT%H:%M:%SZ")
    return local.isoformat()


def job_ref(job: Mapping[str, Any]) -> Obj:
    """The ObjectReference stored in ``status.active``."""
    meta = job.get("metadata") or {}
    return {"apiVersion": "batch/v1", "kind": "Job", "namespace": meta.get("namespace", ""),
            "name": meta.get("name", ""), "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", "")}


def finished_condition(job: Mapping[str, Any]) -> str | None:
    """``Complete`` or ``Failed`` when that condition is True on the job, else None."""
    for cond in (job.get("status") or {}).get("conditions") or ():
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return cond["type"]
    return None


def by_start_time(jobs: list[Obj]) -> list[Obj]:
    """Oldest first by status.startTime (jobs without one last), then by name."""
    def key(job: Obj) -> tuple[int, datetime, str]:
        start = parse_time((job.get("status") or {}).get("startTime"))
        return (1, datetime.max.replace(tzinfo=UTC), name_of(job)) if start is None else (0, start, name_of(job))
    return sorted(jobs, key=key)
