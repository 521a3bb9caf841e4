"""ReplicaSet controller: reconcile against fakes, asserting the API actions it takes."""

from __future__ import annotations

import asyncio

import pytest

from controllers.controller import ControllerContext, RetryError
from controllers.replicaset import ReplicaSetController, calculate_status
from machinery.client import PODS, REPLICA_SETS
from machinery.clock import FakeClock
from machinery.errors import StatusError
from machinery.meta import format_rfc3339, key_of
from tests.fakes import FakeClient, FakeInformers, FakeRecorder

NS = "default"


def make_rs(name="web", replicas=3, labels=None, **spec):
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": NS, "generation": 2},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
                 **spec},
    }


def make_pod(name, owner=None, labels=None, phase="Running", ready=True, node="n1", created="2026-01-01T00:00:00Z",
             ready_since="2026-01-01T00:00:00Z", **meta):
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": NS, "labels": labels or {"app": "web"},
                        "creationTimestamp": created, **meta},
           "spec": {"nodeName": node} if node else {},
           "status": {"phase": phase, "conditions": [
               {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ready_since}]}}
    if owner is not None:
        pod["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                               "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                                               "controller": True, "blockOwnerDeletion": True}]
    return pod


@pytest.fixture
def setup():
    clock = FakeClock()
    client = FakeClient(clock=clock)
    informers = FakeInformers()
    recorder = FakeRecorder()
    ctrl = ReplicaSetController(ControllerContext(client, informers, recorder, clock))
    return ctrl, client, informers, recorder


def seed_rs(client, informers, rs):
    stored = client.seed(REPLICA_SETS, rs)
    informers.add(REPLICA_SETS, stored)
    return stored


def seed_pods(client, informers, *pods):
    stored = [client.seed(PODS, p) for p in pods]
    informers.add(PODS, *stored)
    return stored


async def test_creates_missing_pods_with_controller_ref_and_template(setup):
    ctrl, client, informers, recorder = setup
    rs = seed_rs(client, informers, make_rs(replicas=3))
    await ctrl.reconcile(key_of(rs))
    creates = client.actions_of("create", "pods")
    assert len(creates) == 3
    body = creates[0].body
    assert body["metadata"]["generateName"] == "web-"
    assert body["metadata"]["labels"] == {"app": "web"}
    assert body["metadata"]["ownerReferences"] == [{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": rs["metadata"]["uid"],
        "controller": True, "blockOwnerDeletion": True}]
    assert body["spec"] == {"containers": [{"name": "c", "image": "i"}]}
    names = sorted(p["metadata"]["name"] for p in client.all(PODS))
    assert sorted(message for _, _, reason, message in recorder.events if reason == "SuccessfulCreate") == \
        [f"Created pod: {name}" for name in names]


async def test_expectations_prevent_double_creation_until_pods_are_observed(setup):
    ctrl, client, informers, _ = setup
    rs = seed_rs(client, informers, make_rs(replicas=2))
    await ctrl.reconcile(key_of(rs))
    informers.sync_from(client, REPLICA_SETS)
    await ctrl.reconcile(key_of(rs))  # the informer has not delivered the pods yet
    assert len(client.actions_of("create", "pods")) == 2
    for pod in client.all(PODS):  # the watch delivers them now
        informers.add(PODS, pod)
        ctrl.on_pod_add(pod)
    informers.sync_from(client, REPLICA_SETS)
    await ctrl.reconcile(key_of(rs))
    assert len(client.actions_of("create", "pods")) == 2


async def test_expectations_expire_after_five_minutes(setup):
    ctrl, client, informers, _ = setup
    rs = seed_rs(client, informers, make_rs(replicas=1))
    await ctrl.reconcile(key_of(rs))
    client.objects = {k: v for k, v in client.objects.items() if k[0] != "pods"}  # the creation was lost
    ctrl.clock.advance(301)
    informers.sync_from(client, REPLICA_SETS)
    await ctrl.reconcile(key_of(rs))
    assert len(client.actions_of("create", "pods")) == 2


async def test_slow_start_stops_after_first_failed_batch(setup):
    ctrl, client, informers, recorder = setup
    rs = seed_rs(client, informers, make_rs(replicas=10))
    forbidden = StatusError(403, "Forbidden", "pods is forbidden: exceeded quota")
    client.fail("create", "pods", forbidden)
    with pytest.raises(RetryError, match="exceeded quota"):  # retried with backoff, after the status write
        await ctrl.reconcile(key_of(rs))
    assert len(client.actions_of("create", "pods")) == 1  # batch of 1 failed: nothing more tried
    assert ("web", "Warning", "FailedCreate", "Error creating: pods is forbidden: exceeded quota") in recorder.events
    status = client.stored(REPLICA_SETS, NS, "web")["status"]
    assert status["conditions"][0]["type"] == "ReplicaFailure"
    assert status["conditions"][0]["reason"] == "FailedCreate"
    assert ctrl.expectations.satisfied(key_of(rs))  # the failed and skipped creations are not awaited


