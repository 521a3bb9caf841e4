"""ProbeManager and its workers, driven by a FakeClock and a runtime whose exec results are scripted."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest

from kubelet.cri.client import CriError
from kubelet.prober import ProbeKind, ProbeManager, ProbeSpec, Result
from machinery.clock import FakeClock
from tests.unit.kubelet.probe_fakes import FakeExecRuntime, exec_action, make_pod, settle

UID = "uid-1"


class Harness:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.runtime = FakeExecRuntime()
        self.changes: list[str] = []
        self.events: list[tuple[str, str, str]] = []
        self.manager = ProbeManager(self.runtime, clock=self.clock, on_change=self.changes.append,
                                    on_event=lambda pod, type_, reason, msg: self.events.append((type_, reason, msg)))

    def start(self, name: str = "app", container_id: str | None = "c1") -> None:
        self.manager.set_container(UID, name, container_id, self.clock.monotonic() if container_id else None)

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await settle()

    @contextlib.asynccontextmanager
    async def running(self):
        task = asyncio.create_task(self.manager.run())
        await settle()
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def container(name: str = "app", **probes) -> dict:
    return {"name": name, "image": "busybox", **probes}


async def test_readiness_waits_initial_delay_then_probes_every_period() -> None:
    h = Harness()
    h.manager.update_pod(make_pod(container(readinessProbe=exec_action("ready", initialDelaySeconds=5,
                                                                        periodSeconds=10))))
    assert h.manager.readiness(UID, "app") is Result.FAILURE  # not ready until proven
    assert h.manager.liveness(UID, "app") is None and h.manager.started(UID, "app") is None
    async with h.running():
        h.start()
        await settle()
        await h.advance(4)
        assert h.runtime.count("ready") == 0
        await h.advance(1)  # initialDelaySeconds reached: probe now, not a period later
        assert h.runtime.count("ready") == 1
        assert h.manager.readiness(UID, "app") is Result.SUCCESS
        assert h.changes == [UID]
        await h.advance(9)
        assert h.runtime.count("ready") == 1
        await h.advance(1)
        assert h.runtime.count("ready") == 2
        assert h.changes == [UID]  # no change, no callback
        assert h.runtime.calls[0][0] == "c1" and h.runtime.calls[0][2] == 1  # container id, default timeout


async def test_liveness_fails_after_threshold_then_holds_until_new_container() -> None:
    h = Harness()
    h.runtime.set("live", (1, b"sick"))
    h.manager.update_pod(make_pod(container(livenessProbe=exec_action("live", periodSeconds=10))))
    async with h.running():
        h.start()
        await settle()
        assert h.runtime.count("live") == 1  # no initial delay: the first probe runs at once
        assert h.manager.liveness(UID, "app") is Result.SUCCESS
        assert h.events == [("Warning", "Unhealthy", 'Liveness probe failed: command "live" exited with 1: sick')]
        await h.advance(10)
        assert h.manager.liveness(UID, "app") is Result.SUCCESS
        await h.advance(10)
        assert h.runtime.count("live") == 3
        assert h.manager.liveness(UID, "app") is Result.FAILURE  # failureThreshold (3) reached
        assert h.changes == [UID]
        await h.advance(30)
        assert h.runtime.count("live") == 3  # on hold: the kubelet restarts the container
        h.runtime.set("live", 0)
        h.start(container_id="c2")
        assert h.manager.liveness(UID, "app") is Result.SUCCESS  # reset with the new container
        assert h.changes == [UID, UID]
        await settle()
        assert h.runtime.count("live") == 4 and h.runtime.calls[-1][0] == "c2"


async def test_readiness_thresholds_and_recovery() -> None:
    h = Harness()
    probe = exec_action("ready", periodSeconds=5, successThreshold=2, failureThreshold=1)
    h.manager.update_pod(make_pod(container(readinessProbe=probe)))
    async with h.running():
        h.start()
        await settle()
        assert h.manager.readiness(UID, "app") is Result.FAILURE  # one success of two
        await h.advance(5)
        assert h.manager.readiness(UID, "app") is Result.SUCCESS
        h.runtime.set("ready", 1)
        await h.advance(5)
        assert h.manager.readiness(UID, "app") is Result.FAILURE  # failureThreshold 1
        assert h.events[-1] == ("Warning", "Unhealthy", 'Readiness probe failed: command "ready" exited with 1: ')
        h.runtime.set("ready", 0)
        await h.advance(5)  # readiness keeps probing after a failure
        assert h.manager.readiness(UID, "app") is Result.FAILURE
        await h.advance(5)
        assert h.manager.readiness(UID, "app") is Result.SUCCESS
        assert h.changes == [UID, UID, UID]


async def test_startup_probe_gates_liveness_and_readiness() -> None:
    h = Harness()
    h.runtime.set("start", 1)
    h.manager.update_pod(make_pod(container(
        startupProbe=exec_action("start", periodSeconds=5, failureThreshold=10),
        livenessProbe=exec_action("live", periodSeconds=10), readinessProbe=exec_action("ready", periodSeconds=10))))
    async with h.running():
        h.start()
        await settle()
        for _ in range(3):
            await h.advance(5)
        assert h.runtime.count("start") == 4
        assert h.runtime.count("live") == h.runtime.count("ready") == 0
        assert h.manager.started(UID, "app") is Result.UNKNOWN  # not started yet (not "failed")
        assert h.manager.readiness(UID, "app") is Result.FAILURE
        h.runtime.set("start", 0)
        await h.advance(5)
        assert h.manager.started(UID, "app") is Result.SUCCESS
        assert h.runtime.count("live") == h.runtime.count("ready") == 1  # probed at once, not a period later
        assert h.manager.readiness(UID, "app") is Result.SUCCESS
        await h.advance(50)
        assert h.runtime.count("start") == 5  # a startup probe stops once it succeeded
        assert h.runtime.count("live") == 2


async def test_startup_failure_is_reported_and_reset_by_a_new_container() -> None:
    h = Harness()
    h.runtime.set("start", 1)
    h.manager.update_pod(make_pod(container(startupProbe=exec_action("start", periodSeconds=5, failureThreshold=2),
                                            livenessProbe=exec_action("live"))))
    async with h.running():
        h.start()
        await settle()
        await h.advance(5)
        assert h.manager.started(UID, "app") is Result.FAILURE  # the kubelet restarts the container
        await h.advance(20)
        assert h.runtime.count("start") == 2 and h.runtime.count("live") == 0
        h.start(container_id="c2")
        assert h.manager.started(UID, "app") is Result.UNKNOWN
        await settle()
        assert h.runtime.count("start") == 3


async def test_no_probe_while_container_not_running() -> None:
    h = Harness()
    h.manager.update_pod(make_pod(container(readinessProbe=exec_action("ready", periodSeconds=5))))
    async with h.running():
        await h.advance(30)
        assert h.runtime.count("ready") == 0
        h.start()
        await settle()
        assert h.manager.readiness(UID, "app") is Result.SUCCESS
        h.start(container_id=None)  # exited
        assert h.manager.readiness(UID, "app") is Result.FAILURE
        await h.advance(30)
        assert h.runtime.count("ready") == 1


async def test_initial_delay_counts_from_container_start() -> None:
    h = Harness()
    h.manager.update_pod(make_pod(container(readinessProbe=exec_action("ready", initialDelaySeconds=30)),
                                  container("old", readinessProbe=exec_action("old", initialDelaySeconds=30))))
    async with h.running():
        h.manager.set_container(UID, "app", "c1", None)  # no start time given: now
        h.manager.set_container(UID, "old", "c9", h.clock.monotonic() - 60)  # running since before the kubelet
        await settle()
        assert (h.runtime.count("ready"), h.runtime.count("old")) == (0, 1)
        await h.advance(30)
        assert h.runtime.count("ready") == 1


async def test_probe_errors_change_nothing_but_are_evented() -> None:
    h = Harness()
    h.manager.update_pod(make_pod(container(readinessProbe=exec_action("ready", periodSeconds=5, failureThreshold=1))))
    async with h.running():
        h.start()
        await settle()
        assert h.manager.readiness(UID, "app") is Result.SUCCESS
        h.runtime.set("ready", CriError("ExecSync", grpc.StatusCode.UNAVAILABLE, "runtime down"))
        await h.advance(5)
        assert h.manager.readiness(UID, "app") is Result.SUCCESS
        assert h.events == [("Warning", "Unhealthy",
                             'Readiness probe errored: command "ready" could not be run: runtime down')]


async def test_exec_timeout_counts_as_failure() -> None:
    h = Harness()
    h.runtime.set("live", CriError("ExecSync", grpc.StatusCode.DEADLINE_EXCEEDED, "timed out after 2s"))
    h.manager.update_pod(make_pod(container(livenessProbe=exec_action("live", failureThreshold=1,
                                                                       timeoutSeconds=2))))
    async with h.running():
        h.start()
        await settle()
        assert h.manager.liveness(UID, "app") is Result.FAILURE
        assert h.events == [("Warning", "Unhealthy", 'Liveness probe failed: command "live" timed out')]
        assert h.runtime.calls[0][2] == 2


async def test_terminating_pod_stops_liveness_but_not_readiness() -> None:
    h = Harness()
    h.runtime.set("live", 1)
    spec = container(livenessProbe=exec_action("live", periodSeconds=5, failureThreshold=2),
                     readinessProbe=exec_action("ready", periodSeconds=5))
    h.manager.update_pod(make_pod(spec))
    async with h.running():
        h.start()
        await settle()
        h.manager.update_pod(make_pod(spec, deletionTimestamp="2026-01-01T00:00:00Z"))
        await h.advance(5)
        await h.advance(5)
        assert h.runtime.count("live") == 1
        assert h.manager.liveness(UID, "app") is Result.SUCCESS  # never restart what is being stopped
        assert h.runtime.count("ready") == 3


async def test_update_pod_is_idempotent_and_follows_spec_changes() -> None:
    h = Harness()
    h.runtime.set("live", 1)
    probe = exec_action("live", periodSeconds=5, failureThreshold=2)
    pod = make_pod(container(livenessProbe=probe, readinessProbe=exec_action("ready")))
    h.manager.update_pod(pod)
    async with h.running():
        h.start()
        await settle()
        h.manager.update_pod(pod)  # same pod again: the worker and its counters stay
        await h.advance(5)
        assert h.manager.liveness(UID, "app") is Result.FAILURE
        h.manager.update_pod(make_pod(container(livenessProbe={**probe, "failureThreshold": 5})))
        assert h.manager.liveness(UID, "app") is Result.SUCCESS  # new settings: a fresh worker
        assert h.manager.readiness(UID, "app") is None  # readiness probe removed
        calls = h.runtime.count("live")
        h.manager.remove_pod(UID)
        assert h.manager.liveness(UID, "app") is None
        await h.advance(60)
        assert h.runtime.count("live") == calls


async def test_workers_created_before_run_start_with_it() -> None:
    h = Harness()
    h.manager.update_pod(make_pod(container(readinessProbe=exec_action("ready"))))
    h.start()
    await settle()
    assert h.runtime.count("ready") == 0
    async with h.running():
        assert h.runtime.count("ready") == 1


async def test_sidecars_are_probed_regular_init_containers_are_not() -> None:
    h = Harness()
    init = [container("setup", readinessProbe=exec_action("setup")),
            container("proxy", restartPolicy="Always", readinessProbe=exec_action("proxy"))]
    h.manager.update_pod(make_pod(container(), init=init))
    assert h.manager.readiness(UID, "proxy") is Result.FAILURE
    assert h.manager.readiness(UID, "setup") is None


async def test_terminal_pod_has_no_workers() -> None:
    h = Harness()
    spec = container(readinessProbe=exec_action("ready"))
    h.manager.update_pod(make_pod(spec))
    pod = make_pod(spec)
    pod["status"]["phase"] = "Succeeded"
    h.manager.update_pod(pod)
    assert h.manager.readiness(UID, "app") is None


async def test_result_of_a_replaced_container_is_discarded() -> None:
    h = Harness()
    release = asyncio.Event()

    async def slow_failure():
        await release.wait()
        return 1

    h.runtime.queue("live", slow_failure)
    h.manager.update_pod(make_pod(container(livenessProbe=exec_action("live", failureThreshold=1))))
    async with h.running():
        h.start()
        await settle()
        h.start(container_id="c2")
        release.set()
        await settle()
        assert h.manager.liveness(UID, "app") is Result.SUCCESS
        assert [call[0] for call in h.runtime.calls] == ["c1", "c2"]


async def test_callback_errors_do_not_stop_probing() -> None:
    h = Harness()

    def broken(*_):
        raise RuntimeError("callback bug")

    h.manager.on_change = broken
    h.manager.on_event = broken
    h.runtime.set("ready", 1)
    h.manager.update_pod(make_pod(container(readinessProbe=exec_action("ready", periodSeconds=5,
                                                                        failureThreshold=1))))
    async with h.running():
        h.start()
        await settle()
        await h.advance(5)
        assert h.runtime.count("ready") == 2


def test_probe_spec_defaults_and_bad_values() -> None:
    spec = ProbeSpec.from_probe({"exec": {"command": ["x"]}}, ProbeKind.READINESS)
    assert (spec.initial_delay, spec.period, spec.timeout, spec.success_threshold, spec.failure_threshold) == \
        (0, 10, 1, 1, 3)
    assert ProbeSpec.from_probe({"successThreshold": 3}, ProbeKind.LIVENESS).success_threshold == 1
    assert ProbeSpec.from_probe({"periodSeconds": 0}, ProbeKind.LIVENESS).period == 1
    with pytest.raises(ValueError, match="periodSeconds must be an integer"):
        ProbeSpec.from_probe({"periodSeconds": "often"}, ProbeKind.LIVENESS)


async def test_bad_input_is_a_clear_error_or_ignored() -> None:
    h = Harness()
    with pytest.raises(ValueError, match=r"metadata\.uid"):
        h.manager.update_pod({"metadata": {}})
    h.manager.update_pod(make_pod(container(livenessProbe={"periodSeconds": "often"})))
    assert h.manager.liveness(UID, "app") is None  # an invalid probe is logged and skipped
    h.manager.update_pod(make_pod(container(readinessProbe={"periodSeconds": 5})))  # no handler at all
    async with h.running():
        h.start()
        await settle()
        assert h.manager.readiness(UID, "app") is Result.FAILURE
        assert h.events[0][2].startswith("Readiness probe errored: handler has no action")
