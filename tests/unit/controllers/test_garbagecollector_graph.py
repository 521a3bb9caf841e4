"""Garbage collector graph: building the ownerReference graph from informer events, and what gets queued."""

from __future__ import annotations

from controllers.garbagecollector.graph import AbsentOwnerCache, DependencyGraph, ObjectReference
from machinery.client import CONFIG_MAPS, NAMESPACES

NS = "default"


class RecordingQueue:
    def __init__(self) -> None:
        self.added: list[str] = []
        self.rate_limited: list[str] = []

    def add(self, item: str) -> None:
        self.added.append(item)

    def add_rate_limited(self, item: str) -> None:
        self.rate_limited.append(item)


def cm(name, uid, *owners, ns=NS, **meta):
    refs = [ref(o) if isinstance(o, dict) and "metadata" in o else o for o in owners]
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns, "uid": uid, **meta}}
    if refs:
        obj["metadata"]["ownerReferences"] = refs
    return obj


def ref(owner, block=None, **extra):
    r = {"apiVersion": owner.get("apiVersion", "v1"), "kind": owner.get("kind", "ConfigMap"),
         "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"], **extra}
    if block is not None:
        r["blockOwnerDeletion"] = block
    return r


def make_graph():
    delete, orphan = RecordingQueue(), RecordingQueue()
    absent = AbsentOwnerCache()
    return DependencyGraph(delete, orphan, absent), delete, orphan, absent


def test_add_events_link_owners_and_dependents_in_any_order():
    graph, delete, _, _ = make_graph()
    owner = cm("owner", "u-owner")
    dep = cm("dep", "u-dep", owner)
    graph.observe(owner, CONFIG_MAPS)
    graph.observe(dep, CONFIG_MAPS)
    assert graph.node("u-owner").dependents == {graph.node("u-dep")}
    assert not graph.node("u-owner").virtual
    assert delete.added == []

    other, _, _, _ = make_graph()
    other.observe(dep, CONFIG_MAPS)  # dependent first: the owner is virtual and must be verified
    virtual = other.node("u-owner")
    assert virtual.virtual and virtual.identity == ObjectReference("v1", "ConfigMap", "owner", "u-owner", NS)
    assert other.attempt_to_delete.added == ["u-owner"]
    other.observe(owner, CONFIG_MAPS)
    assert other.node("u-owner") is virtual and not virtual.virtual
    assert virtual.dependents == {other.node("u-dep")}


def test_kind_and_api_version_come_from_the_informer_resource_when_missing():
    graph, _, _, _ = make_graph()
    graph.observe({"metadata": {"name": "x", "namespace": NS, "uid": "u1"}}, CONFIG_MAPS)
    assert graph.node("u1").identity == ObjectReference("v1", "ConfigMap", "x", "u1", NS)


def test_update_changing_owner_references_moves_the_dependent():
    graph, delete, _, _ = make_graph()
    a, b = cm("a", "u-a"), cm("b", "u-b")
    graph.observe(a, CONFIG_MAPS)
    graph.observe(b, CONFIG_MAPS)
    dep_v1 = cm("dep", "u-dep", ref(a, block=True))
    graph.observe(dep_v1, CONFIG_MAPS)
    dep_v2 = cm("dep", "u-dep", ref(b))
    graph.observe(dep_v2, CONFIG_MAPS, old=dep_v1)
    dep = graph.node("u-dep")
    assert graph.node("u-a").dependents == set()
    assert graph.node("u-b").dependents == {dep}
    assert dep.owners == [ref(b)]
    assert delete.added == ["u-a"]  # it no longer blocks a: a may be waiting for it in the foreground


def test_unblocking_a_reference_queues_the_owner():
    graph, delete, _, _ = make_graph()
    a = cm("a", "u-a")
    graph.observe(a, CONFIG_MAPS)
    blocked = cm("dep", "u-dep", ref(a, block=True))
    graph.observe(blocked, CONFIG_MAPS)
    assert graph.node("u-a").blocking_dependents() == [graph.node("u-dep")]
    graph.observe(cm("dep", "u-dep", ref(a, block=False)), CONFIG_MAPS, old=blocked)
    assert graph.node("u-a").blocking_dependents() == []
    assert delete.added == ["u-a"]


def test_delete_event_removes_the_node_and_queues_dependents():
    graph, delete, _, absent = make_graph()
    owner = cm("owner", "u-owner")
    graph.observe(owner, CONFIG_MAPS)
    graph.observe(cm("d1", "u-d1", owner), CONFIG_MAPS)
    graph.observe(cm("d2", "u-d2", owner), CONFIG_MAPS)
    graph.observe_delete(owner, CONFIG_MAPS)
    assert graph.node("u-owner") is None
    assert sorted(delete.added) == ["u-d1", "u-d2"]
    assert ObjectReference("v1", "ConfigMap", "owner", "u-owner", NS) in absent
    graph.observe_delete(cm("d1", "u-d1", owner), CONFIG_MAPS)
    assert graph.node("u-d1") is None and len(graph) == 1


def test_delete_of_a_dependent_queues_an_owner_deleting_in_the_foreground():
    graph, delete, _, _ = make_graph()
    owner = cm("owner", "u-owner", deletionTimestamp="2026-01-01T00:00:00Z", finalizers=["foregroundDeletion"])
    graph.observe(owner, CONFIG_MAPS)
    delete.added.clear()
    dep = cm("dep", "u-dep", ref(owner, block=True))
    graph.observe(dep, CONFIG_MAPS)
    graph.observe_delete(dep, CONFIG_MAPS)
    assert delete.added == ["u-owner"]


