"""The runc command line, as the runtime uses it: kill, delete, update, state and exec.

``runc run --detach`` is run by each container's shim (which must be the container's parent); everything else goes
through here. Each call is one short-lived ``runc`` process with the runtime's own ``--root``, so several
runtimes (tests, nodes of a one-machine cluster) never see each other's containers.
"""

from __future__ import annotations

import asyncio
import json
import shutil

from kubelet.runtime.errors import NotFound, RuntimeFailure


def find_runc(path: str | None = None) -> str:
    binary = path or shutil.which("runc") or shutil.which("runc", path="/usr/sbin:/usr/bin:/sbin:/bin")
    if not binary:
        raise RuntimeFailure("runc is not installed: apt-get install -y runc")
    return binary


class Runc:
    def __init__(self, binary: str, root: str) -> None:
        self.binary = binary
        self.root = root

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "--root", self.root, *args]

    async def run(self, *args: str, stdin: bytes | None = None) -> bytes:
        proc = await asyncio.create_subprocess_exec(
            *self.argv(*args), stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate(stdin)
        if proc.returncode != 0:
            message = err.decode(errors="replace").strip() or f"runc {args[0]} exited with {proc.returncode}"
            if "does not exist" in message or "not found" in message.lower():
                raise NotFound(message)
            raise RuntimeFailure(message)
        return out

    async def kill(self, container_id: str, signal: str, *, all_processes: bool = False) -> None:
        await self.run("kill", *(["--all"] if all_processes else []), container_id, signal)

    async def delete(self, container_id: str) -> None:
        """Force-delete (kills what still runs, removes runc's state and the container's cgroup); idempotent."""
        try:
            await self.run("delete", "--force", container_id)
        except NotFound:
            pass

    async def state(self, container_id: str) -> dict | None:
        try:
            return json.loads(await self.run("state", container_id))
        except NotFound:
            return None

    async def update(self, container_id: str, resources: dict) -> None:
        """Apply OCI LinuxResources to a live container (runc orders memory and memsw writes correctly)."""
        await self.run("update", "--resources", "-", container_id, stdin=json.dumps(resources).encode())

    def exec_argv(self, container_id: str, args: list[str], *, tty: bool = False, pid_file: str | None = None,
                  env: list[str] | None = None) -> list[str]:
        flags = ["--tty"] if tty else []
        if pid_file:
            flags += ["--pid-file", pid_file]
        for item in env or []:
            flags += ["--env", item]
        return self.argv("exec", *flags, container_id, *args)
