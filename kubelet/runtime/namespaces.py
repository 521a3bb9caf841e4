"""Linux namespaces made and entered by one thread of the runtime, and kept by bind mounts rather than processes.

A thread may unshare or enter a network, IPC or UTS namespace on its own (unlike a mount or user namespace), even
in a multi-threaded process such as the runtime; so each such job runs in a fresh thread that ends with it
(:func:`in_fresh_thread`), and the rest of the runtime never sees a namespace change. :func:`pin` makes new
namespaces and keeps each alive by bind-mounting ``/proc/thread-self/ns/<kind>`` on a file — what ``ip netns add``
does for a network namespace and CRI-O's pinns for a pod's IPC and UTS ones — so that a pod needs no process to
hold them: its containers join them by path, and unmounting the file releases them once no process is inside.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import threading
from pathlib import Path

CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNET = 0x04000000, 0x08000000, 0x40000000
FLAGS = {"uts": CLONE_NEWUTS, "ipc": CLONE_NEWIPC, "net": CLONE_NEWNET}
MS_BIND = 0x1000
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def pin(pins: dict[str, Path], hostname: str | None = None) -> None:
    """Move the calling thread into new namespaces of the kinds ``pins`` names (``net``, ``ipc``, ``uts``), set
    the UTS one's ``hostname``, and bind-mount each on its file (which must not exist yet). The thread stays in
    them: call this in a thread of its own."""
    flags = 0
    for kind in pins:
        flags |= FLAGS[kind]
    _check(_libc.unshare(flags), "unshare")
    if "uts" in pins and hostname:
        socket.sethostname(hostname)
    for kind, path in pins.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))
        _check(_libc.mount(f"/proc/thread-self/ns/{kind}".encode(), os.fsencode(path), None, MS_BIND, None),
               f"bind mount of the new {kind} namespace on {path}")


def enter(path: str | os.PathLike | int, kind: str) -> None:
    """Move the calling thread into the ``kind`` namespace at ``path`` (or an open descriptor of one)."""
    fd = path if isinstance(path, int) else os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.setns(fd, FLAGS[kind]), f"setns({path})")
    finally:
        if not isinstance(path, int):
            os.close(fd)


async def in_fresh_thread(function, *args):
    """Run ``function`` in a new thread that ends with it (so a namespace it could not leave dies with it)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(result, error) -> None:
        if future.cancelled():
            if isinstance(result, socket.socket):
                result.close()
        elif error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            result = function(*args)
        except Exception as e:
            loop.call_soon_threadsafe(settle, None, e)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=run, name=f"ns-{function.__name__}", daemon=True).start()
    return await future
