"""What the kubelet has admitted for each pod: the allocation checkpoint.

With in-place resize the pod spec says what the user *wants*; what the kubelet *admitted* (and starts
or restarts containers with) can lag behind until the node has room. That admitted set must survive a
kubelet restart — otherwise a restarted kubelet would silently admit every pending resize — so it is
kept in one small JSON file, ``<root>/allocated_pods_state``, rewritten atomically (temp file, fsync,
rename) on every change.

File format (``version`` 1)::

    {"version": 1, "pods": {"<uid>": {"<container>": {"requests": {...}, "limits": {...}}}}}

A missing file is an empty checkpoint; an unreadable or malformed one is logged and treated as empty
(the kubelet then re-admits running pods from their spec, as a fresh kubelet would). Kubernetes also
checkpoints the *actuated* resources; kubemini does not (see :mod:`kubelet.resize`).
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FILE_NAME = "allocated_pods_state"
VERSION = 1

Resources = dict[str, dict[str, Any]]  # container name → {"requests": {...}, "limits": {...}}


def spec_resources(pod: Mapping[str, Any]) -> Resources:
    """Each container's (init containers included) ``{requests, limits}`` from the pod spec."""
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    out: Resources = {}
    for kind in ("initContainers", "containers"):
        for ctr in spec.get(kind) or ():
            if isinstance(ctr, dict) and isinstance(ctr.get("name"), str):
                out[ctr["name"]] = normalize(ctr.get("resources"))
    return out


def normalize(resources: Any) -> dict[str, Any]:
    """``{requests, limits}`` with both keys present (empty dicts when unset), deep-copied."""
    res = resources if isinstance(resources, dict) else {}
    return {key: copy.deepcopy(res[key]) if isinstance(res.get(key), dict) else {} for key in ("requests", "limits")}


def _uid(pod_or_uid: Mapping[str, Any] | str) -> str:
    if isinstance(pod_or_uid, str):
        return pod_or_uid
    meta = pod_or_uid.get("metadata")
    return str((meta if isinstance(meta, dict) else {}).get("uid") or "")


class AllocationCheckpoint:
    """The admitted resources of every pod on this node, persisted in one JSON file.

    Not thread-safe; the kubelet uses it from its event loop only. Returned dicts are copies.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._pods: dict[str, Resources] = self._load()

    # --- reads ---------------------------------------------------------------------------------------

    def allocated(self, pod: Mapping[str, Any]) -> Resources:
        """Container name → admitted ``{requests, limits}``; a pod never admitted gets its spec's.

        Containers the checkpoint does not know (it predates them) also come from the spec.
        """
        from_spec = spec_resources(pod)
        stored = self._pods.get(_uid(pod))
        if stored is None:
            return from_spec
        return {name: copy.deepcopy(stored.get(name, res)) for name, res in from_spec.items()}

    def known(self, pod_or_uid: Mapping[str, Any] | str) -> bool:
        """Whether the pod has been admitted (has an entry)."""
        return _uid(pod_or_uid) in self._pods

    # --- writes --------------------------------------------------------------------------------------

    def set_allocated(self, pod: Mapping[str, Any], resources: Mapping[str, Any]) -> None:
        """Record ``resources`` (container name → ``{requests, limits}``) as admitted for ``pod``."""
        uid = _uid(pod)
        if not uid:
            raise ValueError("cannot checkpoint the allocation of a pod without metadata.uid")
        entry = {str(name): normalize(res) for name, res in resources.items()}
        if self._pods.get(uid) == entry:
            return
        self._pods[uid] = entry
        self._save()

    def remove(self, pod_uid: str) -> None:
        """Forget a pod (idempotent)."""
        if self._pods.pop(pod_uid, None) is not None:
            self._save()

    def retain(self, uids: Iterable[str]) -> None:
        """Forget every pod not in ``uids`` (the kubelet's periodic cleanup)."""
        keep = set(uids)
        gone = [uid for uid in self._pods if uid not in keep]
        for uid in gone:
            del self._pods[uid]
        if gone:
            self._save()

    # --- file ----------------------------------------------------------------------------------------

    def _load(self) -> dict[str, Resources]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as err:
            log.warning("cannot read allocation checkpoint %s: %s; starting empty", self.path, err)
            return {}
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("pods"), dict):
                raise ValueError("not a version 1 allocation checkpoint")
            return {str(uid): {str(name): normalize(res) for name, res in containers.items()}
                    for uid, containers in data["pods"].items() if isinstance(containers, dict)}
        except (ValueError, AttributeError) as err:
            log.warning("ignoring malformed allocation checkpoint %s: %s", self.path, err)
            return {}

    def _save(self) -> None:
        """Atomic replace: a crash leaves either the old or the new file, never a torn one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        body = json.dumps({"version": VERSION, "pods": self._pods}, sort_keys=True).encode()
        with open(tmp, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
