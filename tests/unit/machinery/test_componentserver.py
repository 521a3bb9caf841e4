"""machinery.componentserver: health and metrics routes, and the bind/serve helpers the kubelet server shares."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client import CollectorRegistry

from machinery.componentserver import ComponentServer, bind_socket, failed_checks, serve_asgi


def test_bind_socket_reports_a_clash_naming_what_the_port_was_for():
    first = bind_socket("127.0.0.1", 0, "the first server")
    try:
        first.listen()
        port = first.getsockname()[1]
        with pytest.raises(OSError, match=rf"cannot listen on 127\.0\.0\.1:{port} for the test server: .*; "
                                          "choose another --port"):
            bind_socket("127.0.0.1", port, "the test server")
    finally:
        first.close()


def test_failed_checks_names_failing_and_raising_checks():
    assert failed_checks({"ok": lambda: True, "down": lambda: False, "broken": lambda: 1 / 0}) == ["down", "broken"]


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False) as client:
        for _ in range(200):  # uvicorn needs a moment to start accepting
            try:
                return await client.get(url)
            except httpx.ConnectError:
                await asyncio.sleep(0.01)
    raise AssertionError(f"{url} never answered")


async def test_component_server_answers_health_and_stops_when_cancelled():
    server = ComponentServer(CollectorRegistry(), checks={"informers": lambda: False})
    server.bind()
    task = asyncio.create_task(server.serve())
    try:
        response = await _get(f"http://127.0.0.1:{server.port}/healthz")
        assert (response.status_code, response.text) == (500, "[-]informers failed\nhealthz check failed\n")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_serve_asgi_graceful_shutdown_calls_back_then_closes_the_socket():
    async def app(scope, receive, send):
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"hi"})

    sock = bind_socket("127.0.0.1", 0, "the test app")
    port = sock.getsockname()[1]
    stopping: list[bool] = []
    task = asyncio.create_task(serve_asgi(app, sock, graceful_shutdown=0.1, on_shutdown=lambda: stopping.append(True)))
    assert (await _get(f"http://127.0.0.1:{port}/")).text == "hi"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stopping == [True]
    assert sock.fileno() == -1  # closed
