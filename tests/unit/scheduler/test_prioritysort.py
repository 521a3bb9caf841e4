"""PrioritySort: higher spec.priority first, then earlier queue timestamp."""

from __future__ import annotations

import functools

import pytest

from scheduler.framework import PodInfo, QueuedPodInfo
from scheduler.plugins.prioritysort import PrioritySort


def queued(name: str, priority: int | None, timestamp: float) -> QueuedPodInfo:
    spec: dict = {"containers": [{"name": "c", "image": "app"}]}
    if priority is not None:
        spec["priority"] = priority
    return QueuedPodInfo(PodInfo({"metadata": {"name": name, "namespace": "default", "uid": name}, "spec": spec}),
                         timestamp)


@pytest.mark.parametrize(("a", "b", "a_first"), [
    (queued("a", 10, 2.0), queued("b", 5, 1.0), True),  # priority beats age
    (queued("a", 5, 1.0), queued("b", 10, 2.0), False),
    (queued("a", 5, 1.0), queued("b", 5, 2.0), True),  # equal priority: older first
    (queued("a", 5, 2.0), queued("b", 5, 1.0), False),
    (queued("a", 5, 1.0), queued("b", 5, 1.0), False),  # a strict order: equal is not less
    (queued("a", None, 1.0), queued("b", 0, 2.0), True),  # no priority counts as 0
    (queued("a", -1, 1.0), queued("b", None, 2.0), False),
    (queued("a", 2_000_000_000, 9.0), queued("b", 1_000_000, 1.0), True),
])
def test_less(a, b, a_first):
    assert PrioritySort({}, None).less(a, b) is a_first


def test_sorting_a_queue():
    pods = [queued("low-old", 1, 1.0), queued("high-new", 9, 5.0), queued("low-new", 1, 3.0),
            queued("high-old", 9, 2.0)]
    plugin = PrioritySort({}, None)
    ordered = sorted(pods, key=functools.cmp_to_key(lambda x, y: -1 if plugin.less(x, y) else 1))
    assert [q.pod_info.name for q in ordered] == ["high-old", "high-new", "low-old", "low-new"]
