"""postStart / preStop hooks: failures, messages, and the grace period a preStop hook uses up (FakeClock)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from aiohttp import web

from kubelet.cri.client import CriError
from kubelet.lifecycle import HookError, run_post_start, run_pre_stop
from machinery.clock import FakeClock
from tests.unit.kubelet.probe_fakes import FakeExecRuntime, exec_action, make_pod, settle

POD = make_pod({"name": "app"}, uid="u-9")


def with_hooks(**lifecycle) -> dict:
    return {"name": "app", "image": "busybox", "lifecycle": lifecycle}


async def test_post_start_exec_success_and_failure() -> None:
    runtime = FakeExecRuntime()
    await run_post_start(POD, with_hooks(postStart=exec_action("sh", "-c", "true")), "c1", runtime)
    assert runtime.calls == [("c1", ["sh", "-c", "true"], 0)]  # no timeout: Kubernetes bounds postStart by nothing
    runtime.set("sh", (1, b"no config"))
    with pytest.raises(HookError) as caught:
        await run_post_start(POD, with_hooks(postStart=exec_action("sh", "-c", "exit 1")), "c1", runtime)
    assert caught.value.message == ('Exec lifecycle hook ([sh -c exit 1]) for Container "app" in Pod '
                                    '"web_default(u-9)" failed - error: command "sh -c exit 1" exited with 1: '
                                    "no config")


async def test_post_start_without_hook_does_nothing() -> None:
    runtime = FakeExecRuntime()
    await run_post_start(POD, {"name": "app"}, "c1", runtime)
    await run_post_start(POD, with_hooks(preStop=exec_action("x")), "c1", runtime)
    assert runtime.calls == []


async def test_post_start_http_any_status_is_success_refused_is_failure() -> None:
    async def handle(request):
        return web.Response(status=500)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        await run_post_start(POD, with_hooks(postStart={"httpGet": {"port": port, "path": "/warm"}}), "c1",
                             FakeExecRuntime())
    finally:
        await runner.cleanup()
    with pytest.raises(HookError) as caught:
        await run_post_start(POD, with_hooks(postStart={"httpGet": {"port": port, "path": "/warm"}}), "c1",
                             FakeExecRuntime())
    assert caught.value.message.startswith('HTTP lifecycle hook (/warm) for Container "app" in Pod '
                                           '"web_default(u-9)" failed - error: Get "http://127.0.0.1:')
    assert caught.value.message.endswith("connect: connection refused")


async def test_post_start_bad_handler_is_a_hook_error() -> None:
    with pytest.raises(HookError, match="handler has no action: set one of exec, httpGet, tcpSocket or sleep"):
        await run_post_start(POD, with_hooks(postStart={"grpc": {"port": 1}}), "c1", FakeExecRuntime())


async def test_pre_stop_uses_up_grace_period() -> None:
    clock = FakeClock()
    runtime = FakeExecRuntime()
    runtime.set("drain", lambda: _after(clock, 10, 0))
    task = asyncio.create_task(run_pre_stop(POD, with_hooks(preStop=exec_action("drain")), "c1", runtime, 30,
                                            clock=clock))
    await settle()
    clock.advance(10)
    await settle()
    assert task.done() and task.result() == 20


async def test_pre_stop_past_grace_period_is_abandoned_and_leaves_minimum() -> None:
    clock = FakeClock()
    runtime = FakeExecRuntime()
    runtime.set("drain", lambda: _after(clock, 100, 0))
    events = []
    task = asyncio.create_task(run_pre_stop(POD, with_hooks(preStop=exec_action("drain")), "c1", runtime, 30,
                                            clock=clock, on_event=lambda *a: events.append(a)))
    await settle()
    clock.advance(30)
    await settle()
    assert task.done() and task.result() == 2  # Kubernetes' minimum shutdown window
    assert events == []
    assert clock.sleepers == 0  # the hook was cancelled, nothing left sleeping


async def test_pre_stop_failure_is_evented_not_raised() -> None:
    runtime = FakeExecRuntime()
    runtime.set("drain", CriError("ExecSync", grpc.StatusCode.NOT_FOUND, "container gone"))
    events = []
    left = await run_pre_stop(POD, with_hooks(preStop=exec_action("drain")), "c1", runtime, 30, clock=FakeClock(),
                              on_event=lambda *a: events.append(a))
    assert left == 30
    assert events == [(POD, "Warning", "FailedPreStopHook",
                       'Exec lifecycle hook ([drain]) for Container "app" in Pod "web_default(u-9)" failed - error: '
                       'command "drain" could not be run: container gone')]


async def test_pre_stop_sleep_action_and_small_grace() -> None:
    clock = FakeClock()
    container = with_hooks(preStop={"sleep": {"seconds": 5}})
    task = asyncio.create_task(run_pre_stop(POD, container, "c1", FakeExecRuntime(), 30, clock=clock))
    await settle()
    clock.advance(5)
    await settle()
    assert task.result() == 25
    assert await run_pre_stop(POD, with_hooks(preStop=exec_action("x")), "c1", FakeExecRuntime(), 1,
                              clock=FakeClock()) == 2
    assert await run_pre_stop(POD, {"name": "app"}, "c1", FakeExecRuntime(), 45, clock=FakeClock()) == 45


async def test_pre_stop_zero_grace_skips_the_hook() -> None:
    runtime = FakeExecRuntime()
    assert await run_pre_stop(POD, with_hooks(preStop=exec_action("x")), "c1", runtime, 0) == 2
    assert runtime.calls == []


async def test_pre_stop_event_sink_errors_are_swallowed() -> None:
    runtime = FakeExecRuntime()
    runtime.set("x", 1)

    def broken(*_):
        raise RuntimeError("recorder down")

    assert await run_pre_stop(POD, with_hooks(preStop=exec_action("x")), "c1", runtime, 10, clock=FakeClock(),
                              on_event=broken) == 10


async def _after(clock: FakeClock, seconds: float, outcome):
    await clock.sleep(seconds)
    return outcome
