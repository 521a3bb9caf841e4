"""The kubelet's node agent: registering the Node, reporting its status and renewing its Lease.

Everything else in the kubelet reads the node through :class:`NodeAgent` (``node``, ``node_ip``,
``allocatable()``). The agent notices runtime changes on its own, at its next status tick
(``status_update_frequency``, 10 s); ``request_status_update()`` can skip that wait, but nothing in the kubelet
calls it yet. Modules:
:mod:`.config` (the flags), :mod:`.host` (facts about the machine), :mod:`.runtime_state` (what CRI says),
:mod:`.pressure` (eviction signals), :mod:`.status` (building the status), :mod:`.registration` (the Node
object), :mod:`.lease` (the heartbeat) and :mod:`.agent` (the loops).
"""

from kubelet.node.agent import NodeAgent, RegistrationError
from kubelet.node.config import NodeConfig, parse_node_labels, parse_taints
from kubelet.node.host import FsStats, HostFacts, LinuxHost, MemoryStats, PidStats, SystemIdentity
from kubelet.node.lease import LEASE_NAMESPACE, NodeLease
from kubelet.node.status import KUBELET_VERSION

__all__ = ["KUBELET_VERSION", "LEASE_NAMESPACE", "FsStats", "HostFacts", "LinuxHost", "MemoryStats", "NodeAgent",
           "NodeConfig", "NodeLease", "PidStats", "RegistrationError", "SystemIdentity", "parse_node_labels",
           "parse_taints"]
