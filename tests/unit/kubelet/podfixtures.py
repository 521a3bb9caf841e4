"""Builders for the pod-logic unit tests: pods and containers as the API server stores them, runtime views
(:class:`~kubelet.pods.runtimestate.PodRuntime`) assembled from container records, so the pure decision and
status functions can be fed exact situations without a runtime, and a :class:`PodSyncer` wired to the fake
CRI (:func:`make_syncer`) with in-memory stand-ins for the object source and the probe manager."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubelet.cri import labels as L
from kubelet.pods.podspec import container_hash
from kubelet.pods.runtimestate import NANO, ContainerRecord, PodRuntime, RuntimeCache, SandboxRecord
from kubelet.pods.sync import NodeFacts, PodSyncer
from kubelet.prober import Result
from kubelet.volumes import VolumeManager
from machinery.clock import FakeClock
from proto.cri import api_pb2 as cri

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z, FakeClock's default wall time, in seconds
_STATES = {"created": cri.CONTAINER_CREATED, "running": cri.CONTAINER_RUNNING, "exited": cri.CONTAINER_EXITED}
_ids = itertools.count(1)


def container(name: str, image: str = "busybox:1.36", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": image, "imagePullPolicy": "IfNotPresent", **fields}


def sidecar(name: str, image: str = "busybox:1.36", **fields: Any) -> dict[str, Any]:
    return container(name, image, restartPolicy="Always", **fields)


def pod(*containers: dict[str, Any], init: list[dict[str, Any]] | None = None, uid: str = "uid-1",
        name: str = "web", namespace: str = "default", restart_policy: str | None = None,
        **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"containers": list(containers or [container("app")]), **spec}
    if init:
        body["initContainers"] = init
    if restart_policy:
        body["restartPolicy"] = restart_policy
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": uid, "generation": 1},
            "spec": body, "status": {"phase": "Pending"}}


def rec(name: str, state: str = "running", *, attempt: int = 0, exit_code: int = 0, reason: str = "",
        started: float = 0, finished: float = 0, spec: dict[str, Any] | None = None,
        image_ref: str = "sha256:abc", message: str = "") -> ContainerRecord:
    """A container instance; ``started``/``finished`` are seconds after :data:`T0` (finished only if exited).
    ``spec``: the container it was created from (records its spec hash, as the kubelet does)."""
    annotations = {L.RESTART_COUNT: str(attempt)}
    if spec is not None:
        annotations[L.CONTAINER_HASH] = container_hash(spec)
    number = next(_ids)
    return ContainerRecord(
        id=f"c{number:04d}", name=name, attempt=attempt, state=_STATES[state],
        created_at=int((T0 + started) * NANO) - 1, started_at=int((T0 + started) * NANO) if state != "created" else 0,
        finished_at=int((T0 + finished) * NANO) if state == "exited" else 0, exit_code=exit_code, reason=reason,
        message=message, image="busybox:1.36", image_ref=image_ref, annotations=annotations)


def view(*records: ContainerRecord, uid: str = "uid-1", sandbox: bool = True, ready: bool = True,
         ip: str = "10.88.0.7", sandbox_attempt: int = 0) -> PodRuntime:
    """A pod's runtime view holding ``records`` (any order) and, unless ``sandbox=False``, one sandbox."""
    runtime = PodRuntime(uid)
    if sandbox:
        runtime.sandboxes.append(SandboxRecord("sb-1", sandbox_attempt, ready, T0 * NANO, ip if ready else ""))
    grouped: dict[str, list[ContainerRecord]] = {}
    for record in records:
        grouped.setdefault(record.name, []).append(record)
    runtime.containers = {name: sorted(recs, key=lambda r: (r.attempt, r.created_at), reverse=True)
                          for name, recs in grouped.items()}
    return runtime


# --- a syncer over the fake runtime ------------------------------------------------------------------

HOST_IP = "192.168.1.10"


@dataclass
class FakeObjects:
    """An ObjectSource over dicts keyed by (namespace, name)."""

    config_maps: dict[tuple[str, str], dict] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict] = field(default_factory=dict)

    async def config_map(self, namespace: str, name: str) -> dict | None:
        return self.config_maps.get((namespace, name))

    async def secret(self, namespace: str, name: str) -> dict | None:
        return self.secrets.get((namespace, name))

    async def services(self, namespace: str) -> list[dict]:
        return []


@dataclass
class FakeProber:
    """The ProbeManager surface the syncer uses; verdicts are set by the test (None: no such probe)."""

    liveness_results: dict[str, Result] = field(default_factory=dict)   # container name → result
    readiness_results: dict[str, Result] = field(default_factory=dict)
    startup_results: dict[str, Result] = field(default_factory=dict)
    containers: dict[tuple[str, str], tuple[str | None, float | None]] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    pods: list[Any] = field(default_factory=list)  # what update_pod was given, in order

    def update_pod(self, pod: Any) -> None:
        self.pods.append(pod)

    def set_container(self, uid: str, name: str, container_id: str | None, started_at: float | None) -> None:
        self.containers[(uid, name)] = (container_id, started_at)

    def remove_pod(self, uid: str) -> None:
        self.removed.append(uid)

    def liveness(self, uid: str, name: str) -> Result | None:
        return self.liveness_results.get(name)

    def readiness(self, uid: str, name: str) -> Result | None:
        return self.readiness_results.get(name)

    def started(self, uid: str, name: str) -> Result | None:
        return self.startup_results.get(name)


def make_syncer(runtime: Any, root: Path, clock: FakeClock, event: Callable[..., None], *,
                objects: FakeObjects | None = None, prober: FakeProber | None = None) -> PodSyncer:
    """A PodSyncer as the kubelet builds it, over ``runtime`` (a FakeRuntime), with its files under ``root``."""
    objects = objects or FakeObjects()
    return PodSyncer(runtime, RuntimeCache(runtime), volumes=VolumeManager(root, objects), objects=objects,
                     prober=prober or FakeProber(), root_dir=root, logs_root=root / "logs",
                     node=lambda: NodeFacts("node-1", HOST_IP, 8 << 30, {"cpu": "4", "memory": "8Gi"}, "fakecri"),
                     event=event, clock=clock)
