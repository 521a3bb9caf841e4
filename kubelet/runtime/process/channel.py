"""The parent ↔ child conversation while a container process is being set up: JSON messages on a socket pair.

The parent (the ``create`` or ``exec`` command, still in the host's namespaces) puts the child into the
container's cgroups and then says ``go``; the child answers ``ready`` when it is about to wait for ``start``
(or to exec), ``error`` with the reason if a step failed, and ``console`` with the pty master attached
(SCM_RIGHTS) when the process gets a terminal. SOCK_SEQPACKET keeps one message per send.
"""

from __future__ import annotations

import json
import socket

MAX_MESSAGE = 65536


def pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def send(sock: socket.socket, kind: str, fd: int | None = None, **fields) -> None:
    data = json.dumps({"type": kind, **fields}).encode()
    if fd is None:
        sock.sendall(data)
    else:
        socket.send_fds(sock, [data], [fd])


def receive(sock: socket.socket) -> tuple[dict, int | None]:
    """The next message and the fd that came with it; ``{"type": "eof"}`` once the other side has gone."""
    data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 1)
    if not data:
        for fd in fds:
            socket.close(fd)
        return {"type": "eof"}, None
    return json.loads(data), (fds[0] if fds else None)
