"""One pod's sync through CRI (kubelet.pods.sync.PodSyncer) against the in-memory fake runtime and a fake clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from kubelet.cri import labels as L
from kubelet.pods.sync import PodNotes, SyncResult
from kubelet.prober import Result
from machinery.clock import FakeClock
from proto.cri import api_pb2 as cri
from tests.fakes import FakeRecorder
from tests.unit.kubelet.fakecri import FakeRuntime
from tests.unit.kubelet.podfixtures import HOST_IP, FakeObjects, FakeProber, container, make_syncer, pod, sidecar

UID = "uid-1"


class Harness:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.clock = FakeClock()
        self.runtime = FakeRuntime(self.clock)
        self.recorder = FakeRecorder()
        self.prober = FakeProber()
        self.objects = FakeObjects()
        self.syncer = make_syncer(self.runtime, root, self.clock, self.recorder.event, objects=self.objects,
                                  prober=self.prober)
        self.notes = PodNotes()

    async def sync(self, p: dict) -> SyncResult:
        return await self.syncer.sync(p, self.notes)

    async def up(self, p: dict, passes: int = 2) -> SyncResult:
        """Sync ``passes`` times (sandbox first, then the containers)."""
        result = None
        for _ in range(passes):
            result = await self.sync(p)
        assert result is not None
        return result

    def state(self, result: SyncResult, name: str = "app", key: str = "containerStatuses") -> dict:
        return next(s for s in result.status[key] if s["name"] == name)

    def app(self, name: str = "app"):
        latest = self.runtime.latest(UID, name)
        assert latest is not None
        return latest


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


# --- bringing a pod up -------------------------------------------------------------------------------


async def test_the_first_sync_runs_the_sandbox_and_asks_to_be_called_again_at_once(h: Harness):
    result = await h.sync(pod())
    [sandbox] = h.runtime.sandboxes.values()
    meta = sandbox.config.metadata
    assert (meta.name, meta.namespace, meta.uid, meta.attempt) == ("web", "default", UID, 0)
    assert sandbox.config.labels[L.POD_UID] == UID
    assert sandbox.config.hostname == "web"
    assert sandbox.config.log_directory == str(h.root / "logs" / f"default_web_{UID}")
    assert result.requeue_after == 0
    assert result.status["phase"] == "Pending"
    assert h.state(result)["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert not h.runtime.calls_of("create_container")


async def test_the_second_sync_pulls_creates_and_starts_the_containers(h: Harness):
    spec = pod(container("app", command=["echo", "$(GREETING)"], env=[{"name": "GREETING", "value": "hi"}]))
    result = await h.up(spec)
    app = h.app()
    assert app.running and app.attempt == 0
    assert [c.args[0] for c in h.runtime.calls_of("pull_image")] == ["busybox:1.36"]
    config = app.config
    assert list(config.command) == ["echo", "hi"]
    assert ("GREETING", "hi") in [(e.key, e.value) for e in config.envs]
    assert config.labels[L.CONTAINER_NAME] == "app" and config.labels[L.POD_UID] == UID
    assert config.annotations[L.RESTART_COUNT] == "0" and config.annotations[L.CONTAINER_KIND] == "regular"
    assert config.log_path == "app/0.log"
    assert app.log_path == str(h.root / "logs" / f"default_web_{UID}" / "app" / "0.log")
    assert "/dev/termination-log" in [m.container_path for m in config.mounts]
    assert result.status["phase"] == "Running"
    assert result.status["podIP"].startswith("10.88.0.") and result.status["hostIP"] == HOST_IP
    assert h.state(result)["containerID"] == f"fakecri://{app.id}"
    assert h.recorder.reasons() == ["Pulling", "Pulled", "Created", "Started"]
    assert result.requeue_after == 10.0
    assert h.prober.containers[(UID, "app")][0] == app.id


async def test_probes_see_the_sandbox_ip_before_the_api_status_has_it(h: Harness):
    result = await h.up(pod())  # the pod object still has no status: the status write has not landed yet
    given = h.prober.pods[-1]
    assert given["status"]["podIP"] == result.status["podIP"] and given["status"]["podIP"].startswith("10.88.0.")
    assert given["status"]["podIPs"] == [{"ip": given["status"]["podIP"]}]


async def test_a_present_image_is_not_pulled_under_if_not_present(h: Harness):
    h.runtime.add_image("busybox:1.36")
    await h.up(pod())
    assert not h.runtime.calls_of("pull_image")
    assert ("web", "Normal", "Pulled", 'Container image "busybox:1.36" already present on machine') \
        in h.recorder.events


async def test_a_failed_pull_is_err_image_pull_then_image_pull_back_off(h: Harness):
    h.runtime.fail("pull_image", grpc.StatusCode.NOT_FOUND, "manifest unknown")
    result = await h.up(pod())
    assert h.state(result)["state"]["waiting"] == {
        "reason": "ErrImagePull", "message": 'Failed to pull image "busybox:1.36": manifest unknown'}
    assert result.status["phase"] == "Pending"
    assert ("web", "Warning", "Failed", 'Failed to pull image "busybox:1.36": manifest unknown') in h.recorder.events
    again = await h.sync(pod())
    assert h.state(again)["state"]["waiting"]["reason"] == "ImagePullBackOff"
    assert len(h.runtime.calls_of("pull_image")) == 1  # not tried while backing off
    h.clock.advance(10)
    running = await h.sync(pod())
    assert len(h.runtime.calls_of("pull_image")) == 2
    assert running.status["phase"] == "Running"


async def test_a_missing_image_under_never_is_err_image_never_pull(h: Harness):
    result = await h.up(pod(container("app", imagePullPolicy="Never")))
    assert h.state(result)["state"]["waiting"]["reason"] == "ErrImageNeverPull"
    assert not h.runtime.calls_of("pull_image")


async def test_a_missing_config_map_is_create_container_config_error(h: Harness):
    ref = {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "x"}}}
    result = await h.up(pod(container("app", env=[ref])))
    waiting = h.state(result)["state"]["waiting"]
    assert waiting["reason"] == "CreateContainerConfigError"
    assert "settings" in waiting["message"]
    assert not h.runtime.calls_of("create_container")
    h.objects.config_maps[("default", "settings")] = {"data": {"x": "1"}}
    assert (await h.sync(pod(container("app", env=[ref])))).status["phase"] == "Running"


async def test_runtime_failures_become_the_containers_waiting_reason(h: Harness):
    h.runtime.fail("create_container", grpc.StatusCode.UNKNOWN, "no space left on device")
    created = await h.up(pod())
    assert h.state(created)["state"]["waiting"] == {"reason": "CreateContainerError",
                                                    "message": "no space left on device"}
    h.runtime.fail("start_container", grpc.StatusCode.UNKNOWN, "exec format error")
    started = await h.sync(pod())
    assert h.state(started)["state"]["waiting"]["reason"] == "RunContainerError"
    fine = await h.sync(pod())
    assert fine.status["phase"] == "Running"
    assert h.app().attempt == 1  # the instance that never started was replaced


async def test_a_volume_that_cannot_be_set_up_holds_the_pod_back(h: Harness):
    spec = pod(volumes=[{"name": "data", "nfs": {"server": "nas", "path": "/"}}])
    result = await h.sync(spec)
    assert result.requeue_after == 2.0
    assert "FailedMount" in h.recorder.reasons()
    assert not h.runtime.sandboxes


# --- exits, restarts, backoff ------------------------------------------------------------------------


async def test_a_crashing_container_restarts_at_once_then_after_10_20_seconds(h: Harness):
    await h.up(pod())
    h.runtime.exit(h.app().id, 1)
    first = await h.sync(pod())  # the first restart is immediate, as in the kubelet
    assert h.app().attempt == 1 and h.app().config.annotations[L.RESTART_COUNT] == "1"
    assert h.state(first)["restartCount"] == 1 and "running" in h.state(first)["state"]
    h.runtime.exit(h.app().id, 1)
    backing_off = await h.sync(pod())
    assert h.state(backing_off)["state"]["waiting"] == {
        "reason": "CrashLoopBackOff",
        "message": f"back-off 10s restarting failed container=app pod=web_default({UID})"}
    assert h.state(backing_off)["lastState"]["terminated"]["exitCode"] == 1
    assert backing_off.status["phase"] == "Running"
    assert backing_off.requeue_after == 10.0  # the periodic resync comes first; the backoff has 0.05 s more
    h.clock.advance(9.9)
    assert (await h.sync(pod())).requeue_after == pytest.approx(0.15)
    assert h.app().attempt == 1
    h.clock.advance(0.15)
    await h.sync(pod())
    assert h.app().attempt == 2 and h.app().running
    h.runtime.exit(h.app().id, 1)
    assert "back-off 20s" in h.state(await h.sync(pod()))["state"]["waiting"]["message"]


async def test_backoff_grows_when_the_container_is_named_like_its_image(h: Harness):
    # `kubectl run busybox --image=busybox`: pulled on every start (no tag); pulls must not reset the crash backoff.
    spec = pod(container("busybox", "busybox", imagePullPolicy="Always"))
    h.runtime.crash_on_start("busybox", 1)
    await h.up(spec)  # attempt 0 crashes
    await h.sync(spec)  # attempt 1 (immediate) crashes
    h.clock.advance(10.1)
    await h.sync(spec)  # attempt 2 crashes
    result = await h.sync(spec)
    assert h.app("busybox").attempt == 2
    assert "back-off 20s" in h.state(result, "busybox")["state"]["waiting"]["message"]


async def test_an_oom_kill_shows_as_the_last_state(h: Harness):
    await h.up(pod())
    h.runtime.oom_kill(h.app().id)
    result = await h.sync(pod())
    assert h.state(result)["lastState"]["terminated"]["reason"] == "OOMKilled"
    assert h.state(result)["lastState"]["terminated"]["exitCode"] == 137


async def test_restart_policy_never_finishes_the_pod_with_its_termination_message(h: Harness):
    await h.up(pod(restart_policy="Never"))
    write(h.root / "pods" / UID / "containers" / "app" / "0", "bye")  # what the container wrote
    h.runtime.exit(h.app().id, 0)
    result = await h.sync(pod(restart_policy="Never"))
    assert result.done
    assert result.status["phase"] == "Succeeded"
    assert h.state(result)["state"]["terminated"]["message"] == "bye"
    assert len(h.runtime.calls_of("start_container")) == 1


async def test_fallback_to_logs_on_error_uses_the_log_tail(h: Harness):
    spec = pod(container("app", terminationMessagePolicy="FallbackToLogsOnError"), restart_policy="Never")
    await h.up(spec)
    write(Path(h.app().log_path), "2026-01-01T00:00:01.000000000Z stderr P par\n"
                                  "2026-01-01T00:00:01.000000000Z stderr F tial\n"
                                  "2026-01-01T00:00:02.000000000Z stdout F boom\n")
    h.runtime.exit(h.app().id, 2)
    result = await h.sync(spec)
    assert h.state(result)["state"]["terminated"]["message"] == "partial\nboom"


async def test_failed_liveness_kills_with_the_grace_period_and_the_next_pass_restarts(h: Harness):
    spec = pod(terminationGracePeriodSeconds=15)
    await h.up(spec)
    first = h.app()
    h.prober.liveness_results["app"] = Result.FAILURE
    result = await h.sync(spec)
    assert first.exited and first.stop_timeout == 15
    assert ("web", "Normal", "Killing", "Container app failed liveness probe, will be restarted") in h.recorder.events
    assert result.requeue_after == 0
    del h.prober.liveness_results["app"]
    await h.sync(spec)
    assert h.app().attempt == 1 and h.app().running


async def test_a_changed_image_replaces_the_container_in_one_pass(h: Harness):
    await h.up(pod(restart_policy="Never"))
    old = h.app()
    await h.sync(pod(container("app", "busybox:1.37"), restart_policy="Never"))
    assert old.exited
    assert h.app().attempt == 1 and h.app().running
    assert h.app().config.image.user_specified_image == "busybox:1.37"


async def test_only_the_newest_two_dead_instances_are_kept(h: Harness):
    h.runtime.crash_on_start("app", 1)
    await h.up(pod())
    for _ in range(4):
        h.clock.advance(301)
        await h.sync(pod())
    attempts = [c.attempt for c in h.runtime.instances(UID, "app")]
    assert attempts[-1] == 4
    assert len(attempts) <= 3  # removed as the next pass sees them


async def test_a_lost_sandbox_is_replaced_and_the_containers_started_again(h: Harness):
    await h.up(pod())
    [old] = h.runtime.sandboxes_of(UID)
    h.runtime.lose_sandbox(old.id)
    result = await h.sync(pod())
    assert result.requeue_after == 0
    # The dead sandbox is removed at once, and its containers with it (simplification: the kubelet keeps
    # them until garbage collection, so restartCount carries on; here the new sandbox starts from attempt 0).
    assert [s.attempt for s in h.runtime.sandboxes_of(UID)] == [1]
    await h.sync(pod())
    assert h.app().running
    assert h.app().sandbox_id == h.runtime.sandboxes_of(UID)[0].id


async def test_a_post_start_hook_failure_kills_the_container(h: Harness):
    h.runtime.exec_exit_codes["setup"] = 1
    spec = pod(container("app", lifecycle={"postStart": {"exec": {"command": ["setup"]}}}))
    await h.up(spec)
    assert h.app().exited
    assert "FailedPostStartHook" in h.recorder.reasons()


# --- a restarted kubelet ------------------------------------------------------------------------------


async def test_a_new_kubelet_finds_the_running_pod_and_changes_nothing(h: Harness):
    await h.up(pod())
    h.runtime.exit(h.app().id, 1)
    await h.sync(pod())  # restarted once: restartCount 1
    calls = len(h.runtime.calls)
    fresh = make_syncer(h.runtime, h.root, h.clock, h.recorder.event)
    result = await fresh.sync(pod(), PodNotes())
    mutating = {"run_pod_sandbox", "create_container", "start_container", "stop_container", "remove_container"}
    assert not [c for c in h.runtime.calls[calls:] if c.method in mutating]
    assert result.status["phase"] == "Running"
    assert h.state(result)["restartCount"] == 1
    assert h.state(result)["lastState"]["terminated"]["exitCode"] == 1


# --- stopping ----------------------------------------------------------------------------------------


async def test_terminate_stops_regular_containers_then_sidecars_in_reverse_then_the_sandbox(h: Harness):
    spec = pod(container("main"), init=[sidecar("s1"), sidecar("s2")])
    await h.up(spec, passes=4)
    assert h.runtime.running_names(UID) == {"s1", "s2", "main"}
    assert h.runtime.started_names(UID) == ["s1", "s2", "main"]
    status = await h.syncer.terminate(spec, h.notes, 20)
    stops = [(h.runtime.containers[c.args[0]].name, c.args[1]) for c in h.runtime.calls_of("stop_container")]
    assert stops == [("main", 20), ("s2", 20), ("s1", 20)]
    assert h.runtime.calls_of("stop_pod_sandbox")
    assert all(s.state == cri.SANDBOX_NOTREADY for s in h.runtime.sandboxes_of(UID))
    assert status["phase"] == "Failed"  # killed: 137
    assert UID in h.prober.removed


async def test_a_pre_stop_sleep_runs_on_the_injected_clock_and_uses_up_grace(h: Harness):
    spec = pod(container("app", lifecycle={"preStop": {"sleep": {"seconds": 5}}}))
    await h.up(spec)
    stopping = asyncio.create_task(h.syncer.terminate(spec, h.notes, 30))
    for _ in range(50):
        await asyncio.sleep(0)
    assert not stopping.done() and not h.runtime.calls_of("stop_container")
    h.clock.advance(5)
    await asyncio.wait_for(stopping, 1)
    [stop] = h.runtime.calls_of("stop_container")
    assert stop.args[1] == 25


async def test_a_failing_pre_stop_hook_is_reported_and_the_container_still_stopped(h: Harness):
    h.runtime.exec_exit_codes["drain"] = 1
    spec = pod(container("app", lifecycle={"preStop": {"exec": {"command": ["drain"]}}}))
    await h.up(spec)
    await h.syncer.terminate(spec, h.notes, 30)
    assert "FailedPreStopHook" in h.recorder.reasons()
    assert h.app().exited


async def test_cleanup_removes_every_trace(h: Harness):
    await h.up(pod())
    h.runtime.exit(h.app().id, 1)
    await h.sync(pod())
    await h.syncer.cleanup(UID)
    assert not h.runtime.instances(UID) and not h.runtime.sandboxes_of(UID)
    assert not (h.root / "pods" / UID).exists()
    assert h.syncer.backoff.delay(f"{UID}/app") == 0
    await h.syncer.cleanup(UID)  # idempotent
