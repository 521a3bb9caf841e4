"""Disruption controller: PodDisruptionBudget status computed against fakes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from controllers.controller import ControllerContext
from controllers.disruption import (
    POD_KEY_PREFIX,
    DisruptionController,
    SyncError,
    budget_status,
    scaled_value,
    set_condition,
    stale_disruption_wait,
)
from machinery.client import DEPLOYMENTS, POD_DISRUPTION_BUDGETS, PODS, REPLICA_SETS, STATEFUL_SETS
from machinery.clock import FakeClock
from machinery.errors import conflict
from machinery.meta import format_rfc3339
from tests.fakes import FakeClient, FakeInformers, FakeRecorder

NS = "default"


def make_pdb(name="web-pdb", labels=None, generation=1, **spec):
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": NS, "generation": generation},
            "spec": {"selector": {"matchLabels": labels or {"app": "web"}}, **spec}}


def make_pod(name, owner=None, ready=True, labels=None, deleting=False, conditions=None):
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": NS, "labels": labels or {"app": "web"}},
           "spec": {"nodeName": "n1"},
           "status": {"phase": "Running", "conditions": conditions or [
               {"type": "Ready", "status": "True" if ready else "False",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}
    if deleting:
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    if owner is not None:
        pod["metadata"]["ownerReferences"] = [ref_to(owner)]
    return pod


def ref_to(owner):
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True}


def make_workload(kind, name, replicas, uid, owner=None):
    api_version = "apps/v1"
    obj = {"apiVersion": api_version, "kind": kind,
           "metadata": {"name": name, "namespace": NS, "uid": uid}, "spec": {"replicas": replicas}}
    if owner is not None:
        obj["metadata"]["ownerReferences"] = [ref_to(owner)]
    return obj


@pytest.fixture
def setup():
    clock = FakeClock()
    client = FakeClient(clock=clock)
    informers = FakeInformers()
    recorder = FakeRecorder()
    ctrl = DisruptionController(ControllerContext(client, informers, recorder, clock))
    return ctrl, client, informers, recorder


def seed_pdb(client, informers, pdb):
    stored = client.seed(POD_DISRUPTION_BUDGETS, pdb)
    informers.add(POD_DISRUPTION_BUDGETS, stored)
    return stored


def status_of(client, name="web-pdb"):
    return client.stored(POD_DISRUPTION_BUDGETS, NS, name)["status"]


def condition_of(status):
    (cond,) = [c for c in status["conditions"] if c["type"] == "DisruptionAllowed"]
    return cond


async def test_min_available_int_counts_pods(setup):
    ctrl, client, informers, _ = setup
    pdb = seed_pdb(client, informers, make_pdb(minAvailable=2))
    informers.add(PODS, make_pod("a"), make_pod("b"), make_pod("c", ready=False),
                  make_pod("other", labels={"app": "db"}))
    assert await ctrl.reconcile(f"{NS}/{pdb['metadata']['name']}") is None
    status = status_of(client)
    assert (status["expectedPods"], status["desiredHealthy"], status["currentHealthy"],
            status["disruptionsAllowed"], status["observedGeneration"]) == (3, 2, 2, 0, 1)
    assert condition_of(status)["status"] == "False"
    assert condition_of(status)["reason"] == "InsufficientPods"


async def test_disruptions_allowed_and_sufficient_pods(setup):
    ctrl, client, informers, _ = setup
    seed_pdb(client, informers, make_pdb(minAvailable=2))
    informers.add(PODS, make_pod("a"), make_pod("b"), make_pod("c"))
    await ctrl.reconcile(f"{NS}/web-pdb")
    status = status_of(client)
    assert status["disruptionsAllowed"] == 1
    cond = condition_of(status)
    assert (cond["status"], cond["reason"], cond["observedGeneration"]) == ("True", "SufficientPods", 1)
    assert cond["lastTransitionTime"]


async def test_max_unavailable_uses_deployment_scale(setup):
    ctrl, client, informers, _ = setup
    deployment = make_workload("Deployment", "web", 4, "dep-uid")
    rs = make_workload("ReplicaSet", "web-abc", 2, "rs-uid", owner=deployment)  # the Deployment's scale wins
    informers.add(DEPLOYMENTS, deployment)
    informers.add(REPLICA_SETS, rs)
    informers.add(PODS, *(make_pod(f"web-{i}", owner=rs) for i in range(3)))
    seed_pdb(client, informers, make_pdb(maxUnavailable="25%"))
    await ctrl.reconcile(f"{NS}/web-pdb")
    status = status_of(client)
    # expected 4, maxUnavailable ceil(25% of 4) = 1, desired 3, healthy 3 → no disruption allowed
    assert (status["expectedPods"], status["desiredHealthy"], status["currentHealthy"],
            status["disruptionsAllowed"]) == (4, 3, 3, 0)


async def test_min_available_percentage_sums_controllers_rounding_up(setup):
    ctrl, client, informers, recorder = setup
    rs = make_workload("ReplicaSet", "web-rs", 3, "rs-uid")
    sts = make_workload("StatefulSet", "web-sts", 2, "sts-uid")
    informers.add(REPLICA_SETS, rs)
    informers.add(STATEFUL_SETS, sts)
    informers.add(PODS, make_pod("r1", owner=rs), make_pod("r2", owner=rs), make_pod("r3", owner=rs),
                  make_pod("s0", owner=sts), make_pod("s1", owner=sts), make_pod("bare"))
    seed_pdb(client, informers, make_pdb(minAvailable="50%"))
    await ctrl.reconcile(f"{NS}/web-pdb")
    status = status_of(client)
    assert (status["expectedPods"], status["desiredHealthy"], status["currentHealthy"],
            status["disruptionsAllowed"]) == (5, 3, 6, 3)
    assert "UnmanagedPods" in recorder.reasons()


async def test_unknown_controller_writes_fail_safe_status(setup):
    ctrl, client, informers, _ = setup
    seed_pdb(client, informers, {**make_pdb(maxUnavailable=1), "status": {"disruptionsAllowed": 2}})
    ghost = make_workload("ReplicaSet", "gone", 3, "gone-uid")  # not in the cache
    informers.add(PODS, make_pod("a", owner=ghost))
    with pytest.raises(SyncError):
        await ctrl.reconcile(f"{NS}/web-pdb")
    status = status_of(client)
    assert status["disruptionsAllowed"] == 0
    cond = condition_of(status)
    assert (cond["status"], cond["reason"]) == ("False", "SyncFailed")
    assert 'found no controllers for pod "a"' in cond["message"]


async def test_bad_percentage_fails_sync():
    with pytest.raises(SyncError):
        scaled_value("abc", 4)
    assert scaled_value("34%", 3) == 2
    assert scaled_value(5, 3) == 5


async def test_no_pods_event_and_zero_expected_means_no_disruptions(setup):
    ctrl, client, informers, recorder = setup
    seed_pdb(client, informers, make_pdb(minAvailable=0))
    await ctrl.reconcile(f"{NS}/web-pdb")
    status = status_of(client)
    assert status["expectedPods"] == 0
    assert status["disruptionsAllowed"] == 0
    assert "NoPods" in recorder.reasons()


async def test_null_selector_selects_nothing_empty_selects_everything(setup):
    ctrl, client, informers, _ = setup
    informers.add(PODS, make_pod("a"), make_pod("b", labels={"x": "y"}))
    nothing = make_pdb("nothing", minAvailable=0)
    nothing["spec"]["selector"] = None
    everything = make_pdb("everything", minAvailable=0)
    everything["spec"]["selector"] = {}
    seed_pdb(client, informers, nothing)
    seed_pdb(client, informers, everything)
    await ctrl.reconcile(f"{NS}/nothing")
    await ctrl.reconcile(f"{NS}/everything")
    assert status_of(client, "nothing")["expectedPods"] == 0
    assert status_of(client, "everything")["expectedPods"] == 2
    assert status_of(client, "everything")["disruptionsAllowed"] == 2


async def test_disrupted_pods_are_not_healthy_and_are_rechecked(setup):
    ctrl, client, informers, _ = setup
    now = ctrl.clock.now()
    pdb = make_pdb(minAvailable=1)
    pdb["status"] = {"disruptedPods": {"a": format_rfc3339(now - timedelta(seconds=30)),
                                       "b": format_rfc3339(now - timedelta(minutes=5)),  # expired
                                       "gone": format_rfc3339(now)}}
    seed_pdb(client, informers, pdb)
    informers.add(PODS, make_pod("a"), make_pod("b"), make_pod("c"))
    requeue = await ctrl.reconcile(f"{NS}/web-pdb")
    status = status_of(client)
    assert set(status["disruptedPods"]) == {"a"}
    assert status["currentHealthy"] == 2  # b and c
    assert status["disruptionsAllowed"] == 1
    assert requeue == pytest.approx(90.0)
    assert "NotDeleted" in ctrl.recorder.reasons()


async def test_deleting_pod_drops_its_disrupted_entry(setup):
    ctrl, client, informers, _ = setup
    pdb = make_pdb(minAvailable=1)
    pdb["status"] = {"disruptedPods": {"a": format_rfc3339(ctrl.clock.now())}}
    seed_pdb(client, informers, pdb)
    informers.add(PODS, make_pod("a", deleting=True), make_pod("b"))
    assert await ctrl.reconcile(f"{NS}/web-pdb") is None
    status = status_of(client)
    assert "disruptedPods" not in status
    assert (status["expectedPods"], status["currentHealthy"], status["disruptionsAllowed"]) == (2, 1, 0)


async def test_unchanged_status_is_not_rewritten(setup):
    ctrl, client, informers, _ = setup
    seed_pdb(client, informers, make_pdb(minAvailable=1))
    informers.add(PODS, make_pod("a"), make_pod("b"))
    await ctrl.reconcile(f"{NS}/web-pdb")
    informers.sync_from(client, POD_DISRUPTION_BUDGETS)
    writes = len(client.actions_of("update", "poddisruptionbudgets"))
    ctrl.clock.advance(60)
    await ctrl.reconcile(f"{NS}/web-pdb")
    assert len(client.actions_of("update", "poddisruptionbudgets")) == writes == 1


async def test_conflict_is_retried_without_fail_safe(setup):
    ctrl, client, informers, _ = setup
    seed_pdb(client, informers, make_pdb(minAvailable=1))
    informers.add(PODS, make_pod("a"), make_pod("b"))
    client.fail("update", "poddisruptionbudgets", conflict("poddisruptionbudgets", "web-pdb", "changed", "policy"))
    with pytest.raises(Exception):  # noqa: B017 - the StatusError is what the queue retries on
        await ctrl.reconcile(f"{NS}/web-pdb")
    assert len(client.actions_of("update", "poddisruptionbudgets")) == 1  # no fail-safe write after it


async def test_deleted_budget_is_forgotten(setup):
    ctrl, client, _, _ = setup
    assert await ctrl.reconcile(f"{NS}/missing") is None
    assert client.actions == []


async def test_pod_events_enqueue_matching_budget(setup):
    ctrl, client, informers, _ = setup
    seed_pdb(client, informers, make_pdb(minAvailable=1))
    ctrl.on_pod_add(make_pod("a"))
    ctrl.on_pod_add(make_pod("x", labels={"app": "db"}))
    assert len(ctrl.queue) == 1
    assert await ctrl.queue.get() == f"{NS}/web-pdb"


def test_condition_keeps_transition_time_while_status_unchanged(setup):
    ctrl = setup[0]
    now = ctrl.clock.now()
    first = set_condition([], {"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods"}, now)
    later = now + timedelta(minutes=1)
    same = set_condition(first, {"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods"}, later)
    flipped = set_condition(first, {"type": "DisruptionAllowed", "status": "False", "reason": "X"}, later)
    assert same[0]["lastTransitionTime"] == first[0]["lastTransitionTime"]
    assert flipped[0]["lastTransitionTime"] != first[0]["lastTransitionTime"]


def test_budget_status_floors_disruptions_at_zero(setup):
    now = setup[0].clock.now()
    status = budget_status(make_pdb(generation=3), healthy=1, desired=3, expected=3, disrupted={}, now=now)
    assert status["disruptionsAllowed"] == 0
    assert status["observedGeneration"] == 3


async def test_stale_disruption_target_condition_is_reset(setup):
    ctrl, client, informers, _ = setup
    now = ctrl.clock.now()
    conditions = [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                  {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                   "lastTransitionTime": format_rfc3339(now - timedelta(seconds=30))}]
    pod = client.seed(PODS, make_pod("a", conditions=conditions))
    informers.add(PODS, pod)
    assert stale_disruption_wait(pod, now) == pytest.approx(90.0)
    assert await ctrl.reconcile(f"{POD_KEY_PREFIX}{NS}/a") == pytest.approx(90.0)
    assert client.actions_of("patch", "pods") == []
    ctrl.clock.advance(91)
    assert await ctrl.reconcile(f"{POD_KEY_PREFIX}{NS}/a") is None
    (patch,) = client.actions_of("patch", "pods")
    assert patch.subresource == "status"
    assert patch.body["status"]["conditions"][0]["type"] == "DisruptionTarget"
    assert patch.body["status"]["conditions"][0]["status"] == "False"


def test_deleting_pod_has_no_stale_disruption(setup):
    now = setup[0].clock.now()
    conditions = [{"type": "DisruptionTarget", "status": "True", "lastTransitionTime": format_rfc3339(now)}]
    assert stale_disruption_wait(make_pod("a", deleting=True, conditions=conditions), now) is None
    assert stale_disruption_wait(make_pod("a"), now) is None


async def test_max_unavailable_int_on_statefulset_missing_pods(setup):
    ctrl, client, informers, _ = setup
    sts = make_workload("StatefulSet", "db", 3, "sts-uid")
    informers.add(STATEFUL_SETS, sts)
    informers.add(PODS, make_pod("db-0", owner=sts), make_pod("db-1", owner=sts))  # db-2 not created yet
    seed_pdb(client, informers, make_pdb(maxUnavailable=1))
    await ctrl.reconcile(f"{NS}/web-pdb")
    status = status_of(client)
    assert (status["expectedPods"], status["desiredHealthy"], status["currentHealthy"],
            status["disruptionsAllowed"]) == (3, 2, 2, 0)


async def test_relabelled_pod_enqueues_old_and_new_budget(setup):
    ctrl, client, informers, _ = setup
    seed_pdb(client, informers, make_pdb("web-pdb", labels={"app": "web"}, minAvailable=1))
    seed_pdb(client, informers, make_pdb("db-pdb", labels={"app": "db"}, minAvailable=1))
    ctrl.on_pod_update(make_pod("a", labels={"app": "web"}), make_pod("a", labels={"app": "db"}))
    keys = {await ctrl.queue.get(), await ctrl.queue.get()}
    assert keys == {f"{NS}/web-pdb", f"{NS}/db-pdb"}


async def test_pod_with_disruption_target_is_checked_later(setup):
    ctrl = setup[0]
    now = ctrl.clock.now()
    conditions = [{"type": "DisruptionTarget", "status": "True", "lastTransitionTime": format_rfc3339(now)}]
    ctrl.on_pod_add(make_pod("a", conditions=conditions))
    assert len(ctrl.queue) == 0  # not yet: after the stale timeout
    ctrl.clock.advance(121)
    await asyncio.sleep(0)
    assert await asyncio.wait_for(ctrl.queue.get(), 1) == f"{POD_KEY_PREFIX}{NS}/a"
