"""Probe handlers against real local servers on 127.0.0.1 (HTTP, HTTPS, TCP, gRPC health) and a scripted exec."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess

import grpc
import pytest
from aiohttp import web

from kubelet.cri.client import CriError
from kubelet.prober import run_action
from tests.unit.kubelet.probe_fakes import FakeExecRuntime, exec_action, make_pod

health = pytest.importorskip("grpc_health.v1.health")
health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2")
health_pb2_grpc = pytest.importorskip("grpc_health.v1.health_pb2_grpc")

POD = make_pod({"name": "app"})
CONTAINER = {"name": "app", "ports": []}


async def run(action: dict, *, container: dict = CONTAINER, pod: dict = POD, runtime=None, timeout: float = 1,
              for_hook: bool = False) -> tuple[bool, str]:
    return await run_action(action, pod=pod, container=container, container_id="c1",
                            runtime=runtime or FakeExecRuntime(), timeout=timeout, for_hook=for_hook)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HttpServer:
    """An aiohttp server with a few probe targets; records each request's headers."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.release = asyncio.Event()
        self.port = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.headers.append(dict(request.headers))
        path = request.path
        if path == "/fail":
            return web.Response(status=500)
        if path == "/redirect":
            raise web.HTTPFound("/fail?from=redirect")
        if path == "/loop":
            raise web.HTTPFound("/loop")
        if path == "/offsite":  # another host name: not followed, the 302 itself counts
            raise web.HTTPFound(f"http://localhost:{self.port}/fail")
        if path == "/slow":
            await self.release.wait()
        return web.Response(text="ok")

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        self.release.set()
        await self.runner.cleanup()


@pytest.fixture
async def http_server():
    server = HttpServer()
    await server.start()
    yield server
    await server.stop()


def http_get(port, path: str = "/", **extra) -> dict:
    return {"httpGet": {"port": port, "path": path, **extra}}


async def test_http_get_success_failure_and_headers(http_server) -> None:
    assert await run(http_get(http_server.port, "/ok")) == (True, "")
    assert await run(http_get(http_server.port, "/fail")) == (False, "HTTP probe failed with statuscode: 500")
    await run(http_get(http_server.port, "/ok", httpHeaders=[{"name": "X-Probe", "value": "yes"}]))
    sent = http_server.headers[-1]
    assert sent["User-Agent"] == "kube-probe/1.35" and sent["X-Probe"] == "yes" and sent["Accept"] == "*/*"
    await run(http_get(http_server.port, "/ok", httpHeaders=[{"name": "User-Agent", "value": "mine"}]))
    assert http_server.headers[-1]["User-Agent"] == "mine"


async def test_http_get_named_port_and_path_without_slash(http_server) -> None:
    container = {"name": "app", "ports": [{"name": "web", "containerPort": http_server.port}]}
    assert await run(http_get("web", "ok"), container=container) == (True, "")
    ok, message = await run(http_get("metrics"), container=container)
    assert not ok and message == "couldn't find port 'metrics' in container 'app'"


async def test_http_get_redirects_only_within_the_same_host(http_server) -> None:
    ok, message = await run(http_get(http_server.port, "/redirect"))
    assert (ok, message) == (False, "HTTP probe failed with statuscode: 500")  # followed to /fail
    ok, message = await run(http_get(http_server.port, "/offsite"))
    assert ok and message.startswith("Probe terminated redirects")
    assert len(http_server.headers) == 3  # localhost was never asked
    ok, message = await run(http_get(http_server.port, "/loop"))
    assert not ok and message.endswith("stopped after 10 redirects")


async def test_http_get_timeout_and_refused(http_server) -> None:
    ok, message = await run(http_get(http_server.port, "/slow"), timeout=0.2)
    assert not ok
    assert message == (f'Get "http://127.0.0.1:{http_server.port}/slow": context deadline exceeded '
                       "(Client.Timeout exceeded while awaiting headers)")
    port = free_port()
    ok, message = await run(http_get(port, "/"))
    assert (ok, message) == (False, f'Get "http://127.0.0.1:{port}/": dial tcp 127.0.0.1:{port}: '
                                    "connect: connection refused")


async def test_http_hook_ignores_status_and_says_kube_lifecycle(http_server) -> None:
    assert await run(http_get(http_server.port, "/fail"), for_hook=True) == (True, "")
    assert http_server.headers[-1]["User-Agent"] == "kube-lifecycle/1.35"


