"""Run one probe or lifecycle-hook handler against a running container, the way the Kubernetes kubelet does.

Probes (liveness, readiness, startup) and lifecycle hooks (postStart, preStop) share the same handler shapes:
``exec`` runs a command in the container through the CRI, ``httpGet`` / ``tcpSocket`` / ``grpc`` reach the pod
over the network (by default at its IP), ``sleep`` (hooks only) just waits. Every handler answers with a
:class:`Result` and a message in Kubernetes' words, which the caller turns into ``Unhealthy`` or
``FailedPostStartHook`` events. A network failure is FAILURE; a handler that could not even be attempted (no pod
IP yet, unknown named port, runtime error) is UNKNOWN, which probe workers ignore, as Kubernetes does.

Simplifications: the HTTP response body is never read (Kubernetes reads ≤10 KiB only to show it on redirect
warnings); an HTTPS hook that gets a plain-HTTP answer is not retried over HTTP.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import os
import socket
import ssl
from collections.abc import Mapping

import grpc
import httpx

from kubelet.cri.client import CriError, RuntimeClient
from kubelet.prober.results import Result
from machinery.clock import REAL_CLOCK, Clock

PROBE_USER_AGENT = "kube-probe/1.35"
HOOK_USER_AGENT = "kube-lifecycle/1.35"
MAX_REDIRECTS = 10
MAX_OUTPUT = 1024  # characters of command output kept in a message (events cut their messages short anyway)


class ActionError(Exception):
    """The handler could not be attempted: bad settings or missing facts (→ Result.UNKNOWN)."""


async def run_action(action: Mapping, *, pod: Mapping, container: Mapping, container_id: str,
                     runtime: RuntimeClient, timeout: float, clock: Clock = REAL_CLOCK,
                     for_hook: bool = False) -> tuple[bool, str]:
    """Run ``action`` (a probe or lifecycle handler dict) once; ``(succeeded, message for events)``.

    ``timeout`` seconds bound exec/httpGet/tcpSocket/grpc (0 or less: no bound, what hooks use). ``for_hook``
    selects hook behaviour: ``sleep`` allowed, User-Agent ``kube-lifecycle``, any HTTP status is success.
    Never raises for bad input or an unreachable target; both come back as ``(False, message)``.
    """
    result, message = await probe_action(action, pod=pod, container=container, container_id=container_id,
                                         runtime=runtime, timeout=timeout, clock=clock, for_hook=for_hook)
    return result is Result.SUCCESS, message


async def probe_action(action: Mapping, *, pod: Mapping, container: Mapping, container_id: str | None,
                       runtime: RuntimeClient, timeout: float, clock: Clock = REAL_CLOCK,
                       for_hook: bool = False) -> tuple[Result, str]:
    """Like :func:`run_action` but keeps the three-way result probe workers need."""
    try:
        if not isinstance(action, Mapping):
            raise ActionError(f"handler must be an object, not {type(action).__name__}")
        if action.get("exec") is not None:
            return await run_exec(_object(action, "exec"), container_id, runtime, timeout)
        if action.get("httpGet") is not None:
            return await run_http_get(_object(action, "httpGet"), pod, container, timeout, for_hook)
        if action.get("tcpSocket") is not None:
            return await run_tcp_socket(_object(action, "tcpSocket"), pod, container, timeout)
        if action.get("grpc") is not None and not for_hook:
            return await run_grpc(_object(action, "grpc"), pod, timeout)
        if action.get("sleep") is not None and for_hook:
            return await run_sleep(_object(action, "sleep"), clock)
        kinds = "exec, httpGet, tcpSocket or sleep" if for_hook else "exec, httpGet, tcpSocket or grpc"
        raise ActionError(f"handler has no action: set one of {kinds}")
    except ActionError as err:
        return Result.UNKNOWN, str(err)


# --- exec and sleep ----------------------------------------------------------------------------------------


async def run_exec(spec: Mapping, container_id: str | None, runtime: RuntimeClient,
                   timeout: float) -> tuple[Result, str]:
    """CRI ExecSync; exit code 0 is success, the runtime's deadline is a failure (not an error)."""
    command = spec.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        raise ActionError("exec handler needs a non-empty command (a list of strings)")
    if not container_id:
        raise ActionError("container is not running")
    text = " ".join(command)
    try:
        response = await runtime.exec_sync(container_id, list(command), timeout=max(0.0, timeout))
    except CriError as err:
        if err.code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return Result.FAILURE, f'command "{text}" timed out'
        raise ActionError(f'command "{text}" could not be run: {err.details or err.code.name}') from None
    output = _text(bytes(response.stdout) + bytes(response.stderr))
    if response.exit_code == 0:
        return Result.SUCCESS, output
    return Result.FAILURE, f'command "{text}" exited with {response.exit_code}: {output}'


async def run_sleep(spec: Mapping, clock: Clock) -> tuple[Result, str]:
    seconds = spec.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
        raise ActionError(f"sleep.seconds must be a non-negative integer, not {seconds!r}")
    await clock.sleep(seconds)
    return Result.SUCCESS, ""


