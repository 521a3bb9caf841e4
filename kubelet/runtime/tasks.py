"""Starting a container's shim and learning when it is done — for pod containers and pause processes alike.

:func:`spawn` writes the shim's spec, runs ``python -S shim.py`` and waits for its one-line answer on a pipe
(the container's init pid, or runc's error). :class:`ExitWatcher` then follows each shim with a pidfd, which works
for processes that are not our children — exactly the situation after the runtime restarts — and calls back
when the shim has gone; its ``exit.json`` says how the container ended.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubelet.runtime.errors import RuntimeFailure

log = logging.getLogger(__name__)
SHIM = Path(__file__).with_name("shim.py")
SPAWN_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Started:
    pid: int
    shim_pid: int


async def spawn(*, container_id: str, bundle: Path, state_dir: Path, runc: str, runc_root: str, log_path: str,
                cgroup_path: str, stdin: bool = False, python: str = sys.executable) -> Started:
    """Create the container under a new shim; raises RuntimeFailure with runc's message if it cannot."""
    spec = {"id": container_id, "bundle": str(bundle), "state_dir": str(state_dir), "runc": runc,
            "runc_root": runc_root, "log_path": log_path, "cgroup_path": cgroup_path, "stdin": stdin}
    state_dir.mkdir(parents=True, exist_ok=True)
    spec_path = state_dir / "shim.json"
    spec_path.write_text(json.dumps(spec))
    (state_dir / "exit.json").unlink(missing_ok=True)
    read_fd, write_fd = os.pipe()
    try:
        with open(state_dir / "shim.log", "ab") as shim_log:
            proc = await asyncio.create_subprocess_exec(
                python, "-S", str(SHIM), str(spec_path), str(write_fd), stdin=asyncio.subprocess.DEVNULL,
                stdout=shim_log, stderr=shim_log, pass_fds=(write_fd,))
    finally:
        os.close(write_fd)
    try:
        await proc.wait()  # the shim daemonizes: this is its short-lived first process
        answer = await asyncio.wait_for(asyncio.to_thread(_read_answer, read_fd), SPAWN_TIMEOUT_S)
    finally:
        os.close(read_fd)
    if "error" in answer:
        raise RuntimeFailure(answer["error"])
    return Started(pid=answer["pid"], shim_pid=answer["shim_pid"])


def _read_answer(fd: int) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    if not data:
        return {"error": "the container monitor exited before creating the container (see shim.log)"}
    return json.loads(data)


def read_exit(state_dir: Path) -> dict | None:
    try:
        return json.loads((state_dir / "exit.json").read_text())
    except (OSError, ValueError):
        return None


def is_shim(pid: int, state_dir: Path) -> bool:
    """Whether ``pid`` is still the shim for ``state_dir`` (pids are reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return str(state_dir / "shim.json").encode() in cmdline


def shim_pids(root: Path) -> list[int]:
    """Live shims whose state lives under ``root`` (leak checks, memory accounting)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if SHIM.name.encode() in cmdline and str(root).encode() in cmdline:
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
