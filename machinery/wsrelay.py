"""Relaying a WebSocket session message by message: the API server to the kubelet, the kubelet to the runtime.

``pods/exec`` and ``pods/attach`` cross two hops — kubectl → API server → kubelet → the CRI runtime's streaming
server — and each hop accepts its caller's WebSocket (a Starlette ``WebSocket``), opens one to the next hop (a
``websockets`` client connection) and copies messages both ways unchanged until either side closes. Both hops
use :func:`relay`, so they end sessions the same way. Copying messages rather than bytes is enough for the
channel protocols (``v5.channel.k8s.io`` and older), which never depend on framing details.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

STDIN_CLOSE = 0xFF  # v5.channel.k8s.io: a message starting with this byte says "stream <next byte> is done"


async def relay(client: WebSocket, backend: ClientConnection, *, v5_to_v4: bool = False) -> None:
    """Copy messages both ways until either side closes; then close the other. Never raises for a lost peer.

    ``v5_to_v4``: the client speaks v5 and the backend only v4, so the client's CLOSE messages (``0xFF`` +
    channel, "stdin is done") are dropped — v4 cannot say it; a command that waits for the end of its stdin then
    waits until the client goes away.
    """
    upstream = asyncio.create_task(_client_to_backend(client, backend, drop_close=v5_to_v4))
    downstream = asyncio.create_task(_backend_to_client(backend, client))
    try:
        await asyncio.wait([upstream, downstream], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (upstream, downstream):
            task.cancel()
        await asyncio.gather(upstream, downstream, return_exceptions=True)
        await backend.close()
        with contextlib.suppress(Exception):
            await client.close()


async def _client_to_backend(client: WebSocket, backend: ClientConnection, *, drop_close: bool) -> None:
    with contextlib.suppress(WebSocketDisconnect, ConnectionClosed):
        while True:
            message = await client.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if drop_close and data and data[0] == STDIN_CLOSE:
                continue
            await backend.send(data if data is not None else message.get("text") or "")


async def _backend_to_client(backend: ClientConnection, client: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect, ConnectionClosed, OSError, RuntimeError):
        async for message in backend:
            if isinstance(message, bytes):
                await client.send_bytes(message)
            else:
                await client.send_text(message)
