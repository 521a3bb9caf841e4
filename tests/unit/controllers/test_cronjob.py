"""CronJob controller: schedule arithmetic and reconcile against fakes, time driven by FakeClock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from controllers.controller import ControllerContext
from controllers.cronjob import CronJobController
from controllers.cronjob_util import (
    SCHEDULED_TIMESTAMP_ANNOTATION,
    Missed,
    ScheduleError,
    job_from_template,
    job_name,
    most_recent_schedule_time,
    next_schedule_delay,
)
from machinery.client import CRON_JOBS, JOBS
from machinery.clock import FakeClock
from machinery.cron import parse_cron
from machinery.errors import StatusError, already_exists
from machinery.meta import format_rfc3339, key_of
from tests.fakes import FakeClient, FakeInformers, FakeRecorder

NS = "default"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
MINUTE_T0 = int(T0.timestamp()) // 60


def at(minutes: float = 0, seconds: float = 0) -> datetime:
    return T0 + timedelta(minutes=minutes, seconds=seconds)


def make_cj(name="hello", schedule="* * * * *", created=T0, status=None, **spec):
    return {
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": format_rfc3339(created)},
        "spec": {"schedule": schedule, "concurrencyPolicy": "Allow", "suspend": False,
                 "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                 "jobTemplate": {"metadata": {"labels": {"team": "a"}},
                                 "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}],
                                                                "restartPolicy": "OnFailure"}}}},
                 **spec},
        "status": status or {},
    }


def make_job(cj, name, finished=None, start=None, completed=None):
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": name, "namespace": NS, "ownerReferences": [
               {"apiVersion": "batch/v1", "kind": "CronJob", "name": cj["metadata"]["name"],
                "uid": cj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]},
           "spec": {}, "status": {}}
    if start:
        job["status"]["startTime"] = format_rfc3339(start)
    if finished:
        job["status"]["conditions"] = [{"type": finished, "status": "True"}]
    if completed:
        job["status"]["completionTime"] = format_rfc3339(completed)
    return job


def ref(job):
    return {"apiVersion": "batch/v1", "kind": "Job", "namespace": NS, "name": job["metadata"]["name"],
            "uid": job["metadata"]["uid"], "resourceVersion": job["metadata"]["resourceVersion"]}


class Env:
    def __init__(self, now: datetime) -> None:
        self.clock = FakeClock(start=now)
        self.client = FakeClient(clock=self.clock)
        self.informers = FakeInformers()
        self.recorder = FakeRecorder()
        self.ctrl = CronJobController(ControllerContext(self.client, self.informers, self.recorder, self.clock))

    def seed_cj(self, cj):
        stored = self.client.seed(CRON_JOBS, cj)
        self.informers.add(CRON_JOBS, stored)
        return stored

    def seed_jobs(self, *jobs):
        stored = [self.client.seed(JOBS, j) for j in jobs]
        self.informers.add(JOBS, *stored)
        return stored

    def cj(self, name="hello"):
        return self.client.stored(CRON_JOBS, NS, name)

    def sync(self):
        self.informers.sync_from(self.client, CRON_JOBS, JOBS)

    def created_jobs(self):
        return [a.body for a in self.client.actions_of("create", "jobs")]


# --- schedule arithmetic ---------------------------------------------------------------------------


def test_nothing_due_before_the_first_activation():
    recent = most_recent_schedule_time(make_cj(), at(0, 30), parse_cron("* * * * *"), True)
    assert recent.time is None and recent.missed is Missed.NONE


def test_latest_due_activation_and_missed_count():
    schedule = parse_cron("*/5 * * * *")
    assert most_recent_schedule_time(make_cj(), at(5, 1), schedule, True).time == at(5)
    recent = most_recent_schedule_time(make_cj(), at(17, 3), schedule, True)
    assert recent.time == at(15) and recent.missed is Missed.FEW


def test_starting_deadline_bounds_the_search():
    cj = make_cj(startingDeadlineSeconds=20)
    assert most_recent_schedule_time(cj, at(5, 30), parse_cron("* * * * *"), True).time is None
    assert most_recent_schedule_time(cj, at(5, 10), parse_cron("* * * * *"), True).time == at(5)
    assert most_recent_schedule_time(cj, at(5, 30), parse_cron("* * * * *"), False).time == at(5)


def test_more_than_100_missed_is_many():
    cj = make_cj(created=T0 - timedelta(days=5))  # 120 hourly activations
    recent = most_recent_schedule_time(cj, at(0, 10), parse_cron("@hourly"), True)
    assert recent.time == T0 and recent.missed is Missed.MANY


def test_irregular_schedule_finds_true_latest():
    cj = make_cj(created=T0)  # Thursday
    schedule = parse_cron("30 6-16/4 * * 1-5")
    recent = most_recent_schedule_time(cj, datetime(2026, 1, 5, 12, 0, tzinfo=UTC), schedule, True)
    assert recent.time == datetime(2026, 1, 5, 10, 30, tzinfo=UTC)


def test_impossible_schedule_is_an_error():
    with pytest.raises(ScheduleError):
        most_recent_schedule_time(make_cj(), at(1), parse_cron("0 0 30 2 *"), True)


def test_next_schedule_delay():
    schedule = parse_cron("* * * * *")
    assert next_schedule_delay(make_cj(), at(0, 30), schedule) == pytest.approx(30.1)
    handled = make_cj(status={"lastScheduleTime": format_rfc3339(at(1))})
    assert next_schedule_delay(handled, at(1, 5), schedule) == pytest.approx(55.1)


def test_job_name_and_template():
    cj = make_cj()
    cj["metadata"]["uid"] = "u1"
    job = job_from_template(cj, at(1))
    assert job_name(cj, at(1)) == f"hello-{MINUTE_T0 + 1}" == job["metadata"]["name"]
    assert job["metadata"]["annotations"] == {SCHEDULED_TIMESTAMP_ANNOTATION: "2026-01-01T00:01:00Z"}
    assert job["metadata"]["labels"] == {"team": "a"}
    assert job["metadata"]["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "hello",
                                                   "uid": "u1", "controller": True, "blockOwnerDeletion": True}]
    assert job["spec"] == cj["spec"]["jobTemplate"]["spec"]
    tokyo = make_cj(timeZone="Asia/Tokyo")
    annotation = job_from_template(tokyo, at(0))["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION]
    assert annotation == "2026-01-01T09:00:00+09:00"


# --- reconcile -------------------------------------------------------------------------------------


async def test_waits_for_the_first_activation_then_creates_the_job():
    env = Env(at(0, 30))
    cj = env.seed_cj(make_cj())
    assert await env.ctrl.reconcile(key_of(cj)) == pytest.approx(30.1)
    assert env.created_jobs() == []
    env.clock.advance(35)
    requeue = await env.ctrl.reconcile(key_of(cj))
    assert requeue == pytest.approx(55.1)
    [job] = env.created_jobs()
    assert job["metadata"]["name"] == f"hello-{MINUTE_T0 + 1}"
    assert job["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION] == "2026-01-01T00:01:00Z"
    assert job["metadata"]["ownerReferences"][0]["uid"] == cj["metadata"]["uid"]
    status = env.cj()["status"]
    stored_job = env.client.stored(JOBS, NS, job["metadata"]["name"])
    assert status == {"active": [ref(stored_job)], "lastScheduleTime": "2026-01-01T00:01:00Z"}
    assert "SuccessfulCreate" in env.recorder.reasons()


async def test_activation_is_started_once():
    env = Env(at(1, 5))
    env.seed_cj(make_cj())
    await env.ctrl.reconcile(f"{NS}/hello")
    env.sync()
    assert await env.ctrl.reconcile(f"{NS}/hello") == pytest.approx(55.1)
    assert len(env.created_jobs()) == 1
    assert env.client.actions_of("update", "cronjobs") and len(env.client.actions_of("update", "cronjobs")) == 1


async def test_allow_starts_another_job_while_one_is_active():
    env = Env(at(2, 1))
    cj = env.seed_cj(make_cj(status={"lastScheduleTime": format_rfc3339(at(1))}))
    [job] = env.seed_jobs(make_job(cj, f"hello-{MINUTE_T0 + 1}"))
    cj["status"]["active"] = [ref(job)]
    env.informers.add(CRON_JOBS, cj)
    await env.ctrl.reconcile(key_of(cj))
    assert [j["metadata"]["name"] for j in env.created_jobs()] == [f"hello-{MINUTE_T0 + 2}"]
    assert len(env.cj()["status"]["active"]) == 2


async def test_forbid_skips_while_a_job_is_active():
    env = Env(at(2, 1))
    cj = env.seed_cj(make_cj(concurrencyPolicy="Forbid", status={"lastScheduleTime": format_rfc3339(at(1))}))
    [job] = env.seed_jobs(make_job(cj, f"hello-{MINUTE_T0 + 1}"))
    cj["status"]["active"] = [ref(job)]
    env.informers.add(CRON_JOBS, cj)
    assert await env.ctrl.reconcile(key_of(cj)) == pytest.approx(59.1)
    assert env.created_jobs() == []
    assert "JobAlreadyActive" in env.recorder.reasons()


async def test_replace_deletes_the_active_job_first():
    env = Env(at(2, 1))
    cj = env.seed_cj(make_cj(concurrencyPolicy="Replace", status={"lastScheduleTime": format_rfc3339(at(1))}))
    [job] = env.seed_jobs(make_job(cj, f"hello-{MINUTE_T0 + 1}"))
    cj["status"]["active"] = [ref(job)]
    env.informers.add(CRON_JOBS, cj)
    await env.ctrl.reconcile(key_of(cj))
    [delete] = env.client.actions_of("delete", "jobs")
    assert delete.name == job["metadata"]["name"] and delete.body["propagationPolicy"] == "Background"
    assert [j["metadata"]["name"] for j in env.created_jobs()] == [f"hello-{MINUTE_T0 + 2}"]
    assert [r["name"] for r in env.cj()["status"]["active"]] == [f"hello-{MINUTE_T0 + 2}"]
    assert env.recorder.reasons() == ["SuccessfulDelete", "SuccessfulCreate"]


async def test_suspended_cronjob_starts_nothing():
    env = Env(at(5))
    cj = env.seed_cj(make_cj(suspend=True))
    assert await env.ctrl.reconcile(key_of(cj)) is None
    assert env.created_jobs() == []


async def test_starting_deadline_skips_old_activations():
    env = Env(at(5, 30))
    cj = env.seed_cj(make_cj(startingDeadlineSeconds=20))
    assert await env.ctrl.reconcile(key_of(cj)) == pytest.approx(30.1)
    assert env.created_jobs() == []
    late = Env(at(5, 30))
    cj = late.seed_cj(make_cj(startingDeadlineSeconds=60))
    await late.ctrl.reconcile(key_of(cj))
    assert [j["metadata"]["name"] for j in late.created_jobs()] == [f"hello-{MINUTE_T0 + 5}"]


async def test_too_many_missed_starts_only_the_latest():
    env = Env(at(0, 10))
    cj = env.seed_cj(make_cj(created=T0 - timedelta(days=1)))
    await env.ctrl.reconcile(key_of(cj))
    assert "TooManyMissedTimes" in env.recorder.reasons()
    assert [j["metadata"]["name"] for j in env.created_jobs()] == [f"hello-{MINUTE_T0}"]


async def test_time_zone_schedules_in_local_time():
    env = Env(datetime(2025, 12, 31, 23, 59, tzinfo=UTC))
    cj = env.seed_cj(make_cj(schedule="0 9 * * *", timeZone="Asia/Tokyo", created=at(-120)))
    assert await env.ctrl.reconcile(key_of(cj)) == pytest.approx(60.1)  # 09:00 Tokyo is 00:00 UTC
    env.clock.advance(61)
    await env.ctrl.reconcile(key_of(cj))
    [job] = env.created_jobs()
    assert job["metadata"]["name"] == f"hello-{MINUTE_T0}"
    assert job["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION] == "2026-01-01T09:00:00+09:00"


async def test_unknown_time_zone_and_bad_schedule_are_events():
    env = Env(at(5))
    cj = env.seed_cj(make_cj(timeZone="Mars/Olympus"))
    assert await env.ctrl.reconcile(key_of(cj)) is None
    env.seed_cj(make_cj(name="bad", schedule="61 * * * *"))
    assert await env.ctrl.reconcile(f"{NS}/bad") is None
    assert env.recorder.reasons() == ["UnknownTimeZone", "UnparseableSchedule"]
    assert env.created_jobs() == []


async def test_finished_job_leaves_active_and_sets_last_successful_time():
    env = Env(at(1, 30))
    cj = env.seed_cj(make_cj(status={"lastScheduleTime": format_rfc3339(at(1))}))
    [job] = env.seed_jobs(make_job(cj, f"hello-{MINUTE_T0 + 1}", "Complete", at(1), at(1, 20)))
    cj["status"]["active"] = [ref(job)]
    env.informers.add(CRON_JOBS, cj)
    await env.ctrl.reconcile(key_of(cj))
    assert env.cj()["status"] == {"lastScheduleTime": "2026-01-01T00:01:00Z",
                                  "lastSuccessfulTime": "2026-01-01T00:01:20Z"}
    assert "SawCompletedJob" in env.recorder.reasons()


async def test_vanished_job_is_removed_from_active():
    env = Env(at(1, 30))
    cj = env.seed_cj(make_cj(status={"lastScheduleTime": format_rfc3339(at(1)), "active": [
        {"apiVersion": "batch/v1", "kind": "Job", "namespace": NS, "name": "gone", "uid": "x"}]}))
    await env.ctrl.reconcile(key_of(cj))
    assert "active" not in env.cj()["status"]
    assert env.recorder.reasons() == ["MissingJob"]


async def test_unlisted_unfinished_job_is_reported():
    env = Env(at(1, 30))
    cj = env.seed_cj(make_cj(status={"lastScheduleTime": format_rfc3339(at(1))}))
    env.seed_jobs(make_job(cj, "manual"))
    await env.ctrl.reconcile(key_of(cj))
    assert env.recorder.reasons() == ["UnexpectedJob"]


async def test_history_limits_delete_the_oldest_finished_jobs():
    env = Env(at(10, 30))
    cj = env.seed_cj(make_cj(status={"lastScheduleTime": format_rfc3339(at(10))}))
    done = [make_job(cj, f"ok-{i}", "Complete", at(i), at(i, 30)) for i in range(5)]
    failed = [make_job(cj, f"bad-{i}", "Failed", at(i)) for i in range(2)]
    env.seed_jobs(*done, *failed)
    await env.ctrl.reconcile(key_of(cj))
    deleted = sorted(a.name for a in env.client.actions_of("delete", "jobs"))
    assert deleted == ["bad-0", "ok-0", "ok-1"]
    assert env.cj()["status"]["lastSuccessfulTime"] == "2026-01-01T00:04:30Z"


async def test_failed_creation_is_retried_and_status_kept():
    env = Env(at(1, 5))
    cj = env.seed_cj(make_cj())
    env.client.fail("create", "jobs", already_exists("jobs", f"hello-{MINUTE_T0 + 1}", "batch"))
    with pytest.raises(StatusError):
        await env.ctrl.reconcile(key_of(cj))
    assert env.client.actions_of("update", "cronjobs") == []


async def test_cronjob_without_status_object():
    env = Env(at(1, 5))
    cj = make_cj()
    cj["status"] = None
    env.informers.add(CRON_JOBS, {**env.seed_cj(cj), "status": None})
    await env.ctrl.reconcile(f"{NS}/hello")
    assert len(env.created_jobs()) == 1


async def test_deleting_cronjob_starts_nothing():
    env = Env(at(1, 5))
    cj = make_cj()
    cj["metadata"]["deletionTimestamp"] = format_rfc3339(at(1))
    cj = env.seed_cj(cj)
    assert await env.ctrl.reconcile(key_of(cj)) is None
    assert env.created_jobs() == []


def test_job_events_enqueue_the_owning_cronjob():
    env = Env(at(0))
    cj = env.seed_cj(make_cj())
    [job] = env.seed_jobs(make_job(cj, "j1"))
    orphan = {**job, "metadata": {**job["metadata"], "name": "j2", "ownerReferences": []}}
    env.ctrl.on_job_add(orphan)
    assert len(env.ctrl.queue) == 0
    env.ctrl.on_job_add(job)
    assert len(env.ctrl.queue) == 1


async def test_schedule_change_requeues_at_the_next_activation():
    env = Env(at(0, 30))
    cj = env.seed_cj(make_cj())
    env.ctrl.on_cron_job_update(cj, {**cj, "spec": {**cj["spec"], "schedule": "*/5 * * * *"}})
    assert len(env.ctrl.queue) == 0  # waits for 00:05
    env.clock.advance(271)
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(env.ctrl.queue) == 1
    env.ctrl.on_cron_job_update(cj, {**cj, "spec": {**cj["spec"], "suspend": True}})
    assert len(env.ctrl.queue) == 1  # same key, enqueued now
    env.ctrl.queue.shutdown()


async def test_a_job_created_before_a_lost_status_write_is_recorded_not_reported():
    """The Job of this activation exists (ours) but status never said so: it is adopted into status.active."""
    env = Env(at(1, 5))
    cj = env.seed_cj(make_cj())
    env.client.seed(JOBS, make_job(cj, f"hello-{MINUTE_T0 + 1}"))  # not in the informer yet: the cache lags
    await env.ctrl.reconcile(key_of(cj))
    status = env.cj()["status"]
    assert [r["name"] for r in status["active"]] == [f"hello-{MINUTE_T0 + 1}"]
    assert status["lastScheduleTime"] == "2026-01-01T00:01:00Z"
    assert "FailedCreate" not in env.recorder.reasons() and "UnexpectedJob" not in env.recorder.reasons()
