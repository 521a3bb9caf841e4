"""pods/log, pods/exec, pods/attach and pods/portforward: the API server's side of reaching a pod's containers.

The API server never runs anything itself. It validates the request against the stored Pod (as kube-apiserver's
LogREST / ExecREST / AttachREST do), finds the pod's node, and calls that node's kubelet at the address in the
Node's ``status.addresses`` and port ``status.daemonEndpoints.kubeletEndpoint.Port`` (default 10250):

- ``GET pods/x/log`` streams the kubelet's ``/containerLogs/...`` back as ``text/plain`` (chunked, open for as
  long as ``follow`` keeps it going);
- ``pods/x/exec`` and ``pods/x/attach`` are WebSocket upgrades (``v5.channel.k8s.io``, ``v4.channel.k8s.io``,
  ``channel.k8s.io``; kubectl ≥ 1.30 offers v5): the API server opens a WebSocket to the kubelet's ``/exec`` or
  ``/attach`` with the same subprotocols and relays messages both ways (:func:`machinery.wsrelay.relay`, the
  kubelet's relay to its runtime too).

Errors found before contacting the kubelet (pod, container, phase, node) are HTTP ``metav1.Status`` answers, so
kubectl's SPDY fallback (a POST with ``Upgrade: SPDY/3.1``) repeats the same validation and prints the same
error; a POST that passes it is told SPDY is not supported. Errors from the kubelet during an exec or attach
arrive as a failure Status on the error channel (3) of an accepted WebSocket, where kubectl prints them; a
refused upgrade would otherwise end in the SPDY fallback's message. Port-forward (SPDY tunnelled in WebSocket
frames by kubectl) is not supported yet: a clear 400. The kubelet is spoken to over plain HTTP (no TLS, no
client certificate) until the security work lands.
"""

from __future__ import annotations

import contextlib
import logging
from urllib.parse import urlencode

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

from apiserver.registry.errors import interpret
from apiserver.server import codec
from apiserver.server.params import int_param, truthy
from apiserver.storage.errors import StorageError
from machinery import errors as api
from machinery.meta import format_rfc3339, parse_rfc3339
from machinery.wsrelay import relay

log = logging.getLogger(__name__)

KUBELET_PORT = 10250
ADDRESS_TYPES = ("InternalIP", "Hostname", "InternalDNS", "ExternalIP", "ExternalDNS")  # first found is used
CHANNEL_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io")
STREAMS = ("exec", "attach", "portforward")
ERROR_CHANNEL = 3
CONNECT_TIMEOUT_S = 10.0
LOG_READ_TIMEOUT_S = 60.0  # without follow; a followed log may stay quiet for as long as the container runs
MAX_MESSAGE = 16 << 20
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # PodLogOptions' integer fields are int64
_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict",
            429: "TooManyRequests", 503: "ServiceUnavailable", 504: "Timeout"}


# ---- shared validation ---------------------------------------------------------------------------------------


async def _get(store, namespace: str | None, name: str) -> dict:
    try:
        return await store.get(namespace, name)
    except StorageError as err:
        raise interpret(err, store.info, name) from None


def _container_names(spec: dict, *keys: str) -> list[str]:
    return [c.get("name", "") for key in keys for c in spec.get(key) or []]


def _choose_container(pod: dict, requested: str, *, logs: bool) -> str:
    """The container a request is for: the one named (it must exist), else the pod's only container."""
    spec, name = pod.get("spec") or {}, pod["metadata"]["name"]
    if requested:
        if requested not in _container_names(spec, "initContainers", "containers", "ephemeralContainers"):
            raise api.bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    containers = _container_names(spec, "containers")
    if len(containers) == 1:
        return containers[0]
    if not containers:
        raise api.bad_request(f"a container name must be specified for pod {name}")
    if logs:
        every = _container_names(spec, "initContainers", "containers", "ephemeralContainers")
        raise api.bad_request(f"a container name must be specified for pod {name}, choose one of: [{' '.join(every)}]")
    message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
    if init := _container_names(spec, "initContainers"):
        message += f" or one of the init containers: [{' '.join(init)}]"
    raise api.bad_request(message)


def _node_name(pod: dict) -> str:
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        raise api.bad_request(f"pod {pod['metadata']['name']} does not have a host assigned")
    return node


def _check_not_waiting(pod: dict, container: str) -> None:
    """Like the kubelet: a container still waiting to start (and never terminated before) has no log yet."""
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for item in status.get(key) or []:
            if item.get("name") != container:
                continue
            waiting = (item.get("state") or {}).get("waiting")
            if waiting is None or ((item.get("lastState") or {}).get("terminated") or {}).get("containerID"):
                return
            reason = {"ErrImagePull": "image can't be pulled",
                      "ImagePullBackOff": "trying and failing to pull image"}.get(waiting.get("reason", ""),
                                                                                  waiting.get("reason", ""))
            raise api.bad_request(f'container "{container}" in pod "{pod["metadata"]["name"]}" is waiting to start: '
                                  f"{reason}")


