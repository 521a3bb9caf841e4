"""The VolumeManager: materialize a pod's volumes before its containers start, keep them current, remove them.

One object per kubelet. For each pod volume it dispatches on the source kind:

* emptyDir — a directory (0777), or a tmpfs for medium Memory;
* hostPath — type checks only (the container mounts the host path);
* configMap, secret, downwardAPI, projected — files written by the atomic writer; secret and projected volumes
  live on a tmpfs of their own, like Kubernetes (secrets never touch the node's disk).

Anything else (persistentVolumeClaim, ephemeral, image, nfs, csi, ...) is a :class:`VolumeError`. Calls for one
pod are serialized (a per-pod lock), so a refresh never races the pod's setup or teardown.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubelet.objects import ObjectSource
from kubelet.volumes import tmpfs
from kubelet.volumes.atomic import PayloadError, current_data_dir, write_atomically
from kubelet.volumes.emptydir import (
    EmptyDirError,
    ensure_directory,
    ensure_memory_directory,
    memory_volume_size,
    set_up_empty_dir,
)
from kubelet.volumes.hostpath import HostPathError, check_host_path
from kubelet.volumes.layout import (
    EMPTY_DIR,
    HOST_PATH,
    PROJECTED,
    PROJECTIONS,
    SECRET,
    SUPPORTED_KINDS,
    PodDirs,
    VolumeError,
    unsupported_detail,
    volume_kind,
)
from kubelet.volumes.mounts import container_mounts
from kubelet.volumes.projection import ProjectionError, volume_payload
from machinery.quantity import QuantityError, parse_quantity
from proto.cri import api_pb2 as cri

log = logging.getLogger(__name__)
MEMORY_BACKED = (SECRET, PROJECTED)  # projections kept on a tmpfs


def _uid(pod: Mapping[str, Any]) -> str:
    uid = (pod.get("metadata") or {}).get("uid") or ""
    if not uid:
        raise ValueError("pod has no metadata.uid")
    return uid


def _volumes(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((pod.get("spec") or {}).get("volumes") or [])


class VolumeManager:
    """Pod volumes under ``<root_dir>/pods/<uid>/volumes``.

    ``node_allocatable`` (cpu/memory/ephemeral-storage quantities) feeds downwardAPI resourceFieldRefs whose limit
    is unset; ``node_allocatable_memory`` (bytes; defaults to ``node_allocatable["memory"]``) caps memory-backed
    volumes.
    """

    def __init__(self, root_dir: Path, source: ObjectSource, *, node_allocatable_memory: int | None = None,
                 node_allocatable: Mapping[str, str] | None = None) -> None:
        self.dirs = PodDirs(root_dir)
        self.source = source
        self.node_allocatable = dict(node_allocatable or {})
        if node_allocatable_memory is None and "memory" in self.node_allocatable:
            try:
                node_allocatable_memory = parse_quantity(self.node_allocatable["memory"]).value()
            except QuantityError:
                node_allocatable_memory = None
        self.node_allocatable_memory = node_allocatable_memory
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, uid: str) -> asyncio.Lock:
        return self._locks.setdefault(uid, asyncio.Lock())

    # --- setup and refresh ---------------------------------------------------------------------------------

    async def setup(self, pod: dict) -> None:
        """Materialize every volume of ``pod`` (idempotent: what exists is kept; projections already written are
        left to :meth:`refresh`). Every volume is attempted; the first failure is raised as :class:`VolumeError`."""
        uid = _uid(pod)
        first: VolumeError | None = None
        async with self._lock(uid):
            for volume in _volumes(pod):
                try:
                    await self._set_up_volume(pod, uid, volume)
                except VolumeError as err:
                    log.info("pod %s: %s", uid, err)
                    first = first or err
        if first is not None:
            raise first

    async def refresh(self, pod: dict) -> bool:
        """Re-project the configMap/secret/downwardAPI/projected volumes already set up; True when any content
        changed. A source that cannot be read now keeps its last content (logged, like the kubelet's periodic
        remount); volumes not set up yet are left to :meth:`setup`."""
        uid = _uid(pod)
        changed = False
        async with self._lock(uid):
            for volume in _volumes(pod):
                kind = volume_kind(volume)
                if kind not in PROJECTIONS:
                    continue
                path = self.dirs.volume(uid, kind, volume.get("name") or "")
                if current_data_dir(path) is None:
                    continue
                try:
                    changed |= await self._project(pod, volume, kind, path)
                except VolumeError as err:
                    log.warning("pod %s: keeping the last content: %s", uid, err)
        return changed

    async def _set_up_volume(self, pod: Mapping[str, Any], uid: str, volume: Mapping[str, Any]) -> None:
        name, kind = volume.get("name") or "", volume_kind(volume)
        if kind not in SUPPORTED_KINDS:
            raise VolumeError(name, unsupported_detail(kind))
        try:
            if kind == HOST_PATH:
                check_host_path(volume.get(HOST_PATH) or {})
            elif kind == EMPTY_DIR:
                await set_up_empty_dir(self.dirs.volume(uid, kind, name), volume.get(EMPTY_DIR) or {}, pod,
                                       self.node_allocatable_memory)
            else:
                path = self.dirs.volume(uid, kind, name)
                await self._prepare_projection_dir(pod, kind, path)
                if current_data_dir(path) is None:
                    await self._project(pod, volume, kind, path)
        except (HostPathError, EmptyDirError, OSError, ValueError) as err:
            raise VolumeError(name, _describe(err)) from None

    async def _prepare_projection_dir(self, pod: Mapping[str, Any], kind: str, path: Path) -> None:
        if kind in MEMORY_BACKED:
            await ensure_memory_directory(path, memory_volume_size(pod, None, self.node_allocatable_memory))
        else:
            ensure_directory(path)

    async def _project(self, pod: Mapping[str, Any], volume: Mapping[str, Any], kind: str, path: Path) -> bool:
        name = volume.get("name") or ""
        try:
            payload = await volume_payload(kind, volume, pod, self.source, self.node_allocatable)
            return write_atomically(path, payload)
        except (ProjectionError, PayloadError, OSError) as err:
            raise VolumeError(name, _describe(err)) from None

    # --- containers ----------------------------------------------------------------------------------------

    def mounts_for(self, pod: dict, container: dict, env: Mapping[str, str]) -> list[cri.Mount]:
        """``container``'s volumeMounts as CRI mounts (after :meth:`setup`); raises ``ContainerConfigError``."""
        return container_mounts(self.dirs, pod, container, env)

    # --- teardown ------------------------------------------------------------------------------------------

    async def teardown(self, pod_uid: str) -> None:
        """Unmount every tmpfs under the pod's directory and remove ``<root>/pods/<uid>`` (idempotent).

        Nothing is deleted while something is still mounted there: that raises :class:`VolumeError`.
        """
        pod_dir = self.dirs.pod(pod_uid)
        async with self._lock(pod_uid):
            if pod_dir.exists():
                try:
                    await tmpfs.unmount_all_under(pod_dir)
                except tmpfs.MountError as err:
                    raise VolumeError(str(pod_dir), str(err), operation="UnmountVolume.TearDown") from None
                shutil.rmtree(pod_dir, ignore_errors=True)
        self._locks.pop(pod_uid, None)

    def pod_uids_on_disk(self) -> list[str]:
        """The pods that have a directory here (to find orphans after a kubelet restart)."""
        try:
            return sorted(entry.name for entry in self.dirs.pods.iterdir() if entry.is_dir())
        except FileNotFoundError:
            return []


def _describe(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror}: {err.filename}" if err.filename else err.strerror
    return str(err)