@pytest.fixture
def self_signed(tmp_path) -> ssl.SSLContext:
    """A server TLS context with a throwaway self-signed certificate no client trusts."""
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=pod",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


async def test_https_probe_skips_certificate_verification(self_signed) -> None:
    context = self_signed
    server = HttpServer()
    await server.start(context)
    try:
        assert await run(http_get(server.port, "/ok", scheme="HTTPS")) == (True, "")
        assert await run(http_get(server.port, "/fail", scheme="HTTPS")) == (
            False, "HTTP probe failed with statuscode: 500")
    finally:
        await server.stop()


async def test_tcp_socket_open_and_refused() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await run({"tcpSocket": {"port": port}}) == (True, "")
        container = {"name": "app", "ports": [{"name": "db", "containerPort": port}]}
        assert await run({"tcpSocket": {"port": "db", "host": "127.0.0.1"}}, container=container) == (True, "")
    finally:
        server.close()
        await server.wait_closed()
    refused = (False, f"dial tcp 127.0.0.1:{port}: connect: connection refused")
    assert await run({"tcpSocket": {"port": port}}) == refused


async def test_grpc_health_check() -> None:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        await servicer.set("db", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert await run({"grpc": {"port": port}}) == (True, "")
        assert await run({"grpc": {"port": port, "service": "db"}}) == (
            False, 'service unhealthy (responded with "NOT_SERVING")')
        ok, message = await run({"grpc": {"port": port, "service": "cache"}})
        assert not ok and message.startswith("error: health rpc probe failed: rpc error: code = NotFound")
    finally:
        await server.stop(None)


async def test_grpc_without_health_service_and_refused() -> None:
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        ok, message = await run({"grpc": {"port": port}})
        assert not ok
        assert message.startswith("error: this server does not implement the grpc health protocol")
    finally:
        await server.stop(None)
    refused = free_port()
    ok, message = await run({"grpc": {"port": refused}}, timeout=0.3)
    assert (ok, message) == (False, f'timeout: failed to connect service "127.0.0.1:{refused}" within 0.3s: '
                                    "context deadline exceeded")


async def test_exec_results() -> None:
    runtime = FakeExecRuntime()
    runtime.set("sh", (1, b"boom"))
    assert await run(exec_action("sh", "-c", "exit 1"), runtime=runtime) == (
        False, 'command "sh -c exit 1" exited with 1: boom')
    runtime.set("sh", (0, b"fine"))
    assert await run(exec_action("sh", "-c", "true"), runtime=runtime) == (True, "fine")
    runtime.set("sh", CriError("ExecSync", grpc.StatusCode.DEADLINE_EXCEEDED, "deadline"))
    assert await run(exec_action("sh"), runtime=runtime) == (False, 'command "sh" timed out')
    runtime.set("sh", CriError("ExecSync", grpc.StatusCode.NOT_FOUND, "no such container"))
    assert await run(exec_action("sh"), runtime=runtime) == (False, 'command "sh" could not be run: no such container')


@pytest.mark.parametrize(("action", "pod", "expected"), [
    ({}, POD, "handler has no action: set one of exec, httpGet, tcpSocket or grpc"),
    ({"sleep": {"seconds": 1}}, POD, "handler has no action: set one of exec, httpGet, tcpSocket or grpc"),
    ("GET /", POD, "handler must be an object, not str"),
    ({"exec": {"command": []}}, POD, "exec handler needs a non-empty command (a list of strings)"),
    ({"httpGet": {"port": 80}}, make_pod(pod_ip=None), "pod has no IP address yet"),
    ({"httpGet": {"port": 0}}, POD, "invalid port number: 0"),
    ({"httpGet": {"port": 80, "scheme": "FTP"}}, POD, "httpGet.scheme must be HTTP or HTTPS, not 'FTP'"),
    ({"grpc": {"port": "grpc"}}, POD, "grpc.port must be a port number, not 'grpc'"),
    ({"tcpSocket": "80"}, POD, "tcpSocket must be an object, not str"),
])
async def test_bad_handlers_fail_with_a_clear_message(action, pod, expected) -> None:
    assert await run(action, pod=pod) == (False, expected)
