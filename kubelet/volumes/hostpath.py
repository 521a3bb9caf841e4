"""hostPath volumes: the container mounts a node path; the volume's ``type`` says what must be there.

The checks and messages are Kubernetes' (``hostPath type check failed: /x is not a directory``); the ``...OrCreate``
types create what is missing (a directory 0755 with parents, or an empty file 0644 whose parent must exist).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from typing import Any


class HostPathError(Exception):
    """The host path does not match its declared type (or could not be created)."""


_CHECKS: dict[str, tuple[Callable[[int], bool], str]] = {
    "Directory": (stat.S_ISDIR, "a directory"),
    "File": (stat.S_ISREG, "a file"),
    "Socket": (stat.S_ISSOCK, "a socket file"),
    "CharDevice": (stat.S_ISCHR, "a character device"),
    "BlockDevice": (stat.S_ISBLK, "a block device"),
}
_CREATE = {"DirectoryOrCreate": "Directory", "FileOrCreate": "File"}


def _mode(path: str) -> int | None:
    try:
        return os.stat(path).st_mode  # follows symlinks, as Kubernetes does
    except OSError:
        return None


def _create(path: str, kind: str) -> None:
    try:
        if kind == "Directory":
            os.makedirs(path, mode=0o755, exist_ok=True)
        else:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
    except OSError as err:
        raise HostPathError(f"failed to create {path}: {err.strerror}") from None


def check_host_path(source: Mapping[str, Any]) -> str:
    """Check (and for the OrCreate types, create) a hostPath volume's path; return the path."""
    path, kind = source.get("path") or "", source.get("type") or ""
    if not path.startswith("/"):
        raise HostPathError(f"hostPath path {path!r} must be absolute")
    if kind == "":
        return path
    if kind in _CREATE:
        kind = _CREATE[kind]
        if _mode(path) is None:
            _create(path, kind)
    if kind not in _CHECKS:
        raise HostPathError(f"{kind} is an invalid volume type")
    predicate, noun = _CHECKS[kind]
    mode = _mode(path)
    if mode is None or not predicate(mode):
        raise HostPathError(f"hostPath type check failed: {path} is not {noun}")
    return path
