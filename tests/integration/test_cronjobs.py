"""CronJobs end to end: the session controller-manager starts Jobs on schedule and trims their history.

No kubelet runs here, and whether a Job controller runs does not matter: the tests write Job status
(conditions, startTime, completionTime) themselves through ``jobs/status``, as a Job controller would.
The schedule test must wait for a real minute boundary (up to ~65 s); it is the only slow test here
(pyproject defines no ``slow`` marker, so it is not marked). The history test uses a yearly schedule
and hand-made Jobs, so it runs in seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support import wait_for

pytestmark = pytest.mark.usefixtures("controller_manager")

ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def cronjob(name: str, schedule: str, **spec) -> dict:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": schedule, **spec, "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}}


def jobs_path(namespace: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs"


def cronjobs_path(namespace: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/cronjobs"


def create(api: httpx.Client, path: str, obj: dict) -> dict:
    resp = api.post(path, json=obj)
    assert resp.status_code == 201, resp.text
    return resp.json()


def owned_jobs(api: httpx.Client, namespace: str, cron_job: dict) -> list[dict]:
    items = api.get(jobs_path(namespace)).json()["items"]
    uid = cron_job["metadata"]["uid"]
    return [j for j in items if any(r.get("uid") == uid and r.get("controller")
                                    for r in j["metadata"].get("ownerReferences") or ())]


def get_cronjob(api: httpx.Client, namespace: str, name: str) -> dict:
    return api.get(f"{cronjobs_path(namespace)}/{name}").json()


def mark_finished(api: httpx.Client, namespace: str, name: str, condition: str, start: datetime) -> None:
    """Write what a Job controller writes for a finished Job (retrying on conflicts)."""
    def attempt() -> bool:
        job = api.get(f"{jobs_path(namespace)}/{name}").json()
        stamp = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
        end = start + timedelta(seconds=5)
        first = "SuccessCriteriaMet" if condition == "Complete" else "FailureTarget"
        job["status"] = {"startTime": stamp(start), "conditions": [
            {"type": first, "status": "True", "lastTransitionTime": stamp(end)},
            {"type": condition, "status": "True", "lastTransitionTime": stamp(end)}]}
        if condition == "Complete":
            job["status"].update(completionTime=stamp(end), succeeded=1)
        else:
            job["status"]["failed"] = 1
        resp = api.put(f"{jobs_path(namespace)}/{name}/status", json=job)
        assert resp.status_code in (200, 409), resp.text
        return resp.status_code == 200
    wait_for(attempt, timeout=10, message=f"status of job {name}")


def test_every_minute_cronjob_starts_its_first_job(api, namespace):
    every = create(api, cronjobs_path(namespace), cronjob("every", "* * * * *"))
    tokyo = create(api, cronjobs_path(namespace), cronjob("tokyo", "* * * * *", timeZone="Asia/Tokyo"))
    paused = create(api, cronjobs_path(namespace), cronjob("paused", "* * * * *", suspend=True))

    [job] = wait_for(lambda: owned_jobs(api, namespace, every), timeout=70, message="the first Job")
    scheduled = datetime.fromisoformat(job["metadata"]["annotations"][ANNOTATION])
    assert scheduled.tzinfo is not None and scheduled.second == 0
    assert job["metadata"]["name"] == f"every-{int(scheduled.timestamp()) // 60}"
    [owner] = job["metadata"]["ownerReferences"]
    assert owner == {"apiVersion": "batch/v1", "kind": "CronJob", "name": "every", "uid": every["metadata"]["uid"],
                     "controller": True, "blockOwnerDeletion": True}
    status = wait_for(lambda: get_cronjob(api, namespace, "every").get("status", {}).get("active") and
                      get_cronjob(api, namespace, "every")["status"], timeout=10, message="status.active")
    assert [r["name"] for r in status["active"]] == [job["metadata"]["name"]]
    assert status["lastScheduleTime"] == scheduled.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    [tokyo_job] = wait_for(lambda: owned_jobs(api, namespace, tokyo), timeout=10, message="the Tokyo Job")
    assert tokyo_job["metadata"]["annotations"][ANNOTATION].endswith("+09:00")
    assert owned_jobs(api, namespace, paused) == []

    # the Job finishes: it leaves status.active and sets lastSuccessfulTime
    mark_finished(api, namespace, job["metadata"]["name"], "Complete", scheduled.astimezone(UTC))
    done = wait_for(lambda: (s := get_cronjob(api, namespace, "every").get("status", {})).get("lastSuccessfulTime")
                    and s, timeout=10, message="lastSuccessfulTime")
    assert job["metadata"]["name"] not in [r["name"] for r in done.get("active") or ()]


def test_history_limits_trim_finished_jobs(api, namespace):
    owner = create(api, cronjobs_path(namespace),
                   cronjob("yearly", "@yearly", successfulJobsHistoryLimit=1, failedJobsHistoryLimit=0))
    ref = {"apiVersion": "batch/v1", "kind": "CronJob", "name": "yearly", "uid": owner["metadata"]["uid"],
           "controller": True, "blockOwnerDeletion": True}
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    plan = [("ok-0", "Complete", 0), ("ok-1", "Complete", 10), ("ok-2", "Complete", 20), ("bad-0", "Failed", 5)]
    for name, _, _ in plan:
        job = cronjob(name, "")["spec"]["jobTemplate"]
        create(api, jobs_path(namespace), {"apiVersion": "batch/v1", "kind": "Job",
                                           "metadata": {"name": name, "ownerReferences": [ref]}, **job})
    for name, condition, minutes in plan:
        mark_finished(api, namespace, name, condition, base + timedelta(minutes=minutes))

    def remaining() -> list[str] | None:
        names = sorted(j["metadata"]["name"] for j in owned_jobs(api, namespace, owner)
                       if not j["metadata"].get("deletionTimestamp"))
        return names if names == ["ok-2"] else None

    wait_for(remaining, timeout=15, message="history trimmed to ok-2")
    last = wait_for(lambda: get_cronjob(api, namespace, "yearly").get("status", {}).get("lastSuccessfulTime"),
                    timeout=10, message="lastSuccessfulTime")
    assert last == (base + timedelta(minutes=20, seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
