"""The small HTTP server every kubemini component (controller-manager, scheduler, kubelet) exposes.

``/healthz``, ``/livez`` and ``/readyz`` answer ``ok`` (200) or name the failing checks (500), like
Kubernetes components; ``/metrics`` serves the component's Prometheus registry. It is a bare ASGI
app under uvicorn — no framework is needed for four routes.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Mapping

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
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/metrics":
            await _respond(send, 200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/livez", "/readyz"):
            failed = [name for name, check in self.checks.items() if not _passes(check)]
            if failed:
                body = "".join(f"[-]{name} failed\n" for name in failed) + f"{path[1:]} check failed\n"
                await _respond(send, 500, body.encode(), "text/plain; charset=utf-8")
            else:
                await _respond(send, 200, b"ok", "text/plain; charset=utf-8")
        else:
            await _respond(send, 404, b"404 page not found\n", "text/plain; charset=utf-8")

    def bind(self) -> None:
        """Bind the port now, so that a clash is reported (OSError naming the port) before anything starts."""
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot listen on {self.host}:{self.port} for /healthz and /metrics: {exc.strerror}; "
                          "choose another --port") from exc
        self.port = sock.getsockname()[1]
        self._socket = sock

    async def serve(self) -> None:
        """Serve until cancelled (binding first if :meth:`bind` was not called)."""
        if self._socket is None:
            self.bind()
        sock = self._socket
        config = uvicorn.Config(self, log_config=None, access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # the component owns signals
        log.info("serving /healthz and /metrics on %s:%d", self.host, self.port)
        try:
            await self._server.serve(sockets=[sock])
        finally:
            sock.close()
            self._socket = None


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
