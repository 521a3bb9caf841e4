"""Jobs end to end: the session controller-manager runs the Job controller against the real API server.

No kubelet runs here, so the tests play it: they write each pod's terminal phase through
``pods/status`` (Succeeded or Failed, with a terminated container status) and watch the Job's status
and conditions follow.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest

from tests.support import wait_for

pytestmark = pytest.mark.usefixtures("controller_manager")

TIMEOUT = 15
INDEX = "batch.kubernetes.io/job-completion-index"
FINALIZER = "batch.kubernetes.io/job-tracking"


def job_manifest(name: str, **spec) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "work", "image": "busybox"}]}}, **spec}}


def create_job(api: httpx.Client, namespace: str, name: str, **spec) -> dict:
    resp = api.post(f"/apis/batch/v1/namespaces/{namespace}/jobs", json=job_manifest(name, **spec))
    assert resp.status_code == 201, resp.text
    return resp.json()


def get_job(api: httpx.Client, namespace: str, name: str) -> dict:
    resp = api.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")
    resp.raise_for_status()
    return resp.json()


def job_pods(api: httpx.Client, namespace: str, name: str) -> list[dict]:
    resp = api.get(f"/api/v1/namespaces/{namespace}/pods",
                   params={"labelSelector": f"batch.kubernetes.io/job-name={name}"})
    resp.raise_for_status()
    return resp.json()["items"]


def running(pods: list[dict]) -> list[dict]:
    return [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            and not p["metadata"].get("deletionTimestamp")]


def finish(api: httpx.Client, pod: dict, phase: str, exit_code: int) -> None:
    """Write what a kubelet reports for a pod whose only container exited with ``exit_code``."""
    path = f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods/{pod['metadata']['name']}"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for _ in range(10):
        current = api.get(path).json()
        current["status"] = {"phase": phase, "startTime": now, "containerStatuses": [{
            "name": "work", "image": "busybox", "imageID": "", "ready": False, "restartCount": 0,
            "state": {"terminated": {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                                     "startedAt": now, "finishedAt": now}}}]}
        resp = api.put(f"{path}/status", json=current)
        if resp.status_code != 409:
            assert resp.status_code == 200, resp.text
            return
    raise AssertionError(f"could not write the status of {path}")


def condition(job: dict, type_: str) -> dict | None:
    return next((c for c in (job.get("status") or {}).get("conditions") or () if c["type"] == type_
                 and c["status"] == "True"), None)


def test_completions_with_parallelism_complete(api, namespace):
    create_job(api, namespace, "five", completions=5, parallelism=2)
    done = 0
    while done < 5:
        pods = wait_for(lambda: running(job_pods(api, namespace, "five")), timeout=TIMEOUT, message="a running pod")
        assert len(pods) <= 2
        for pod in pods[: 5 - done]:
            assert FINALIZER in pod["metadata"]["finalizers"]
            finish(api, pod, "Succeeded", 0)
            done += 1
    job = wait_for(lambda: condition(j := get_job(api, namespace, "five"), "Complete") and j,
                   timeout=TIMEOUT, message="Complete")
    assert job["status"]["succeeded"] == 5
    assert condition(job, "SuccessCriteriaMet")["reason"] == "CompletionsReached"
    assert job["status"].get("completionTime")
    wait_for(lambda: all(FINALIZER not in (p["metadata"].get("finalizers") or [])
                         for p in job_pods(api, namespace, "five")), timeout=TIMEOUT, message="finalizers removed")
    assert len(job_pods(api, namespace, "five")) == 5


def test_failing_pod_is_retried_then_backoff_limit_fails_the_job(api, namespace):
    create_job(api, namespace, "flaky", backoffLimit=1)
    first = wait_for(lambda: running(job_pods(api, namespace, "flaky")), timeout=TIMEOUT, message="a pod")[0]
    finish(api, first, "Failed", 1)
    wait_for(lambda: (get_job(api, namespace, "flaky").get("status") or {}).get("failed") == 1,
             timeout=TIMEOUT, message="failed=1")
    second = wait_for(lambda: running(job_pods(api, namespace, "flaky")), timeout=TIMEOUT,  # after ~10 s backoff
                      message="a replacement pod")[0]
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    finish(api, second, "Failed", 1)
    job = wait_for(lambda: condition(j := get_job(api, namespace, "flaky"), "Failed") and j,
                   timeout=TIMEOUT, message="Failed")
    assert condition(job, "Failed")["reason"] == "BackoffLimitExceeded"
    assert condition(job, "FailureTarget")["reason"] == "BackoffLimitExceeded"
    assert job["status"]["failed"] == 2


def test_indexed_job_pods_carry_their_index(api, namespace):
    create_job(api, namespace, "idx", completions=3, parallelism=3, completionMode="Indexed")
    pods = wait_for(lambda: len(p := running(job_pods(api, namespace, "idx"))) == 3 and p, timeout=TIMEOUT,
                    message="3 pods")
    by_index = {p["metadata"]["annotations"][INDEX]: p for p in pods}
    assert sorted(by_index) == ["0", "1", "2"]
    wait_for(lambda: (get_job(api, namespace, "idx").get("status") or {}).get("active") == 3, timeout=TIMEOUT,
             message="active 3")
    settled = get_job(api, namespace, "idx")["metadata"]["resourceVersion"]
    time.sleep(1)
    assert get_job(api, namespace, "idx")["metadata"]["resourceVersion"] == settled  # no status write loop
    for index, pod in by_index.items():
        assert pod["metadata"]["labels"][INDEX] == index
        assert pod["spec"]["hostname"] == f"idx-{index}"
    finish(api, by_index["1"], "Succeeded", 0)
    wait_for(lambda: (get_job(api, namespace, "idx").get("status") or {}).get("completedIndexes") == "1",
             timeout=TIMEOUT, message="completedIndexes 1")
    for index in ("0", "2"):
        finish(api, by_index[index], "Succeeded", 0)
    job = wait_for(lambda: condition(j := get_job(api, namespace, "idx"), "Complete") and j,
                   timeout=TIMEOUT, message="Complete")
    assert job["status"]["completedIndexes"] == "0-2"


def test_active_deadline_fails_the_job_and_removes_its_pods(api, namespace):
    create_job(api, namespace, "slow", completions=2, parallelism=2, activeDeadlineSeconds=1)
    job = wait_for(lambda: condition(j := get_job(api, namespace, "slow"), "Failed") and j, timeout=TIMEOUT,
                   message="Failed")
    assert condition(job, "Failed")["reason"] == "DeadlineExceeded"
    assert condition(job, "FailureTarget")["reason"] == "DeadlineExceeded"
    wait_for(lambda: not job_pods(api, namespace, "slow"), timeout=TIMEOUT, message="pods deleted")


def test_suspended_job_starts_when_resumed(api, namespace):
    create_job(api, namespace, "later", suspend=True)
    wait_for(lambda: condition(get_job(api, namespace, "later"), "Suspended"), timeout=TIMEOUT, message="Suspended")
    assert job_pods(api, namespace, "later") == []
    resp = api.patch(f"/apis/batch/v1/namespaces/{namespace}/jobs/later", json={"spec": {"suspend": False}},
                     headers={"Content-Type": "application/merge-patch+json"})
    assert resp.status_code == 200, resp.text
    wait_for(lambda: running(job_pods(api, namespace, "later")), timeout=TIMEOUT, message="a pod")
    job = wait_for(lambda: (j := get_job(api, namespace, "later"))["status"].get("startTime") and j,
                   timeout=TIMEOUT, message="startTime")  # status is written after the pods are created
    assert condition(job, "Suspended") is None
    resumed = next(c for c in job["status"]["conditions"] if c["type"] == "Suspended")
    assert (resumed["status"], resumed["reason"]) == ("False", "JobResumed")


def test_ttl_after_finished_deletes_job_and_pods(api, namespace):
    create_job(api, namespace, "brief", ttlSecondsAfterFinished=1)
    pod = wait_for(lambda: running(job_pods(api, namespace, "brief")), timeout=TIMEOUT, message="a pod")[0]
    finish(api, pod, "Succeeded", 0)
    wait_for(lambda: api.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/brief").status_code == 404,
             timeout=TIMEOUT, message="job deleted")
    wait_for(lambda: not job_pods(api, namespace, "brief"), timeout=TIMEOUT, message="pods collected")


def test_deleted_job_releases_its_running_pods(api, namespace):
    create_job(api, namespace, "gone", completions=2, parallelism=2)
    wait_for(lambda: len(running(job_pods(api, namespace, "gone"))) == 2, timeout=TIMEOUT, message="2 pods")
    resp = api.delete(f"/apis/batch/v1/namespaces/{namespace}/jobs/gone", params={"propagationPolicy": "Foreground"})
    assert resp.status_code == 200, resp.text
    wait_for(lambda: api.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/gone").status_code == 404,
             timeout=TIMEOUT, message="job deleted")
    wait_for(lambda: not job_pods(api, namespace, "gone"), timeout=TIMEOUT, message="pods deleted")
