"""Garbage collector: attempt-to-delete and attempt-to-orphan against fakes, asserting the API actions taken.

The graph is fed as the informers would feed it: :meth:`World.sync` diffs the fake client's objects
against what the graph last saw and replays adds, updates and deletes; :meth:`World.drain` works the
queues until they are empty.
"""

from __future__ import annotations

import logging

import pytest

from controllers.controller import ControllerContext
from controllers.garbagecollector import GarbageCollector, NotYetObserved, ObjectReference, UnknownKind
from machinery import errors
from machinery.client import CONFIG_MAPS, NAMESPACES, SECRETS, Resource
from machinery.clock import FakeClock
from machinery.meta import deep_copy, uid_of
from tests.fakes import FakeClient, FakeInformers, FakeRecorder

NS = "default"
WATCHED = (CONFIG_MAPS, SECRETS, NAMESPACES)


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.client = FakeClient(clock=self.clock)
        self.gc = GarbageCollector(ControllerContext(self.client, FakeInformers(), FakeRecorder(), self.clock))
        self.seen: dict[tuple[Resource, str], dict] = {}

    def create(self, resource: Resource, name: str, *owners: dict, block: bool | None = None, **meta) -> dict:
        obj = {"metadata": {"name": name, **meta}}
        if resource.namespaced:
            obj["metadata"]["namespace"] = NS
        if owners:
            obj["metadata"]["ownerReferences"] = [owner_ref(o, block) for o in owners]
        return self.client.seed(resource, obj)

    def sync(self) -> None:
        """Deliver informer events for everything that changed in the fake client since the last sync."""
        current = {(r, uid_of(o)): o for r in WATCHED for o in self.client.all(r)}
        for key, old in list(self.seen.items()):
            if key not in current:
                del self.seen[key]
                self.gc.graph.observe_delete(old, key[0])
        for key, obj in current.items():
            old = self.seen.get(key)
            if old is None or old["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]:
                self.seen[key] = deep_copy(obj)
                self.gc.graph.observe(deep_copy(obj), key[0], old)

    async def drain(self, rounds: int = 20) -> None:
        """Work both queues (and re-sync the graph) until nothing is left to do."""
        for _ in range(rounds):
            self.sync()
            if not len(self.gc.queue) and not len(self.gc.orphan_queue):
                return
            for queue, process in ((self.gc.queue, self.gc.process), (self.gc.orphan_queue, self.gc.process_orphan)):
                while len(queue):
                    uid = await queue.get()
                    await process(uid)
                    queue.done(uid)
                    self.sync()  # informers report each change before the next item is looked at
        raise AssertionError("queues did not drain")

    def stored(self, resource: Resource, name: str) -> dict | None:
        return self.client.stored(resource, NS if resource.namespaced else None, name)

    def deletes(self) -> list[tuple[str, str | None]]:
        return [(a.name, a.body["propagationPolicy"]) for a in self.client.actions_of("delete")]


def owner_ref(owner: dict, block: bool | None = None) -> dict:
    ref = {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
           "uid": owner["metadata"]["uid"]}
    if block is not None:
        ref["blockOwnerDeletion"] = block
    return ref


def gone_owner(name: str = "gone", uid: str = "u-gone") -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "uid": uid}}


@pytest.fixture
def world() -> World:
    return World()


async def test_dependent_of_a_missing_owner_is_deleted_with_preconditions(world, caplog):
    dep = world.create(SECRETS, "dep", gone_owner())
    world.sync()
    assert world.gc.graph.node("u-gone").virtual
    caplog.set_level(logging.INFO, logger="controllers.garbagecollector")
    await world.drain()
    assert world.stored(SECRETS, "dep") is None
    [delete] = world.client.actions_of("delete", "secrets")
    assert delete.body == {"propagationPolicy": "Background",
                           "preconditions": {"uid": dep["metadata"]["uid"],
                                             "resourceVersion": dep["metadata"]["resourceVersion"]}}
    assert "since all its owners are absent" in caplog.text
    assert world.gc.graph.node("u-gone") is None and world.gc.graph.node(uid_of(dep)) is None


async def test_background_delete_of_the_owner_collects_its_dependents(world):
    owner = world.create(CONFIG_MAPS, "owner")
    world.create(CONFIG_MAPS, "cm-dep", owner)
    world.create(SECRETS, "secret-dep", owner)
    world.create(CONFIG_MAPS, "bystander")
    await world.drain()
    assert world.client.actions_of("delete") == []
    await world.client.delete(CONFIG_MAPS, "owner", NS, propagation_policy="Background")
    await world.drain()
    assert world.stored(CONFIG_MAPS, "cm-dep") is None and world.stored(SECRETS, "secret-dep") is None
    assert world.stored(CONFIG_MAPS, "bystander") is not None
    # the deleted owner was remembered as absent: no GET was needed to decide
    assert [a.name for a in world.client.actions_of("get", "configmaps")] == ["cm-dep"]


