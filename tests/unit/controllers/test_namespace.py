"""Namespace controller: deletion passes against a fake cluster, asserting the actions and the conditions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from controllers.controller import ControllerContext
from controllers.namespace import (
    CONDITION_TYPES,
    DELETION_DELAY,
    ContentReport,
    NamespaceController,
    NamespaceDeletionError,
    desired_conditions,
    merge_conditions,
)
from machinery import errors
from machinery.client import CONFIG_MAPS, NAMESPACES, NODES, PODS, SECRETS, Resource
from machinery.clock import FakeClock
from machinery.meta import deep_copy, format_rfc3339, name_of, namespace_of
from tests.fakes import Action, FakeClient, FakeInformers, FakeRecorder

NS = "doomed"
ALL = frozenset({"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"})
WIDGETS = Resource("example.com", "v1", "widgets", "Widget", verbs=ALL - {"deletecollection"})
BINDINGS = Resource("", "v1", "bindings", "Binding", verbs=frozenset({"create"}))
CLUSTER_RESOURCES = [
    Resource("", "v1", "namespaces", "Namespace", namespaced=False, verbs=ALL - {"deletecollection"}),
    Resource("", "v1", "nodes", "Node", namespaced=False, verbs=ALL),
]
NAMESPACED_RESOURCES = [
    Resource("", "v1", "pods", "Pod", verbs=ALL),
    Resource("", "v1", "configmaps", "ConfigMap", verbs=ALL),
    Resource("", "v1", "secrets", "Secret", verbs=ALL),
    BINDINGS,
    WIDGETS,
]


@dataclass
class ClusterFake(FakeClient):
    """FakeClient plus what the namespace controller relies on from the API server.

    Aggregated discovery of ``resources``; ``deletecollection`` that, like the server, only marks
    objects with finalizers and pods bound to a node (graceful deletion); namespaces kept while
    ``spec.finalizers`` is not empty.
    """

    resources: list[Resource] = field(default_factory=lambda: CLUSTER_RESOURCES + NAMESPACED_RESOURCES)
    discovery_failures: dict[str, errors.StatusError] = field(default_factory=dict)

    async def get_json(self, path: str, *, accept: str | None = None) -> dict:
        self.actions.append(Action("get", "discovery", "", path))
        if path in self.discovery_failures:
            raise self.discovery_failures[path]
        groups: dict[str, list[dict]] = {}
        for r in self.resources:
            if (r.group == "") == (path == "/api"):
                groups.setdefault(r.group, []).append({
                    "resource": r.plural, "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                    "scope": "Namespaced" if r.namespaced else "Cluster", "verbs": sorted(r.verbs)})
        return {"kind": "APIGroupDiscoveryList", "items": [
            {"metadata": {"name": g} if g else {}, "versions": [{"version": "v1", "resources": res,
                                                                  "freshness": "Current"}]}
            for g, res in groups.items()]}

    async def delete_collection(self, resource: Resource, namespace: str | None = None, *,
                                propagation_policy: str | None = None, **_) -> dict:
        self._record("deletecollection", resource, namespace, "", body={"propagationPolicy": propagation_policy})
        for obj in self.all(resource, namespace):
            key = self._key(resource, namespace_of(obj), name_of(obj))
            graceful = resource.plural == "pods" and (obj.get("spec") or {}).get("nodeName")
            if obj["metadata"].get("finalizers") or graceful:
                obj["metadata"].setdefault("deletionTimestamp", format_rfc3339(self.clock.now()))
            else:
                del self.objects[key]
        return {"kind": resource.kind + "List", "items": []}

    def _store_update(self, resource: Resource, current: dict, new: dict) -> dict:
        if resource.plural == "namespaces" and (new.get("spec") or {}).get("finalizers"):
            new = {**new, "metadata": {**new["metadata"], "finalizers": ["held-by-spec-finalizers"]}}
            stored = super()._store_update(resource, current, new)
            stored["metadata"].pop("finalizers")
            self.objects[self._key(resource, "", name_of(stored))]["metadata"].pop("finalizers")
            return stored
        return super()._store_update(resource, current, new)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def client(clock):
    return ClusterFake(clock=clock)


@pytest.fixture
def ctrl(client, clock):
    return NamespaceController(ControllerContext(client, FakeInformers(), FakeRecorder(), clock))


def seed_namespace(client, name=NS, deleting=True, finalizers=("kubernetes",), phase=None) -> dict:
    meta = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = format_rfc3339(client.clock.now())
    ns = {"metadata": meta, "spec": {"finalizers": list(finalizers)},
          "status": {"phase": phase or ("Terminating" if deleting else "Active")}}
    return client.seed(NAMESPACES, ns)


def seed(client, resource, name, namespace=NS, **extra) -> dict:
    obj = {"metadata": {"name": name, "namespace": namespace, **extra.pop("metadata", {})}, **extra}
    return client.seed(resource, obj)


def conditions(client, name=NS) -> dict[str, tuple[str, str, str]]:
    ns = client.stored(NAMESPACES, None, name)
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in ns["status"].get("conditions", [])}


def content_actions(client) -> list[Action]:
    return [a for a in client.actions if a.resource not in ("namespaces", "discovery")]


async def test_a_namespace_not_being_deleted_is_left_alone(ctrl, client):
    seed_namespace(client, deleting=False)
    seed(client, CONFIG_MAPS, "keep")
    assert await ctrl.reconcile(NS) is None
    assert [a.verb for a in client.actions] == ["get"]
    assert client.stored(CONFIG_MAPS, NS, "keep") is not None


async def test_a_namespace_that_is_gone_is_done(ctrl, client):
    assert await ctrl.reconcile(NS) is None
    assert client.actions_of("update") == []


async def test_an_already_finalized_namespace_is_not_emptied_again(ctrl, client):
    seed_namespace(client, finalizers=())
    seed(client, CONFIG_MAPS, "cm", metadata={"finalizers": ["example.com/hold"]})
    assert await ctrl.reconcile(NS) is None
    assert content_actions(client) == []


async def test_deletes_every_deletable_namespaced_resource_then_finalizes(ctrl, client):
    seed_namespace(client, finalizers=("kubernetes", "example.com/other"))
    seed(client, PODS, "unscheduled", spec={"terminationGracePeriodSeconds": 30})
    seed(client, CONFIG_MAPS, "cm")
    seed(client, SECRETS, "s1")
    seed(client, SECRETS, "s2")
    seed(client, WIDGETS, "w1")
    seed(client, CONFIG_MAPS, "elsewhere", namespace="other")
    seed(client, NODES, "n1")

    assert await ctrl.reconcile(NS) is None

    collections = client.actions_of("deletecollection")
    assert sorted(a.resource for a in collections) == ["configmaps", "pods", "secrets"]
    assert {a.namespace for a in collections} == {NS}
    assert all(a.body == {"propagationPolicy": "Background"} for a in collections)
    # widgets have no deletecollection: listed and deleted one by one, in the background too
    assert [(a.name, a.body["propagationPolicy"]) for a in client.actions_of("delete", "widgets")] == [
        ("w1", "Background")]
    # bindings (create only) and cluster-scoped resources are not touched
    assert not [a for a in client.actions if a.resource in ("bindings", "nodes")]
    assert client.all(CONFIG_MAPS, NS) == client.all(SECRETS, NS) == client.all(PODS, NS) == []
    assert client.stored(CONFIG_MAPS, "other", "elsewhere") is not None

    [finalize] = [a for a in client.actions if a.subresource == "finalize"]
    assert finalize.name == NS and finalize.body["spec"]["finalizers"] == ["example.com/other"]
    ns = client.stored(NAMESPACES, None, NS)
    assert ns["spec"]["finalizers"] == ["example.com/other"]  # still held by the other spec finalizer
    assert conditions(client) == {
        "NamespaceDeletionDiscoveryFailure": ("False", "ResourcesDiscovered", "All resources successfully discovered"),
        "NamespaceDeletionGroupVersionParsingFailure": (
            "False", "ParsedGroupVersions", "All legacy kube types successfully parsed"),
        "NamespaceDeletionContentFailure": (
            "False", "ContentDeleted", "All content successfully deleted, may be waiting on finalization"),
        "NamespaceContentRemaining": ("False", "ContentRemoved", "All content successfully removed"),
        "NamespaceFinalizersRemaining": ("False", "ContentHasNoFinalizers",
                                         "All content-preserving finalizers finished"),
    }
    assert [c["type"] for c in ns["status"]["conditions"]] == list(CONDITION_TYPES)


async def test_the_namespace_is_gone_once_finalized_without_other_finalizers(ctrl, client):
    seed_namespace(client)
    seed(client, CONFIG_MAPS, "cm")
    assert await ctrl.reconcile(NS) is None
    assert client.stored(NAMESPACES, None, NS) is None
    assert [a.body["spec"]["finalizers"] for a in client.actions if a.subresource == "finalize"] == [[]]


async def test_content_held_by_finalizers_keeps_the_namespace_and_is_reported(ctrl, client):
    seed_namespace(client)
    seed(client, CONFIG_MAPS, "held", metadata={"finalizers": ["example.com/foo"]})
    seed(client, CONFIG_MAPS, "gone")

    assert await ctrl.reconcile(NS) == 2  # FINALIZER_ESTIMATE_SECONDS // 2 + 1
    assert not [a for a in client.actions if a.subresource == "finalize"]
    found = conditions(client)
    assert found["NamespaceContentRemaining"] == (
        "True", "SomeResourcesRemain", "Some resources are remaining: configmaps. has 1 resource instances")
    assert found["NamespaceFinalizersRemaining"] == (
        "True", "SomeFinalizersRemain",
        "Some content in the namespace has finalizers remaining: example.com/foo in 1 resource instances")
    assert found["NamespaceDeletionContentFailure"][0] == "False"

    # nothing changed: the conditions are not written again
    client.actions.clear()
    assert await ctrl.reconcile(NS) == 2
    assert [a for a in client.actions if a.subresource == "status"] == []

    # the finalizer goes: the next pass finds nothing and finalizes
    await client.patch(CONFIG_MAPS, "held", {"metadata": {"finalizers": None}}, NS)
    client.actions.clear()
    assert await ctrl.reconcile(NS) is None
    assert [a.subresource for a in client.actions_of("update", "namespaces")] == ["status", "finalize"]
    assert client.stored(NAMESPACES, None, NS) is None


async def test_pods_in_graceful_termination_are_waited_for_then_reported_as_a_failure(ctrl, client, clock):
    seed_namespace(client)
    seed(client, PODS, "bound", spec={"nodeName": "n1", "terminationGracePeriodSeconds": 30},
         status={"phase": "Running"})
    seed(client, PODS, "done", spec={"nodeName": "n1", "terminationGracePeriodSeconds": 600},
         status={"phase": "Succeeded"}, metadata={"finalizers": ["example.com/keep"]})

    # finished pods do not count towards the estimate: 30 s, looked at again after 30 // 2 + 1
    assert await ctrl.reconcile(NS) == 16
    found = conditions(client)
    assert found["NamespaceContentRemaining"] == (
        "True", "SomeResourcesRemain", "Some resources are remaining: pods. has 2 resource instances")
    assert found["NamespaceFinalizersRemaining"][2].endswith("example.com/keep in 1 resource instances")

    clock.advance(20)
    assert await ctrl.reconcile(NS) == 6  # 10 s of the grace period left

    # the grace period has passed and the pods are still there (no kubelet confirmed): a failure
    await client.patch(PODS, "done", {"metadata": {"finalizers": None}}, NS)
    clock.advance(15)
    with pytest.raises(NamespaceDeletionError):
        await ctrl.reconcile(NS)
    found = conditions(client)
    assert found["NamespaceDeletionContentFailure"] == (
        "True", "ContentDeletionFailed", "Failed to delete all resource types, 1 remaining: unexpected items still "
        f"remain in namespace: {NS} for gvr: /v1, Resource=pods")
    assert found["NamespaceContentRemaining"][2] == "Some resources are remaining: pods. has 1 resource instances"
    assert found["NamespaceFinalizersRemaining"][0] == "False"
    assert not [a for a in client.actions if a.subresource == "finalize"]


async def test_a_failed_deletion_is_reported_and_retried_while_the_rest_goes_on(ctrl, client):
    seed_namespace(client)
    seed(client, SECRETS, "s")
    seed(client, CONFIG_MAPS, "cm")
    client.fail("deletecollection", "secrets", errors.internal_error("etcd is on fire"))

    with pytest.raises(NamespaceDeletionError):
        await ctrl.reconcile(NS)
    assert client.all(CONFIG_MAPS, NS) == []
    assert client.stored(SECRETS, NS, "s") is not None
    assert conditions(client)["NamespaceDeletionContentFailure"] == (
        "True", "ContentDeletionFailed",
        "Failed to delete all resource types, 1 remaining: Internal error occurred: etcd is on fire")
    assert not [a for a in client.actions if a.subresource == "finalize"]

    # the next pass succeeds and flips the condition back
    assert await ctrl.reconcile(NS) is None
    assert client.stored(NAMESPACES, None, NS) is None


async def test_discovery_failure_is_reported_and_blocks_finalizing(ctrl, client):
    seed_namespace(client)
    seed(client, CONFIG_MAPS, "cm")
    seed(client, WIDGETS, "w")
    client.discovery_failures["/apis"] = errors.service_unavailable("the server is currently unable to handle it")

    with pytest.raises(NamespaceDeletionError):
        await ctrl.reconcile(NS)
    assert client.all(CONFIG_MAPS, NS) == []  # what was discovered is still deleted
    assert client.stored(WIDGETS, NS, "w") is not None
    status, reason, message = conditions(client)["NamespaceDeletionDiscoveryFailure"]
    assert (status, reason) == ("True", "DiscoveryFailed")
    assert message.startswith("Discovery failed for some groups, 1 failing: ")
    assert "the server is currently unable to handle it" in message
    assert not [a for a in client.actions if a.subresource == "finalize"]


async def test_phase_is_set_to_terminating_when_missing(ctrl, client):
    seed_namespace(client, phase="Active")
    seed(client, CONFIG_MAPS, "held", metadata={"finalizers": ["example.com/foo"]})
    await ctrl.reconcile(NS)
    first_status = client.actions_of("update", "namespaces")[0]
    assert first_status.subresource == "status" and first_status.body["status"]["phase"] == "Terminating"


async def test_only_namespaces_being_deleted_are_queued_after_a_short_delay(ctrl, clock):
    live = {"metadata": {"name": "live"}, "status": {"phase": "Active"}}
    dying = {"metadata": {"name": "dying", "deletionTimestamp": "2026-01-01T00:00:00Z"},
             "status": {"phase": "Terminating"}}
    ctrl.on_namespace_add(live)
    ctrl.on_namespace_update(live, deep_copy(live))
    ctrl.on_namespace_update(live, dying)
    assert len(ctrl.queue) == 0
    clock.advance(DELETION_DELAY)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(ctrl.queue) == 1
    assert await ctrl.queue.get() == "dying"


def test_conditions_keep_their_transition_time_unless_the_status_flips():
    report = ContentReport(estimate=2)
    report.remaining["configmaps."] = 3
    report.finalizers["example.com/foo"] = 3
    first, changed = merge_conditions([{"type": "Other", "status": "True"}], desired_conditions(report), "t1")
    assert changed and first[0] == {"type": "Other", "status": "True"}
    assert {c["lastTransitionTime"] for c in first[1:]} == {"t1"}

    report.remaining["configmaps."] = 1  # same status, new message
    second, changed = merge_conditions(first, desired_conditions(report), "t2")
    remaining = next(c for c in second if c["type"] == "NamespaceContentRemaining")
    assert changed and remaining["lastTransitionTime"] == "t1"
    assert remaining["message"] == "Some resources are remaining: configmaps. has 1 resource instances"

    third, changed = merge_conditions(second, desired_conditions(ContentReport()), "t3")
    remaining = next(c for c in third if c["type"] == "NamespaceContentRemaining")
    assert changed and remaining["lastTransitionTime"] == "t3" and remaining["status"] == "False"
    assert merge_conditions(third, desired_conditions(ContentReport()), "t4") == (third, False)


def test_remaining_and_finalizer_messages_are_sorted_and_summed():
    report = ContentReport()
    report.remaining.update({"pods.": 3, "deployments.apps": 1})
    report.finalizers.update({"z.example/b": 1, "a.example/a": 2})
    desired = desired_conditions(report)
    assert desired["NamespaceContentRemaining"][2] == (
        "Some resources are remaining: deployments.apps has 1 resource instances, pods. has 3 resource instances")
    assert desired["NamespaceFinalizersRemaining"][2] == (
        "Some content in the namespace has finalizers remaining: a.example/a in 2 resource instances, "
        "z.example/b in 1 resource instances")
