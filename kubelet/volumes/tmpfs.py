"""tmpfs mounts for memory-backed volumes (emptyDir medium Memory, secret and projected volumes).

Mounting goes through the util-linux ``mount``/``umount`` commands in an asyncio subprocess: a pod makes a few of
them at start, and the commands give clear error messages. What is mounted is read from ``/proc/self/mountinfo``,
so setup is idempotent and teardown can prove that nothing is left mounted before it deletes a directory.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path


class MountError(Exception):
    """A mount or unmount command failed (the message is the command's own)."""


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points() -> list[str]:
    """Every mount point of this process's mount namespace."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return [_unescape(line.split()[4]) for line in f if line.strip()]


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below ``path`` (resolved), deepest first."""
    prefix = os.path.realpath(path)
    found = {p for p in mount_points() if p == prefix or p.startswith(prefix.rstrip("/") + "/")}
    return [Path(p) for p in sorted(found, key=lambda p: (p.count("/"), p), reverse=True)]


def is_mount_point(path: Path) -> bool:
    return os.path.realpath(path) in set(mount_points())


async def _run(*argv: str) -> None:
    process = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    if process.returncode != 0:
        message = (err or out).decode(errors="replace").strip() or f"exit status {process.returncode}"
        raise MountError(f"{' '.join(argv)}: {message}")


def _make_mount_point(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)


async def mount_tmpfs(path: Path, size_bytes: int | None = None) -> None:
    """Mount a tmpfs on the directory ``path`` (created with its parents when missing) unless one is mounted there
    already (idempotent). ``size_bytes`` None: the kernel's default size (half of RAM).
    """
    _make_mount_point(path)
    if is_mount_point(path):
        return
    options = ["-o", f"size={size_bytes}"] if size_bytes else []
    await _run("mount", "-t", "tmpfs", *options, "tmpfs", str(path))


async def unmount(path: Path) -> None:
    """Unmount ``path``; when it is busy, detach it lazily. Not mounted is fine."""
    if not is_mount_point(path):
        return
    try:
        await _run("umount", str(path))
    except MountError:
        if is_mount_point(path):
            await _run("umount", "-l", str(path))


async def unmount_all_under(path: Path) -> None:
    """Unmount everything at or below ``path``; :class:`MountError` when something stays mounted."""
    for _ in range(8):  # a path can have mounts stacked on it: each pass removes the top one
        points = mounts_under(path)
        if not points:
            return
        for point in points:
            await unmount(point)
    left = mounts_under(path)
    if left:
        raise MountError(f"still mounted under {path}: {', '.join(map(str, left))}")
