"""What the container runtime has for one pod: its sandboxes and every container instance, newest first.

The kubelet keeps no state of its own about containers: after a restart it finds everything again through
the CRI labels it wrote (:mod:`kubelet.cri.labels`). :class:`RuntimeCache` lists all sandboxes and containers
once per relist (two CRI calls for the whole node) and hands each pod worker its slice; container statuses
are fetched per instance and cached once the container has exited (an exited container never changes).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from kubelet.cri import RuntimeClient, is_not_found
from kubelet.cri import labels as L
from proto.cri import api_pb2 as cri

NANO = 1_000_000_000


@dataclass(frozen=True)
class ContainerRecord:
    """One container instance (one attempt of one container of the pod)."""

    id: str
    name: str
    attempt: int
    state: int  # cri.CONTAINER_*
    created_at: int = 0  # nanoseconds since the epoch
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    image: str = ""
    image_ref: str = ""
    log_path: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    resources: cri.LinuxContainerResources | None = field(default=None, compare=False)  # what the runtime applied

    @property
    def running(self) -> bool:
        return self.state == cri.CONTAINER_RUNNING

    @property
    def exited(self) -> bool:
        return self.state == cri.CONTAINER_EXITED

    @property
    def restart_count(self) -> int:
        value = self.annotations.get(L.RESTART_COUNT, "")
        return int(value) if value.isdigit() else self.attempt

    @property
    def spec_hash(self) -> str:
        return self.annotations.get(L.CONTAINER_HASH, "")


@dataclass(frozen=True)
class SandboxRecord:
    id: str
    attempt: int
    ready: bool
    created_at: int
    ip: str = ""
    host_network: bool = False


@dataclass
class PodRuntime:
    """A pod's runtime view: sandboxes and, per container name, its instances newest first."""

    uid: str
    sandboxes: list[SandboxRecord] = field(default_factory=list)
    containers: dict[str, list[ContainerRecord]] = field(default_factory=dict)

    @property
    def sandbox(self) -> SandboxRecord | None:
        return self.sandboxes[0] if self.sandboxes else None

    def latest(self, name: str) -> ContainerRecord | None:
        instances = self.containers.get(name)
        return instances[0] if instances else None

    def previous(self, name: str) -> ContainerRecord | None:
        instances = self.containers.get(name) or []
        return instances[1] if len(instances) > 1 else None

    def running(self) -> list[ContainerRecord]:
        return [c for instances in self.containers.values() for c in instances if c.running]

    def all_containers(self) -> list[ContainerRecord]:
        return [c for instances in self.containers.values() for c in instances]

    @property
    def empty(self) -> bool:
        return not self.sandboxes and not self.containers


