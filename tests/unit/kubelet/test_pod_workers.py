"""The pod workers' state machine (kubelet.pods.workers) with the status manager, over the fake API client, the fake
CRI runtime and a fake clock: what a user sees in the pod's status and what happens to its containers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubelet.pods.pleg import Pleg
from kubelet.pods.statusmanager import StatusManager
from kubelet.pods.workers import PodWorkers, WorkerState
from machinery.client.resources import PODS
from machinery.clock import FakeClock
from machinery.meta import deep_copy, format_rfc3339
from proto.cri import api_pb2 as cri
from tests.fakes import FakeClient, FakeRecorder
from tests.unit.kubelet.fakecri import FakeRuntime
from tests.unit.kubelet.podfixtures import FakeProber, container, make_syncer, pod, sidecar


@dataclass
class RecordingClient(FakeClient):
    """FakeClient that also keeps the keyword arguments of deletes (grace period, preconditions)."""

    deletes: list[dict[str, Any]] = field(default_factory=list)

    async def delete(self, resource, name, namespace=None, **kwargs):
        self.deletes.append({"name": name, **kwargs})
        return await super().delete(resource, name, namespace, **kwargs)


def a_node(**allocatable: str) -> dict:
    return {"metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1", "disk": "hdd"}},
            "spec": {"taints": []},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110", **allocatable}}}


def bound(p: dict) -> dict:
    """``p`` as the scheduler leaves it: bound to node-1 with PodScheduled=True."""
    p["spec"]["nodeName"] = "node-1"
    p["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True",
                                                       "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    return p


class Kubelet:
    """The pod-running half of a kubelet: workers, status manager and PLEG over shared fakes."""

    def __init__(self, root: Path, clock: FakeClock, client: RecordingClient, runtime: FakeRuntime,
                 node: dict) -> None:
        self.clock, self.client, self.runtime, self.node = clock, client, runtime, node
        self.recorder = FakeRecorder()
        self.syncer = make_syncer(runtime, root, clock, self.recorder.event, prober=FakeProber())
        self.statuses = StatusManager(client)
        self.rejected: list[tuple[str, str]] = []
        self.workers = PodWorkers(client, self.syncer, self.statuses, node=lambda: self.node, clock=clock,
                                  on_reject=lambda p, reason, message: self.rejected.append((reason, message)))
        self.pleg = Pleg(self.syncer.cache, self.workers.wake, clock=clock)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Kubelet]:
        tasks = [asyncio.create_task(self.workers.run()), asyncio.create_task(self.statuses.run())]
        await settle()
        try:
            yield self
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- driving -------------------------------------------------------------------------------------

    def create(self, p: dict, *, known: bool = False) -> str:
        stored = self.client.seed(PODS, p)
        self.workers.update(deep_copy(stored), known=known)
        return stored["metadata"]["uid"]

    def feed(self) -> None:
        """What the pod informer does: hand each worker the pod as the API server now has it."""
        for worker in list(self.workers.workers.values()):
            meta = worker.pod["metadata"]
            stored = self.client.stored(PODS, meta["namespace"], meta["name"])
            if stored is None:
                self.workers.remove(worker.pod)
            elif stored["metadata"]["resourceVersion"] != meta.get("resourceVersion"):
                self.workers.update(deep_copy(stored))

    async def tick(self, seconds: float = 1.0) -> None:
        """Let ``seconds`` pass as the kubelet would see them: clock, PLEG relist, informer echoes."""
        self.clock.advance(seconds)
        await settle()
        await self.pleg.relist()
        await settle()
        self.feed()
        await settle()

    async def delete(self, name: str, grace: int) -> None:
        """A graceful DELETE as the API server records it, seen by the kubelet."""
        stored = self.client.stored(PODS, "default", name)
        assert stored is not None
        stored["metadata"]["deletionTimestamp"] = format_rfc3339(self.clock.now())
        stored["metadata"]["deletionGracePeriodSeconds"] = grace
        stored["metadata"]["resourceVersion"] = str(int(stored["metadata"]["resourceVersion"]) + 1000)
        self.feed()
        await settle()

    # --- looking -------------------------------------------------------------------------------------

    def status(self, name: str = "web") -> dict:
        stored = self.client.stored(PODS, "default", name)
        assert stored is not None, f"pod {name} is gone"
        return stored.get("status") or {}

    def container(self, name: str = "app", pod_name: str = "web", key: str = "containerStatuses") -> dict:
        return next(s for s in self.status(pod_name)[key] if s["name"] == name)

    def status_writes(self) -> list:
        return [a for a in self.client.actions_of("patch", "pods") if a.subresource == "status"]


async def settle(rounds: int = 30) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def until(predicate: Callable[[], Any], message: str = "condition", seconds: float = 5.0) -> Any:
    """Yield to the loop until ``predicate()`` holds (real time only passes if it never does)."""
    deadline = time.monotonic() + seconds
    while True:
        for _ in range(200):
            result = predicate()
            if result:
                return result
            await asyncio.sleep(0)
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        await asyncio.sleep(0.001)


@pytest.fixture
async def kubelet(tmp_path: Path) -> AsyncIterator[Kubelet]:
    clock = FakeClock()
    node = Kubelet(tmp_path, clock, RecordingClient(clock=clock), FakeRuntime(clock), a_node())
    async with node.running():
        yield node


def phase(k: Kubelet, name: str = "web") -> str | None:
    return k.status(name).get("phase")


# --- bringing pods up --------------------------------------------------------------------------------


async def test_a_pod_goes_from_pending_to_running(kubelet: Kubelet):
    gate = kubelet.runtime.block("start_container")  # the container takes its time to start
    uid = kubelet.create(bound(pod(uid="u1")))
    await until(lambda: kubelet.status_writes(), "a status")
    assert phase(kubelet) == "Pending"
    assert kubelet.container()["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert kubelet.status_writes()[0].body["metadata"] == {"uid": uid}
    gate.set()
    await until(lambda: phase(kubelet) == "Running", "Running")
    status = kubelet.status()
    assert kubelet.container()["state"].keys() == {"running"}
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "PodScheduled": "True", "PodReadyToStartContainers": "True", "Initialized": "True",
        "ContainersReady": "True", "Ready": "True"}
    assert status["podIP"] and status["hostIP"] and status["qosClass"] == "BestEffort"
    assert kubelet.workers.workers[uid].state is WorkerState.SYNCING


async def test_a_crash_loop_restarts_after_10_20_40_80_seconds_and_shows_crash_loop_back_off(kubelet: Kubelet):
    kubelet.runtime.crash_on_start("app", 1)
    uid = kubelet.create(bound(pod(uid="u1")))
    restarts: dict[int, float] = {}
    messages: set[str] = set()
    while len(restarts) < 6 and kubelet.clock.monotonic() < 2000:
        await kubelet.tick(0.5)
        for instance in kubelet.runtime.instances(uid, "app"):
            restarts.setdefault(instance.attempt, kubelet.clock.monotonic())
        waiting = kubelet.container()["state"].get("waiting") or {}
        if waiting.get("reason") == "CrashLoopBackOff":
            messages.add(waiting["message"].split(" restarting")[0])
            assert phase(kubelet) == "Running"
            assert kubelet.container()["lastState"]["terminated"]["exitCode"] == 1
    gaps = [restarts[n + 1] - restarts[n] for n in range(5)]
    assert gaps[0] <= 1.0  # the first restart does not wait, as in the kubelet
    for gap, delay in zip(gaps[1:], (10, 20, 40, 80), strict=True):
        assert delay <= gap <= delay + 1.0, gaps
    assert messages >= {"back-off 10s", "back-off 20s", "back-off 40s", "back-off 80s"}
    assert kubelet.container()["restartCount"] >= 5


async def test_restart_policy_never_ends_failed_and_nothing_restarts(kubelet: Kubelet):
    uid = kubelet.create(bound(pod(restart_policy="Never", uid="u1")))
    await until(lambda: phase(kubelet) == "Running", "Running")
    kubelet.runtime.exit(kubelet.runtime.latest(uid, "app").id, 3)
    await kubelet.tick()
    await until(lambda: phase(kubelet) == "Failed", "Failed")
    assert kubelet.container()["state"]["terminated"]["exitCode"] == 3
    for _ in range(30):
        await kubelet.tick(10)
    assert len(kubelet.runtime.instances(uid, "app")) == 1  # kept for `kubectl logs`
    assert kubelet.workers.workers[uid].state is WorkerState.TERMINATED
    assert all(s.state == cri.SANDBOX_NOTREADY for s in kubelet.runtime.sandboxes_of(uid))  # sandbox stopped
    assert {c["type"]: c["status"] for c in kubelet.status()["conditions"]}["Ready"] == "False"


async def test_restart_policy_never_with_success_ends_succeeded(kubelet: Kubelet):
    uid = kubelet.create(bound(pod(restart_policy="Never", uid="u1")))
    await until(lambda: phase(kubelet) == "Running", "Running")
    kubelet.runtime.exit(kubelet.runtime.latest(uid, "app").id, 0)
    await kubelet.tick()
    await until(lambda: phase(kubelet) == "Succeeded", "Succeeded")


async def test_restart_policy_on_failure_restarts_failures_until_success(kubelet: Kubelet):
    uid = kubelet.create(bound(pod(restart_policy="OnFailure", uid="u1")))
    await until(lambda: phase(kubelet) == "Running", "Running")
    kubelet.runtime.exit(kubelet.runtime.latest(uid, "app").id, 1)
    await kubelet.tick()
    await until(lambda: kubelet.runtime.latest(uid, "app").attempt == 1, "a restart")
    await until(lambda: kubelet.container()["restartCount"] == 1, "restartCount 1")
    assert phase(kubelet) == "Running"
    kubelet.runtime.exit(kubelet.runtime.latest(uid, "app").id, 0)
    await kubelet.tick()
    await until(lambda: phase(kubelet) == "Succeeded", "Succeeded")
    await kubelet.tick(30)
    assert kubelet.runtime.latest(uid, "app").attempt == 1


async def test_init_containers_run_in_order_before_the_regular_ones(kubelet: Kubelet):
    uid = kubelet.create(bound(pod(container("main"), init=[container("init1"), container("init2")], uid="u1")))
    await until(lambda: kubelet.runtime.started_names(uid) == ["init1"], "init1")
    await kubelet.tick(5)
    assert kubelet.runtime.started_names(uid) == ["init1"]
    assert phase(kubelet) == "Pending"
    assert kubelet.container("main")["state"] == {"waiting": {"reason": "PodInitializing"}}
    kubelet.runtime.crash_on_start("init2", 0)  # init2 completes at once
    kubelet.runtime.exit(kubelet.runtime.latest(uid, "init1").id, 0)
    for _ in range(3):
        await kubelet.tick()
    assert kubelet.runtime.started_names(uid) == ["init1", "init2", "main"]
    await until(lambda: phase(kubelet) == "Running", "Running")
    init2 = kubelet.container("init2", key="initContainerStatuses")
    assert init2["state"]["terminated"]["reason"] == "Completed"


async def test_a_sidecar_starts_first_and_is_stopped_last(kubelet: Kubelet):
    uid = kubelet.create(bound(pod(container("main"), init=[sidecar("proxy")], uid="u1",
                                   terminationGracePeriodSeconds=30)))
    for _ in range(3):
        await kubelet.tick()
    assert kubelet.runtime.started_names(uid) == ["proxy", "main"]
    await until(lambda: phase(kubelet) == "Running", "Running")
    await kubelet.delete("web", 30)
    await until(lambda: kubelet.client.stored(PODS, "default", "web") is None, "the pod deleted")
    assert [(name, timeout) for _, name, timeout in kubelet.runtime.stopped] == [("main", 30), ("proxy", 30)]


async def test_a_finished_pods_sidecar_is_stopped_with_the_grace_period(kubelet: Kubelet):
    uid = kubelet.create(bound(pod(container("main"), init=[sidecar("proxy")], restart_policy="Never", uid="u1",
                                   terminationGracePeriodSeconds=45)))
    for _ in range(3):
        await kubelet.tick()
    kubelet.runtime.exit(kubelet.runtime.latest(uid, "main").id, 0)
    await kubelet.tick()
    await until(lambda: phase(kubelet) == "Succeeded", "Succeeded")
    proxy = kubelet.runtime.latest(uid, "proxy")
    assert proxy.exited and proxy.stop_timeout == 45


# --- deletion ----------------------------------------------------------------------------------------


async def test_deletion_stops_with_the_grace_period_writes_the_final_status_then_deletes(kubelet: Kubelet):
    uid = kubelet.create(bound(pod(uid="u1", terminationGracePeriodSeconds=30)))
    await until(lambda: phase(kubelet) == "Running", "Running")
    app = kubelet.runtime.latest(uid, "app")
    await kubelet.delete("web", 12)
    # (the fake drops a deleting pod at its next write, so wait for the kubelet's own DELETE)
    await until(lambda: kubelet.client.deletes, "the pod deleted")
    assert app.stop_timeout == 12
    assert kubelet.client.deletes == [{"name": "web", "grace_period_seconds": 0, "preconditions": {"uid": uid}}]
    actions = kubelet.client.actions
    final = max(i for i, a in enumerate(actions) if a.verb == "patch" and a.subresource == "status")
    assert actions[final].body["status"]["phase"] == "Failed"  # killed (137) under restartPolicy Always
    assert actions[final].body["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
    assert final < next(i for i, a in enumerate(actions) if a.verb == "delete")
    assert not kubelet.runtime.instances(uid) and not kubelet.runtime.sandboxes_of(uid)
    await until(lambda: uid not in kubelet.workers.workers, "the worker ended")


async def test_a_finished_pod_waits_for_its_deletion(kubelet: Kubelet):
    uid = kubelet.create(bound(pod(restart_policy="Never", uid="u1")))
    await until(lambda: phase(kubelet) == "Running", "Running")
    kubelet.runtime.exit(kubelet.runtime.latest(uid, "app").id, 0)
    await kubelet.tick()
    await until(lambda: phase(kubelet) == "Succeeded", "Succeeded")
    await kubelet.tick(600)
    assert kubelet.client.stored(PODS, "default", "web") is not None
    await kubelet.delete("web", 30)
    await until(lambda: kubelet.client.stored(PODS, "default", "web") is None, "the pod deleted")
    assert kubelet.client.deletes[0]["grace_period_seconds"] == 0


async def test_a_pod_removed_from_the_api_is_stopped_without_writing_or_deleting(kubelet: Kubelet):
    uid = kubelet.create(bound(pod(uid="u1")))
    await until(lambda: phase(kubelet) == "Running", "Running")
    writes = len(kubelet.status_writes())
    del kubelet.client.objects[("pods", "default", "web")]
    kubelet.feed()
    await until(lambda: uid not in kubelet.workers.workers, "the worker ended")
    assert not kubelet.runtime.instances(uid) and not kubelet.runtime.sandboxes_of(uid)
    assert len(kubelet.status_writes()) == writes and not kubelet.client.deletes


async def test_a_deletion_during_a_sync_is_acted_on_without_waiting_for_the_resync(kubelet: Kubelet):
    uid = kubelet.create(bound(pod(uid="u1")))
    await until(lambda: phase(kubelet) == "Running", "Running")
    await settle()
    gate = kubelet.runtime.block("container_status")
    kubelet.workers.wake(uid)
    await until(lambda: kubelet.runtime.calls_of("container_status")[-1:] and not gate.is_set(), "a sync")
    await settle()
    await kubelet.delete("web", 5)  # arrives while the sync waits for the runtime
    gate.set()
    await until(lambda: kubelet.runtime.calls_of("stop_container"), "the containers stopped (no clock advance)")


# --- a restarted kubelet, admission, status writes ---------------------------------------------------


async def test_a_known_pod_is_neither_readmitted_nor_restarted_after_a_kubelet_restart(tmp_path: Path,
                                                                                    kubelet: Kubelet):
    uid = kubelet.create(bound(pod(container("app", resources={"requests": {"cpu": "2"}}), uid="u1")))
    await until(lambda: phase(kubelet) == "Running", "Running")
    await kubelet.tick()  # the informer echo: the worker has the written status
    stored = kubelet.client.stored(PODS, "default", "web")
    # A new kubelet on the same runtime, on a node that now looks full: the pod was admitted before.
    again = Kubelet(tmp_path, kubelet.clock, kubelet.client, kubelet.runtime, a_node(cpu="1"))
    calls, writes = len(kubelet.runtime.calls), len(kubelet.status_writes())
    async with again.running():
        await again.pleg.relist()
        assert uid in again.syncer.cache.pod_uids()
        again.workers.update(deep_copy(stored), known=True)
        for _ in range(3):
            await again.tick(5)
        mutating = {"run_pod_sandbox", "create_container", "start_container", "stop_container"}
        assert not [c for c in kubelet.runtime.calls[calls:] if c.method in mutating]
        assert not again.rejected and phase(again) == "Running"
        assert len(again.status_writes()) == writes  # the status it computes is the one already stored


@pytest.mark.parametrize(("change", "reason"), [
    ({"containers": [container("app", resources={"requests": {"cpu": "8"}})]}, "OutOfcpu"),
    ({"nodeSelector": {"disk": "ssd"}}, "NodeAffinity"),
    ({"taints": [{"key": "maintenance", "effect": "NoExecute"}]}, "Taint"),
])
async def test_a_pod_the_node_cannot_run_is_rejected_and_failed(kubelet: Kubelet, change: dict, reason: str):
    spec = bound(pod(uid="u1"))
    if "taints" in change:
        kubelet.node["spec"]["taints"] = change["taints"]
    else:
        spec["spec"].update(change)
    uid = kubelet.create(spec)
    await until(lambda: phase(kubelet) == "Failed", "Failed")
    status = kubelet.status()
    assert status["reason"] == reason
    assert status["message"].startswith("Pod was rejected: ")
    assert kubelet.rejected and kubelet.rejected[0][0] == reason
    assert not kubelet.runtime.sandboxes_of(uid)
    assert kubelet.workers.workers[uid].state is WorkerState.TERMINATED
    assert kubelet.status()["conditions"][0]["type"] == "PodScheduled"  # a merge patch keeps what was there
    await kubelet.delete("web", 30)
    await until(lambda: kubelet.client.stored(PODS, "default", "web") is None, "the pod deleted")


async def test_admission_counts_the_pods_already_running(kubelet: Kubelet):
    def needing(name: str, cpu: str) -> dict:
        return bound(pod(container("app", resources={"requests": {"cpu": cpu}}), name=name, uid=name))

    kubelet.create(needing("a", "3"))
    kubelet.create(needing("b", "2"))
    await until(lambda: kubelet.client.stored(PODS, "default", "b").get("status", {}).get("phase") == "Failed",
                "b failed")
    assert kubelet.status("b")["reason"] == "OutOfcpu"
    await until(lambda: phase(kubelet, "a") == "Running", "a running")


async def test_the_status_is_written_only_when_it_changed(kubelet: Kubelet):
    kubelet.create(bound(pod(uid="u1")))
    await until(lambda: phase(kubelet) == "Running", "Running")
    await kubelet.tick()
    writes = len(kubelet.status_writes())
    for _ in range(6):
        await kubelet.tick(10)  # periodic resyncs and informer echoes, nothing changes
    assert len(kubelet.status_writes()) == writes
    kubelet.runtime.exit(kubelet.runtime.latest("u1", "app").id, 1)
    await kubelet.tick()
    assert len(kubelet.status_writes()) > writes
