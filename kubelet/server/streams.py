"""Relaying an exec/attach/port-forward WebSocket between the kubelet's caller and the runtime's streaming server.

CRI's Exec, Attach and PortForward answer a URL on the runtime's streaming server; the kubelet connects there
offering the subprotocols its caller offered (so the runtime picks, in the caller's order of preference), accepts
its caller's WebSocket with the subprotocol the runtime chose, then copies messages both ways unchanged until one
side closes, and closes the other (:func:`machinery.wsrelay.relay`, shared with the API server's hop). The
upstream kubelet proxies the upgraded TCP connection byte for byte; a message relay gives the same result for the
channel protocols, which never depend on framing details.
"""

from __future__ import annotations

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI
from websockets.typing import Origin

V5, V4, V1 = "v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"
PORT_FORWARD = "portforward.k8s.io"
SUBPROTOCOLS = {"exec": (V5, V4, V1), "attach": (V5, V4, V1), "portforward": (V4, PORT_FORWARD)}
MAX_MESSAGE = 16 << 20
CONNECT_TIMEOUT_S = 10.0


class BackendError(Exception):
    """The streaming server could not be reached or refused the session; ``status`` is the HTTP status to give."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def wanted_subprotocols(offered: list[str], kind: str) -> list[str]:
    """The offered subprotocols the runtime speaks for ``kind``, in the caller's order; ValueError if none."""
    wanted = [p for p in offered if p in SUBPROTOCOLS[kind]]
    if offered and not wanted:
        raise ValueError(f"requested protocol(s) {offered} are not supported; supports {list(SUBPROTOCOLS[kind])}")
    return wanted


def backend_subprotocols(wanted: list[str]) -> list[str]:
    """What to offer the runtime: the caller's protocols, then v4 when the caller speaks v5 — runtimes built on
    older Kubernetes libraries (Debian's containerd) know v4 at most, and v5 differs from v4 only by the
    stdin CLOSE message (see :func:`machinery.wsrelay.relay`)."""
    return [*wanted, V4] if V5 in wanted and V4 not in wanted else list(wanted)


async def open_backend(url: str, subprotocols: list[str]) -> ClientConnection:
    """A WebSocket to the runtime's streaming ``url`` (http:// URLs are accepted); BackendError if it fails."""
    ws_url = "ws" + url[4:] if url.startswith("http") else url
    # An Origin header: containerd's streaming server (Go's x/net/websocket) answers 403 without one.
    origin = Origin("http://" + ws_url.split("://", 1)[-1].split("/", 1)[0])
    try:
        return await connect(ws_url, subprotocols=subprotocols or None, compression=None, proxy=None, origin=origin,
                             max_size=MAX_MESSAGE, open_timeout=CONNECT_TIMEOUT_S, user_agent_header="kubemini-kubelet")
    except InvalidStatus as err:
        body = err.response.body.decode(errors="replace").strip() if err.response.body else ""
        raise BackendError(err.response.status_code if err.response.status_code >= 400 else 502,
                           f"the container runtime refused the session: {body or err}") from None
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as err:
        raise BackendError(502, f"cannot connect to the container runtime's streaming server: {err}") from None