async def kubelet_base_url(registry, node_name: str) -> str:
    """``http://<address>:<port>`` of the node's kubelet, from the Node object."""
    node = await _get(registry.get("", "v1", "nodes"), None, node_name)
    status = node.get("status") or {}
    addresses = status.get("addresses") or []
    host = next((a["address"] for kind in ADDRESS_TYPES for a in addresses
                 if a.get("type") == kind and a.get("address")), None)
    if host is None:
        raise api.internal_error(f'node "{node_name}" has no address to reach its kubelet at; known addresses: '
                                 f"{[a.get('address') for a in addresses]}")
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or KUBELET_PORT
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _kubelet_error(status_code: int, body: bytes) -> api.StatusError:
    """A kubelet's error answer as the Status the client gets (its text becomes the message)."""
    try:
        status = orjson.loads(body)
        if isinstance(status, dict) and status.get("kind") == "Status":
            return api.StatusError.from_status(status, status_code)
    except orjson.JSONDecodeError:
        pass
    message = body.decode(errors="replace").strip() or f"the kubelet answered {status_code}"
    code = status_code if status_code >= 400 else 500
    return api.StatusError(code, _REASONS.get(code, "InternalError"), message)


def _unreachable(node_url: str, err: Exception) -> api.StatusError:
    return api.service_unavailable(f"cannot reach the kubelet at {node_url}: {err or type(err).__name__}")


# ---- pods/log ------------------------------------------------------------------------------------------------


def _log_query(request: Request, name: str) -> dict[str, str]:
    """The kubelet query for a PodLogOptions request; 400/422 for bad values, as kube-apiserver answers."""
    params = request.query_params
    query: dict[str, str] = {flag: "true" for flag in ("follow", "previous", "timestamps") if truthy(params, flag)}
    problems = []
    for field, minimum, rule in (("tailLines", 0, "must be greater than or equal to 0"),
                                 ("limitBytes", 1, "must be greater than 0"),
                                 ("sinceSeconds", 1, "must be greater than 0")):
        value = int_param(params, field)
        if value is not None:
            if not INT64_MIN <= value <= INT64_MAX:
                raise api.bad_request(f'invalid value for {field}: "{params[field]}" is out of range (a 64-bit '
                                      "signed integer)")
            if value < minimum:
                problems.append(api.invalid_value(field, value, rule))
            query[field] = str(value)
    if params.get("sinceTime"):
        try:
            query["sinceTime"] = format_rfc3339(parse_rfc3339(params["sinceTime"]))
        except ValueError:
            raise api.bad_request(f'invalid value for sinceTime: "{params["sinceTime"]}" is not an RFC3339 '
                                  "time") from None
        if "sinceSeconds" in query:
            problems.append(api.forbidden("sinceTime", "at most one of `sinceTime` or `sinceSeconds` may be "
                                                       "specified"))
    if problems:
        raise api.invalid("PodLogOptions", name, problems)
    return query


async def get_log(request: Request, target) -> Response:
    """GET pods/x/log: validate, then stream the kubelet's containerLogs for the pod's container."""
    query = _log_query(request, target.name)
    pod = await _get(target.store, target.namespace, target.name)
    container = _choose_container(pod, request.query_params.get("container", ""), logs=True)
    node = _node_name(pod)
    if "previous" not in query:
        _check_not_waiting(pod, container)
    base = await kubelet_base_url(request.app.state.registry, node)
    url = f"{base}/containerLogs/{target.namespace}/{target.name}/{container}"
    read_timeout = None if "follow" in query else LOG_READ_TIMEOUT_S
    client = httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(CONNECT_TIMEOUT_S, read=read_timeout))
    try:
        response = await client.send(client.build_request("GET", url, params=query), stream=True)
    except httpx.HTTPError as err:
        await client.aclose()
        raise _unreachable(base, err) from None
    if response.status_code != 200:
        body = await _read_error_body(response)
        await client.aclose()
        raise _kubelet_error(response.status_code, body)
    return StreamingResponse(_relay_body(client, response), media_type="text/plain")


async def _read_error_body(response: httpx.Response) -> bytes:
    try:
        return await response.aread()
    except httpx.HTTPError:
        return b""
    finally:
        await response.aclose()


async def _relay_body(client: httpx.AsyncClient, response: httpx.Response):
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.HTTPError as err:  # the kubelet went away mid-stream: end the log where it broke off
        log.info("log stream from %s ended: %s", response.url, err)
    finally:
        await response.aclose()
        await client.aclose()


# ---- exec, attach, portforward -------------------------------------------------------------------------------


