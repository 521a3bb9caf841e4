"""The kubelet: wires the node agent, pod workers, runtime relisting, probes, volumes and the server together.

:class:`Kubelet` owns one CRI connection and one API client. Start-up order matters for restart safety:
wait for the runtime, register the Node, sync the informer of pods bound here (field selector
``spec.nodeName``), relist the runtime, and only then hand pods to workers — a pod whose containers the
runtime already has is *known* (admitted before, nothing is restarted), and runtime objects of pods the
API no longer has are removed (pods deleted while the kubelet was down). Everything then runs under one
TaskGroup until cancelled; housekeeping repeats the orphan sweep every few seconds.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubelet import metrics
from kubelet.allocation import FILE_NAME as CHECKPOINT_FILE
from kubelet.allocation import AllocationCheckpoint
from kubelet.cri import RuntimeClient
from kubelet.node import NodeAgent, NodeConfig
from kubelet.objects import ApiObjectSource
from kubelet.pods.pleg import Pleg
from kubelet.pods.resizing import PodResizer
from kubelet.pods.runtimestate import RuntimeCache
from kubelet.pods.statusmanager import StatusManager
from kubelet.pods.sync import NodeFacts, PodSyncer
from kubelet.pods.workers import PodWorkers, WorkerState
from kubelet.prober import ProbeManager
from kubelet.server import KubeletServer
from kubelet.volumes import VolumeManager
from machinery.client import ApiClient
from machinery.client.resources import PODS
from machinery.clock import REAL_CLOCK, Clock
from machinery.events import EventRecorder
from machinery.informer import SharedInformer
from machinery.quantity import parse_quantity

log = logging.getLogger(__name__)

HOUSEKEEPING_PERIOD = 5.0
RUNTIME_WAIT_LOG_EVERY = 10.0


@dataclass(frozen=True)
class KubeletConfig:
    node: NodeConfig
    runtime_endpoint: str
    pod_logs_dir: Path = Path("/var/log/pods")
    address: str = "0.0.0.0"  # where the kubelet server listens


class Kubelet:
    def __init__(self, client: ApiClient, config: KubeletConfig, *, clock: Clock = REAL_CLOCK) -> None:
        self.client = client
        self.config = config
        self.clock = clock
        self.node_name = config.node.node_name
        self.runtime = RuntimeClient(config.runtime_endpoint)
        self.recorder = EventRecorder(client, "kubelet", host=self.node_name, clock=clock)
        self.agent = NodeAgent(client, self.runtime, config.node, clock=clock, recorder=self.recorder)
        self.cache = RuntimeCache(self.runtime)
        self.pods = SharedInformer(client, PODS, field_selector=f"spec.nodeName={self.node_name}", clock=clock)
        self.statuses = StatusManager(client, current=self._lookup, clock=clock)
        self.prober = ProbeManager(self.runtime, clock=clock, on_change=self._wake, on_event=self.recorder.event)
        self.objects = ApiObjectSource(client, clock=clock)
        self.volumes = VolumeManager(config.node.root_dir, self.objects)
        self._runtime_name = "kubemini"
        self.allocations = AllocationCheckpoint(config.node.root_dir / CHECKPOINT_FILE)
        resizer = PodResizer(self.runtime, self.allocations, clock=clock, others=lambda uid: [
            pod for pod in self.workers.running_pods() if pod["metadata"]["uid"] != uid])
        self.syncer = PodSyncer(self.runtime, self.cache, volumes=self.volumes, objects=self.objects,
                                prober=self.prober, root_dir=config.node.root_dir, logs_root=config.pod_logs_dir,
                                node=self._node_facts, event=self.recorder.event, resizer=resizer, clock=clock)
        self.workers = PodWorkers(client, self.syncer, self.statuses, node=lambda: self.agent.node, clock=clock,
                                  on_reject=self._rejected)
        self.pleg = Pleg(self.cache, self._wake, clock=clock)
        self.server = KubeletServer(self.runtime, self._lookup, registry=metrics.REGISTRY,
                                    all_pods=lambda: self.pods.store.list(),
                                    checks={"syncloop": self.pleg.healthy, "registered": lambda: self.started},
                                    host=config.address, port=config.node.kubelet_port, clock=clock)
        self.started = False
        self._known: set[str] = set()

    # --- wiring ----------------------------------------------------------------------------------

    def _wake(self, uid: str) -> None:
        self.workers.wake(uid)

    def _lookup(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.pods.store.get_by_name(namespace, name)

    def _rejected(self, pod: dict[str, Any], reason: str, message: str) -> None:
        self.recorder.event(pod, "Warning", reason, f"Pod was rejected: {message}")

    def _node_facts(self) -> NodeFacts:
        node = self.agent.node or {}
        capacity = (node.get("status") or {}).get("capacity") or {}
        memory = parse_quantity(capacity["memory"]).value() if capacity.get("memory") else 0
        return NodeFacts(self.node_name, self.agent.node_ip, memory, self.agent.allocatable(), self._runtime_name)

    # --- running ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until cancelled."""
        self.server.bind()
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.server.serve(), name="kubelet server")
                await self._wait_for_runtime()
                await self.agent.register()
                for name, job in (("events", self.recorder.run()), ("status manager", self.statuses.run()),
                                  ("pod workers", self.workers.run()), ("prober", self.prober.run()),
                                  ("node agent", self.agent.run()), ("pod informer", self.pods.run())):
                    tasks.create_task(job, name=name)
                await self.pods.wait_for_sync()
                await asyncio.sleep(0)  # let the workers' TaskGroup start
                await self.pleg.relist()
                self._known = self.cache.pod_uids()
                self.pods.add_event_handler(on_add=self._on_pod_add, on_update=lambda old, new: self._on_pod_add(new),
                                            on_delete=self.workers.remove)
                await self._remove_orphans()
                self.started = True
                log.info("kubelet for node %s is running pods (runtime %s)", self.node_name, self._runtime_name)
                tasks.create_task(self.pleg.run(), name="pleg")
                tasks.create_task(self._housekeeping(), name="housekeeping")
        finally:
            await self.runtime.close()

    async def _wait_for_runtime(self) -> None:
        waited = 0.0
        while True:
            try:
                version = await self.runtime.version()
            except Exception as err:
                if waited % RUNTIME_WAIT_LOG_EVERY == 0:
                    log.warning("waiting for the container runtime at %s: %s", self.config.runtime_endpoint, err)
                await self.clock.sleep(1.0)
                waited += 1.0
                continue
            self._runtime_name = version.runtime_name or "cri"
            log.info("container runtime %s %s (CRI %s)", version.runtime_name, version.runtime_version,
                     version.runtime_api_version)
            return

    def _on_pod_add(self, pod: dict[str, Any]) -> None:
        self.workers.update(pod, known=pod["metadata"]["uid"] in self._known)

    def _wanted(self) -> set[str]:
        return {pod["metadata"]["uid"] for pod in self.pods.store.list()} | set(self.workers.workers)

    async def _remove_orphans(self) -> None:
        """Remove runtime objects and volume directories of pods the API no longer has. The set of wanted
        pods is taken again before each removal: a pod may arrive while an earlier one is being removed."""
        for uid in self.cache.pod_uids() - self._wanted():
            if uid not in self._wanted():
                log.info("removing the containers of pod %s, which no longer exists", uid)
                await self.syncer.cleanup(uid)
        for uid in set(self.volumes.pod_uids_on_disk()) - self._wanted():
            if uid not in self._wanted():
                await self.volumes.teardown(uid)
        self.allocations.retain(self._wanted())

    async def _housekeeping(self) -> None:
        while True:
            await self.clock.sleep(HOUSEKEEPING_PERIOD)
            try:
                await self._remove_orphans()
                await self._refresh_volumes()
            except Exception as err:
                log.warning("housekeeping failed: %s", err)
            self._update_gauges()

    async def _refresh_volumes(self) -> None:
        for worker in list(self.workers.workers.values()):
            if worker.state is WorkerState.SYNCING and await self.volumes.refresh(worker.pod):
                worker.wake()

    def _update_gauges(self) -> None:
        states = [w.state for w in self.workers.workers.values()]
        for state in WorkerState:
            metrics.POD_WORKERS.labels(state.value).set(states.count(state))
        metrics.RUNNING_PODS.set(self.cache.running_sandboxes())
        metrics.RUNNING_CONTAINERS.set(self.cache.running_containers())