async def test_failed_creation_is_retried_with_backoff(setup):
    """syncReplicaSet returns manageReplicasErr: the key comes back after a backoff, even though the
    unchanged ReplicaFailure status produces no event (a quota raised later must be noticed)."""
    ctrl, client, informers, _ = setup
    rs = seed_rs(client, informers, make_rs(replicas=2))
    client.fail("create", "pods", StatusError(403, "Forbidden", "pods is forbidden: exceeded quota"))
    await ctrl.process(key_of(rs))
    assert ctrl.queue.num_requeues(key_of(rs)) == 1
    ctrl.clock.advance(1)
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(ctrl.queue) == 1  # back in the queue after the backoff
    key = await ctrl.queue.get()
    informers.sync_from(client, REPLICA_SETS)
    await ctrl.process(key)  # the quota allows it now
    ctrl.queue.done(key)
    assert len(client.all(PODS)) == 2
    assert ctrl.queue.num_requeues(key_of(rs)) == 0
    assert "conditions" not in client.stored(REPLICA_SETS, NS, "web")["status"]
    ctrl.queue.shutdown()


async def test_slow_start_batches_grow(setup):
    ctrl, client, informers, _ = setup
    rs = seed_rs(client, informers, make_rs(replicas=10))
    client.fail("create", "pods", StatusError(500, "InternalError", "boom"))
    # first batch (1) fails → 1 attempt. Without failure: 1 + 2 + 4 + 3 = 10 attempts.
    with pytest.raises(RetryError):
        await ctrl.reconcile(key_of(rs))
    ctrl.expectations.forget(key_of(rs))
    informers.sync_from(client, REPLICA_SETS)
    await ctrl.reconcile(key_of(rs))
    assert len(client.actions_of("create", "pods")) == 1 + 10


async def test_scale_down_deletes_in_preference_order(setup):
    ctrl, client, informers, _ = setup
    rs = seed_rs(client, informers, make_rs(replicas=2))
    seed_pods(client, informers,
              make_pod("ready-old", rs, created="2026-01-01T00:00:00Z"),
              make_pod("unassigned", rs, phase="Pending", ready=False, node=None),
              make_pod("notready", rs, ready=False),
              make_pod("ready-new", rs, created="2026-01-02T00:00:00Z"),
              make_pod("pending", rs, phase="Pending", ready=False))
    await ctrl.reconcile(key_of(rs))
    deleted = [a.name for a in client.actions_of("delete", "pods")]
    assert deleted == ["unassigned", "pending", "notready"]
    assert all(a.body["preconditions"]["uid"] for a in client.actions_of("delete", "pods"))


async def test_newer_ready_pod_deleted_before_older(setup):
    ctrl, client, informers, _ = setup
    rs = seed_rs(client, informers, make_rs(replicas=1))
    seed_pods(client, informers,
              make_pod("old", rs, created="2026-01-01T00:00:00Z", ready_since="2026-01-01T00:00:00Z"),
              make_pod("new", rs, created="2026-01-02T00:00:00Z", ready_since="2026-01-02T00:00:00Z"))
    await ctrl.reconcile(key_of(rs))
    assert [a.name for a in client.actions_of("delete", "pods")] == ["new"]


