"""A container's ``volumeMounts`` as CRI mounts (the kubelet's makeMounts).

Each mount names a pod volume; the host side is the volume's directory (or a hostPath's path), narrowed by
``subPath`` (or ``subPathExpr`` expanded with the container's environment). Rules and messages follow Kubernetes:
an unknown volume or a bad subPath is a ``CreateContainerConfigError``; a missing subPath directory is created
with the volume's permissions; configMap/secret/downwardAPI/projected volumes are always read-only; Bidirectional
propagation needs a privileged container.

Known security gap (a simplification): we resolve a subPath, check that it stays inside the volume, and hand the
runtime the resolved path — check, then mount. That is racy: a container sharing the volume can swap a directory
on the path for a symlink between the check and the runtime's bind mount and so get any host path mounted into
the container. Kubernetes closes the race by opening the resolved path (O_PATH, no symlinks followed), checking
the opened file, and bind-mounting it through ``/proc/self/fd/<n>`` into ``volume-subpaths/``, handing the runtime
that pinned mount. Until kubemini does the same, do not give untrusted pods a subPath into a volume that another
of their containers can write. (As in Kubernetes, a subPath of a configMap does not follow later updates.)
``recursiveReadOnly`` is ignored.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubelet.env import ContainerConfigError, expand_with
from kubelet.volumes.layout import READ_ONLY_KINDS, SUPPORTED_KINDS, PodDirs, volume_kind
from proto.cri import api_pb2 as cri

PROPAGATION = {
    None: cri.PROPAGATION_PRIVATE,
    "None": cri.PROPAGATION_PRIVATE,
    "HostToContainer": cri.PROPAGATION_HOST_TO_CONTAINER,
    "Bidirectional": cri.PROPAGATION_BIDIRECTIONAL,
}


def expand_sub_path_expr(expression: str, env: Mapping[str, str]) -> str:
    """``subPathExpr`` with ``$(VAR)`` from the container's env; an unset or empty variable is an error."""
    missing: set[str] = set()

    def lookup(name: str) -> str:
        value = env.get(name, "")
        if not value:
            missing.add(name)
        return value

    expanded = expand_with(expression, lookup)
    if missing:
        raise ContainerConfigError(f"missing value for {', '.join(sorted(missing))}")
    return expanded


def _check_sub_path(sub_path: str) -> None:
    if sub_path.startswith("/"):
        raise ContainerConfigError(f"error SubPath `{sub_path}` must not be an absolute path")
    if ".." in sub_path.split("/"):
        raise ContainerConfigError(f"unable to provision SubPath `{sub_path}`: must not contain '..'")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def resolve_sub_path(volume_path: Path, sub_path: str, mount_name: str, container_name: str) -> str:
    """The host path for ``sub_path`` of a volume: created (with the volume's mode) when missing, symlinks
    resolved, and refused when it resolves outside the volume."""
    _check_sub_path(sub_path)
    root = os.path.realpath(volume_path)
    target = Path(root, posixpath.normpath(sub_path))
    if not os.path.lexists(target):
        mode = os.stat(root).st_mode & 0o7777 if os.path.isdir(root) else 0o755
        try:
            _make_dirs_inside(target, root, mode)
        except (OSError, ContainerConfigError):
            raise ContainerConfigError(f'failed to create subPath directory for volumeMount "{mount_name}" of '
                                       f'container "{container_name}"') from None
    resolved = os.path.realpath(target)
    if not _inside(resolved, root):
        raise ContainerConfigError(f'subpath "{resolved}" not within volume path "{root}"')
    return resolved


def _make_dirs_inside(target: Path, root: str, mode: int) -> None:
    """mkdir -p that refuses to step outside ``root`` through a symlink, and sets ``mode`` on what it makes."""
    missing: list[Path] = []
    current = target
    while not os.path.lexists(current):
        missing.append(current)
        current = current.parent
    if not _inside(os.path.realpath(current), root):
        raise ContainerConfigError("subPath escapes the volume")
    for directory in reversed(missing):
        directory.mkdir()
        directory.chmod(mode)


def container_mounts(dirs: PodDirs, pod: Mapping[str, Any], container: Mapping[str, Any],
                     env: Mapping[str, str]) -> list[cri.Mount]:
    """CRI mounts for ``container``'s volumeMounts, in spec order. Raises :class:`ContainerConfigError`."""
    uid = (pod.get("metadata") or {}).get("uid") or ""
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    privileged = bool((container.get("securityContext") or {}).get("privileged"))
    name = container.get("name") or ""
    out = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount.get("name"))
        kind = volume_kind(volume) if volume is not None else ""
        if volume is None or kind not in SUPPORTED_KINDS:
            raise ContainerConfigError(f'cannot find volume "{mount.get("name")}" to mount into container "{name}"')
        try:
            host_path = str(dirs.host_path(uid, volume))
        except ValueError as err:
            raise ContainerConfigError(str(err)) from None
        sub_path = mount.get("subPath") or ""
        if mount.get("subPathExpr"):
            sub_path = expand_sub_path_expr(mount["subPathExpr"], env)
        if sub_path:
            host_path = resolve_sub_path(Path(host_path), sub_path, mount.get("name") or "", name)
        propagation = mount.get("mountPropagation")
        if propagation not in PROPAGATION:
            raise ContainerConfigError(f"invalid mount propagation mode {propagation!r}")
        if propagation == "Bidirectional" and not privileged:
            raise ContainerConfigError("Bidirectional mount propagation is available only to privileged containers")
        out.append(cri.Mount(container_path=mount.get("mountPath") or "", host_path=host_path,
                             readonly=bool(mount.get("readOnly")) or kind in READ_ONLY_KINDS,
                             propagation=PROPAGATION[propagation]))
    return out
