"""PrioritySort: the default QueueSort plugin — the active queue pops higher-priority pods first.

Pods of equal priority keep first-in-first-out order by the time they (re-)entered the queue, as
kube-scheduler's ``PrioritySort.Less``: ``spec.priority`` (0 when unset, which admission normally fills
from the PriorityClass) decides, then ``QueuedPodInfo.timestamp``.
"""

from __future__ import annotations

from typing import Any

from scheduler.framework import Handle, QueuedPodInfo


class PrioritySort:
    NAME = "PrioritySort"

    def __init__(self, args: dict[str, Any] | None = None, handle: Handle | None = None) -> None:
        del args, handle  # no configuration

    def less(self, a: QueuedPodInfo, b: QueuedPodInfo) -> bool:
        """Whether ``a`` should be scheduled before ``b``."""
        pa, pb = a.pod_info.priority, b.pod_info.priority
        return pa > pb or (pa == pb and a.timestamp < b.timestamp)
