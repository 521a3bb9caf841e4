"""Regression tests for the review fixes in the status manager (kubelet.pods.statusmanager) and the pod workers
(kubelet.pods.workers): statuses that flip while a write is in flight, forgetting a pod mid-write, conditions
other components own, admission beside terminating pods, deletions that interrupt a blocked sync, and
activeDeadlineSeconds end to end. Over the fake API client, the fake CRI runtime and a fake clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from kubelet.pods.statusmanager import StatusManager, merge_conditions
from kubelet.pods.workers import WorkerState
from machinery.client.resources import PODS
from machinery.clock import FakeClock
from machinery.meta import deep_copy
from tests.fakes import FakeClient
from tests.unit.kubelet.fakecri import FakeRuntime
from tests.unit.kubelet.podfixtures import container, pod
from tests.unit.kubelet.test_pod_workers import Kubelet, RecordingClient, a_node, bound, phase, settle, until

UID = "uid-1"
A = {"phase": "Running", "podIP": "10.88.0.2"}
B = {"phase": "Running", "podIP": "10.88.0.3"}


@dataclass
class GatedClient(FakeClient):
    """FakeClient whose status patches can be held in flight; every patch body is kept in ``bodies``."""

    bodies: list[dict] = field(default_factory=list)
    gate: asyncio.Event | None = None

    def hold(self) -> asyncio.Event:
        self.gate = asyncio.Event()
        return self.gate

    async def patch(self, resource, name, patch, namespace=None, **kwargs):
        self.bodies.append(deep_copy(patch))
        if self.gate is not None:
            await self.gate.wait()
        return await super().patch(resource, name, patch, namespace, **kwargs)


@pytest.fixture
async def manager() -> AsyncIterator[tuple[StatusManager, GatedClient, dict]]:
    client = GatedClient()
    stored = client.seed(PODS, pod(uid=UID))
    statuses = StatusManager(client)
    task = asyncio.create_task(statuses.run())
    try:
        yield statuses, client, stored
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def written(client: GatedClient) -> dict:
    return client.stored(PODS, "default", "web")["status"]


# --- 1. the status manager -----------------------------------------------------------------------------


async def test_a_status_flipping_back_while_its_write_is_in_flight_is_written_again(manager):
    statuses, client, p = manager
    statuses.set_status(p, A)
    await asyncio.wait_for(statuses.flush(UID), 1)
    gate = client.hold()
    statuses.set_status(p, B)
    await until(lambda: len(client.bodies) == 2, "B in flight")
    statuses.set_status(p, A)  # back to what was last written, while B is being written
    gate.set()
    await asyncio.wait_for(statuses.flush(UID), 1)
    await settle()
    assert [b["status"]["podIP"] for b in client.bodies] == ["10.88.0.2", "10.88.0.3", "10.88.0.2"]
    assert written(client)["podIP"] == A["podIP"]  # not lost


async def test_a_status_equal_to_the_last_written_one_is_not_sent(manager):
    statuses, client, p = manager
    statuses.set_status(p, A)
    await asyncio.wait_for(statuses.flush(UID), 1)
    statuses.set_status(p, B)
    await asyncio.wait_for(statuses.flush(UID), 1)
    statuses.set_status(p, A)  # a real change: written
    await asyncio.wait_for(statuses.flush(UID), 1)
    assert statuses.writes == 3
    statuses.set_status(p, dict(A))
    statuses.set_status(p, deep_copy(A))
    await asyncio.wait_for(statuses.flush(UID), 1)
    await settle()
    assert statuses.writes == 3 and len(client.bodies) == 3


async def test_after_a_restart_the_status_the_api_server_has_is_not_sent_again(manager):
    statuses, client, p = manager
    p["status"] = deep_copy(A)  # what a previous kubelet wrote
    statuses.set_status(p, deep_copy(A))
    await asyncio.wait_for(statuses.flush(UID), 1)  # nothing to wait for
    await settle()
    assert statuses.writes == 0 and not client.bodies


async def test_a_change_undone_before_it_was_sent_is_not_sent(manager):
    statuses, _, p = manager
    statuses.set_status(p, A)
    await asyncio.wait_for(statuses.flush(UID), 1)
    statuses.set_status(p, B)  # queued, no writer has run yet ...
    statuses.set_status(p, A)  # ... and undone: nothing is in flight
    await asyncio.wait_for(statuses.flush(UID), 1)
    await settle()
    assert statuses.writes == 1


async def test_forget_during_an_in_flight_write_does_not_bring_the_pod_back(manager):
    statuses, client, p = manager
    gate = client.hold()
    statuses.set_status(p, A)
    await until(lambda: client.bodies, "A in flight")
    statuses.forget(UID)  # the pod is cleaned up while its write is still on the wire
    await asyncio.wait_for(statuses.flush(UID), 1)  # forgotten: nothing to wait for
    gate.set()
    await settle()
    assert UID not in statuses._desired and UID not in statuses._written and UID not in statuses._written_version
    assert len(client.bodies) == 1  # and it is not written again


async def test_conditions_other_components_own_are_taken_from_the_freshest_pod():
    client = GatedClient()
    p = client.seed(PODS, pod(uid=UID, readinessGates=[{"conditionType": "example.com/lb"}]))
    fresh = deep_copy(p)
    fresh["status"]["conditions"] = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"},
        {"type": "example.com/lb", "status": "True"},
        {"type": "Ready", "status": "True"},  # the kubelet's own: ours replaces it
    ]
    ours = {"phase": "Running", "conditions": [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:05Z"},
        {"type": "Initialized", "status": "True"},
        {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
        {"type": "PodResizePending", "status": "True", "reason": "Deferred"},
    ]}
    statuses = StatusManager(client, current=lambda namespace, name: fresh)
    task = asyncio.create_task(statuses.run())
    try:
        statuses.set_status(p, ours)
        await asyncio.wait_for(statuses.flush(UID), 1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    conditions = {c["type"]: c for c in written(client)["conditions"]}
    assert list(conditions) == ["PodScheduled", "DisruptionTarget", "example.com/lb", "Initialized", "Ready",
                                "PodResizePending"]
    assert conditions["DisruptionTarget"]["reason"] == "EvictionByEvictionAPI"
    assert conditions["example.com/lb"]["status"] == "True"
    assert conditions["PodScheduled"]["lastTransitionTime"] == "2026-01-01T00:00:00Z"  # theirs, as it is now
    assert conditions["Ready"] == {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}
    assert len(ours["conditions"]) == 4 and ours["conditions"][0]["type"] == "PodScheduled"  # not changed


def test_merge_conditions_ignores_a_replaced_pods_conditions_order_and_keeps_unknown_ones_of_ours():
    theirs = [{"type": "Ready", "status": "True"}, {"type": "DisruptionTarget", "status": "True"}]
    ours = [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}]
    assert merge_conditions(theirs, ours) == [{"type": "PodScheduled", "status": "True"},
                                              {"type": "DisruptionTarget", "status": "True"},
                                              {"type": "Ready", "status": "False"}]
    assert merge_conditions([], ours) == [{"type": "PodScheduled", "status": "True"},
                                          {"type": "Ready", "status": "False"}]


async def test_the_conditions_of_a_recreated_pod_with_another_uid_are_not_merged():
    client = GatedClient()
    p = client.seed(PODS, pod(uid=UID))
    other = deep_copy(p)
    other["metadata"]["uid"] = "uid-2"
    other["status"]["conditions"] = [{"type": "DisruptionTarget", "status": "True"}]
    statuses = StatusManager(client, current=lambda namespace, name: other)
    task = asyncio.create_task(statuses.run())
    try:
        statuses.set_status(p, {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]})
        await asyncio.wait_for(statuses.flush(UID), 1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [c["type"] for c in written(client)["conditions"]] == ["Ready"]


# --- the pod workers -------------------------------------------------------------------------------------


@pytest.fixture
async def kubelet(tmp_path: Path) -> AsyncIterator[Kubelet]:
    clock = FakeClock()
    node = Kubelet(tmp_path, clock, RecordingClient(clock=clock), FakeRuntime(clock), a_node())
    async with node.running():
        yield node


def needing(name: str, cpu: str) -> dict[str, Any]:
    return bound(pod(container("app", resources={"requests": {"cpu": cpu}}), name=name, uid=name))


def gone(k: Kubelet, name: str = "web") -> bool:
    return k.client.stored(PODS, "default", name) is None


# 4. activeDeadlineSeconds through the worker: the pod is stopped and ends Failed/DeadlineExceeded.


async def test_a_pod_past_its_active_deadline_is_stopped_and_failed(kubelet: Kubelet):
    uid = kubelet.create(bound(pod(uid="u1", activeDeadlineSeconds=30)))
    await until(lambda: phase(kubelet) == "Running", "Running")
    for _ in range(25):
        await kubelet.tick(1)
    assert phase(kubelet) == "Running"
    for _ in range(10):
        await kubelet.tick(1)
    await until(lambda: phase(kubelet) == "Failed", "Failed")
    status = kubelet.status()
    assert status["reason"] == "DeadlineExceeded"
    assert status["message"] == "Pod was active on the node longer than the specified deadline"
    assert kubelet.runtime.latest(uid, "app").exited
    await until(lambda: kubelet.workers.workers[uid].state is WorkerState.TERMINATED, "terminated")
    assert not kubelet.client.deletes  # failed, but the pod object stays until someone deletes it



# 2. at the worker level: the sandbox backoff is only a requeue time, so any wake-up retries at once.


async def test_a_failing_sandbox_is_not_retried_before_its_backoff_at_the_worker_level(kubelet: Kubelet):
    kubelet.runtime.fail("run_pod_sandbox", grpc.StatusCode.UNKNOWN, "cni: no IP addresses left", times=None)
    kubelet.create(bound(pod(uid="u1")))
    await until(lambda: kubelet.runtime.calls_of("run_pod_sandbox"), "the first attempt")
    attempts = [kubelet.clock.monotonic()]
    for _ in range(80):
        before = len(kubelet.runtime.calls_of("run_pod_sandbox"))
        await kubelet.tick(1)
        if len(kubelet.runtime.calls_of("run_pod_sandbox")) > before:
            attempts.append(kubelet.clock.monotonic())
    assert len(attempts) >= 2
    assert attempts[1] - attempts[0] >= 10, attempts

# 8. admission counts a pod that is still terminating.


async def test_admission_counts_a_pod_still_terminating(kubelet: Kubelet):
    kubelet.create(needing("a", "3"))
    await until(lambda: phase(kubelet, "a") == "Running", "a running")
    gate = kubelet.runtime.block("stop_container")  # a's containers take their time to stop
    await kubelet.delete("a", 30)
    worker = kubelet.workers.workers["a"]
    await until(lambda: worker.state is WorkerState.TERMINATING and kubelet.runtime.calls_of("stop_container"),
                "a terminating")
    kubelet.create(needing("b", "2"))
    await until(lambda: phase(kubelet, "b") == "Failed", "b rejected")
    assert kubelet.status("b")["reason"] == "OutOfcpu"
    gate.set()
    await until(lambda: kubelet.client.deletes, "a deleted")  # (the fake drops it at its final status write)
    kubelet.create(needing("c", "2"))
    await until(lambda: phase(kubelet, "c") == "Running", "c running once a has let go")


# 9. a deletion interrupts a sync blocked in the runtime.


async def test_a_deletion_interrupts_a_sync_blocked_in_an_image_pull(kubelet: Kubelet):
    gate = kubelet.runtime.block("pull_image")
    uid = kubelet.create(bound(pod(uid="u1")))
    await until(lambda: kubelet.runtime.calls_of("pull_image"), "the pull started")
    await settle()
    await kubelet.delete("web", 30)
    await until(lambda: kubelet.client.deletes, "the pod deleted while the pull hangs")
    assert gone(kubelet)
    assert not gate.is_set()
    assert kubelet.client.deletes == [{"name": "web", "grace_period_seconds": 0, "preconditions": {"uid": uid}}]
    assert not kubelet.runtime.sandboxes_of(uid) and not kubelet.runtime.instances(uid)
    await until(lambda: uid not in kubelet.workers.workers, "the worker ended")


async def test_a_deletion_interrupts_a_hung_post_start_hook(kubelet: Kubelet):
    gate = kubelet.runtime.block("exec_sync")
    spec = pod(container("app", lifecycle={"postStart": {"exec": {"command": ["warm-up"]}}}), uid="u1")
    uid = kubelet.create(bound(spec))
    await until(lambda: kubelet.runtime.calls_of("exec_sync"), "the hook started")
    app = kubelet.runtime.latest(uid, "app")
    assert app.running
    await settle()
    await kubelet.delete("web", 7)
    await until(lambda: kubelet.client.deletes, "the pod deleted while the hook hangs")
    assert gone(kubelet)
    assert not gate.is_set()
    assert app.stop_timeout == 7
    assert len(kubelet.runtime.calls_of("exec_sync")) == 1
    await until(lambda: uid not in kubelet.workers.workers, "the worker ended")
