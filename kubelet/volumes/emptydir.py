"""emptyDir volumes: a fresh directory per pod, on the node's disk or (medium Memory) on a tmpfs.

The tmpfs is sized like Kubernetes' SizeMemoryBackedVolumes: node allocatable memory, lowered to the pod's memory
limit when every container declares one, lowered again to the volume's ``sizeLimit``. Simplification: a disk
emptyDir's ``sizeLimit`` is not enforced (Kubernetes does it by evicting the pod); HugePages media are rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubelet.resources import pod_requests
from kubelet.volumes import tmpfs
from machinery.quantity import QuantityError, parse_quantity, parse_quantity_or_none

DIR_MODE = 0o777


class EmptyDirError(Exception):
    """The emptyDir cannot be made (bad medium or size, or the tmpfs mount failed)."""


def _has_memory_limit(container: Mapping[str, Any]) -> bool:
    limits = (container.get("resources") or {}).get("limits") or {}
    return parse_quantity_or_none(limits.get("memory")) is not None


def pod_memory_limit(pod: Mapping[str, Any]) -> int | None:
    """The pod's effective memory limit in bytes (ResourceConfigForPod), or None when it has none: no pod-level
    limit and some container (init containers included) without one.

    The sum is :func:`kubelet.resources.pod_requests` over limits: sidecars (init containers with restartPolicy
    Always) run beside everything started after them, a regular init container beside the sidecars before it.
    """
    spec = pod.get("spec") or {}
    containers = [c for c in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]
                  if isinstance(c, Mapping)]
    # pod-level spec.resources has a container's shape: a pod-level memory limit alone is enough
    if not _has_memory_limit(spec) and not all(_has_memory_limit(c) for c in containers):
        return None
    limit = pod_requests(pod, key="limits").get("memory")
    return limit.value() if limit is not None else None


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