async def test_owner_with_the_same_name_but_another_uid_counts_as_absent(world):
    world.create(CONFIG_MAPS, "owner")  # a new object under the old owner's name
    world.create(SECRETS, "dep", gone_owner("owner", "u-old"))
    await world.drain()
    assert world.stored(SECRETS, "dep") is None
    assert world.stored(CONFIG_MAPS, "owner") is not None
    assert ObjectReference("v1", "ConfigMap", "owner", "u-old", NS) in world.gc.absent_owners


async def test_dependent_with_one_owner_left_loses_only_the_dangling_reference(world):
    alive = world.create(CONFIG_MAPS, "alive")
    dep = world.create(SECRETS, "dep", gone_owner(), alive)
    await world.drain()
    assert world.client.actions_of("delete") == []
    [patch] = world.client.actions_of("patch", "secrets")
    assert patch.body == {"metadata": {"uid": uid_of(dep), "resourceVersion": dep["metadata"]["resourceVersion"],
                                       "ownerReferences": [owner_ref(alive)]}}
    assert world.stored(SECRETS, "dep")["metadata"]["ownerReferences"] == [owner_ref(alive)]


async def test_dependent_whose_owners_all_exist_is_left_alone(world):
    a, b = world.create(CONFIG_MAPS, "a"), world.create(CONFIG_MAPS, "b")
    world.create(SECRETS, "dep", a, b)
    await world.drain()
    assert [a.verb for a in world.client.actions] == []  # owners observed: nothing to verify


async def test_dependent_created_after_its_owner_was_deleted_is_collected(world):
    owner = world.create(CONFIG_MAPS, "owner")
    await world.drain()
    await world.client.delete(CONFIG_MAPS, "owner", NS)
    await world.drain()
    assert world.gc.graph.node(uid_of(owner)) is None
    world.create(SECRETS, "late", owner)
    await world.drain()
    assert world.stored(SECRETS, "late") is None
    assert ("late", "Background") in world.deletes()


async def test_a_dependents_own_finalizers_choose_its_propagation_policy(world):
    world.create(SECRETS, "dep", gone_owner(), finalizers=["orphan"])
    await world.drain()
    assert world.deletes() == [("dep", "Orphan")]


async def test_chain_is_collected_link_by_link(world):
    a = world.create(CONFIG_MAPS, "a")
    b = world.create(CONFIG_MAPS, "b", a)
    world.create(CONFIG_MAPS, "c", b)
    await world.drain()
    await world.client.delete(CONFIG_MAPS, "a", NS)
    await world.drain()
    assert world.client.all(CONFIG_MAPS) == []
    assert world.deletes() == [("a", None), ("b", "Background"), ("c", "Background")]


async def test_foreground_deletes_dependents_then_removes_the_finalizer(world):
    owner = world.create(CONFIG_MAPS, "owner")
    world.create(SECRETS, "blocking", owner, block=True)
    world.create(SECRETS, "plain", owner)
    await world.drain()
    await world.client.delete(CONFIG_MAPS, "owner", NS, propagation_policy="Foreground")
    world.sync()
    assert world.gc.graph.node(uid_of(owner)).deleting_dependents
    await world.drain()
    assert world.client.all(SECRETS) == []
    assert sorted(world.deletes()[1:]) == [("blocking", "Background"), ("plain", "Background")]
    # the finalizer went last, with a resourceVersion precondition; the fake then deleted the owner
    last = world.client.actions_of("patch", "configmaps")[-1]
    assert last.name == "owner" and last.body["metadata"]["finalizers"] is None
    assert last.body["metadata"]["resourceVersion"]
    assert world.stored(CONFIG_MAPS, "owner") is None


async def test_foreground_owner_waits_while_a_blocking_dependent_remains(world):
    owner = world.create(CONFIG_MAPS, "owner")
    world.create(SECRETS, "slow", owner, block=True, finalizers=["example.com/hold"])
    await world.drain()
    await world.client.delete(CONFIG_MAPS, "owner", NS, propagation_policy="Foreground")
    await world.drain()
    slow = world.stored(SECRETS, "slow")
    assert slow["metadata"]["deletionTimestamp"]  # asked to go, but its own finalizer holds it
    assert world.stored(CONFIG_MAPS, "owner")["metadata"]["finalizers"] == ["foregroundDeletion"]
    await world.client.patch(SECRETS, "slow", {"metadata": {"finalizers": None}}, NS)
    await world.drain()
    assert world.stored(SECRETS, "slow") is None and world.stored(CONFIG_MAPS, "owner") is None


async def test_foreground_dependent_with_dependents_is_deleted_in_the_foreground(world):
    a = world.create(CONFIG_MAPS, "a")
    b = world.create(CONFIG_MAPS, "b", a, block=True)
    world.create(CONFIG_MAPS, "c", b, block=True)
    await world.drain()
    await world.client.delete(CONFIG_MAPS, "a", NS, propagation_policy="Foreground")
    await world.drain()
    assert world.client.all(CONFIG_MAPS) == []
    assert world.deletes() == [("a", "Foreground"), ("b", "Foreground"), ("c", "Background")]


