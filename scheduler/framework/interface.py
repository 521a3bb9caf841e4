"""The extension points of the scheduling framework, as protocols plugins implement.

A plugin is an object with a ``NAME`` and any of the methods below; the runtime
(:mod:`scheduler.framework.runtime`) calls each extension point's enabled plugins in their
configured order. Plugins are built by a factory ``factory(args: dict, handle: Handle) -> plugin``
registered in :mod:`scheduler.plugins` under their name; ``args`` come from the profile's
``pluginConfig``.

Conventions that keep the hot paths cheap: Filter returns ``None`` for "fits" and a
:class:`~scheduler.framework.status.Status` otherwise; Score returns an int in ``[0, MAX_NODE_SCORE]``
(after NormalizeScore); per-pod work that does not depend on the node belongs in PreFilter/PreScore,
whose results go into the :class:`CycleState` under the plugin's own key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from scheduler.framework.status import Status
from scheduler.framework.types import NodeInfo, PodInfo, QueuedPodInfo, Snapshot

if TYPE_CHECKING:
    from machinery.client import ApiClient
    from machinery.clock import Clock
    from machinery.events import EventRecorder
    from machinery.informer import SharedInformerFactory

MAX_NODE_SCORE = 100
MIN_NODE_SCORE = 0


class CycleState:
    """Per-pod, per-cycle scratch space for plugins (keyed by plugin name), plus the runtime's skip sets."""

    __slots__ = ("_data", "skip_filter_plugins", "skip_score_plugins")

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self.skip_filter_plugins: set[str] = set()
        self.skip_score_plugins: set[str] = set()

    def read(self, key: str) -> Any:
        """The value written under ``key``; KeyError when PreFilter/PreScore did not write it."""
        return self._data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def write(self, key: str, value: Any) -> None:
        self._data[key] = value

    def clone(self) -> CycleState:
        """A shallow copy (values that plugins change during preemption dry runs implement ``clone()``)."""
        copy = CycleState()
        copy._data = {k: (v.clone() if hasattr(v, "clone") else v) for k, v in self._data.items()}
        copy.skip_filter_plugins = set(self.skip_filter_plugins)
        copy.skip_score_plugins = set(self.skip_score_plugins)
        return copy


@dataclass(frozen=True)
class ClusterEvent:
    """A kind of change that may make unschedulable pods schedulable (``resource``: Node, Pod, ...;
    ``action``: Add, Update, Delete, UpdateNodeLabel, UpdateNodeTaint, UpdateNodeAllocatable, ...)."""

    resource: str
    action: str


@dataclass
class PreFilterResult:
    """Nodes PreFilter already knows are the only candidates (None: all nodes)."""

    node_names: set[str] | None = None


@dataclass
class PostFilterResult:
    """What PostFilter (preemption) achieved: the node the pod is nominated to, if any."""

    nominated_node_name: str = ""


@dataclass(slots=True)
class NodeScore:
    name: str
    score: int


@dataclass
class Handle:
    """What plugins may use beyond their arguments: the API, informers, the snapshot, waiting pods."""

    client: ApiClient
    informers: SharedInformerFactory
    clock: Clock
    recorder: EventRecorder | None = None
    snapshot: Callable[[], Snapshot] = field(default=lambda: Snapshot())
    # Permit: pods waiting to be allowed, by uid (see runtime.WaitingPod); plugins allow/reject them here
    waiting_pods: dict[str, Any] = field(default_factory=dict)
    # run_filter(state, pod_info, node_info) -> Status|None with every Filter plugin (used by preemption)
    run_filter: Callable[[CycleState, PodInfo, NodeInfo], Status | None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --- extension points -------------------------------------------------------------------------------


@runtime_checkable
class QueueSortPlugin(Protocol):
    NAME: str

    def less(self, a: QueuedPodInfo, b: QueuedPodInfo) -> bool: ...


@runtime_checkable
class PreEnqueuePlugin(Protocol):
    NAME: str

    def pre_enqueue(self, pod_info: PodInfo) -> Status | None: ...


@runtime_checkable
class PreFilterPlugin(Protocol):
    NAME: str

    def pre_filter(self, state: CycleState, pod_info: PodInfo,
                   nodes: list[NodeInfo]) -> tuple[PreFilterResult | None, Status | None]: ...


@runtime_checkable
class FilterPlugin(Protocol):
    NAME: str

    def filter(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo) -> Status | None: ...


@runtime_checkable
class PostFilterPlugin(Protocol):
    NAME: str

    def post_filter(self, state: CycleState, pod_info: PodInfo,
                    statuses: Mapping[str, Status]) -> Awaitable[tuple[PostFilterResult | None, Status]]: ...


@runtime_checkable
class PreScorePlugin(Protocol):
    NAME: str

    def pre_score(self, state: CycleState, pod_info: PodInfo, nodes: list[NodeInfo]) -> Status | None: ...


@runtime_checkable
class ScorePlugin(Protocol):
    """``normalize_score(state, pod_info, scores)`` is optional: it rescales ``scores`` in place to 0..100.
    ``score_nodes(state, pod_info, nodes) -> list[int]`` is optional too: all nodes' final scores in one
    call (``score`` node by node, then ``normalize_score``), for plugins where a tight loop beats a call
    per node."""

    NAME: str

    def score(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo) -> int: ...


@runtime_checkable
class ReservePlugin(Protocol):
    NAME: str

    def reserve(self, state: CycleState, pod_info: PodInfo, node_name: str) -> Status | None: ...

    def unreserve(self, state: CycleState, pod_info: PodInfo, node_name: str) -> None: ...


@runtime_checkable
class PermitPlugin(Protocol):
    """Return ``(None, 0)`` to allow, ``(Status(WAIT), timeout_seconds)`` to wait, a rejection to refuse."""

    NAME: str

    def permit(self, state: CycleState, pod_info: PodInfo, node_name: str) -> tuple[Status | None, float]: ...


@runtime_checkable
class PreBindPlugin(Protocol):
    NAME: str

    def pre_bind(self, state: CycleState, pod_info: PodInfo, node_name: str) -> Awaitable[Status | None]: ...


@runtime_checkable
class BindPlugin(Protocol):
    """Return a SKIP status to let the next bind plugin handle the pod."""

    NAME: str

    def bind(self, state: CycleState, pod_info: PodInfo, node_name: str) -> Awaitable[Status | None]: ...


@runtime_checkable
class PostBindPlugin(Protocol):
    NAME: str

    def post_bind(self, state: CycleState, pod_info: PodInfo, node_name: str) -> None: ...


@runtime_checkable
class EnqueueExtensions(Protocol):
    """Which cluster events may make a pod this plugin rejected schedulable again."""

    def events_to_register(self) -> list[ClusterEvent]: ...
