"""Starting a container's shim and learning when it is done — for pod containers and pause processes alike.

:class:`ShimServer` keeps the one warm ``python -S shim.py`` process that forks shims (see ``shim.py`` for why
and how); :func:`spawn` asks it for a shim and waits for the shim's one-line answer on a pipe (the container's init
pid, or runc's error). :class:`ExitWatcher` then follows each shim with a pidfd, which works for processes that
are not our children — exactly the situation after the runtime restarts — and calls back when the shim has gone;
its ``exit.json`` says how the container ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubelet.runtime.errors import RuntimeFailure

log = logging.getLogger(__name__)
SHIM = Path(__file__).with_name("shim.py")
SPAWN_TIMEOUT_S = 60.0
SERVER_STOP_WAIT_S = 5.0


@dataclass(frozen=True)
class Started:
    pid: int
    shim_pid: int


class ShimServer:
    """The shim server process, started on first use and again whenever it has gone."""

    def __init__(self, root: Path, python: str = sys.executable) -> None:
        self.root = root
        self.python = python
        self._proc: subprocess.Popen | None = None
        self._channel: socket.socket | None = None

    def _ensure(self) -> socket.socket:
        if self._channel is not None and self._proc is not None and self._proc.poll() is None:
            return self._channel
        self.close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                [self.python, "-S", str(SHIM), str(theirs.fileno()), str(self.root)], pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL)
        except OSError as e:
            ours.close()
            raise RuntimeFailure(f"cannot start the shim server ({self.python}): {e}") from e
        finally:
            theirs.close()
        ours.setblocking(False)
        self._channel = ours
        log.info("shim server started", extra={"pid": self._proc.pid})
        return ours

    async def request(self, spec: dict, notify_fd: int, log_fd: int) -> None:
        """Hand the server one shim's spec, the notification pipe and the shim's log; a server that has gone is
        replaced once."""
        message = json.dumps(spec).encode()
        for attempt in range(2):
            channel = self._ensure()
            try:
                await _send_fds(channel, message, [notify_fd, log_fd])
                return
            except OSError as e:
                self.close()
                if attempt:
                    raise RuntimeFailure(f"the shim server does not take requests: {e}") from e

    def close(self) -> None:
        """Close the channel (the server exits when it sees that) and reap the server."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._proc is not None:
            try:
                self._proc.wait(SERVER_STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None


async def _send_fds(sock: socket.socket, message: bytes, fds: list[int]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        try:
            socket.send_fds(sock, [message], fds)
            return
        except BlockingIOError:
            writable = loop.create_future()
            loop.add_writer(sock.fileno(), _resolve, writable)
            try:
                await writable
            finally:
                loop.remove_writer(sock.fileno())


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


async def spawn(server: ShimServer, *, container_id: str, bundle: Path, state_dir: Path, runc: str, runc_root: str,
                log_path: str, cgroup_path: str, stdin: bool = False) -> Started:
    """Make and start the container under a new shim; raises RuntimeFailure with runc's message if it cannot."""
    spec = {"id": container_id, "bundle": str(bundle), "state_dir": str(state_dir), "runc": runc,
            "runc_root": runc_root, "log_path": log_path, "cgroup_path": cgroup_path, "stdin": stdin}
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "exit.json").unlink(missing_ok=True)
    read_fd, write_fd = os.pipe()
    try:
        log_fd = os.open(state_dir / "shim.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            await server.request(spec, write_fd, log_fd)
        finally:
            os.close(log_fd)
            os.close(write_fd)
        answer = await _read_answer(read_fd, state_dir / "shim.log")
    finally:
        os.close(read_fd)
    if "error" in answer:
        raise RuntimeFailure(answer["error"])
    return Started(pid=answer["pid"], shim_pid=answer["shim_pid"])


async def _read_answer(fd: int, shim_log: Path) -> dict:
    """The shim's one-line answer, read without a thread: many shims may be creating containers at once."""
    loop = asyncio.get_running_loop()
    answered = loop.create_future()
    data = bytearray()
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        data.extend(chunk)
        if (not chunk or data.endswith(b"\n")) and not answered.done():
            answered.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await asyncio.wait_for(answered, SPAWN_TIMEOUT_S)
    except TimeoutError:
        return {"error": f"the container monitor did not answer within {SPAWN_TIMEOUT_S:.0f}s (see {shim_log})"}
    finally:
        loop.remove_reader(fd)
    if not data:
        return {"error": f"the container monitor exited before creating the container (see {shim_log})"}
    return json.loads(data)


def read_exit(state_dir: Path) -> dict | None:
    try:
        return json.loads((state_dir / "exit.json").read_text())
    except (OSError, ValueError):
        return None


def is_shim(pid: int, state_dir: Path) -> bool:
    """Whether ``pid`` is still the shim for ``state_dir`` (pids are reused): a shim works in its state directory."""
    try:
        return os.readlink(f"/proc/{pid}/cwd") == os.path.realpath(state_dir)
    except OSError:
        return False


def shim_pids(root: Path) -> list[int]:
    """Live shims whose state lives under ``root`` (leak checks, memory accounting); not the shim server."""
    found = []
    prefix = os.path.realpath(root) + os.sep
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{entry}/cwd").startswith(prefix) and SHIM.name.encode() in Path(
                    f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
    return found


class ExitWatcher:
    """Calls ``on_exit(key)`` once the watched shim process has gone (immediately if it already has)."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}

    def watch(self, key: str, shim_pid: int, state_dir: Path, on_exit: Callable[[str], None]) -> None:
        loop = asyncio.get_running_loop()
        self.unwatch(key)
        try:
            if shim_pid <= 0:  # the runtime stopped before the shim answered: nothing to follow
                raise ProcessLookupError(shim_pid)
            fd = os.pidfd_open(shim_pid)
        except OSError:
            loop.call_soon(on_exit, key)
            return
        if not is_shim(shim_pid, state_dir):
            os.close(fd)
            loop.call_soon(on_exit, key)
            return
        self._fds[key] = fd

        def fired() -> None:
            self.unwatch(key)
            on_exit(key)

        loop.add_reader(fd, fired)

    def unwatch(self, key: str) -> None:
        fd = self._fds.pop(key, None)
        if fd is not None:
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)

    def close(self) -> None:
        for key in list(self._fds):
            self.unwatch(key)