# --- httpGet -----------------------------------------------------------------------------------------------


async def run_http_get(spec: Mapping, pod: Mapping, container: Mapping, timeout: float,
                       for_hook: bool = False) -> tuple[Result, str]:
    """GET the URL; 200 to 399 is success. Redirects are followed only to the same host (at most 10); a redirect
    to another host ends the chain and its 3xx counts as success, as in Kubernetes."""
    scheme = str(spec.get("scheme") or "HTTP").upper()
    if scheme not in ("HTTP", "HTTPS"):
        raise ActionError(f"httpGet.scheme must be HTTP or HTTPS, not {scheme!r}")
    host = spec.get("host") or pod_ip(pod)
    port = resolve_port(spec.get("port"), container)
    url = format_url(scheme.lower(), host, port, str(spec.get("path") or ""))
    headers = request_headers(spec.get("httpHeaders"), HOOK_USER_AGENT if for_hook else PROBE_USER_AGENT)
    try:
        async with asyncio.timeout(timeout if timeout > 0 else None):
            status, note = await _get_following_redirects(url, headers, timeout)
    except (TimeoutError, httpx.TimeoutException):
        return Result.FAILURE, (f'Get "{url}": context deadline exceeded '
                                "(Client.Timeout exceeded while awaiting headers)")
    except httpx.TooManyRedirects:
        return Result.FAILURE, f'Get "{url}": stopped after {MAX_REDIRECTS} redirects'
    except httpx.HTTPError as err:
        return Result.FAILURE, f'Get "{url}": {_transport_error_text(err, join_host_port(host, port))}'
    if for_hook:
        return Result.SUCCESS, ""  # Kubernetes does not look at a hook's status code, only at transport errors
    if 200 <= status < 400:
        return Result.SUCCESS, note
    return Result.FAILURE, f"HTTP probe failed with statuscode: {status}"


async def _get_following_redirects(url: str, headers: list[tuple[str, str]], timeout: float) -> tuple[int, str]:
    client_timeout = httpx.Timeout(timeout if timeout > 0 else None)
    async with httpx.AsyncClient(verify=_insecure_tls(), trust_env=False, follow_redirects=False,
                                 timeout=client_timeout) as client:
        target = httpx.URL(url)
        for _ in range(MAX_REDIRECTS + 1):
            response = await client.send(client.build_request("GET", target, headers=headers), stream=True)
            await response.aclose()  # the body is not needed; closing keeps no connection alive
            if not response.is_redirect:
                return response.status_code, ""
            following = target.join(response.headers["location"])
            if following.host != target.host:
                return response.status_code, f"Probe terminated redirects to {following}"
            target = following
    raise httpx.TooManyRedirects("too many redirects")


@functools.cache
def _insecure_tls() -> ssl.SSLContext:
    """HTTPS probes skip certificate verification, as Kubernetes' do (built once: contexts are costly)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def request_headers(http_headers: object, user_agent: str) -> list[tuple[str, str]]:
    """The probe's ``httpHeaders`` (repeats kept) plus default User-Agent and Accept unless it sets them."""
    if http_headers is None:
        http_headers = []
    if not isinstance(http_headers, list):
        raise ActionError("httpGet.httpHeaders must be a list of {name, value}")
    headers: list[tuple[str, str]] = []
    for item in http_headers:
        if not isinstance(item, Mapping) or not item.get("name"):
            raise ActionError(f"httpGet.httpHeaders entries need a name, got {item!r}")
        headers.append((str(item["name"]), str(item.get("value") or "")))
    names = {name.lower() for name, _ in headers}
    if "user-agent" not in names:
        headers.append(("User-Agent", user_agent))
    if "accept" not in names:
        headers.append(("Accept", "*/*"))
    return headers


def format_url(scheme: str, host: str, port: int, path: str) -> str:
    """``scheme://host:port/path?query`` with an IPv6 host bracketed and the path made absolute."""
    path, _, query = path.partition("?")
    if not path.startswith("/"):
        path = "/" + path
    return f"{scheme}://{join_host_port(host, port)}{path}" + (f"?{query}" if query else "")


def _transport_error_text(err: httpx.HTTPError, address: str) -> str:
    cause = _os_error_in(err)
    if cause is not None:
        return f"dial tcp {address}: {dial_error_text(cause)}"
    return str(err) or type(err).__name__


def _os_error_in(err: BaseException) -> OSError | None:
    """The socket error behind an httpx error: the chain is httpx → httpcore → anyio's summary OSError → the
    OSError with the errno; the one with an errno is preferred."""
    found: OSError | None = None
    seen: BaseException | None = err
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, OSError):
            if seen.errno:
                return seen
            found = found or seen
        seen = seen.__cause__ or seen.__context__
    return found


# --- tcpSocket and grpc ------------------------------------------------------------------------------------