def test_deletion_with_the_orphan_finalizer_queues_the_owner_for_orphaning_once():
    graph, delete, orphan, _ = make_graph()
    owner = cm("owner", "u-owner")
    graph.observe(owner, CONFIG_MAPS)
    graph.observe(cm("dep", "u-dep", owner), CONFIG_MAPS)
    deleting = cm("owner", "u-owner", deletionTimestamp="2026-01-01T00:00:00Z", finalizers=["orphan"])
    graph.observe(deleting, CONFIG_MAPS, old=owner)
    assert orphan.added == ["u-owner"]
    assert graph.node("u-owner").being_deleted
    graph.observe(deleting, CONFIG_MAPS, old=deleting)  # a resync is no transition
    assert orphan.added == ["u-owner"] and delete.added == []


def test_deletion_in_the_foreground_queues_the_owner_and_all_dependents():
    graph, delete, orphan, _ = make_graph()
    owner = cm("owner", "u-owner")
    graph.observe(owner, CONFIG_MAPS)
    graph.observe(cm("d1", "u-d1", ref(owner, block=True)), CONFIG_MAPS)
    graph.observe(cm("d2", "u-d2", ref(owner)), CONFIG_MAPS)
    deleting = cm("owner", "u-owner", deletionTimestamp="2026-01-01T00:00:00Z", finalizers=["foregroundDeletion"])
    graph.observe(deleting, CONFIG_MAPS, old=owner)
    node = graph.node("u-owner")
    assert node.deleting_dependents and node.being_deleted
    assert sorted(delete.added) == ["u-d1", "u-d2", "u-owner"]
    assert [d.uid for d in node.blocking_dependents()] == ["u-d1"]
    assert orphan.added == []


def test_object_first_seen_deleting_in_the_foreground_is_marked():
    graph, delete, _, _ = make_graph()
    graph.observe(cm("owner", "u-owner", deletionTimestamp="2026-01-01T00:00:00Z",
                     finalizers=["foregroundDeletion"]), CONFIG_MAPS)
    assert graph.node("u-owner").deleting_dependents
    assert delete.added == ["u-owner"]


def test_virtual_delete_removes_a_virtual_owner_and_queues_its_dependents():
    graph, delete, _, absent = make_graph()
    graph.observe(cm("dep", "u-dep", {"apiVersion": "v1", "kind": "ConfigMap", "name": "gone", "uid": "u-gone"}),
                  CONFIG_MAPS)
    identity = graph.node("u-gone").identity
    delete.added.clear()
    graph.virtual_delete(identity)
    assert graph.node("u-gone") is None
    assert delete.added == ["u-dep"]
    assert identity in absent


def test_virtual_delete_keeps_a_virtual_node_dependents_disagree_about():
    graph, delete, _, absent = make_graph()
    right = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "u-owner"}
    wrong = {**right, "name": "misnamed"}
    graph.observe(cm("d1", "u-d1", right), CONFIG_MAPS)
    graph.observe(cm("d2", "u-d2", wrong), CONFIG_MAPS)
    first = graph.node("u-owner").identity  # the coordinates of the first reference seen
    assert first.name == "owner"
    delete.added.clear()
    graph.virtual_delete(first)
    node = graph.node("u-owner")
    assert node is not None and node.identity.name == "misnamed"  # now verify the other coordinates
    assert delete.added == ["u-d1"] and delete.rate_limited == ["u-owner"]
    assert first in absent


def test_virtual_delete_of_an_observed_object_with_other_coordinates_keeps_it():
    graph, delete, _, _ = make_graph()
    owner = cm("owner", "u-owner")
    graph.observe(owner, CONFIG_MAPS)
    wrong = {"apiVersion": "v1", "kind": "ConfigMap", "name": "misnamed", "uid": "u-owner"}
    graph.observe(cm("dep", "u-dep", wrong), CONFIG_MAPS)
    assert delete.added == ["u-dep"]  # coordinates disagree with the observed owner: verify the dependent
    delete.added.clear()
    graph.virtual_delete(ObjectReference.of_owner(wrong, NS))
    assert graph.node("u-owner") is not None
    assert delete.added == ["u-dep"]


def test_owner_in_another_namespace_makes_the_dependent_suspicious():
    graph, delete, _, _ = make_graph()
    owner = cm("owner", "u-owner", ns="other")
    graph.observe(owner, CONFIG_MAPS)
    graph.observe(cm("dep", "u-dep", owner), CONFIG_MAPS)
    assert delete.added == ["u-dep"]


def test_cluster_scoped_owner_of_namespaced_dependent_is_fine():
    graph, delete, _, _ = make_graph()
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team", "uid": "u-ns"}}
    graph.observe(ns, NAMESPACES)
    graph.observe(cm("dep", "u-dep", ref(ns)), CONFIG_MAPS)
    assert delete.added == []
    assert graph.node("u-ns").dependents == {graph.node("u-dep")}


def test_virtual_owner_observed_with_other_coordinates_queues_the_disagreeing_dependents():
    graph, delete, _, _ = make_graph()
    wrong = {"apiVersion": "v1", "kind": "ConfigMap", "name": "misnamed", "uid": "u-owner"}
    graph.observe(cm("dep", "u-dep", wrong), CONFIG_MAPS)
    delete.added.clear()
    graph.observe(cm("owner", "u-owner"), CONFIG_MAPS)
    assert graph.node("u-owner").identity.name == "owner"
    assert delete.added == ["u-dep"]


def test_absent_owner_cache_is_bounded_lru():
    cache = AbsentOwnerCache(size=2)
    a, b, c = (ObjectReference("v1", "ConfigMap", n, n) for n in "abc")
    cache.add(a)
    cache.add(b)
    assert a in cache  # touches a: b is now the oldest
    cache.add(c)
    assert a in cache and c in cache and b not in cache and len(cache) == 2
