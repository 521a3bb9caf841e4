"""The kubelet's HTTP server: health, metrics, the pods it runs, container logs, exec, attach and port-forward.

The API server reaches a pod's containers only through this server (``pods/log``, ``pods/exec``, ...): it finds
the node's address in the Node object and calls the routes below, as kube-apiserver calls the kubelet's port
10250. Routes, as the upstream kubelet names them:

- ``/healthz`` (+ ``/healthz/ping``), ``/metrics``, ``/pods`` (a PodList of the pods this kubelet knows);
- ``GET /containerLogs/{namespace}/{pod}/{container}`` with ``follow``, ``previous``, ``timestamps``,
  ``tailLines``, ``sinceSeconds``, ``sinceTime``, ``limitBytes`` → ``text/plain``, streamed;
- WebSocket ``/exec/{namespace}/{pod}/{container}?command=..&stdin=&stdout=&stderr=&tty=``,
  ``/attach/{namespace}/{pod}/{container}`` and ``/portforward/{namespace}/{pod}?port=..``: relayed to the
  runtime's streaming server (see :mod:`kubelet.server.streams` and :mod:`machinery.wsrelay`).

Errors before a stream starts are plain-text HTTP errors (the upstream kubelet's style); the API server turns
them into ``metav1.Status``. Simplifications: plain HTTP without authentication (TLS and authn/authz come with
the security work), WebSocket only (no SPDY), and only the ``stdin``/``stdout``/``stderr``/``tty`` spellings of
the exec options (not the ``input``/``output``/``error`` ones kube-apiserver sends upstream).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Mapping

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, Router, WebSocketRoute
from starlette.websockets import WebSocket

from kubelet.cri.client import CriError, RuntimeClient
from kubelet.server import containers, streams
from kubelet.server.containers import RequestError
from kubelet.server.logs import LogFile, log_options_from_query, parse_bool, stream_log
from machinery.clock import REAL_CLOCK, Clock
from machinery.componentserver import bind_socket, failed_checks, serve_asgi
from machinery.wsrelay import relay
from proto.cri import api_pb2 as cri

log = logging.getLogger(__name__)

PodLookup = Callable[[str, str], dict | None]
HealthCheck = Callable[[], bool]
TEXT = "text/plain; charset=utf-8"
SHUTDOWN_GRACE_S = 2


class KubeletServer:
    """The ASGI app plus its uvicorn server. ``pods(namespace, name)`` is the pod the kubelet runs, or None."""

    def __init__(self, runtime: RuntimeClient, pods: PodLookup, *, registry: CollectorRegistry,
                 all_pods: Callable[[], list[dict]] | None = None, checks: Mapping[str, HealthCheck] | None = None,
                 host: str = "0.0.0.0", port: int = 10250, clock: Clock = REAL_CLOCK) -> None:
        self.runtime = runtime
        self.pods = pods
        self.all_pods = all_pods or (lambda: [])
        self.registry = registry
        self.checks = dict(checks or {})
        self.host = host
        self._port = port
        self.clock = clock
        self._socket: socket.socket | None = None
        self._stopping = False  # followed logs end (cleanly) once the server is shutting down
        self.router = Router(routes=[
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/healthz/ping", self.ping, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
            Route("/pods", self.pod_list, methods=["GET"]),
            Route("/containerLogs/{namespace}/{pod}/{container}", self.container_logs, methods=["GET"]),
            *(Route(path, self.upgrade_required, methods=["GET", "POST"]) for path in _STREAM_PATHS),
            WebSocketRoute("/exec/{namespace}/{pod}/{container}", self.exec),
            WebSocketRoute("/attach/{namespace}/{pod}/{container}", self.attach),
            WebSocketRoute("/portforward/{namespace}/{pod}", self.port_forward),
        ])

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            await self.router(scope, receive, send)

    # ---- serving -------------------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    def bind(self) -> None:
        """Bind the port now, so that a clash is reported (OSError naming the port) before anything starts."""
        self._socket = bind_socket(self.host, self._port, "the kubelet server")
        self._port = self._socket.getsockname()[1]

    async def serve(self) -> None:
        """Serve until cancelled; then end followed logs and give open streams a short grace before returning."""
        if self._socket is None:
            self.bind()
        sock, self._socket = self._socket, None
        assert sock is not None
        self._stopping = False
        log.info("kubelet server listening on %s:%d", self.host, self._port)
        await serve_asgi(self, sock, graceful_shutdown=SHUTDOWN_GRACE_S, on_shutdown=self._begin_shutdown,
                         ws="websockets-sansio", ws_per_message_deflate=False)

    def _begin_shutdown(self) -> None:
        self._stopping = True

    # ---- plain routes --------------------------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        failed = failed_checks(self.checks)
        if failed:
            return PlainTextResponse("".join(f"[-]{name} failed\n" for name in failed) + "healthz check failed\n",
                                     500)
        return PlainTextResponse("ok")

    async def ping(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    async def pod_list(self, request: Request) -> Response:
        body = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": list(self.all_pods())}
        return Response(orjson.dumps(body), media_type="application/json")

    async def upgrade_required(self, request: Request) -> Response:
        return PlainTextResponse("Upgrade request required: the kubelet serves exec, attach and port-forward over "
                                 "WebSocket (v5.channel.k8s.io, v4.channel.k8s.io, channel.k8s.io), not SPDY\n", 400)

    # ---- logs ----------------------------------------------------------------------------------------------------

    async def container_logs(self, request: Request) -> Response:
        p = request.path_params
        try:
            options = log_options_from_query(request.query_params, _now_ns(self.clock))
        except ValueError as err:
            return _error(RequestError(400, str(err)))
        try:
            pod = self._pod(p["namespace"], p["pod"])
            container = await containers.log_container(self.runtime, pod, p["container"], options.previous)
            status = await self.runtime.container_status(container.id)
            if not status.log_path:
                raise RequestError(400, f'container "{p["container"]}" in pod "{p["pod"]}" has no log file')
            log_file = LogFile(status.log_path)
        except RequestError as err:
            return _error(err)
        except CriError as err:
            return _error(containers.cri_request_error(err, "cannot find the container"))
        except FileNotFoundError:
            return _error(RequestError(404, f'the log of container "{p["container"]}" in pod "{p["pod"]}" is gone'))
        except OSError as err:
            return _error(RequestError(500, f"cannot read the container's log: {err}"))

        async def running() -> bool:
            if self._stopping:
                return False
            try:
                return (await self.runtime.container_status(container.id)).state == cri.CONTAINER_RUNNING
            except CriError:
                return False  # removed, or the runtime is gone: nothing more will be written

        chunks = stream_log(log_file, options, running=running, clock=self.clock)
        return StreamingResponse(chunks, media_type="text/plain")

    # ---- streams -------------------------------------------------------------------------------------------------

    async def exec(self, websocket: WebSocket) -> None:
        await self._stream(websocket, "exec")

    async def attach(self, websocket: WebSocket) -> None:
        await self._stream(websocket, "attach")

    async def port_forward(self, websocket: WebSocket) -> None:
        await self._stream(websocket, "portforward")

    async def _stream(self, websocket: WebSocket, kind: str) -> None:
        try:
            subprotocols = streams.wanted_subprotocols(list(websocket.scope.get("subprotocols") or []), kind)
            url = await self._stream_url(websocket, kind)
            backend = await streams.open_backend(url, streams.backend_subprotocols(subprotocols))
        except (RequestError, streams.BackendError) as err:
            await _deny(websocket, err.status, err.message)
            return
        except ValueError as err:
            await _deny(websocket, 400, str(err))
            return
        except CriError as err:
            error = containers.cri_request_error(err, f"cannot start the {kind} session")
            await _deny(websocket, error.status, error.message)
            return
        chosen = backend.subprotocol
        downgraded = chosen == streams.V4 and bool(subprotocols) and streams.V4 not in subprotocols
        await websocket.accept(subprotocol=subprotocols[0] if downgraded else chosen)
        await relay(websocket, backend, v5_to_v4=downgraded)

    async def _stream_url(self, websocket: WebSocket, kind: str) -> str:
        """Ask the runtime for a streaming URL for this request (RequestError/CriError/ValueError if it is bad)."""
        p, query = websocket.path_params, websocket.query_params
        pod = self._pod(p["namespace"], p["pod"])
        if kind == "portforward":
            ports = _ports(query.getlist("port"))
            sandbox = await containers.ready_sandbox(self.runtime, pod)
            return await self.runtime.port_forward(sandbox.id, ports)
        tty = parse_bool("tty", query.get("tty", ""))
        stdin = parse_bool("stdin", query.get("stdin", ""))
        stdout = parse_bool("stdout", query.get("stdout", ""))
        stderr = parse_bool("stderr", query.get("stderr", ""))
        if not (stdin or stdout or stderr):
            raise RequestError(400, "you must specify at least 1 of stdin, stdout, stderr")
        stderr = stderr and not tty  # a terminal has one output stream, as the upstream kubelet decides
        command = query.getlist("command")
        if kind == "exec" and not command:
            raise RequestError(400, "you must specify at least one command for the container")
        container = await containers.running_container(self.runtime, pod, p["container"])
        if kind == "exec":
            return await self.runtime.exec(cri.ExecRequest(container_id=container.id, cmd=command, tty=tty,
                                                           stdin=stdin, stdout=stdout, stderr=stderr))
        return await self.runtime.attach(cri.AttachRequest(container_id=container.id, tty=tty, stdin=stdin,
                                                           stdout=stdout, stderr=stderr))

    def _pod(self, namespace: str, name: str) -> dict:
        pod = self.pods(namespace, name)
        if pod is None:
            raise RequestError(404, f'pod "{namespace}/{name}" does not exist')
        return pod


_STREAM_PATHS = ("/exec/{namespace}/{pod}/{container}", "/attach/{namespace}/{pod}/{container}",
                 "/portforward/{namespace}/{pod}")


def _now_ns(clock: Clock) -> int:
    now = clock.now()
    return int(now.timestamp()) * 1_000_000_000 + now.microsecond * 1000


def _ports(values: list[str]) -> list[int]:
    ports = []
    for value in values:
        for item in value.split(","):
            if not item.strip().isdigit() or not 0 < int(item) < 65536:
                raise ValueError(f"invalid port {item!r}: must be 1-65535")
            ports.append(int(item))
    if not ports:
        raise ValueError('query parameter "port" is required')
    return ports


def _error(err: RequestError) -> Response:
    return PlainTextResponse(err.message + "\n", err.status)


async def _deny(websocket: WebSocket, status: int, message: str) -> None:
    """Refuse a WebSocket upgrade with an HTTP error (or, if the server cannot, a policy-violation close)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(PlainTextResponse(message + "\n", status))
    else:
        await websocket.close(code=1008, reason=message[:120])
