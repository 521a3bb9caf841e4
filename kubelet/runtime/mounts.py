"""Mounting a container's overlayfs root and a pod's /dev/shm, and finding what is still mounted.

Mounts are made with the mount(2) and umount2(2) system calls (through ctypes) rather than by running
``mount``: a pod start makes two or three of them and a process per mount would cost more than the runc start.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from kubelet.runtime.errors import RuntimeFailure

MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def mount(source: str, target: Path, fstype: str, options: str, flags: int = 0) -> None:
    if _libc.mount(source.encode(), str(target).encode(), fstype.encode(), flags, options.encode()) != 0:
        errno = ctypes.get_errno()
        raise RuntimeFailure(f"mount {fstype} on {target}: {os.strerror(errno)}")


def unmount(target: Path) -> None:
    """Lazily unmount ``target``; not mounted (or already gone) is fine."""
    if _libc.umount2(str(target).encode(), MNT_DETACH) != 0:
        errno = ctypes.get_errno()
        if errno not in (22, 2):  # EINVAL: not a mount point; ENOENT: gone
            raise RuntimeFailure(f"umount {target}: {os.strerror(errno)}")


def mount_overlay(lowerdir: str, writable: Path, target: Path) -> Path:
    """``target`` = the image layers (``lowerdir``, top first) + a writable ``writable/upper`` (with its work
    directory beside it: both on disk, whatever filesystem ``target`` is on)."""
    upper, work = writable / "upper", writable / "work"
    for path in (upper, work, target):
        path.mkdir(parents=True, exist_ok=True)
    mount("overlay", target, "overlay", f"lowerdir={lowerdir},upperdir={upper},workdir={work}")
    return target


def mount_tmpfs(target: Path, size: str = "64m", mode: str = "1777") -> None:
    target.mkdir(parents=True, exist_ok=True)
    mount("shm", target, "tmpfs", f"size={size},mode={mode}", flags=0x2 | 0x4 | 0x8)  # nosuid, nodev, noexec


def mounted_under(prefix: Path) -> list[str]:
    """Mount points at or below ``prefix`` — tests assert a removed pod leaves none."""
    prefix_text = str(prefix)
    found = []
    with open("/proc/self/mounts") as f:
        for line in f:
            target = line.split()[1].replace("\\040", " ")
            if target == prefix_text or target.startswith(prefix_text + "/"):
                found.append(target)
    return found
