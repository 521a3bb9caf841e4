"""Regression tests for the review fixes in one pod's sync (kubelet.pods.sync, .status, .resizing), against the
fake CRI runtime and a fake clock (numbers refer to the items of the review).

The pod workers' and the status manager's side of the same review is in test_review_fixes_workers.py, the probe
workers' in test_review_fixes_prober.py.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import grpc
import pytest

from kubelet.allocation import FILE_NAME, AllocationCheckpoint
from kubelet.pods import sync as sync_module
from kubelet.pods.resizing import PodResizer
from kubelet.pods.status import StatusInputs, compute_pod_status
from kubelet.pods.sync import PodNotes, SyncResult
from kubelet.prober import Result
from kubelet.volumes import VolumeError
from machinery.clock import FakeClock
from tests.fakes import FakeRecorder
from tests.unit.kubelet.fakecri import FakeRuntime
from tests.unit.kubelet.podfixtures import FakeProber, container, make_syncer, pod, rec, sidecar, view

UID = "uid-1"
MI = 1 << 20
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


class ReportingRuntime(FakeRuntime):
    """The fake runtime, but ContainerStatus reports the resources a running container has (as containerd and
    kubemini's runtime do), which in-place resize compares against; and sandboxes get a chosen IP."""

    sandbox_ip: str | None = None

    async def run_pod_sandbox(self, config, runtime_handler: str = "") -> str:
        sandbox_id = await super().run_pod_sandbox(config, runtime_handler)
        if self.sandbox_ip:
            self.sandboxes[sandbox_id].ip = self.sandbox_ip
        return sandbox_id

    async def container_status(self, container_id: str, verbose: bool = False):
        status = await super().container_status(container_id, verbose)
        found = self.containers[container_id]
        if found.running:
            status.resources.linux.CopyFrom(found.config.linux.resources)
        return status


class BreakableVolumes:
    """The real VolumeManager, whose setup can be made to fail (a disk gone, a mount that hangs up)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.broken = False

    async def setup(self, p: dict) -> None:
        if self.broken:
            raise VolumeError("data", "the backing disk is gone")
        await self.inner.setup(p)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Harness:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.clock = FakeClock()
        self.runtime = ReportingRuntime(self.clock)
        self.recorder = FakeRecorder()
        self.prober = FakeProber()
        self.syncer = make_syncer(self.runtime, root, self.clock, self.recorder.event, prober=self.prober)
        self.volumes = BreakableVolumes(self.syncer.volumes)
        self.syncer.volumes = self.volumes
        self.notes = PodNotes()

    def with_resizer(self) -> Harness:
        checkpoint = AllocationCheckpoint(self.root / FILE_NAME)
        self.syncer.resizer = PodResizer(self.runtime, checkpoint, others=lambda uid: [], clock=self.clock)
        return self

    async def sync(self, p: dict) -> SyncResult:
        return await self.syncer.sync(p, self.notes)

    async def up(self, p: dict, passes: int = 2) -> SyncResult:
        result = None
        for _ in range(passes):
            result = await self.sync(p)
        assert result is not None
        return result

    def app(self, name: str = "app"):
        latest = self.runtime.latest(UID, name)
        assert latest is not None
        return latest

    def mutating_calls(self, since: int) -> list[str]:
        mutating = {"run_pod_sandbox", "create_container", "start_container", "stop_container",
                    "update_container_resources"}
        return [c.method for c in self.runtime.calls[since:] if c.method in mutating]


def state(result: SyncResult, name: str = "app", key: str = "containerStatuses") -> dict:
    return next(s for s in result.status[key] if s["name"] == name)


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


# --- 2. a sandbox that cannot be created is retried with a growing delay ------------------------------


async def test_a_failing_run_pod_sandbox_is_retried_after_10_20_40_seconds_and_a_success_resets_it(h: Harness):
    h.runtime.fail("run_pod_sandbox", grpc.StatusCode.UNKNOWN, "cni: no IP addresses left", times=4)
    attempts: list[float] = []
    while len(attempts) < 4:
        before = len(h.runtime.calls_of("run_pod_sandbox"))
        requeue = (await h.sync(pod())).requeue_after
        assert requeue > 0  # never retried at once
        if len(h.runtime.calls_of("run_pod_sandbox")) > before:
            attempts.append(h.clock.monotonic())
            await h.sync(pod())  # a wake-up right after a failure retries nothing
            assert len(h.runtime.calls_of("run_pod_sandbox")) == before + 1
        h.clock.advance(requeue)
    assert [b - a for a, b in itertools.pairwise(attempts)] == [10.0, 20.0, 40.0]
    assert h.recorder.reasons().count("FailedCreatePodSandBox") == 4
    assert not h.runtime.sandboxes
    h.clock.advance(h.syncer.backoff.delay(f"{UID}/sandbox"))  # the last failure's back-off is over
    created = await h.sync(pod())
    assert created.requeue_after == 0 and len(h.runtime.sandboxes_of(UID)) == 1
    assert h.syncer.backoff.delay(f"{UID}/sandbox") == 0  # one success resets the backoff
    await h.sync(pod())
    assert h.app().running
    h.runtime.lose_sandbox(h.runtime.sandboxes_of(UID)[0].id)
    h.runtime.fail("run_pod_sandbox", grpc.StatusCode.UNKNOWN, "cni: no IP addresses left", times=None)
    assert (await h.sync(pod())).requeue_after == 10.0  # starts again from 10 s


# --- 3. an httpGet postStart hook of a brand-new pod reaches the sandbox's IP -------------------------


async def test_the_post_start_hook_gets_the_pod_with_the_sandbox_ip(h: Harness, monkeypatch: pytest.MonkeyPatch):
    handed: list[dict] = []

    async def capture(p: dict, c: dict, container_id: str, runtime: Any, **_: Any) -> None:
        handed.append(p)

    monkeypatch.setattr(sync_module, "run_post_start", capture)
    spec = pod(container("app", lifecycle={"postStart": {"httpGet": {"path": "/started", "port": 8080}}}))
    assert "podIP" not in spec["status"]
    await h.up(spec)
    [sandbox] = h.runtime.sandboxes_of(UID)
    [given] = handed
    assert given["status"]["podIP"] == sandbox.ip
    assert given["status"]["podIPs"] == [{"ip": sandbox.ip}]
    assert "podIP" not in spec["status"]  # the API object itself is left alone


async def test_an_http_post_start_hook_of_a_new_pod_is_sent_to_the_sandbox_ip(h: Harness):
    requests: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await reader.readline())
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        h.runtime.sandbox_ip = "127.0.0.1"  # the pod's network namespace, as far as the hook can tell
        spec = pod(container("app", lifecycle={"postStart": {"httpGet": {"path": "/started", "port": port}}}))
        result = await asyncio.wait_for(h.up(spec), 10)
    finally:
        server.close()
        await server.wait_closed()
    assert requests and requests[0].startswith(b"GET /started ")
    assert "FailedPostStartHook" not in h.recorder.reasons()
    assert h.app().running and result.status["phase"] == "Running"


# --- 4. spec.activeDeadlineSeconds ---------------------------------------------------------------------


async def test_an_exceeded_active_deadline_fails_the_pod_with_deadline_exceeded(h: Harness):
    spec = pod(activeDeadlineSeconds=30)
    running = await h.up(spec)
    assert running.status["phase"] == "Running" and not running.done
    h.clock.advance(25)
    assert (await h.sync(spec)).requeue_after == pytest.approx(5)  # woken when the deadline comes
    h.clock.advance(5)
    result = await h.sync(spec)
    assert result.done
    assert result.status["phase"] == "Failed"
    assert result.status["reason"] == "DeadlineExceeded"
    assert result.status["message"] == DEADLINE_MESSAGE
    assert ("web", "Normal", "DeadlineExceeded", DEADLINE_MESSAGE) in h.recorder.events
    final = await h.syncer.terminate(spec, h.notes, 30)
    assert h.app().exited
    assert (final["phase"], final["reason"], final["message"]) == ("Failed", "DeadlineExceeded", DEADLINE_MESSAGE)



async def test_a_failing_sandbox_does_not_postpone_the_active_deadline(h: Harness):
    h.runtime.fail("run_pod_sandbox", grpc.StatusCode.UNKNOWN, "cni: no IP addresses left", times=None)
    spec = pod(activeDeadlineSeconds=15)
    await h.sync(spec)  # sets startTime
    h.clock.advance(10)
    assert (await h.sync(spec)).requeue_after <= 5  # the deadline comes in 5 s

# --- 5. a volume error no longer blocks kills ----------------------------------------------------------


async def test_a_liveness_failure_still_kills_while_a_volume_is_failing(h: Harness):
    spec = pod(terminationGracePeriodSeconds=15)
    await h.up(spec)
    first = h.app()
    h.volumes.broken = True
    h.prober.liveness_results["app"] = Result.FAILURE
    result = await h.sync(spec)
    assert first.exited and first.stop_timeout == 15
    assert "FailedMount" in h.recorder.reasons()
    assert result.requeue_after == 2.0
    del h.prober.liveness_results["app"]
    await h.sync(spec)
    assert h.app() is first  # nothing new starts without its volumes
    h.volumes.broken = False
    await h.sync(spec)
    assert h.app().attempt == 1 and h.app().running


async def test_a_pod_not_yet_started_gets_no_sandbox_until_its_volume_works(h: Harness):
    h.volumes.broken = True
    for _ in range(3):
        assert (await h.sync(pod())).requeue_after == 2.0
    assert not h.runtime.calls_of("run_pod_sandbox") and not h.runtime.sandboxes
    h.volumes.broken = False
    await h.up(pod())
    assert h.app().running


# --- 6. status of completed init containers and of pods whose sidecars outlive the main containers ---


def test_a_completed_regular_init_container_is_ready_and_a_failed_one_is_not():
    spec = pod(container("app"), init=[container("setup"), container("migrate")], restart_policy="OnFailure")
    runtime = view(rec("setup", "exited", exit_code=0, finished=1), rec("migrate", "exited", exit_code=1, finished=2))
    status = compute_pod_status(spec, runtime, StatusInputs())
    ready = {s["name"]: s["ready"] for s in status["initContainerStatuses"]}
    assert ready == {"setup": True, "migrate": False}


def test_a_pod_whose_sidecar_outlives_its_finished_containers_is_running():
    spec = pod(container("main"), init=[sidecar("proxy")], restart_policy="Never")
    for exit_code in (0, 1):
        runtime = view(rec("proxy", "running"), rec("main", "exited", exit_code=exit_code, started=1, finished=5))
        assert compute_pod_status(spec, runtime, StatusInputs())["phase"] == "Running"
    stopped = view(rec("proxy", "exited", exit_code=137, finished=6), rec("main", "exited", finished=5))
    assert compute_pod_status(spec, stopped, StatusInputs())["phase"] == "Succeeded"


async def test_the_sync_reports_running_until_the_sidecar_is_stopped(h: Harness):
    spec = pod(container("main"), init=[sidecar("proxy")], restart_policy="Never")
    await h.up(spec, passes=3)
    h.runtime.exit(h.app("main").id, 0)
    result = await h.sync(spec)
    assert result.done  # the worker now stops the sidecar ...
    assert result.status["phase"] == "Running"  # ... which still runs
    final = await h.syncer.terminate(spec, h.notes, 30)
    assert final["phase"] == "Succeeded"


# --- 7. grace 0 still gives the container the 2 s minimum -----------------------------------------------


async def test_a_liveness_kill_with_grace_0_stops_with_2_seconds(h: Harness):
    spec = pod(terminationGracePeriodSeconds=0)
    await h.up(spec)
    h.prober.liveness_results["app"] = Result.FAILURE
    await h.sync(spec)
    [stop] = h.runtime.calls_of("stop_container")
    assert stop.args[1] == 2


async def test_terminating_with_grace_0_stops_every_container_with_2_seconds(h: Harness):
    spec = pod(container("main"), init=[sidecar("proxy")])
    await h.up(spec, passes=3)
    await h.syncer.terminate(spec, h.notes, 0)
    stops = [(h.runtime.containers[c.args[0]].name, c.args[1]) for c in h.runtime.calls_of("stop_container")]
    assert stops == [("main", 2), ("proxy", 2)]


# --- 11. in-place resize and resizePolicy -------------------------------------------------------------


def resizable(memory: str, memory_policy: str) -> dict:
    policy = [{"resourceName": "cpu", "restartPolicy": "RestartContainer"},
              {"resourceName": "memory", "restartPolicy": memory_policy}]
    resources = {"requests": {"cpu": "500m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": memory}}
    return pod(container("app", resources=resources, resizePolicy=policy))


async def test_a_memory_resize_with_memory_not_required_is_applied_in_place(h: Harness):
    h.with_resizer()
    await h.up(resizable("256Mi", "NotRequired"))
    before = h.app()
    assert before.config.linux.resources.memory_limit_in_bytes == 256 * MI
    calls = len(h.runtime.calls)
    result = await h.sync(resizable("512Mi", "NotRequired"))
    assert h.mutating_calls(calls) == ["update_container_resources"]  # cpu's RestartContainer does not apply
    [update] = h.runtime.calls_of("update_container_resources")
    assert update.args[0] == before.id and update.args[1].memory_limit_in_bytes == 512 * MI
    assert h.app() is before and before.running
    assert state(result)["restartCount"] == 0
    assert state(result)["resources"]["limits"]["memory"] == "512Mi"
    calls = len(h.runtime.calls)
    await h.sync(resizable("512Mi", "NotRequired"))
    assert h.mutating_calls(calls) == []  # done: nothing more to apply


async def test_a_memory_resize_with_memory_restart_container_restarts_it_in_the_same_sync(h: Harness):
    h.with_resizer()
    await h.up(resizable("256Mi", "RestartContainer"))
    before = h.app()
    calls = len(h.runtime.calls)
    result = await h.sync(resizable("512Mi", "RestartContainer"))
    assert h.mutating_calls(calls) == ["stop_container", "create_container", "start_container"]
    assert before.exited
    after = h.app()
    assert after.attempt == 1 and after.running
    assert after.config.linux.resources.memory_limit_in_bytes == 512 * MI
    assert not h.runtime.calls_of("update_container_resources")
    assert state(result)["restartCount"] == 1 and "running" in state(result)["state"]
    assert ("web", "Normal", "Killing", "Container app resize requires a restart, will be restarted") \
        in h.recorder.events
    calls = len(h.runtime.calls)
    await h.sync(resizable("512Mi", "RestartContainer"))
    assert h.mutating_calls(calls) == []  # restarted once, not again


async def test_a_crash_after_a_resize_restart_is_restarted_at_once(h: Harness):
    h.with_resizer()
    await h.up(resizable("256Mi", "RestartContainer"))
    await h.sync(resizable("512Mi", "RestartContainer"))
    h.runtime.exit(h.app().id, 1)
    await h.sync(resizable("512Mi", "RestartContainer"))
    assert h.app().attempt == 2 and h.app().running

