"""Fakes shared by the prober and lifecycle-hook unit tests: a CRI runtime whose ExecSync is scripted, pod builders."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from proto.cri import api_pb2 as cri

# An outcome: an exit code, (exit code, output), an exception to raise, or an async function returning one.
Outcome = int | tuple[int, bytes] | Exception | Callable[[], Awaitable["Outcome"]]


class FakeExecRuntime:
    """Stands in for RuntimeClient.exec_sync; outcomes are scripted per command name (the command's first word)."""

    def __init__(self) -> None:
        self.defaults: dict[str, Outcome] = {}
        self.queued: dict[str, list[Outcome]] = {}
        self.calls: list[tuple[str, list[str], float]] = []

    def set(self, name: str, outcome: Outcome) -> None:
        """Every later run of ``name`` has ``outcome`` (unless one is queued)."""
        self.defaults[name] = outcome

    def queue(self, name: str, *outcomes: Outcome) -> None:
        self.queued.setdefault(name, []).extend(outcomes)

    def count(self, name: str) -> int:
        return sum(1 for _, cmd, _ in self.calls if cmd[0] == name)

    async def exec_sync(self, container_id: str, cmd: list[str], timeout: float = 0) -> cri.ExecSyncResponse:
        self.calls.append((container_id, list(cmd), timeout))
        queue = self.queued.get(cmd[0])
        outcome = queue.pop(0) if queue else self.defaults.get(cmd[0], 0)
        while callable(outcome):
            outcome = await outcome()
        if isinstance(outcome, Exception):
            raise outcome
        code, output = outcome if isinstance(outcome, tuple) else (outcome, b"")
        return cri.ExecSyncResponse(stdout=output, stderr=b"", exit_code=code)


def exec_action(*command: str, **settings) -> dict:
    return {"exec": {"command": list(command)}, **settings}


def make_pod(*containers: dict, uid: str = "uid-1", pod_ip: str | None = "127.0.0.1", init: list | None = None,
             **meta) -> dict:
    pod = {"metadata": {"name": "web", "namespace": "default", "uid": uid, **meta},
           "spec": {"containers": list(containers)}, "status": {"phase": "Running"}}
    if init:
        pod["spec"]["initContainers"] = init
    if pod_ip:
        pod["status"]["podIP"] = pod_ip
    return pod


async def settle(rounds: int = 50) -> None:
    """Let every runnable task run until the loop is quiet (no real time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
