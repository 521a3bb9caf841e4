"""Removing a pod's cgroup when the pod is gone: the kubelet owns ``/kubepods/<qos>/pod<uid>``.

The kubelet names the pod cgroup (the sandbox's cgroup parent) and the runtime creates the containers'
cgroups inside it; like Kubernetes' pod container manager, the kubelet removes the pod level once the
runtime removed everything under it. Only empty directories are removed (cgroupfs refuses anything
else), in every mounted cgroup v1 hierarchy and in the unified one.
"""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
QOS_DIRS = ("kubepods", "kubepods/burstable", "kubepods/besteffort")


def remove_pod_cgroups(uid: str, root: Path = CGROUP_ROOT) -> None:
    """rmdir ``<hierarchy>/kubepods[/<qos>]/pod<uid>`` wherever it exists and is empty (idempotent)."""
    hierarchies = [root, *(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())] if root.is_dir() else []
    for hierarchy in hierarchies:
        for qos in QOS_DIRS:
            path = hierarchy / qos / f"pod{uid}"
            try:
                os.rmdir(path)
            except OSError:
                continue
