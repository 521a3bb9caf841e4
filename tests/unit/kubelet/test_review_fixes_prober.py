"""Regression test for the review fix in the probe workers (kubelet.prober.worker): after a kubelet restart, a
startup or readiness worker resumes the verdict the pod's status already reports for the same container
instance (started / ready), instead of "not started" / "not ready"; a different instance starts afresh."""

from __future__ import annotations

import asyncio

import pytest

from kubelet.prober import ProbeKind, ProbeManager, ProbeSpec, Result
from kubelet.prober.worker import Worker, WorkerHooks, WorkerKey
from machinery.clock import FakeClock
from tests.unit.kubelet.podfixtures import container, pod
from tests.unit.kubelet.probe_fakes import FakeExecRuntime, exec_action, settle

UID = "uid-1"


def reported(container_id: str, *, started: bool, ready: bool) -> dict:
    p = pod(container("app"))
    p["status"] = {"phase": "Running", "containerStatuses": [
        {"name": "app", "containerID": f"kubemini://{container_id}", "started": started, "ready": ready}]}
    return p


def probe_worker(kind: ProbeKind, p: dict) -> Worker:
    hooks = WorkerHooks(published=lambda w, old, new: None, event=lambda *a: None, may_probe=lambda w: True)
    return Worker(WorkerKey(UID, "app", kind), p, p["spec"]["containers"][0],
                  ProbeSpec.from_probe(exec_action("check"), kind), runtime=FakeExecRuntime(), clock=FakeClock(),
                  hooks=hooks)


@pytest.mark.parametrize(("kind", "same", "other"), [
    (ProbeKind.STARTUP, Result.SUCCESS, Result.UNKNOWN),
    (ProbeKind.READINESS, Result.SUCCESS, Result.FAILURE),
])
def test_a_worker_resumes_the_verdict_the_status_reports_for_the_same_container(kind, same, other):
    p = reported("c1", started=True, ready=True)
    resumed = probe_worker(kind, p)
    resumed.set_container("c1", 0.0)
    assert resumed.result is same
    fresh = probe_worker(kind, p)
    fresh.set_container("c2", 0.0)  # a different instance: the verdict was about another container
    assert fresh.result is other


def test_a_worker_does_not_resume_what_the_status_does_not_claim():
    p = reported("c1", started=False, ready=False)
    startup, readiness = probe_worker(ProbeKind.STARTUP, p), probe_worker(ProbeKind.READINESS, p)
    startup.set_container("c1", 0.0)
    readiness.set_container("c1", 0.0)
    assert (startup.result, readiness.result) == (Result.UNKNOWN, Result.FAILURE)


async def test_a_restarted_kubelets_probe_manager_resumes_the_verdicts_and_probes_readiness_again():
    runtime = FakeExecRuntime()
    runtime.set("check", 1)  # the next probe would fail
    clock = FakeClock()
    manager = ProbeManager(runtime, clock=clock)
    p = reported("c1", started=True, ready=True)
    p["spec"]["containers"][0].update(startupProbe=exec_action("check"),
                                      readinessProbe=exec_action("check", failureThreshold=1))
    manager.update_pod(p)
    manager.set_container(UID, "app", "c1", clock.monotonic())
    assert manager.started(UID, "app") is Result.SUCCESS
    assert manager.readiness(UID, "app") is Result.SUCCESS
    task = asyncio.create_task(manager.run())
    try:
        await settle()
        assert runtime.count("check") == 1  # startup is done; readiness still probes ...
        assert manager.readiness(UID, "app") is Result.FAILURE  # ... and a real failure still counts
        assert manager.started(UID, "app") is Result.SUCCESS
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
