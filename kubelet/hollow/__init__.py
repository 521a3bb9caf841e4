"""Hollow nodes: many fake kubelets in one cheap process, for scale tests (like kwok or kubemark's hollow nodes).

``python -m kubelet.hollow --nodes 1000`` registers a fleet of Nodes that heartbeat like real kubelets
(Leases, status) and report the pods bound to them Running and Ready without starting a container.
The scheduler and controller benchmarks use them as their cluster. Layout: :mod:`.config` (flags →
configuration, fake addresses), :mod:`.nodes` (Node and Lease documents), :mod:`.pods` (pod status
documents and the pod loop), :mod:`.schedule` (spreading periodic writes), :mod:`.fleet` (the whole).
"""

from kubelet.hollow.config import HOLLOW_LABEL, HollowConfig
from kubelet.hollow.fleet import HollowFleet
from kubelet.hollow.metrics import HollowMetrics

__all__ = ["HOLLOW_LABEL", "HollowConfig", "HollowFleet", "HollowMetrics"]
