"""Job controller: reconcile against fakes, asserting pods, status and conditions it writes."""

from __future__ import annotations

import pytest

from controllers.controller import ControllerContext
from controllers.job import JobController
from controllers.job.util import (
    COMPLETION_INDEX,
    CONTROLLER_UID_LABEL,
    JOB_NAME_LABEL,
    TRACKING_FINALIZER,
    backoff_delay,
    format_indexes,
    match_pod_failure_policy,
    parse_indexes,
)
from machinery.client import JOBS, PODS
from machinery.clock import FakeClock
from machinery.meta import format_rfc3339, name_of, uid_of
from tests.fakes import FakeClient, FakeInformers, FakeRecorder

NS = "default"
UID = "job-uid-1"


def make_job(name="pi", completions=1, parallelism=1, **spec):
    labels = {CONTROLLER_UID_LABEL: UID, "controller-uid": UID, JOB_NAME_LABEL: name, "job-name": name}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": NS, "uid": UID},
        "spec": {"completions": completions, "parallelism": parallelism, "backoffLimit": 6,
                 "completionMode": "NonIndexed", "suspend": False,
                 "selector": {"matchLabels": {CONTROLLER_UID_LABEL: UID}},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}},
                 **spec},
    }


class Harness:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.client = FakeClient(clock=self.clock)
        self.informers = FakeInformers()
        self.recorder = FakeRecorder()
        self.ctrl = JobController(ControllerContext(self.client, self.informers, self.recorder, self.clock))
        self.key = f"{NS}/pi"

    def seed(self, job):
        self.client.seed(JOBS, job)
        self.watch()

    def watch(self) -> None:
        """Mirror the fake client into the stores and call the pod handlers, as a watch would."""
        store = self.informers.informer(PODS).store
        before = {uid_of(p): p for p in store.list()}
        self.informers.sync_from(self.client, JOBS, PODS)
        after = {uid_of(p): p for p in store.list()}
        for uid, pod in after.items():
            if uid not in before:
                self.ctrl.on_pod_add(pod)
            elif before[uid]["metadata"]["resourceVersion"] != pod["metadata"]["resourceVersion"]:
                self.ctrl.on_pod_update(before[uid], pod)
        for uid, pod in before.items():
            if uid not in after:
                self.ctrl.on_pod_delete(pod)

    async def sync(self, rounds: int = 1):
        result = None
        for _ in range(rounds):
            result = await self.ctrl.reconcile(self.key)
            self.watch()
        return result

    def job(self):
        return self.client.stored(JOBS, NS, "pi")

    def status(self):
        return self.job().get("status") or {}

    def pods(self):
        return sorted(self.client.all(PODS, NS), key=name_of)

    def set_phase(self, pod, phase, exit_code=None, conditions=None):
        stored = self.client.stored(PODS, NS, name_of(pod))
        stored["status"] = {"phase": phase, "conditions": conditions or []}
        if exit_code is not None:
            stored["status"]["containerStatuses"] = [{"name": "c", "state": {"terminated": {"exitCode": exit_code}}}]
        stored["metadata"]["resourceVersion"] = str(int(stored["metadata"]["resourceVersion"]) + 10000)
        self.watch()

    def conditions(self):
        return {c["type"]: c for c in self.status().get("conditions") or ()}


@pytest.fixture
def h():
    return Harness()


async def test_creates_parallelism_pods_with_labels_finalizer_and_owner(h):
    h.seed(make_job(completions=5, parallelism=2))
    await h.sync()
    pods = h.pods()
    assert len(pods) == 2
    for pod in pods:
        meta = pod["metadata"]
        assert TRACKING_FINALIZER in meta["finalizers"]
        assert meta["labels"][CONTROLLER_UID_LABEL] == UID and meta["labels"]["job-name"] == "pi"
        assert meta["ownerReferences"][0]["controller"] is True and meta["ownerReferences"][0]["kind"] == "Job"
        assert meta["generateName"] == "pi-"
    assert h.status()["active"] == 2 and h.status()["startTime"]
    assert h.status()["uncountedTerminatedPods"] == {}
    assert h.recorder.reasons().count("SuccessfulCreate") == 2
    await h.sync()
    assert len(h.pods()) == 2  # expectations and the cache agree: nothing more