async def test_dependent_with_another_owner_stops_referencing_a_foreground_owner(world):
    owner, other = world.create(CONFIG_MAPS, "owner"), world.create(CONFIG_MAPS, "other")
    world.create(SECRETS, "dep", owner, other, block=True)
    await world.drain()
    await world.client.delete(CONFIG_MAPS, "owner", NS, propagation_policy="Foreground")
    await world.drain()
    assert world.stored(CONFIG_MAPS, "owner") is None
    assert world.stored(SECRETS, "dep")["metadata"]["ownerReferences"] == [owner_ref(other, True)]


async def test_orphan_removes_references_then_the_finalizer(world):
    owner = world.create(CONFIG_MAPS, "owner")
    other = world.create(CONFIG_MAPS, "other")
    world.create(SECRETS, "d1", owner, block=True)
    world.create(SECRETS, "d2", owner, other)
    await world.drain()
    await world.client.delete(CONFIG_MAPS, "owner", NS, propagation_policy="Orphan")
    await world.drain()
    patches = [(a.resource, a.name) for a in world.client.actions_of("patch")]
    assert sorted(patches[:2]) == [("secrets", "d1"), ("secrets", "d2")]
    assert patches[2:] == [("configmaps", "owner")]
    assert world.stored(CONFIG_MAPS, "owner") is None
    assert "ownerReferences" not in world.stored(SECRETS, "d1")["metadata"]
    assert world.stored(SECRETS, "d2")["metadata"]["ownerReferences"] == [owner_ref(other)]
    assert world.client.actions_of("delete", "secrets") == []


async def test_orphan_failure_keeps_the_finalizer_and_retries(world):
    owner = world.create(CONFIG_MAPS, "owner")
    world.create(SECRETS, "d1", owner)
    world.sync()
    await world.client.delete(CONFIG_MAPS, "owner", NS, propagation_policy="Orphan")
    world.sync()
    world.client.fail("patch", "secrets", errors.internal_error("boom"))
    uid = await world.gc.orphan_queue.get()
    await world.gc.process_orphan(uid)
    world.gc.orphan_queue.done(uid)
    assert world.stored(CONFIG_MAPS, "owner")["metadata"]["finalizers"] == ["orphan"]
    assert world.gc.orphan_queue.num_requeues(uid) == 1
    await world.gc.attempt_to_orphan(uid)
    assert world.stored(CONFIG_MAPS, "owner") is None


async def test_virtual_owner_that_exists_is_polled_until_observed(world):
    owner = world.client.seed(CONFIG_MAPS, {"metadata": {"name": "owner", "namespace": NS}})
    world.create(SECRETS, "dep", owner)
    world.gc.graph.observe(world.stored(SECRETS, "dep"), SECRETS)  # the owner's informer is behind
    with pytest.raises(NotYetObserved):
        await world.gc.reconcile(uid_of(owner))
    await world.gc.process(uid_of(owner))
    assert world.gc.queue.num_requeues(uid_of(owner)) == 1  # rate limited, not forgotten
    world.gc.graph.observe(owner, CONFIG_MAPS)
    assert await world.gc.reconcile(uid_of(owner)) is None
    assert world.client.actions_of("delete") == []


async def test_conflicting_delete_is_retried_with_the_uid_alone_when_owners_did_not_change(world):
    world.create(SECRETS, "dep", gone_owner())
    world.sync()
    world.client.fail("delete", "secrets", errors.conflict("secrets", "dep", errors.OBJECT_MODIFIED))
    await world.drain()
    deletes = world.client.actions_of("delete", "secrets")
    assert [set(d.body["preconditions"]) for d in deletes] == [{"uid", "resourceVersion"}, {"uid"}]
    assert world.stored(SECRETS, "dep") is None


async def test_cluster_scoped_object_with_a_namespaced_owner_is_not_retried(world):
    world.create(NAMESPACES, "team", gone_owner())
    await world.drain()
    assert world.stored(NAMESPACES, "team") is not None
    assert world.client.actions_of("delete") == []


async def test_owner_of_an_unknown_kind_is_an_error_to_retry(world):
    dep = world.create(SECRETS, "dep", {"apiVersion": "example.com/v1", "kind": "Widget",
                                        "metadata": {"name": "w", "uid": "u-w"}})
    world.gc.graph.observe(dep, SECRETS)
    with pytest.raises(UnknownKind):
        await world.gc.reconcile(uid_of(dep))


async def test_item_gone_from_the_graph_is_skipped(world):
    assert await world.gc.reconcile("no-such-uid") is None
    await world.gc.attempt_to_orphan("no-such-uid")
    assert world.client.actions == []