async def test_adopts_matching_orphans_and_releases_mismatched(setup):
    ctrl, client, informers, _ = setup
    rs = seed_rs(client, informers, make_rs(replicas=2))
    orphan, _ = seed_pods(client, informers, make_pod("orphan"),
                                   make_pod("mislabeled", rs, labels={"app": "other"}))
    await ctrl.reconcile(key_of(rs))
    patches = {a.name: a.body for a in client.actions_of("patch", "pods")}
    assert patches["orphan"]["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
    assert patches["orphan"]["metadata"]["uid"] == orphan["metadata"]["uid"]  # uid precondition
    assert patches["mislabeled"]["metadata"]["ownerReferences"] is None
    assert len(client.actions_of("create", "pods")) == 1  # 1 adopted, 1 to go


async def test_adoption_from_a_stale_cache_does_not_steal_a_pod_adopted_meanwhile(setup):
    """The merge patch replaces ownerReferences whole: without a resourceVersion precondition, adopting
    what the cache still shows as an orphan would silently drop another controller's reference."""
    ctrl, client, informers, _ = setup
    rs = seed_rs(client, informers, make_rs(replicas=1))
    other = seed_rs(client, informers, make_rs(name="other", replicas=1, labels={"app": "web"}))
    (orphan,) = seed_pods(client, informers, make_pod("orphan"))  # the cache keeps this copy
    ref = make_pod("x", other)["metadata"]["ownerReferences"]
    await client.patch(PODS, "orphan", {"metadata": {"ownerReferences": ref}}, NS)  # adopted by "other" live
    with pytest.raises(StatusError) as caught:
        await ctrl.reconcile(key_of(rs))
    assert caught.value.code == 409
    patch = client.actions_of("patch", "pods")[-1].body
    assert patch["metadata"]["resourceVersion"] == orphan["metadata"]["resourceVersion"]
    assert client.stored(PODS, NS, "orphan")["metadata"]["ownerReferences"] == ref  # still other's


async def test_does_not_adopt_when_owner_is_being_deleted(setup):
    ctrl, client, informers, _ = setup
    rs = seed_rs(client, informers, make_rs(replicas=2) | {})
    rs["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    informers.add(REPLICA_SETS, rs)
    seed_pods(client, informers, make_pod("orphan"))
    await ctrl.reconcile(key_of(rs))
    assert client.actions_of("patch", "pods") == []
    assert client.actions_of("create", "pods") == []


async def test_pods_of_another_controller_are_left_alone(setup):
    ctrl, client, informers, _ = setup
    rs = seed_rs(client, informers, make_rs(replicas=0))
    other = {"metadata": {"name": "other", "uid": "other-uid"}}
    seed_pods(client, informers, make_pod("theirs", other))
    await ctrl.reconcile(key_of(rs))
    assert client.actions_of("delete", "pods") == []
    assert client.actions_of("patch", "pods") == []


async def test_status_counts_ready_available_and_labels(setup):
    ctrl, client, informers, _ = setup
    clock = ctrl.clock
    now = format_rfc3339(clock.now())
    rs = seed_rs(client, informers, make_rs(replicas=4, minReadySeconds=10))
    seed_pods(client, informers,
              make_pod("a", rs, ready_since="2025-12-31T00:00:00Z"),
              make_pod("b", rs, ready_since=now),
              make_pod("c", rs, ready=False, labels={"app": "web", "extra": "x"}),
              make_pod("d", rs, deletionTimestamp=now))
    requeue = await ctrl.reconcile(key_of(rs))
    status = client.stored(REPLICA_SETS, NS, "web")["status"]
    assert status == {"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 2, "availableReplicas": 1,
                      "terminatingReplicas": 1, "observedGeneration": 2}
    assert requeue == 10.0  # check availability again once minReadySeconds passed
    assert len(client.actions_of("create", "pods")) == 1  # 3 active of 4: the terminating pod does not count


def test_fully_labeled_requires_every_template_label():
    rs = make_rs(replicas=1, labels={"app": "web"})
    rs["spec"]["template"]["metadata"]["labels"] = {"app": "web", "tier": "fe"}
    status = calculate_status(rs, [make_pod("a"), make_pod("b", labels={"app": "web", "tier": "fe"})], 0, None,
                              FakeClock().now())
    assert status["fullyLabeledReplicas"] == 1


async def test_no_status_write_when_unchanged(setup):
    ctrl, client, informers, _ = setup
    rs = seed_rs(client, informers, make_rs(replicas=1))
    seed_pods(client, informers, make_pod("a", rs))
    await ctrl.reconcile(key_of(rs))
    informers.add(REPLICA_SETS, client.stored(REPLICA_SETS, NS, "web"))
    before = len(client.actions)
    await ctrl.reconcile(key_of(rs))
    assert client.actions[before:] == []


async def test_deleted_replicaset_is_forgotten(setup):
    ctrl, client, _, _ = setup
    assert await ctrl.reconcile("default/gone") is None
    assert client.actions == []


async def test_pod_handlers_enqueue_owner_and_count_expectations(setup):
    ctrl, client, informers, _ = setup
    rs = seed_rs(client, informers, make_rs(replicas=1))
    ctrl.expectations.expect_creations(key_of(rs), 1)
    pod = make_pod("p", rs)
    ctrl.on_pod_add(pod)
    assert ctrl.expectations.satisfied(key_of(rs))
    assert len(ctrl.queue) == 1
    ctrl.expectations.expect_deletions(key_of(rs), ["default/p"])
    ctrl.on_pod_delete(pod)
    assert ctrl.expectations.satisfied(key_of(rs))


async def test_orphan_pod_enqueues_matching_replicasets(setup):
    ctrl, client, informers, _ = setup
    seed_rs(client, informers, make_rs("web"))
    seed_rs(client, informers, make_rs("db", labels={"app": "db"}))
    ctrl.on_pod_add(make_pod("orphan"))
    assert await ctrl.queue.get() == "default/web"
    assert len(ctrl.queue) == 0