async def test_completions_reached_gives_success_criteria_then_complete(h):
    h.seed(make_job(completions=3, parallelism=2))
    await h.sync()
    for _ in range(3):
        running = [p for p in h.pods() if (p.get("status") or {}).get("phase") != "Succeeded"]
        h.set_phase(running[0], "Succeeded")
        await h.sync(2)
    status = h.status()
    assert status["succeeded"] == 3
    assert "failed" not in status and "active" not in status
    assert h.conditions()["SuccessCriteriaMet"]["reason"] == "CompletionsReached"
    assert h.conditions()["Complete"]["status"] == "True"
    assert status["completionTime"]
    assert all(TRACKING_FINALIZER not in (p["metadata"].get("finalizers") or []) for p in h.pods())
    assert "Completed" in h.recorder.reasons()


async def test_finished_pod_recorded_as_uncounted_before_finalizer_removal(h):
    h.seed(make_job(completions=2, parallelism=1))
    await h.sync()
    pod = h.pods()[0]
    h.set_phase(pod, "Succeeded")
    await h.ctrl.reconcile(h.key)
    writes = [a for a in h.client.actions_of("update", "jobs") if a.subresource == "status"]
    assert writes[-2].body["status"]["uncountedTerminatedPods"] == {"succeeded": [uid_of(pod)]}
    assert writes[-1].body["status"]["succeeded"] == 1
    assert writes[-1].body["status"]["uncountedTerminatedPods"] == {}
    patches = h.client.actions_of("patch", "pods")
    assert patches[-1].body[-1] == {"op": "remove", "path": "/metadata/finalizers/0"}
    assert len(h.client.actions_of("create", "pods")) == 2  # the second completion's pod


async def test_stale_pod_cache_does_not_double_count(h):
    h.seed(make_job(completions=3, parallelism=1))
    await h.sync()
    pod = h.pods()[0]
    h.set_phase(pod, "Succeeded")
    stale = h.informers.informer(PODS).store.get(f"{NS}/{name_of(pod)}")
    await h.ctrl.reconcile(h.key)
    h.informers.sync_from(h.client, JOBS)  # the job catches up, the pod cache still shows the finalizer
    h.informers.informer(PODS).store.upsert(stale)
    await h.ctrl.reconcile(h.key)
    assert h.status()["succeeded"] == 1


async def test_indexed_pods_carry_their_index(h):
    h.seed(make_job(completions=3, parallelism=3, completionMode="Indexed"))
    await h.sync()
    pods = h.pods()
    indexes = sorted(p["metadata"]["annotations"][COMPLETION_INDEX] for p in pods)
    assert indexes == ["0", "1", "2"]
    for pod in pods:
        index = pod["metadata"]["annotations"][COMPLETION_INDEX]
        assert pod["metadata"]["labels"][COMPLETION_INDEX] == index
        assert pod["spec"]["hostname"] == f"pi-{index}"
        assert pod["metadata"]["generateName"] == f"pi-{index}-"
        assert pod["spec"]["containers"][0]["env"][0]["name"] == "JOB_COMPLETION_INDEX"
    by_index = {p["metadata"]["annotations"][COMPLETION_INDEX]: p for p in pods}
    h.set_phase(by_index["0"], "Succeeded")
    h.set_phase(by_index["2"], "Succeeded")
    await h.sync(2)
    assert h.status()["completedIndexes"] == "0,2"
    assert h.status()["succeeded"] == 2
    h.set_phase(by_index["1"], "Failed")
    await h.sync(2)
    assert h.status()["failed"] == 1
    clock_pods = [p for p in h.pods() if not (p.get("status") or {}).get("phase")]
    assert clock_pods == []  # the replacement for index 1 waits for the 10 s backoff
    h.clock.advance(10)
    await h.sync()
    replacement = [p for p in h.pods() if not (p.get("status") or {}).get("phase")]
    assert [p["metadata"]["annotations"][COMPLETION_INDEX] for p in replacement] == ["1"]
    h.set_phase(replacement[0], "Succeeded")
    await h.sync(3)
    assert h.status()["completedIndexes"] == "0-2"
    assert h.conditions()["Complete"]["status"] == "True"


