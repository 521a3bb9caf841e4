"""Questions about a pod's spec that the sync logic and the status computation both ask.

Init containers come in two flavours since Kubernetes 1.29: regular ones run to completion, in order,
before anything else; *sidecars* (an init container with ``restartPolicy: Always``) start in order with
them, keep running beside the main containers and are restarted whenever they exit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from machinery.podspec import is_sidecar

Pod = Mapping[str, Any]
Container = Mapping[str, Any]


def spec(pod: Pod) -> Mapping[str, Any]:
    return pod.get("spec") or {}


def init_containers(pod: Pod) -> list[Container]:
    return list(spec(pod).get("initContainers") or [])


def regular_containers(pod: Pod) -> list[Container]:
    return list(spec(pod).get("containers") or [])


def sidecars(pod: Pod) -> list[Container]:
    return [c for c in init_containers(pod) if is_sidecar(c)]


def all_containers(pod: Pod) -> Iterator[Container]:
    yield from init_containers(pod)
    yield from regular_containers(pod)


def container_named(pod: Pod, name: str) -> Container | None:
    return next((c for c in all_containers(pod) if c.get("name") == name), None)


def restart_policy(pod: Pod) -> str:
    return spec(pod).get("restartPolicy") or "Always"


def grace_period(pod: Pod) -> int:
    """Seconds of grace for stopping: the deletion's own, else the spec's (default 30)."""
    meta = pod.get("metadata") or {}
    given = meta.get("deletionGracePeriodSeconds")
    if isinstance(given, int):
        return max(0, given)
    configured = spec(pod).get("terminationGracePeriodSeconds")
    return max(0, configured) if isinstance(configured, int) else 30


def should_restart(pod: Pod, exit_code: int) -> bool:
    """Whether a regular container that exited with ``exit_code`` is started again."""
    policy = restart_policy(pod)
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


# Fields whose change needs a new container; resources are left out (they are resized in place).
_HASHED_FIELDS = ("name", "image", "command", "args", "workingDir", "ports", "env", "envFrom", "volumeMounts",
                  "volumeDevices", "securityContext", "stdin", "stdinOnce", "tty", "lifecycle",
                  "terminationMessagePath", "terminationMessagePolicy", "imagePullPolicy", "restartPolicy")


def container_hash(container: Container) -> str:
    """A stable digest of the container's restart-relevant spec, stored on the CRI container."""
    doc = {k: container[k] for k in _HASHED_FIELDS if container.get(k) not in (None, [], {})}
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def host_network(pod: Pod) -> bool:
    return spec(pod).get("hostNetwork") is True
