"""A fleet of hollow nodes in one asyncio process: registration, Lease renewals, status heartbeats, pods.

:class:`HollowFleet` registers ``config.nodes`` Nodes (create, or adopt one that exists) with at most
``config.concurrency`` writes in flight, each with its Lease in kube-node-lease. Then it keeps them
alive the way kubelets do, with the writes spread evenly over time (:class:`SpreadLoop`): every
Lease is renewed every 10 s (1,000 nodes → ~100 writes/s) and every node's status heartbeat is
re-posted every 5 minutes. One informer watches all bound pods (``spec.nodeName!=``) and
:class:`HollowPods` acts on those bound to the fleet.

Simplified relative to Kubernetes: a node deleted while the fleet runs is not registered again
(its Lease is, as a kubelet's lease controller would); failed writes are counted and logged and the
next round tries again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubelet.hollow.config import HollowConfig, node_ip, pod_cidr
from kubelet.hollow.metrics import HollowMetrics
from kubelet.hollow.nodes import (
    NODE_LEASE_NAMESPACE,
    adoption_patch,
    heartbeat_patch,
    lease_object,
    node_object,
    renewed_lease,
)
from kubelet.hollow.pods import BOUND_PODS, HollowPods, PodAddresses, PodHost
from kubelet.hollow.schedule import SpreadLoop
from machinery.client import LEASES, NODES, PODS, ApiClient
from machinery.clock import REAL_CLOCK, Clock
from machinery.errors import StatusError, is_already_exists, is_conflict, is_not_found
from machinery.informer import SharedInformer
from machinery.meta import uid_of

log = logging.getLogger(__name__)

Obj = dict[str, Any]
REGISTER_BACKOFF = (0.5, 1.0, 2.0, 4.0, 7.0)  # seconds between registration attempts, then 7 s for ever


@dataclass
class HollowNode:
    index: int
    name: str
    ip: str
    addresses: PodAddresses
    uid: str = ""
    registered_at: datetime | None = None  # lastTransitionTime of its (never changing) conditions
    lease: Obj | None = field(default=None, repr=False)  # the last Lease written (its RV makes renewals CAS)


class HollowFleet:
    def __init__(self, client: ApiClient, config: HollowConfig, *, metrics: HollowMetrics | None = None,
                 clock: Clock = REAL_CLOCK) -> None:
        self.client = client
        self.config = config
        self.clock = clock
        self.metrics = metrics or HollowMetrics()
        self.nodes = [HollowNode(i, config.node_name(i), node_ip(i), PodAddresses(ipaddress.IPv4Network(pod_cidr(i))))
                      for i in range(config.nodes)]
        self.registered = 0
        self._writes = asyncio.Semaphore(config.concurrency)
        self.pod_informer = SharedInformer(client, PODS, field_selector=BOUND_PODS, clock=clock)
        self.pods = HollowPods(client, self.pod_informer.store,
                               {n.name: PodHost(n.name, n.ip, n.addresses) for n in self.nodes},
                               clock, self.metrics, ready_delay=config.pod_ready_delay)
        self.pod_informer.add_event_handler(self.pods.on_pod, self.pods.on_pod_update, self.pods.on_pod_delete)
        self.lease_loop = SpreadLoop("lease renewals", config.nodes, config.lease_renew_interval,
                                     self.renew_lease, clock, limit=config.concurrency)
        self.status_loop = SpreadLoop("node status", config.nodes, config.status_report_interval,
                                      self.post_node_status, clock, limit=config.concurrency)

    def ready(self) -> bool:
        """All nodes registered and the pod watch synced."""
        return self.registered == len(self.nodes) and self.pod_informer.has_synced()

    async def run(self) -> None:
        """Register every node, then keep the fleet alive until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.pod_informer.run(), name="pod informer")
            await self.register_all()
            log.info("%d hollow nodes registered (%s0 .. %s%d)", len(self.nodes), self.config.name_prefix,
                     self.config.name_prefix, len(self.nodes) - 1)
            tasks.create_task(self.lease_loop.run(), name="lease renewals")
            tasks.create_task(self.status_loop.run(), name="node status")
            for i in range(self.config.concurrency):
                tasks.create_task(self.pods.run_worker(), name=f"pod worker {i}")

    # --- registration -------------------------------------------------------------------------------

    async def register_all(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            for node in self.nodes:
                tasks.create_task(self._register_until_done(node))

    async def _register_until_done(self, node: HollowNode) -> None:
        attempt = 0
        while True:
            try:
                async with self._writes:
                    await self.register(node)
                    await self.renew_lease(node.index, bounded=False)
                self.registered += 1
                self.metrics.nodes_registered.set(self.registered)
                return
            except StatusError as err:
                self.metrics.errors.labels("register").inc()
                delay = REGISTER_BACKOFF[min(attempt, len(REGISTER_BACKOFF) - 1)]
                log.warning("registering node %s failed (%s); retrying in %.1f s", node.name, err, delay)
                attempt += 1
                await self.clock.sleep(delay)

    async def register(self, node: HollowNode) -> None:
        """Create the Node, or take over an existing one (its status made healthy again)."""
        now = self.clock.now()
        try:
            created = await self.client.create(NODES, node_object(self.config, node.index, now))
        except StatusError as err:
            if not is_already_exists(err):
                raise
            created = await self.client.patch(NODES, node.name, adoption_patch(self.config, node.index, now),
                                              patch_type="strategic", subresource="status")
            self._adopt_pod_cidr(node, created)
        node.uid, node.registered_at = uid_of(created), now

    @staticmethod
    def _adopt_pod_cidr(node: HollowNode, existing: Obj) -> None:
        """An existing node keeps its podCIDR (immutable once set): hand out pod IPs from that one."""
        cidr = (existing.get("spec") or {}).get("podCIDR") or ""
        try:
            network = ipaddress.IPv4Network(cidr)
        except ValueError:
            return
        if network.num_addresses >= 4 and network != node.addresses.cidr and not node.addresses.by_uid:
            node.addresses.cidr = network

    # --- keeping alive --------------------------------------------------------------------------------

    async def renew_lease(self, index: int, *, bounded: bool = True) -> None:
        """Renew (or create) node ``index``'s Lease; a conflict re-reads it and tries again."""
        node = self.nodes[index]
        try:
            for _ in range(3):
                try:
                    node.lease = await self._write_lease(node)
                    self.metrics.lease_renewals.inc()
                    return
                except StatusError as err:
                    if is_conflict(err) or is_already_exists(err):
                        node.lease = await self._read_lease(node)
                    elif is_not_found(err):
                        node.lease = None
                    else:
                        raise
            raise RuntimeError(f"lease {node.name}: still conflicting after 3 attempts")
        except (StatusError, RuntimeError) as err:
            if not bounded:
                raise
            self.metrics.errors.labels("lease").inc()
            log.warning("renewing the lease of %s failed: %s", node.name, err)

    async def _write_lease(self, node: HollowNode) -> Obj:
        now = self.clock.now()
        if node.lease is None:
            return await self.client.create(LEASES, lease_object(self.config, node.name, node.uid, now))
        return await self.client.replace(LEASES, renewed_lease(node.lease, self.config, now))

    async def _read_lease(self, node: HollowNode) -> Obj | None:
        try:
            return await self.client.get(LEASES, node.name, NODE_LEASE_NAMESPACE)
        except StatusError as err:
            if is_not_found(err):
                return None
            raise

    async def post_node_status(self, index: int) -> None:
        """The periodic heartbeat: the conditions' lastHeartbeatTime moves, nothing else changes."""
        node = self.nodes[index]
        now = self.clock.now()
        try:
            await self.client.patch(NODES, node.name, heartbeat_patch(now, node.registered_at or now),
                                    patch_type="strategic", subresource="status")
            self.metrics.node_status_updates.inc()
        except StatusError as err:
            self.metrics.errors.labels("node-status").inc()
            log.warning("posting the status of node %s failed: %s", node.name, err)