async def test_backoff_delays_recreation_and_limit_fails_the_job(h):
    h.seed(make_job(backoffLimit=1))
    await h.sync()
    h.set_phase(h.pods()[0], "Failed")
    requeue = await h.sync()
    assert requeue == pytest.approx(10.0)
    assert h.status()["failed"] == 1 and len(h.pods()) == 1
    h.clock.advance(10)
    await h.sync()
    assert len(h.pods()) == 2
    new = next(p for p in h.pods() if not (p.get("status") or {}).get("phase"))
    h.set_phase(new, "Failed")
    await h.sync(2)
    conditions = h.conditions()
    assert conditions["FailureTarget"]["reason"] == "BackoffLimitExceeded"
    assert conditions["Failed"]["reason"] == "BackoffLimitExceeded"
    assert conditions["Failed"]["message"] == "Job has reached the specified backoff limit"
    assert h.status()["failed"] == 2
    assert "BackoffLimitExceeded" in h.recorder.reasons()


def test_backoff_delay_doubles_up_to_six_minutes():
    assert [backoff_delay(n) for n in (0, 1, 2, 3, 6, 7, 20)] == [0, 10, 20, 40, 320, 360, 360]


async def test_active_deadline_fails_the_job_and_deletes_pods(h):
    h.seed(make_job(completions=2, parallelism=2, activeDeadlineSeconds=30))
    requeue = await h.sync()
    assert requeue == pytest.approx(30)
    assert len(h.pods()) == 2
    h.clock.advance(31)
    await h.sync(2)
    conditions = h.conditions()
    assert conditions["FailureTarget"]["reason"] == "DeadlineExceeded"
    assert conditions["Failed"]["reason"] == "DeadlineExceeded"
    assert h.pods() == []
    assert "active" not in h.status()


async def test_pod_failure_policy_fail_job(h):
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]}
    h.seed(make_job(podFailurePolicy=policy, podReplacementPolicy="Failed"))
    await h.sync()
    pod = h.pods()[0]
    h.set_phase(pod, "Failed", exit_code=42)
    await h.sync(2)
    failed = h.conditions()["Failed"]
    assert failed["reason"] == "PodFailurePolicy"
    assert failed["message"] == (f"Container c for pod {NS}/{name_of(pod)} failed with exit code 42 matching "
                                 "FailJob rule at index 0")


async def test_pod_failure_policy_ignore_does_not_count(h):
    policy = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}
    h.seed(make_job(podFailurePolicy=policy, backoffLimit=0))
    await h.sync()
    h.set_phase(h.pods()[0], "Failed", conditions=[{"type": "DisruptionTarget", "status": "True"}])
    await h.sync(2)
    assert "failed" not in h.status()
    assert "Failed" not in h.conditions()
    assert len([p for p in h.pods() if not (p.get("status") or {}).get("phase")]) == 1  # replaced at once


def test_pod_failure_policy_count_and_not_in():
    job = make_job(podFailurePolicy={"rules": [
        {"action": "Count", "onExitCodes": {"containerName": "c", "operator": "NotIn", "values": [1, 2]}}]})
    pod = {"metadata": {"name": "p", "namespace": NS},
           "status": {"containerStatuses": [{"name": "c", "state": {"terminated": {"exitCode": 3}}}]}}
    assert match_pod_failure_policy(job, pod)[0] == "Count"
    pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] = 2
    assert match_pod_failure_policy(job, pod) == (None, "")


