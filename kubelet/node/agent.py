"""The node agent: registers this machine's Node, keeps its status current and its Lease renewed.

:class:`NodeAgent` is the kubelet's node-status half. :meth:`NodeAgent.register` creates the Node (or adopts
an existing one) with its full first status, retrying with backoff (100 ms doubling to 7 s) until the API
server takes it. :meth:`NodeAgent.run` then runs two loops under one TaskGroup:

* the Lease loop (:mod:`kubelet.node.lease`), renewing every ``lease_duration / 4`` seconds;
* the status loop: every ``status_update_frequency`` seconds (or at once after
  :meth:`request_status_update`) read the Node, compute the status from the host and the runtime, and
  PATCH ``nodes/<name>/status`` (strategic merge) only when something other than heartbeat times changed
  or ``status_report_frequency`` has passed since the last write. Failures are logged and retried on the
  next round; the loop never ends on an error.

Unlike the kubelet, which keeps failing until restarted, a Node deleted under a running agent is
registered again (and its Lease re-owned) on the next round.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from kubelet.node.config import NodeConfig
from kubelet.node.host import FsStats, HostFacts, LinuxHost
from kubelet.node.lease import NodeLease
from kubelet.node.pressure import (
    DISK_PRESSURE,
    MEMORY_PRESSURE,
    PID_PRESSURE,
    PressureTracker,
    Signals,
    crossed_thresholds,
)
from kubelet.node.registration import adoption_patch, initial_node
from kubelet.node.runtime_state import NodeRuntime, RuntimeState, observe_runtime
from kubelet.node.status import (
    READY,
    Condition,
    addresses,
    allocatable,
    capacity,
    merge_conditions,
    node_info,
    pressure_condition,
    ready_condition,
    status_patch,
    transitions,
)
from machinery.client import NODES, ApiClient
from machinery.clock import REAL_CLOCK, Clock
from machinery.errors import StatusError, is_already_exists, is_bad_request, is_invalid, is_not_found
from machinery.events import NORMAL, EventRecorder
from machinery.meta import format_rfc3339

log = logging.getLogger(__name__)

REGISTER_RETRY_INITIAL = 0.1
REGISTER_RETRY_MAX = 7.0
FALLBACK_NODE_IP = "127.0.0.1"
# (condition type, status) → the Event the kubelet records when a condition turns to that status
EVENT_REASONS = {
    (MEMORY_PRESSURE, "False"): "NodeHasSufficientMemory", (MEMORY_PRESSURE, "True"): "NodeHasInsufficientMemory",
    (DISK_PRESSURE, "False"): "NodeHasNoDiskPressure", (DISK_PRESSURE, "True"): "NodeHasDiskPressure",
    (PID_PRESSURE, "False"): "NodeHasSufficientPID", (PID_PRESSURE, "True"): "NodeHasInsufficientPID",
    (READY, "True"): "NodeReady", (READY, "False"): "NodeNotReady",
}


class RegistrationError(Exception):
    """The API server rejected the Node as invalid: retrying cannot help (fix the flags)."""


class NodeAgent:
    """Registration, node status and the node Lease for one node. ``host`` defaults to this machine."""

    def __init__(self, client: ApiClient, runtime: NodeRuntime, config: NodeConfig, *, clock: Clock = REAL_CLOCK,
                 host: HostFacts | None = None, recorder: EventRecorder | None = None) -> None:
        self.client = client
        self.runtime = runtime
        self.config = config
        self.clock = clock
        self.host: HostFacts = host or LinuxHost()
        self.recorder = recorder
        self.identity = self.host.identity()
        self._node_ip = config.node_ip or self.host.default_ip() or FALLBACK_NODE_IP
        self._node: dict[str, Any] | None = None
        self._capacity: dict[str, str] | None = None
        self._runtime_version = ""  # the last one the runtime reported
        self._images: tuple[dict, ...] | None = None  # the last list the runtime gave
        self._crossed: dict[str, list[str]] = {}
        self._pressure = PressureTracker(clock, config.pressure_transition_period)
        self._last_report: float | None = None
        self._wake = asyncio.Event()
        self.lease = NodeLease(client, config.node_name, config.lease_duration, owner=lambda: self._node,
                               clock=clock)

    # --- what the rest of the kubelet reads -------------------------------------------------------

    @property
    def node(self) -> dict[str, Any] | None:
        """The latest Node the agent wrote or read (None before registration); read-only."""
        return self._node

    @property
    def node_ip(self) -> str:
        return self._node_ip

    def allocatable(self) -> dict[str, str]:
        """What pod admission fits pods against: capacity - system-reserved - hard eviction thresholds."""
        if self._capacity is None:
            self._capacity = capacity(self.config, self.host.cpu_count(), self.host.memory(),
                                      self.host.filesystem(self.config.root_dir))
        return allocatable(self._capacity, self.config.system_reserved)

    def request_status_update(self) -> None:
        """Compute the status now rather than at the next tick (e.g. the runtime or its images changed)."""
        self._wake.set()

    # --- registration ------------------------------------------------------------------------------

    async def register(self) -> dict[str, Any]:
        """Create this machine's Node or adopt the existing one; retry until the API server accepts it.

        Raises :class:`RegistrationError` when the server finds the Node invalid (retrying cannot help).
        """
        delay = REGISTER_RETRY_INITIAL
        while True:
            try:
                return await self._try_register()
            except StatusError as err:
                if is_invalid(err) or is_bad_request(err):
                    raise RegistrationError(f"cannot register node {self.config.node_name}: {err}") from None
                log.warning("unable to register node %s with the API server, retrying in %.1fs: %s",
                            self.config.node_name, delay, err)
            await self.clock.sleep(delay)
            delay = min(delay * 2, REGISTER_RETRY_MAX)

    async def _try_register(self) -> dict[str, Any]:
        status = await self._compute_status(None)
        body = initial_node(self.config, self.identity.architecture, status)
        try:
            node = await self.client.create(NODES, body)
        except StatusError as err:
            if not is_already_exists(err):
                raise
            return await self._adopt()
        log.info("registered node %s", self.config.node_name)
        self._written(None, node)
        return node

    async def _adopt(self) -> dict[str, Any]:
        existing = await self.client.get(NODES, self.config.node_name)
        patch = adoption_patch(existing, self.config, self.identity.architecture)
        if patch:
            existing = await self.client.patch(NODES, self.config.node_name, patch)
        log.info("node %s already exists: adopted it", self.config.node_name)
        self._node = existing
        try:
            await self._sync_status(existing, force=True)
        except StatusError as err:  # registered all the same; the status loop tries again
            log.warning("node %s: first status update failed: %s", self.config.node_name, err)
        return self._node

    # --- loops ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Register if not yet done, then renew the Lease and keep the status current, forever."""
        if self._node is None:
            await self.register()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.lease.run(self.config.lease_renew_interval), name="node-lease")
            tasks.create_task(self._status_loop(), name="node-status")

    async def _status_loop(self) -> None:
        while True:
            await self._next_round()
            try:
                await self.sync_status()
            except Exception as err:  # a round that failed is retried on the next one
                log.warning("node %s: status update failed: %s", self.config.node_name, err,
                            exc_info=not isinstance(err, StatusError))

    async def _next_round(self) -> None:
        """Sleep ``status_update_frequency`` or until :meth:`request_status_update`, whichever is first."""
        if not self._wake.is_set():
            sleep = asyncio.ensure_future(self.clock.sleep(self.config.status_update_frequency))
            wake = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleep, wake}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleep.cancel()
                wake.cancel()
        self._wake.clear()

    async def sync_status(self, *, force: bool = False) -> bool:
        """One status round: read the Node, compute its status, write it if needed. True when written."""
        try:
            current = await self.client.get(NODES, self.config.node_name)
        except StatusError as err:
            if not is_not_found(err):
                raise
            log.warning("node %s was deleted; registering it again", self.config.node_name)
            self._node = None
            await self.register()
            return True
        return await self._sync_status(current, force=force)

    async def _sync_status(self, current: dict[str, Any], *, force: bool) -> bool:
        previous = current.get("status") or {}
        status = await self._compute_status(previous.get("conditions"))
        changes = status_patch(previous, status)
        now = self.clock.monotonic()
        due = self._last_report is None or now - self._last_report >= self.config.status_report_frequency
        if not (force or changes or due):
            self._node = current
            return False
        patch = {"status": {**changes, "conditions": status["conditions"]}}
        updated = await self.client.patch(NODES, self.config.node_name, patch, patch_type="strategic",
                                          subresource="status")
        self._written(previous.get("conditions"), updated)
        return True

    # --- status --------------------------------------------------------------------------------------

    async def _compute_status(self, previous_conditions: list[dict] | None) -> dict[str, Any]:
        """The status the Node should have now (reads the host and asks the runtime)."""
        runtime = await observe_runtime(self.runtime)
        if runtime.version:
            self._runtime_version = runtime.version
        if runtime.images is not None:
            self._images = runtime.images
        memory = self.host.memory()
        nodefs = self.host.filesystem(self.config.root_dir)
        self._capacity = capacity(self.config, self.host.cpu_count(), memory, nodefs)
        conditions = self._conditions(Signals(memory, nodefs, self._image_fs(runtime), self.host.pids()), runtime)
        status: dict[str, Any] = {
            "capacity": self._capacity,
            "allocatable": allocatable(self._capacity, self.config.system_reserved),
            "conditions": merge_conditions(previous_conditions, conditions, format_rfc3339(self.clock.now())),
            "addresses": addresses(self.config.node_name, self._node_ip),
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.config.kubelet_port}},
            "nodeInfo": node_info(self.identity, self._runtime_version, memory.swap_total_bytes),
        }
        if self._images is not None:
            status["images"] = list(self._images)
        if runtime.handlers:
            status["runtimeHandlers"] = list(runtime.handlers)
        if runtime.supplemental_groups_policy is not None:
            status["features"] = {"supplementalGroupsPolicy": runtime.supplemental_groups_policy}
        return status

    def _image_fs(self, runtime: RuntimeState) -> FsStats | None:
        for path in runtime.image_fs_paths:
            stats = self.host.filesystem(Path(path))
            if stats is not None:
                return stats
        return None

    def _conditions(self, signals: Signals, runtime: RuntimeState) -> list[Condition]:
        crossed = crossed_thresholds(signals)
        if crossed != self._crossed:
            log.warning("node %s: eviction thresholds crossed: %s", self.config.node_name,
                        ", ".join(s for names in crossed.values() for s in names) or "none any more")
            self._crossed = crossed
        pressured = self._pressure.observe(crossed)
        return [*(pressure_condition(kind, kind in pressured) for kind in (MEMORY_PRESSURE, DISK_PRESSURE,
                                                                           PID_PRESSURE)),
                ready_condition(runtime)]

    def _written(self, previous_conditions: list[dict] | None, node: dict[str, Any]) -> None:
        """Remember ``node`` as written now and record Events for the conditions that changed."""
        self._node = node
        self._last_report = self.clock.monotonic()
        conditions = (node.get("status") or {}).get("conditions") or []
        for condition in transitions(previous_conditions, [c for c in conditions if c.get("type") in
                                                           {t for t, _ in EVENT_REASONS}]):
            reason = EVENT_REASONS.get((condition["type"], condition.get("status")))
            if reason is None:
                continue
            log.info("node %s: %s", self.config.node_name, reason)
            if self.recorder is not None:
                self.recorder.event(self._node_reference(), NORMAL, reason,
                                    f"Node {self.config.node_name} status is now: {reason}")

    def _node_reference(self) -> dict[str, Any]:
        """The kubelet's reference to its node in Events (its UID is the node's name, as in Kubernetes)."""
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.config.node_name, "uid": self.config.node_name}}
