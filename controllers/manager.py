"""The controller manager: builds the enabled controllers and runs them together.

Controllers register here by ``NAME``. The manager owns what they share — one API client, one
shared informer factory (one list+watch per resource for the whole process), a clock — and gives
each its own event recorder (``<name>-controller``, as kube-controller-manager's events read). With
leader election (:mod:`machinery.component`), controllers run only while the process holds the
``kube-system/kube-controller-manager`` Lease; losing it stops them and the process exits, so a
supervisor restarts it as a candidate (what kube-controller-manager does).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence

from controllers.controller import Controller, ControllerContext
from controllers.cronjob import CronJobController
from controllers.daemonset import DaemonSetController
from controllers.deployment import DeploymentController
from controllers.disruption import DisruptionController
from controllers.endpoints import EndpointsController
from controllers.endpointslice import EndpointSliceController, EndpointSliceMirroringController
from controllers.garbagecollector import GarbageCollector
from controllers.job import JobController
from controllers.metrics import QUEUES
from controllers.namespace import NamespaceController
from controllers.nodelifecycle import NodeLifecycleController
from controllers.replicaset import ReplicaSetController
from controllers.serviceaccount import ServiceAccountsController
from controllers.statefulset import StatefulSetController
from machinery.client import ApiClient
from machinery.clock import REAL_CLOCK, Clock
from machinery.events import EventRecorder
from machinery.informer import SharedInformerFactory

log = logging.getLogger(__name__)

CONTROLLERS: dict[str, type[Controller]] = {
    cls.NAME: cls for cls in (
        ReplicaSetController, DeploymentController, GarbageCollector, NamespaceController,
        ServiceAccountsController, EndpointsController, EndpointSliceController, EndpointSliceMirroringController,
        DisruptionController,
        NodeLifecycleController,
        StatefulSetController,
        CronJobController,
        DaemonSetController,
        JobController,
    )
}


def select_controllers(spec: Sequence[str]) -> list[type[Controller]]:
    """kube-controller-manager's --controllers: ``*`` (all), ``name`` (enable), ``-name`` (disable).

    Kubernetes' names are accepted too (``replicaset-controller``, ``garbage-collector-controller``).
    """
    wanted = [canonical_name(n) for n in (list(spec) or ["*"])]
    unknown = [n.lstrip("-") for n in wanted if n != "*" and n.lstrip("-") not in CONTROLLERS]
    if unknown:
        raise ValueError(f"unknown controller(s): {', '.join(unknown)}; known: {', '.join(sorted(CONTROLLERS))}")
    enabled = set(CONTROLLERS) if "*" in wanted else set()
    enabled |= {n for n in wanted if n != "*" and not n.startswith("-")}
    enabled -= {n[1:] for n in wanted if n.startswith("-")}
    return [cls for name, cls in CONTROLLERS.items() if name in enabled]


def canonical_name(name: str) -> str:
    """``replicaset-controller`` → ``replicaset``; a leading ``-`` (disable) is kept."""
    sign = "-" if name.startswith("-") else ""
    return sign + name.lstrip("-").removesuffix("-controller").replace("-", "")


class ControllerManager:
    def __init__(self, client: ApiClient, controllers: Iterable[type[Controller]], *, clock: Clock = REAL_CLOCK,
                 workers: dict[str, int] | None = None, resync_period: float = 0.0) -> None:
        self.client = client
        self.classes = list(controllers)
        self.clock = clock
        self.workers = workers or {}
        self.resync_period = resync_period
        self.running: list[Controller] = []

    async def run_controllers(self) -> None:
        """Build every controller, start the informers they asked for and run them until cancelled."""
        informers = SharedInformerFactory(self.client, resync_period=self.resync_period, clock=self.clock)
        recorders: list[EventRecorder] = []
        self.running = []
        for cls in self.classes:
            recorder = EventRecorder(self.client, f"{cls.NAME}-controller", clock=self.clock)
            recorders.append(recorder)
            controller = cls(ControllerContext(self.client, informers, recorder, self.clock))
            controller.queue.on_work_duration = QUEUES.register(controller.queue)
            self.running.append(controller)
        informers.start()
        log.info("starting controllers: %s", ", ".join(c.NAME for c in self.running))
        try:
            async with asyncio.TaskGroup() as tasks:
                for recorder in recorders:
                    tasks.create_task(recorder.run(), name=f"events {recorder.component}")
                for controller in self.running:
                    tasks.create_task(controller.run(self.workers.get(controller.NAME)), name=controller.NAME)
        finally:
            await informers.stop()

    def synced(self) -> bool:
        return bool(self.running) and all(c.synced() for c in self.running)
