"""emptyDir volumes: a fresh directory per pod, on the node's disk or (medium Memory) on a tmpfs.

The tmpfs is sized like Kubernetes' SizeMemoryBackedVolumes: node allocatable memory, lowered to the pod's memory
limit when every container declares one, lowered again to the volume's ``sizeLimit``. Simplification: a disk
emptyDir's ``sizeLimit`` is not enforced (Kubernetes does it by evicting the pod); HugePages media are rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubelet.volumes import tmpfs
from machinery.quantity import QuantityError, parse_quantity

DIR_MODE = 0o777


class EmptyDirError(Exception):
    """The emptyDir cannot be made (bad medium or size, or the tmpfs mount failed)."""


def _memory_limit(container: Mapping[str, Any]) -> int | None:
    value = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    return parse_quantity(value).value() if value is not None else None


def pod_memory_limit(pod: Mapping[str, Any]) -> int | None:
    """The pod's effective memory limit in bytes, or None when some container has none (ResourceConfigForPod).

    Sidecars (init containers with restartPolicy Always) run beside everything started after them.
    """
    spec = pod.get("spec") or {}
    pod_level = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
    if pod_level is not None:
        return parse_quantity(pod_level).value()
    sidecars, init_peak, regular = 0, 0, 0
    for container in spec.get("initContainers") or []:
        limit = _memory_limit(container)
        if limit is None:
            return None
        if container.get("restartPolicy") == "Always":
            sidecars += limit
            init_peak = max(init_peak, sidecars)
        else:
            init_peak = max(init_peak, sidecars + limit)
    for container in spec.get("containers") or []:
        limit = _memory_limit(container)
        if limit is None:
            return None
        regular += limit
    overhead = (spec.get("overhead") or {}).get("memory")
    return max(regular + sidecars, init_peak) + (parse_quantity(overhead).value() if overhead else 0)


def memory_volume_size(pod: Mapping[str, Any], size_limit: Any, node_allocatable_memory: int | None) -> int | None:
    """Bytes for a memory-backed volume's tmpfs; None: the kernel default."""
    size = node_allocatable_memory
    try:
        candidates = [pod_memory_limit(pod), parse_quantity(size_limit).value() if size_limit is not None else None]
    except QuantityError as err:
        raise EmptyDirError(f"invalid memory size: {err}") from None
    for candidate in candidates:  # each applies only when positive and below what we have so far
        if candidate is not None and candidate > 0 and (size is None or candidate <= size):
            size = candidate
    return size


def ensure_directory(path: Path, mode: int = DIR_MODE) -> None:
    """Create ``path`` (and parents) and give it exactly ``mode``."""
    path.mkdir(parents=True, exist_ok=True)
    if path.stat().st_mode & 0o7777 != mode:
        path.chmod(mode)


async def ensure_memory_directory(path: Path, size_bytes: int | None) -> None:
    """``path`` with a tmpfs mounted on it (idempotent); the tmpfs root is world-writable and sticky (1777)."""
    try:
        await tmpfs.mount_tmpfs(path, size_bytes)
    except tmpfs.MountError as err:
        raise EmptyDirError(str(err)) from None


async def set_up_empty_dir(path: Path, source: Mapping[str, Any], pod: Mapping[str, Any],
                           node_allocatable_memory: int | None) -> None:
    """Materialize one emptyDir at ``path`` (idempotent)."""
    medium = source.get("medium") or ""
    if medium == "":
        ensure_directory(path)
    elif medium == "Memory":
        await ensure_memory_directory(path, memory_volume_size(pod, source.get("sizeLimit"), node_allocatable_memory))
    else:
        raise EmptyDirError(f"emptyDir medium {medium!r} is not supported by kubemini")
