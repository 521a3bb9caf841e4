"""Node lifecycle: node health from Leases and heartbeats, condition taints, taint-based eviction."""

from controllers.nodelifecycle.controller import NodeLifecycleController

__all__ = ["NodeLifecycleController"]
