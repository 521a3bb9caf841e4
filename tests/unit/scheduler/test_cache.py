"""The scheduler cache: assumed pods count at once, are confirmed by the informer or forgotten."""

from __future__ import annotations

import pytest

from scheduler.cache import SchedulerCache
from scheduler.framework import PodInfo


def node(name, cpu="4"):
    return {"metadata": {"name": name}, "status": {"allocatable": {"cpu": cpu, "memory": "1Gi", "pods": "10"}}}


def pod(name, cpu="1", node_name=None, uid=None):
    spec = {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}
    if node_name:
        spec["nodeName"] = node_name
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid or f"uid-{name}"}, "spec": spec}


def requested(cache, name):
    return cache.snapshot().get(name).requested.milli_cpu


def test_assumed_pod_counts_until_forgotten():
    cache = SchedulerCache()
    cache.add_node(node("a"))
    info = PodInfo(pod("p", node_name="a"))
    cache.assume_pod(info, "a")
    assert requested(cache, "a") == 1000 and cache.is_assumed(info.uid)
    with pytest.raises(ValueError):
        cache.assume_pod(info, "a")
    cache.forget_pod(info.uid)
    assert requested(cache, "a") == 0 and not cache.is_assumed(info.uid)


def test_informer_confirms_an_assumed_pod_without_double_counting():
    cache = SchedulerCache()
    cache.add_node(node("a"))
    cache.assume_pod(PodInfo(pod("p", node_name="a")), "a")
    cache.finish_binding("uid-p")
    cache.add_pod(pod("p", node_name="a"))
    assert requested(cache, "a") == 1000 and not cache.is_assumed("uid-p")
    cache.forget_pod("uid-p")  # confirmed pods are not forgotten
    assert requested(cache, "a") == 1000
    cache.remove_pod(pod("p", node_name="a"))
    assert requested(cache, "a") == 0 and cache.pod_count() == 0


def test_bound_elsewhere_than_assumed_moves_the_pod():
    cache = SchedulerCache()
    cache.add_node(node("a"))
    cache.add_node(node("b"))
    cache.assume_pod(PodInfo(pod("p", node_name="a")), "a")
    cache.add_pod(pod("p", node_name="b"))
    assert requested(cache, "a") == 0 and requested(cache, "b") == 1000


def test_pods_seen_before_their_node_are_counted_when_it_arrives():
    cache = SchedulerCache()
    cache.add_pod(pod("early", node_name="late-node"))
    cache.add_node(node("late-node"))
    assert requested(cache, "late-node") == 1000


def test_node_update_keeps_pods_and_refreshes_allocatable():
    cache = SchedulerCache()
    cache.add_node(node("a", cpu="2"))
    cache.add_pod(pod("p", node_name="a"))
    cache.update_node(node("a", cpu="8"))
    info = cache.snapshot().get("a")
    assert info.allocatable.milli_cpu == 8000 and info.requested.milli_cpu == 1000
    cache.remove_node(node("a"))
    assert cache.snapshot().get("a") is None and cache.node_count() == 0
