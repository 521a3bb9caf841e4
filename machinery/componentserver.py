"""The small HTTP server every kubemini component (controller-manager, scheduler, kubelet) exposes.

``/healthz``, ``/livez`` and ``/readyz`` answer ``ok`` (200) or name the failing checks (500), like
Kubernetes components; ``/metrics`` serves the component's Prometheus registry. It is a bare ASGI
app under uvicorn — no framework is needed for four routes.

:func:`bind_socket`, :func:`serve_asgi` and :func:`failed_checks` are also what the kubelet's own server
(:mod:`kubelet.server.app`) binds, serves and checks health with, so both report a port clash and stop alike.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Mapping
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

HealthCheck = Callable[[], bool]


class ComponentServer:
    def __init__(self, registry: CollectorRegistry, *, host: str = "127.0.0.1", port: int = 0,
                 checks: Mapping[str, HealthCheck] | None = None) -> None:
        self.registry = registry
        self.host = host
        self.port = port
        self.checks: dict[str, HealthCheck] = dict(checks or {})
        self._socket: socket.socket | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/metrics":
            await _respond(send, 200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/livez", "/readyz"):
            failed = failed_checks(self.checks)
            if failed:
                body = "".join(f"[-]{name} failed\n" for name in failed) + f"{path[1:]} check failed\n"
                await _respond(send, 500, body.encode(), "text/plain; charset=utf-8")
            else:
                await _respond(send, 200, b"ok", "text/plain; charset=utf-8")
        else:
            await _respond(send, 404, b"404 page not found\n", "text/plain; charset=utf-8")

    def bind(self) -> None:
        """Bind the port now, so that a clash is reported (OSError naming the port) before anything starts."""
        self._socket = bind_socket(self.host, self.port, "/healthz and /metrics")
        self.port = self._socket.getsockname()[1]

    async def serve(self) -> None:
        """Serve until cancelled (binding first if :meth:`bind` was not called)."""
        if self._socket is None:
            self.bind()
        sock, self._socket = self._socket, None
        assert sock is not None
        log.info("serving /healthz and /metrics on %s:%d", self.host, self.port)
        await serve_asgi(self, sock)


def bind_socket(host: str, port: int, purpose: str) -> socket.socket:
    """A TCP socket bound (not yet listening) to ``host:port`` (port 0: a free one; IPv6 when ``host`` has a
    colon). A clash is an OSError naming the address and ``purpose`` and suggesting ``--port``, raised before
    anything starts."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} for {purpose}: {exc.strerror}; choose another --port") from exc
    return sock


async def serve_asgi(app: Any, sock: socket.socket, *, graceful_shutdown: float | None = None,
                     on_shutdown: Callable[[], None] | None = None, **options: Any) -> None:
    """Serve the ASGI ``app`` with uvicorn on the bound ``sock`` until cancelled; ``sock`` is closed afterwards.

    uvicorn's signal handlers stay off (the component owns signals), with no access log and no lifespan;
    ``options`` go to ``uvicorn.Config``. Without ``graceful_shutdown`` a cancellation stops the server at once:
    the listener is closed and open connections are told to close. With it (seconds), a cancellation first calls
    ``on_shutdown`` (e.g. to end followed streams), then gives open connections that long to finish before they
    are cut. Either way the cancellation is re-raised, and nothing stays registered with the event loop.
    """
    if graceful_shutdown is not None:
        options["timeout_graceful_shutdown"] = graceful_shutdown
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", **options)
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # the component owns signals
    try:
        if graceful_shutdown is None:
            try:
                await server.serve(sockets=[sock])
            except asyncio.CancelledError:
                _stop_at_once(server)
                raise
            return
        task = asyncio.create_task(server.serve(sockets=[sock]), name="asgi-server")
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if on_shutdown is not None:
                on_shutdown()
            server.should_exit = True
            await asyncio.wait([task], timeout=graceful_shutdown + 3)
            task.cancel()
            raise
    finally:
        sock.close()


def _stop_at_once(server: uvicorn.Server) -> None:
    """What uvicorn's own shutdown does first, which a cancelled ``serve()`` skips: without it the listener would
    stay registered with the loop on a closed file descriptor (and answer a later socket that reuses it)."""
    for listener in server.servers:
        listener.close()
    for connection in list(server.server_state.connections):
        connection.shutdown()


def failed_checks(checks: Mapping[str, HealthCheck]) -> list[str]:
    """The names of the health checks that fail now (a check that raises fails, and is logged)."""
    return [name for name, check in checks.items() if not _passes(check)]


def _passes(check: HealthCheck) -> bool:
    try:
        return bool(check())
    except Exception:
        log.exception("health check failed")
        return False


async def _respond(send, status: int, body: bytes, content_type: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
