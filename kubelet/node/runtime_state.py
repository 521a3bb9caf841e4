"""One look at the container runtime through CRI, reduced to what the Node's status reports.

Version (``containerRuntimeVersion``), Status (the RuntimeReady/NetworkReady conditions behind the Ready
condition, runtime handlers and features), ListImages (``status.images``) and ImageFsInfo (where the image
filesystem is, for DiskPressure). Each call may fail on its own: a failed Status means the runtime is
down; a failed Version or ListImages only leaves that part unknown (``None``), and the caller keeps what
it reported before. Every call has a deadline, so a hung runtime cannot stall the status loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubelet.cri import CriError

log = logging.getLogger(__name__)

CALL_TIMEOUT = 10.0  # seconds per CRI call made for the node status
MAX_IMAGES = 50  # the kubelet's --node-status-max-images
MAX_NAMES_PER_IMAGE = 5  # the kubelet's MaxNamesPerImageInNodeStatus


class NodeRuntime(Protocol):
    """The part of :class:`kubelet.cri.RuntimeClient` the node agent uses."""

    async def version(self) -> Any: ...
    async def status(self, verbose: bool = False) -> Any: ...
    async def list_images(self) -> list[Any]: ...
    async def image_fs_info(self) -> Any: ...


@dataclass(frozen=True)
class RuntimeCondition:
    status: bool
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class RuntimeState:
    reachable: bool  # CRI Status answered
    error: str = ""  # why it did not
    version: str | None = None  # "<runtime_name>://<runtime_version>"
    conditions: Mapping[str, RuntimeCondition] = field(default_factory=dict)
    handlers: tuple[dict, ...] = ()  # NodeRuntimeHandler objects
    supplemental_groups_policy: bool | None = None
    images: tuple[dict, ...] | None = None  # ContainerImage objects, largest first
    image_fs_paths: tuple[str, ...] = ()


async def observe_runtime(runtime: NodeRuntime, timeout: float = CALL_TIMEOUT) -> RuntimeState:
    """Ask the runtime everything the node status needs; never raises (bar cancellation)."""
    status, status_error = await _ask(runtime.status(), timeout, "Status")
    version, _ = await _ask(runtime.version(), timeout, "Version")
    images, _ = await _ask(runtime.list_images(), timeout, "ListImages")
    fs_info, _ = await _ask(runtime.image_fs_info(), timeout, "ImageFsInfo")
    state = RuntimeState(
        reachable=status is not None,
        error=status_error,
        version=f"{version.runtime_name}://{version.runtime_version}" if version is not None else None,
        images=node_images(images) if images is not None else None,
        image_fs_paths=tuple(sorted({u.fs_id.mountpoint for u in getattr(fs_info, "image_filesystems", ())
                                     if u.fs_id.mountpoint})),
    )
    if status is None:
        return state
    return dataclasses.replace(
        state,
        conditions={c.type: RuntimeCondition(c.status, c.reason, c.message) for c in status.status.conditions},
        handlers=tuple(_handler(h) for h in status.runtime_handlers),
        supplemental_groups_policy=status.features.supplemental_groups_policy if status.HasField("features") else None)


async def _ask(call, timeout: float, method: str) -> tuple[Any, str]:
    try:
        async with asyncio.timeout(timeout):
            return await call, ""
    except TimeoutError:
        log.warning("container runtime: %s timed out after %.0fs", method, timeout)
        return None, f"{method} timed out"
    except CriError as err:
        log.warning("container runtime: %s", err)
        return None, str(err)
    except Exception as err:  # a status loop must survive any runtime client failure; say what it was
        log.warning("container runtime: %s failed: %s: %s", method, type(err).__name__, err)
        return None, f"{method}: {err}"


def node_images(images: list[Any]) -> tuple[dict, ...]:
    """``status.images`` as the kubelet fills it: the largest 50, digests then tags (5 names at most)."""
    ordered = sorted(images, key=lambda image: image.size, reverse=True)[:MAX_IMAGES]
    result = []
    for image in ordered:
        names = [*image.repo_digests, *image.repo_tags][:MAX_NAMES_PER_IMAGE]
        if names:
            result.append({"names": names, "sizeBytes": int(image.size)})
    return tuple(result)


def _handler(handler: Any) -> dict:
    features = handler.features
    return {"name": handler.name,
            "features": {"recursiveReadOnlyMounts": features.recursive_read_only_mounts,
                         "userNamespaces": features.user_namespaces}}