async def run_tcp_socket(spec: Mapping, pod: Mapping, container: Mapping, timeout: float) -> tuple[Result, str]:
    """Success when a TCP connection opens within the timeout; it is closed at once."""
    host = spec.get("host") or pod_ip(pod)
    port = resolve_port(spec.get("port"), container)
    address = join_host_port(host, port)
    try:
        async with asyncio.timeout(timeout if timeout > 0 else None):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return Result.FAILURE, f"dial tcp {address}: i/o timeout"
    except OSError as err:
        return Result.FAILURE, f"dial tcp {address}: {dial_error_text(err, host)}"
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return Result.SUCCESS, ""


async def run_grpc(spec: Mapping, pod: Mapping, timeout: float) -> tuple[Result, str]:
    """grpc.health.v1.Health/Check on the pod IP; SERVING is success (gRPC probes have no host field)."""
    try:
        from grpc_health.v1 import health_pb2
    except ImportError:
        raise ActionError("gRPC probes need the grpcio-health-checking package") from None
    port = spec.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ActionError(f"grpc.port must be a port number, not {port!r}")
    target = join_host_port(pod_ip(pod), port)
    service = str(spec.get("service") or "")
    deadline = timeout if timeout > 0 else None
    loop = asyncio.get_running_loop()
    started = loop.time()
    channel = grpc.aio.insecure_channel(target, options=[("grpc.primary_user_agent", PROBE_USER_AGENT)])
    try:
        try:
            await asyncio.wait_for(channel.channel_ready(), deadline)
        except TimeoutError:
            return Result.FAILURE, (f'timeout: failed to connect service "{target}" within {timeout:g}s: '
                                    "context deadline exceeded")
        remaining = None if deadline is None else max(0.001, deadline - (loop.time() - started))
        check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                    request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                                    response_deserializer=health_pb2.HealthCheckResponse.FromString)
        try:
            response = await check(health_pb2.HealthCheckRequest(service=service), timeout=remaining)
        except grpc.aio.AioRpcError as err:
            return Result.FAILURE, _health_rpc_error_text(err, timeout)
    finally:
        await channel.close()
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        return Result.FAILURE, f'service unhealthy (responded with "{status}")'
    return Result.SUCCESS, ""


def _health_rpc_error_text(err: grpc.aio.AioRpcError, timeout: float) -> str:
    code = err.code()
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return ("error: this server does not implement the grpc health protocol (grpc.health.v1.Health): "
                f"{err.details()}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"timeout: health rpc did not complete within {timeout:g}s"
    code_name = "".join(part.capitalize() for part in code.name.split("_"))
    return f"error: health rpc probe failed: rpc error: code = {code_name} desc = {err.details()}"


# --- shared helpers ----------------------------------------------------------------------------------------

_DIAL_ERRORS = {
    errno.ECONNREFUSED: "connect: connection refused",
    errno.EHOSTUNREACH: "connect: no route to host",
    errno.ENETUNREACH: "connect: network is unreachable",
    errno.ETIMEDOUT: "connect: connection timed out",
    errno.ECONNRESET: "read: connection reset by peer",
}


def dial_error_text(err: OSError, host: str = "") -> str:
    """A socket error in Go's words (``connect: connection refused``), as Kubernetes messages show them."""
    if isinstance(err, socket.gaierror):
        return f"lookup {host or 'host'}: no such host"
    if err.errno in _DIAL_ERRORS:
        return _DIAL_ERRORS[err.errno]
    if err.errno:
        return f"connect: {os_strerror(err.errno)}"
    return str(err) or type(err).__name__


def os_strerror(number: int) -> str:
    text = os.strerror(number)
    return text[:1].lower() + text[1:]


def pod_ip(pod: Mapping) -> str:
    """The pod's primary IP (``status.podIP``, else the first of ``status.podIPs``)."""
    status = pod.get("status") or {}
    ip = status.get("podIP") or next((entry.get("ip") for entry in status.get("podIPs") or [] if entry.get("ip")),
                                     None)
    if not ip:
        raise ActionError("pod has no IP address yet")
    return str(ip)


def resolve_port(port: object, container: Mapping) -> int:
    """A port number, or a name looked up in the container's ``ports`` (a numeric string is taken as a number,
    Kubernetes' last-ditch fallback)."""
    if isinstance(port, str):
        named = [p.get("containerPort") for p in container.get("ports") or [] if p.get("name") == port]
        if named:
            port = named[0]
        elif port.isdigit():
            port = int(port)
        else:
            raise ActionError(f"couldn't find port {port!r} in container {container.get('name', '')!r}")
    if isinstance(port, bool) or not isinstance(port, int):
        raise ActionError(f"port must be a number or a port name, not {port!r}")
    if not 0 < port < 65536:
        raise ActionError(f"invalid port number: {port}")
    return port


def join_host_port(host: str, port: int) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def _object(action: Mapping, field: str) -> Mapping:
    value = action[field]
    if not isinstance(value, Mapping):
        raise ActionError(f"{field} must be an object, not {type(value).__name__}")
    return value


def _text(output: bytes) -> str:
    text = output.decode("utf-8", "replace")
    return text if len(text) <= MAX_OUTPUT else text[:MAX_OUTPUT] + "…"