class RuntimeCache:
    """Relists the node's sandboxes and containers and builds :class:`PodRuntime` views from them."""

    def __init__(self, runtime: RuntimeClient) -> None:
        self.runtime = runtime
        self._sandboxes: dict[str, list[cri.PodSandbox]] = {}
        self._containers: dict[str, list[cri.Container]] = {}
        self._exited: dict[str, ContainerRecord] = {}
        self._sandbox_ips: dict[str, tuple[str, bool]] = {}

    async def relist(self) -> dict[str, tuple]:
        """List everything; returns per pod uid a fingerprint of its runtime state (to spot changes)."""
        sandboxes = await self.runtime.list_pod_sandboxes()
        containers = await self.runtime.list_containers()
        by_pod_sandboxes: dict[str, list[cri.PodSandbox]] = defaultdict(list)
        by_pod_containers: dict[str, list[cri.Container]] = defaultdict(list)
        for sandbox in sandboxes:
            uid = sandbox.labels.get(L.POD_UID) or sandbox.metadata.uid
            if uid:
                by_pod_sandboxes[uid].append(sandbox)
        for container in containers:
            uid = container.labels.get(L.POD_UID)
            if uid:
                by_pod_containers[uid].append(container)
        self._sandboxes, self._containers = dict(by_pod_sandboxes), dict(by_pod_containers)
        live = {c.id for c in containers}
        self._exited = {cid: rec for cid, rec in self._exited.items() if cid in live}
        fingerprints: dict[str, tuple] = {}
        for uid in set(by_pod_sandboxes) | set(by_pod_containers):
            fingerprints[uid] = (
                tuple(sorted((s.id, s.state) for s in by_pod_sandboxes.get(uid, ()))),
                tuple(sorted((c.id, c.state) for c in by_pod_containers.get(uid, ()))))
        return fingerprints

    def pod_uids(self) -> set[str]:
        return set(self._sandboxes) | set(self._containers)

    def running_containers(self) -> int:
        return sum(1 for containers in self._containers.values() for c in containers
                   if c.state == cri.CONTAINER_RUNNING)

    def running_sandboxes(self) -> int:
        return sum(1 for sandboxes in self._sandboxes.values() for s in sandboxes if s.state == cri.SANDBOX_READY)

    def sandbox_ids(self, uid: str) -> list[str]:
        return [s.id for s in self._sandboxes.get(uid, ())]

    def container_ids(self, uid: str) -> list[str]:
        return [c.id for c in self._containers.get(uid, ())]

    async def pod_runtime(self, uid: str, *, fresh: bool = True) -> PodRuntime:
        """The pod's runtime view; ``fresh`` re-lists the pod's own objects first (after the worker changed them)."""
        if fresh:
            sandboxes = await self.runtime.list_pod_sandboxes({L.POD_UID: uid})
            containers = await self.runtime.list_containers({L.POD_UID: uid})
            self._sandboxes[uid], self._containers[uid] = sandboxes, containers
        view = PodRuntime(uid)
        for sandbox in sorted(self._sandboxes.get(uid, ()), key=lambda s: (s.metadata.attempt, s.created_at),
                              reverse=True):
            view.sandboxes.append(await self._sandbox_record(sandbox))
        grouped: dict[str, list[ContainerRecord]] = defaultdict(list)
        for container in self._containers.get(uid, ()):
            record = await self._container_record(container)
            if record is not None:
                grouped[record.name].append(record)
        view.containers = {name: sorted(recs, key=lambda r: (r.attempt, r.created_at), reverse=True)
                           for name, recs in grouped.items()}
        return view

    async def _sandbox_record(self, sandbox: cri.PodSandbox) -> SandboxRecord:
        ready = sandbox.state == cri.SANDBOX_READY
        cached = self._sandbox_ips.get(sandbox.id)
        if cached is None and ready:
            try:
                status = await self.runtime.pod_sandbox_status(sandbox.id)
            except Exception as err:
                if not is_not_found(err):
                    raise
                status = None
            if status is not None:
                host_network = status.linux.namespaces.options.network == cri.NODE
                cached = self._sandbox_ips[sandbox.id] = (status.network.ip, host_network)
        ip, host_network = cached or ("", False)
        return SandboxRecord(sandbox.id, sandbox.metadata.attempt, ready, sandbox.created_at, ip, host_network)

    async def _container_record(self, container: cri.Container) -> ContainerRecord | None:
        cached = self._exited.get(container.id)
        if cached is not None:
            return cached
        try:
            status = await self.runtime.container_status(container.id)
        except Exception as err:
            if is_not_found(err):
                return None
            raise
        record = ContainerRecord(
            id=status.id, name=status.metadata.name or container.labels.get(L.CONTAINER_NAME, ""),
            attempt=status.metadata.attempt, state=status.state, created_at=status.created_at,
            started_at=status.started_at, finished_at=status.finished_at, exit_code=status.exit_code,
            reason=status.reason, message=status.message, image=status.image.image,
            image_ref=status.image_ref, log_path=status.log_path, annotations=dict(status.annotations),
            resources=status.resources.linux if status.resources.HasField("linux") else None)
        if record.exited:
            self._exited[record.id] = record
        return record

    def forget_sandbox(self, sandbox_id: str) -> None:
        self._sandbox_ips.pop(sandbox_id, None)