async def test_suspend_deletes_pods_and_resume_restarts(h):
    h.seed(make_job(completions=2, parallelism=2))
    await h.sync()
    job = h.job()
    job["spec"]["suspend"] = True
    h.watch()
    await h.sync()
    assert h.pods() == []
    assert h.conditions()["Suspended"]["status"] == "True"
    assert "Suspended" in h.recorder.reasons()
    h.clock.advance(5)
    h.job()["spec"]["suspend"] = False
    h.watch()
    await h.sync()
    assert h.conditions()["Suspended"]["status"] == "False"
    assert h.conditions()["Suspended"]["reason"] == "JobResumed"
    assert h.status()["startTime"] == format_rfc3339(h.clock.now())
    assert len(h.pods()) == 2


async def test_ttl_after_finished_deletes_job_in_background(h):
    h.seed(make_job(ttlSecondsAfterFinished=60))
    await h.sync()
    h.set_phase(h.pods()[0], "Succeeded")
    await h.sync(2)
    assert h.conditions()["Complete"]["status"] == "True"
    requeue = await h.sync()
    assert requeue == pytest.approx(60)
    h.clock.advance(60)
    await h.sync()
    delete = h.client.actions_of("delete", "jobs")[-1]
    assert delete.body["propagationPolicy"] == "Background"
    assert h.client.stored(JOBS, NS, "pi") is None


async def test_orphaned_pods_lose_their_finalizer_when_job_is_gone(h):
    h.seed(make_job(completions=1, parallelism=1))
    await h.sync()
    del h.client.objects[("jobs.batch", NS, "pi")]
    h.watch()
    await h.ctrl.reconcile(h.key)
    assert all(TRACKING_FINALIZER not in (p["metadata"].get("finalizers") or []) for p in h.pods())


async def test_work_queue_job_completes_when_one_succeeded_and_none_active(h):
    h.seed(make_job(completions=None, parallelism=2))
    await h.sync()
    first, second = h.pods()
    h.set_phase(first, "Succeeded")
    await h.sync(2)
    assert "Complete" not in h.conditions() and len(h.pods()) == 2  # no new pod, the other still runs
    h.set_phase(second, "Succeeded")
    await h.sync(2)
    assert h.conditions()["Complete"]["status"] == "True"
    assert h.status()["succeeded"] == 2


def test_completed_indexes_roundtrip():
    assert format_indexes({1, 3, 4, 5, 7}) == "1,3-5,7"
    assert parse_indexes("1,3-5,7", limit=5) == {1, 3, 4}
    assert format_indexes(set()) == ""


async def test_deadline_does_not_run_while_suspended(h):
    h.seed(make_job(activeDeadlineSeconds=30))
    await h.sync()
    h.job()["spec"]["suspend"] = True
    h.watch()
    await h.sync()
    h.clock.advance(60)
    await h.sync()
    assert "FailureTarget" not in h.conditions()
    h.job()["spec"]["suspend"] = False
    h.watch()
    requeue = await h.sync()
    assert requeue == pytest.approx(30)  # the deadline counts anew from the resumption
    assert "FailureTarget" not in h.conditions()


async def test_job_being_deleted_releases_pods_and_creates_none(h):
    h.seed(make_job(completions=2, parallelism=2))
    await h.sync()
    h.job()["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    h.job()["metadata"]["finalizers"] = ["foregroundDeletion"]
    for pod in h.pods():
        await h.client.delete(PODS, name_of(pod), NS)  # the garbage collector's deletions
    h.watch()
    creates = len(h.client.actions_of("create", "pods"))
    await h.sync()
    assert len(h.client.actions_of("create", "pods")) == creates
    assert h.pods() == []  # finalizers removed: the deletions completed


async def test_pods_of_a_previous_job_with_the_same_name_are_released(h):
    h.seed(make_job(completions=1, parallelism=1))
    await h.sync()
    old_pod = h.pods()[0]
    del h.client.objects[("jobs.batch", NS, "pi")]
    recreated = make_job(completions=1, parallelism=1)
    recreated["metadata"]["uid"] = "job-uid-2"
    h.seed(recreated)
    await h.sync()
    stored = h.client.stored(PODS, NS, name_of(old_pod))
    assert TRACKING_FINALIZER not in (stored["metadata"].get("finalizers") or [])