def _stream_query(subresource: str, params) -> dict[str, list[str]]:
    """The kubelet query for PodExecOptions / PodAttachOptions (the container goes into the path)."""
    query: dict[str, list[str]] = {}
    if subresource == "exec":
        query["command"] = params.getlist("command")
        if not query["command"]:
            raise api.bad_request("you must specify at least one command for the container")
    for flag in ("stdin", "stdout", "stderr", "tty"):
        if truthy(params, flag):
            query[flag] = ["true"]
    if not any(flag in query for flag in ("stdin", "stdout", "stderr")):
        raise api.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    return query


async def _validate_stream(registry, store, namespace: str, name: str, subresource: str, params):
    """Check a stream request against the Pod; the kubelet URL (``http://...``) to open it at."""
    pod = await _get(store, namespace, name)
    if subresource == "portforward":
        raise api.bad_request("port-forward is not supported by kubemini yet")
    container = _choose_container(pod, params.get("container", ""), logs=False)
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        verb = "exec into" if subresource == "exec" else "attach to"
        raise api.bad_request(f"cannot {verb} a container in a completed pod; current phase is {phase}")
    query = _stream_query(subresource, params)
    base = await kubelet_base_url(registry, _node_name(pod))
    return f"{base}/{subresource}/{namespace}/{name}/{container}?{urlencode(query, doseq=True)}"


async def connect_without_websocket(request: Request, target) -> Response:
    """exec/attach/portforward other than a WebSocket GET: same checks, then why it cannot go on."""
    await _validate_stream(request.app.state.registry, target.store, target.namespace, target.name,
                           target.subresource, request.query_params)
    if request.method == "POST" or "spdy" in request.headers.get("upgrade", "").lower():
        raise api.bad_request("SPDY is not supported by kubemini; use kubectl 1.30 or newer (1.29 with "
                              "KUBECTL_REMOTE_COMMAND_WEBSOCKETS=true), which speaks WebSocket "
                              "(v5.channel.k8s.io)")
    raise api.bad_request("Upgrade request required")


async def stream_websocket(websocket: WebSocket) -> None:
    """The WebSocket route for pods/{exec,attach,portforward}: validate, connect to the kubelet, relay."""
    p = websocket.path_params
    offered = list(websocket.scope.get("subprotocols") or [])
    wanted = [protocol for protocol in offered if protocol in CHANNEL_PROTOCOLS]
    try:
        registry = websocket.app.state.registry
        if p["subresource"] not in STREAMS:
            raise api.StatusError(404, "NotFound", "the server could not find the requested resource")
        url = await _validate_stream(registry, registry.get("", "v1", "pods"), p["namespace"], p["name"],
                                     p["subresource"], websocket.query_params)
        if offered and not wanted:
            raise api.bad_request(f"requested protocol(s) {offered} are not supported; supports "
                                  f"{list(CHANNEL_PROTOCOLS)}")
    except api.StatusError as err:
        await _deny(websocket, err)
        return
    except Exception:
        log.exception("internal error serving %s", websocket.url.path)
        await _deny(websocket, api.internal_error("an unexpected error occurred; see the server log"))
        return
    try:
        backend = await _open_kubelet(url, wanted)
    except api.StatusError as err:
        protocol = wanted[0] if wanted else None
        await websocket.accept(subprotocol=protocol)
        await _send_failure(websocket, protocol, err)
        return
    await websocket.accept(subprotocol=backend.subprotocol)
    await relay(websocket, backend)


async def _deny(websocket: WebSocket, err: api.StatusError) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(codec.error_response(err))
    else:
        await websocket.close(code=1008, reason=err.message[:120])


async def _open_kubelet(url: str, subprotocols: list[str]) -> ClientConnection:
    ws_url = "ws" + url[4:]
    try:
        return await connect(ws_url, subprotocols=subprotocols or None, compression=None, proxy=None,
                             max_size=MAX_MESSAGE, open_timeout=CONNECT_TIMEOUT_S,
                             user_agent_header="kubemini-apiserver")
    except InvalidStatus as err:
        raise _kubelet_error(err.response.status_code, err.response.body or b"") from None
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as err:
        raise _unreachable(url.split("/", 3)[2], err) from None


async def _send_failure(websocket: WebSocket, protocol: str | None, err: api.StatusError) -> None:
    """A failure on the error channel, as v4/v5 clients read it (the oldest protocol gets the text), then close."""
    if protocol in CHANNEL_PROTOCOLS[:2]:
        status = {"metadata": {}, "status": "Failure", "message": err.message, "reason": err.reason,
                  "code": err.code}
        payload = orjson.dumps(status)
    else:
        payload = err.message.encode()
    with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
        await websocket.send_bytes(bytes([ERROR_CHANNEL]) + payload)
        await websocket.close()
