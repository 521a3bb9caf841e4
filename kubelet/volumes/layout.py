"""Where a pod's volumes live on the node, what kind each volume is, and the error a failed mount raises.

The directory layout is the kubelet's own, so an operator finds things where they expect them:
``<root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<volume name>``. hostPath volumes have no directory of their
own: the container mounts the host path itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

EMPTY_DIR, HOST_PATH, CONFIG_MAP, SECRET = "emptyDir", "hostPath", "configMap", "secret"
DOWNWARD_API, PROJECTED = "downwardAPI", "projected"
PLUGIN_DIRS = {
    EMPTY_DIR: "kubernetes.io~empty-dir",
    CONFIG_MAP: "kubernetes.io~configmap",
    SECRET: "kubernetes.io~secret",
    DOWNWARD_API: "kubernetes.io~downward-api",
    PROJECTED: "kubernetes.io~projected",
}
PROJECTIONS = (CONFIG_MAP, SECRET, DOWNWARD_API, PROJECTED)  # written by the atomic writer, refreshed in place
READ_ONLY_KINDS = frozenset(PROJECTIONS)  # always mounted read-only, like Kubernetes
SUPPORTED_KINDS = frozenset(PLUGIN_DIRS) | {HOST_PATH}


class VolumeError(Exception):
    """A volume could not be set up; ``str(err)`` is the FailedMount event message (the pod stays
    ContainerCreating and the kubelet retries)."""

    def __init__(self, volume: str, detail: str, *, operation: str = "MountVolume.SetUp") -> None:
        super().__init__(f'{operation} failed for volume "{volume}" : {detail}')
        self.volume = volume
        self.detail = detail


def volume_kind(volume: Mapping[str, Any]) -> str:
    """The volume source's field name (``emptyDir``, ``hostPath``, ``persistentVolumeClaim``, ...); "" if none."""
    return next((key for key, value in volume.items() if key != "name" and value is not None), "")


def unsupported_detail(kind: str) -> str:
    if not kind:
        return "the volume has no source"
    return f"{kind} volumes are not supported by kubemini"


def _component(text: str, what: str) -> str:
    """``text`` as one path component; ValueError for anything that could leave the directory."""
    if not text or "/" in text or "\0" in text or text in (".", ".."):
        raise ValueError(f"invalid {what} {text!r}")
    return text


class PodDirs:
    """Paths under the kubelet's root directory (nothing is created here)."""

    def __init__(self, root_dir: Path) -> None:
        self.root = Path(root_dir).absolute()

    @property
    def pods(self) -> Path:
        return self.root / "pods"

    def pod(self, uid: str) -> Path:
        return self.pods / _component(uid, "pod uid")

    def volumes(self, uid: str) -> Path:
        return self.pod(uid) / "volumes"

    def volume(self, uid: str, kind: str, name: str) -> Path:
        """The directory of a pod volume of ``kind`` (not for hostPath)."""
        return self.volumes(uid) / PLUGIN_DIRS[kind] / _component(name, "volume name")

    def host_path(self, uid: str, volume: Mapping[str, Any]) -> Path:
        """What a container mounts for ``volume``: its directory, or the host path of a hostPath volume."""
        kind = volume_kind(volume)
        if kind == HOST_PATH:
            return Path((volume.get(HOST_PATH) or {}).get("path") or "")
        return self.volume(uid, kind, volume.get("name") or "")
