"""The scheduling framework: the extension points, the data plugins see, and the runtime that calls them.

Import plugin-facing names from here: ``from scheduler.framework import Status, Code, NodeInfo, PodInfo``.
"""

from scheduler.framework.interface import (
    BindPlugin,
    ClusterEvent,
    CycleState,
    EnqueueExtensions,
    FilterPlugin,
    Handle,
    NodeScore,
    PermitPlugin,
    PostBindPlugin,
    PostFilterPlugin,
    PostFilterResult,
    PreBindPlugin,
    PreFilterPlugin,
    PreFilterResult,
    PreScorePlugin,
    QueueSortPlugin,
    ReservePlugin,
    ScorePlugin,
)
from scheduler.framework.status import Code, Status, error, skip, success, unresolvable, unschedulable
from scheduler.framework.types import (
    DEFAULT_MEMORY_REQUEST,
    DEFAULT_MILLI_CPU_REQUEST,
    NodeInfo,
    PodInfo,
    QueuedPodInfo,
    Resources,
    Snapshot,
)

__all__ = [
    "DEFAULT_MEMORY_REQUEST", "DEFAULT_MILLI_CPU_REQUEST", "BindPlugin", "ClusterEvent", "Code", "CycleState",
    "EnqueueExtensions", "FilterPlugin", "Handle", "NodeInfo", "NodeScore", "PermitPlugin", "PodInfo",
    "PostBindPlugin", "PostFilterPlugin", "PostFilterResult", "PreBindPlugin", "PreFilterPlugin", "PreFilterResult",
    "PreScorePlugin", "QueueSortPlugin", "QueuedPodInfo", "ReservePlugin", "Resources", "ScorePlugin", "Snapshot",
    "Status", "error", "skip", "success", "unresolvable", "unschedulable",
]
