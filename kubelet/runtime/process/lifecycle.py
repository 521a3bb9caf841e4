"""``start``, ``state``, ``kill``, ``delete`` and ``update`` of a container that ``create`` recorded.

``start`` opens ``exec.fifo`` for reading, which lets the waiting init through to execve. Every command reads
``state.json``; signals go to the init's host pid (checked against its recorded start time) or, with ``--all``, to
every process in the container's cgroups while the freezer holds them; ``delete --force`` kills what is left,
waits for the cgroups to empty, removes them and the state; ``update`` writes new limits.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import time

from kubelet.runtime.process import cgroupfs, state
from kubelet.runtime.process.errors import Failure

DELETE_WAIT_S = 5.0


def parse_signal(name: str) -> int:
    text = name.strip().upper()
    if text.isdigit():
        return int(text)
    text = text.removeprefix("SIG")
    if text.startswith(("RTMIN", "RTMAX")):
        base = signal.SIGRTMIN if text.startswith("RTMIN") else signal.SIGRTMAX
        offset = text[5:]
        return int(base) + (int(offset) if offset else 0)
    try:
        return int(signal.Signals[f"SIG{text}"])
    except KeyError:
        raise Failure(f"unknown signal {name!r}") from None


def show(root: str, container_id: str) -> None:
    record = state.load(root, container_id)
    sys.stdout.write(json.dumps(state.describe(root, record), indent=2) + "\n")


def kill(root: str, container_id: str, signal_name: str, all_processes: bool) -> None:
    record = state.load(root, container_id)
    signum = parse_signal(signal_name)
    if all_processes:
        if not state.alive(record) and not cgroupfs.procs(record.cgroups):
            raise Failure("container not running")
        cgroupfs.signal_all(record.cgroups, signum)
        return
    if not state.alive(record):
        raise Failure("container not running")
    try:
        os.kill(record.pid, signum)
    except ProcessLookupError:
        raise Failure("container not running") from None


def delete(root: str, container_id: str, force: bool) -> None:
    record = state.load(root, container_id)
    current = state.status(root, record)
    if current != "stopped" and not force:
        raise Failure(f"cannot delete container {container_id} that is not stopped: {current}")
    if state.alive(record):
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGKILL)
    deadline = time.monotonic() + DELETE_WAIT_S
    signalled_at = 0.0
    while cgroupfs.procs(record.cgroups):
        now = time.monotonic()
        if now > deadline:
            raise Failure(f"container {container_id}: processes remain in its cgroups after SIGKILL")
        if now - signalled_at > 0.5:  # again now and then, for anything forked meanwhile
            cgroupfs.signal_all(record.cgroups, signal.SIGKILL)
            signalled_at = now
        time.sleep(0.002)
    cgroupfs.remove(record.cgroups)
    state.remove(root, container_id)


def update(root: str, container_id: str, resources_file: str | None) -> None:
    record = state.load(root, container_id)
    if not state.alive(record):
        raise Failure(f"container {container_id} is not running")
    if not resources_file:
        raise Failure("update needs --resources (OCI LinuxResources JSON, '-' for stdin)")
    try:
        if resources_file == "-":
            resources = json.load(sys.stdin)
        else:
            with open(resources_file) as f:
                resources = json.load(f)
    except (OSError, ValueError) as e:
        raise Failure(f"unable to read resources: {e}") from None
    cgroupfs.apply(record.cgroups, resources)


def start(root: str, container_id: str) -> None:
    record = state.load(root, container_id)
    current = state.status(root, record)
    if current == "stopped":
        raise Failure("cannot start a container that has stopped")
    if current == "running":
        raise Failure("cannot start an already running container")
    fifo = os.path.join(state.container_dir(root, container_id), state.EXEC_FIFO)
    try:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise Failure("cannot start an already running container") from None
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        while True:
            if poller.poll(100):
                if os.read(fd, 1):
                    break
                raise Failure("cannot start container: its init exited before it was started")
            if not state.alive(record):
                raise Failure("cannot start container: its init exited before it was started")
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(fifo)
