"""A container's state on disk (``<root>/<id>/state.json``) and what it says about the container now.

Every ocirun command is a new short-lived process, so everything ``state``, ``kill``, ``delete``, ``update`` and
``exec`` need is written at create time: the init's host pid and start time (pids are reused; the start time
proves the process is still ours), the bundle, the creation time and the cgroup directories. The status is derived
as runc derives it: the init alive and still waiting on ``exec.fifo`` is *created*, alive without the FIFO is
*running*, gone (or a zombie its parent has not reaped) is *stopped*.
"""

from __future__ import annotations

import json
import os
import string
import time

from kubelet.runtime.process.errors import Failure

STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"
OCI_VERSION = "1.0.2"
ID_CHARACTERS = frozenset(string.ascii_letters + string.digits + "_+-.")


class State:
    """What ``state.json`` holds (a plain class: dataclasses would double this command's start-up time)."""

    FIELDS = ("id", "pid", "start_time", "bundle", "rootfs", "created", "cgroups", "annotations")

    def __init__(self, *, id: str, pid: int, start_time: int, bundle: str, rootfs: str, created: str,
                 cgroups: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> None:
        self.id = id
        self.pid = pid
        self.start_time = start_time  # field 22 of /proc/<pid>/stat: clock ticks after boot
        self.bundle = bundle
        self.rootfs = rootfs
        self.created = created  # RFC 3339 with nanoseconds, UTC
        self.cgroups = cgroups or {}  # hierarchy name -> directory
        self.annotations = annotations or {}

    def to_json(self) -> dict:
        return {name: getattr(self, name) for name in self.FIELDS}


def rfc3339_now() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def container_dir(root: str, container_id: str) -> str:
    if not container_id or not set(container_id) <= ID_CHARACTERS or container_id in (".", ".."):
        raise Failure(f"invalid container id format: {container_id}")
    return os.path.join(root, container_id)


def load(root: str, container_id: str) -> State:
    try:
        with open(os.path.join(container_dir(root, container_id), STATE_FILE)) as f:
            return State(**json.load(f))
    except FileNotFoundError:
        raise Failure(f"container {container_id} does not exist") from None
    except (ValueError, TypeError) as e:
        raise Failure(f"container {container_id}: unreadable state: {e}") from None


def save(root: str, state: State) -> None:
    path = os.path.join(container_dir(root, state.id), STATE_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state.to_json(), f)
    os.replace(tmp, path)


def remove(root: str, container_id: str) -> None:
    """Remove the state directory (it only ever holds files)."""
    directory = container_dir(root, container_id)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(directory)
    except FileNotFoundError:
        pass


def process_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) of a process, or None if there is none with that pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rfind(b")") + 2:].split()
    return fields[0].decode(), int(fields[19])


def alive(state: State) -> bool:
    """Whether the container's init still runs (a zombie counts as exited)."""
    if state.pid <= 0:
        return False
    found = process_stat(state.pid)
    return found is not None and found[1] == state.start_time and found[0] not in ("Z", "X")


def status(root: str, state: State) -> str:
    if not alive(state):
        return "stopped"
    if os.path.exists(os.path.join(container_dir(root, state.id), EXEC_FIFO)):
        return "created"
    return "running"


def describe(root: str, state: State) -> dict:
    """``runc state`` output."""
    current = status(root, state)
    return {"ociVersion": OCI_VERSION, "id": state.id, "pid": state.pid if current != "stopped" else 0,
            "status": current, "bundle": state.bundle, "rootfs": state.rootfs, "created": state.created,
            "owner": "", "annotations": state.annotations}
