"""DaemonSet controller: placement rules, reconcile against fakes, rolling updates and revisions."""

from __future__ import annotations

import pytest

from controllers.controller import ControllerContext, RetryError
from controllers.daemonset import DaemonSetController
from controllers.daemonset.util import (
    REVISION_HASH_LABEL,
    add_daemon_tolerations,
    node_should_run_daemon_pod,
    pin_to_node,
    surge_and_unavailable,
    target_node_name,
)
from machinery import errors
from machinery.client import NODES, PODS
from machinery.client.resources import CONTROLLER_REVISIONS, DAEMON_SETS
from machinery.clock import FakeClock
from machinery.meta import deep_copy, format_rfc3339, labels_of, name_of
from tests.fakes import FakeClient, FakeInformers, FakeRecorder

NS = "default"
KEY = f"{NS}/agent"


def make_ds(name="agent", image="agent:1", strategy=None, **spec):
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "c", "image": image}], **spec.pop("pod", {})}},
                 "updateStrategy": strategy or {"type": "RollingUpdate",
                                                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                 **spec},
    }


def make_node(name, labels=None, taints=None, unschedulable=False):
    spec = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}}, "spec": spec}


class Harness:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.client = FakeClient(clock=self.clock)
        self.informers = FakeInformers()
        self.recorder = FakeRecorder()
        self.ctrl = DaemonSetController(ControllerContext(self.client, self.informers, self.recorder, self.clock))

    def seed(self, resource, *objs):
        for obj in objs:
            self.client.seed(resource, obj)
        self.sync()

    def sync(self):
        """What the watches would deliver; our own writes are then observed (expectations forgotten)."""
        self.informers.sync_from(self.client, DAEMON_SETS, PODS, NODES, CONTROLLER_REVISIONS)
        self.ctrl.expectations.forget(KEY)

    async def reconcile(self):
        result = await self.ctrl.reconcile(KEY)
        self.sync()
        return result

    def pods(self):
        return sorted(self.client.all(PODS, NS), key=lambda p: (target_node_name(p), name_of(p)))

    def pods_by_node(self):
        return {target_node_name(p): p for p in self.pods()}

    def mark_ready(self, *pods):
        for pod in pods or self.pods():
            stored = self.client.stored(PODS, NS, name_of(pod))
            stored["status"] = {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": format_rfc3339(self.clock.now())}]}
        self.sync()

    def ds(self):
        return self.client.stored(DAEMON_SETS, NS, "agent")

    def update_template(self, image):
        ds = deep_copy(self.ds())
        ds["spec"]["template"]["spec"]["containers"][0]["image"] = image
        ds["metadata"]["generation"] = int(ds["metadata"].get("generation", 1)) + 1
        self.put(DAEMON_SETS, ds)

    def put(self, resource, obj):
        """Replace a stored object behind the controller's back (what another client would do)."""
        self.client.objects[self.client._key(resource, obj["metadata"].get("namespace"), name_of(obj))] = obj
        self.sync()


@pytest.fixture
def h():
    return Harness()


# --- pure rules --------------------------------------------------------------------------------------


def test_daemon_tolerations_are_added_and_replace_matching_ones():
    spec = add_daemon_tolerations({"tolerations": [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5},
        {"key": "custom", "operator": "Exists"}]})
    keys = [(t["key"], t["effect"]) if "effect" in t else (t["key"], "") for t in spec["tolerations"]]
    assert ("custom", "") in keys
    assert ("node.kubernetes.io/unreachable", "NoExecute") in keys
    assert ("node.kubernetes.io/unschedulable", "NoSchedule") in keys
    not_ready = [t for t in spec["tolerations"] if t["key"] == "node.kubernetes.io/not-ready"]
    assert not_ready == [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}]
    assert not any(t["key"] == "node.kubernetes.io/network-unavailable" for t in spec["tolerations"])
    assert any(t["key"] == "node.kubernetes.io/network-unavailable"
               for t in add_daemon_tolerations({"hostNetwork": True})["tolerations"])


def test_node_should_run_daemon_pod():
    ds = make_ds(pod={"nodeSelector": {"role": "edge"}})
    assert node_should_run_daemon_pod(make_node("a", {"role": "edge"}), ds) == (True, True)
    assert node_should_run_daemon_pod(make_node("b"), ds) == (False, False)
    no_schedule = [{"key": "k", "value": "v", "effect": "NoSchedule"}]
    no_execute = [{"key": "k", "value": "v", "effect": "NoExecute"}]
    assert node_should_run_daemon_pod(make_node("c", {"role": "edge"}, no_schedule), ds) == (False, True)
    assert node_should_run_daemon_pod(make_node("d", {"role": "edge"}, no_execute), ds) == (False, False)
    # the automatic tolerations: unschedulable and not-ready nodes still get daemons
    unschedulable = [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]
    not_ready = [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]
    assert node_should_run_daemon_pod(make_node("e", {"role": "edge"}, unschedulable + not_ready), ds) == (True, True)
    tolerant = make_ds(pod={"tolerations": [{"key": "k", "operator": "Exists"}]})
    assert node_should_run_daemon_pod(make_node("f", taints=no_execute), tolerant) == (True, True)
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}]}}}
    by_affinity = make_ds(pod={"affinity": affinity})
    assert node_should_run_daemon_pod(make_node("g", {"zone": "z1"}), by_affinity) == (True, True)
    assert node_should_run_daemon_pod(make_node("h", {"zone": "z2"}), by_affinity) == (False, False)
    assert node_should_run_daemon_pod(make_node("i"), make_ds(pod={"nodeName": "j"})) == (False, False)


def test_pin_to_node_replaces_required_terms_and_keeps_the_rest():
    preferred = [{"weight": 1, "preference": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}]
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}]},
        "preferredDuringSchedulingIgnoredDuringExecution": preferred}, "podAffinity": {"x": 1}}
    pinned = pin_to_node(affinity, "n1")
    assert pinned["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}
    assert pinned["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] == preferred
    assert pinned["podAffinity"] == {"x": 1}
    assert affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0].get(
        "matchExpressions")  # the input is untouched


def test_surge_and_unavailable_rounding():
    def ds(surge, unavailable):
        return make_ds(strategy={"type": "RollingUpdate",
                                 "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
    assert surge_and_unavailable(ds("10%", "10%"), 15) == (2, 1)
    assert surge_and_unavailable(ds(0, 0), 5) == (0, 1)
    assert surge_and_unavailable(ds(0, "0%"), 5) == (0, 1)
    assert surge_and_unavailable(ds(1, 0), 5) == (1, 0)


# --- reconcile ---------------------------------------------------------------------------------------


async def test_creates_one_pinned_pod_per_eligible_node_and_a_revision(h):
    h.seed(NODES, make_node("n1", {"role": "edge"}), make_node("n2", {"role": "edge"}), make_node("n3"))
    h.seed(DAEMON_SETS, make_ds(pod={"nodeSelector": {"role": "edge"}}))
    await h.reconcile()
    pods = h.pods_by_node()
    assert sorted(pods) == ["n1", "n2"]
    revisions = h.client.all(CONTROLLER_REVISIONS, NS)
    assert len(revisions) == 1 and revisions[0]["revision"] == 1
    hash_ = revisions[0]["metadata"]["labels"][REVISION_HASH_LABEL]
    assert revisions[0]["metadata"]["name"] == f"agent-{hash_}"
    assert revisions[0]["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
    pod = pods["n1"]
    assert pod["metadata"]["generateName"] == "agent-"
    assert pod["metadata"]["labels"][REVISION_HASH_LABEL] == hash_
    assert pod["metadata"]["labels"]["pod-template-generation"] == "1"
    assert pod["metadata"]["ownerReferences"][0]["controller"] is True
    assert not pod["spec"].get("nodeName")  # the scheduler binds it
    assert pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}
    assert {t["key"] for t in pod["spec"]["tolerations"]} >= {"node.kubernetes.io/not-ready",
                                                               "node.kubernetes.io/unschedulable"}
    assert h.recorder.reasons().count("SuccessfulCreate") == 2
    # a second pass is a no-op for pods; status now counts them
    await h.reconcile()
    assert len(h.pods()) == 2
    status = h.ds()["status"]
    assert status["desiredNumberScheduled"] == 2 and status["currentNumberScheduled"] == 2
    assert status["updatedNumberScheduled"] == 2 and status["numberReady"] == 0
    assert status["numberUnavailable"] == 2 and status["observedGeneration"] == 1


async def test_status_counts_ready_available_and_misscheduled(h):
    h.seed(NODES, make_node("n1"), make_node("n2"))
    h.seed(DAEMON_SETS, make_ds())
    await h.reconcile()
    h.mark_ready(h.pods_by_node()["n1"])
    node = deep_copy(h.client.stored(NODES, None, "n2"))
    node["spec"]["taints"] = [{"key": "k", "effect": "NoSchedule"}]  # the pod stays but is not desired
    h.put(NODES, node)
    await h.reconcile()
    status = h.ds()["status"]
    assert len(h.pods()) == 2
    assert status["desiredNumberScheduled"] == 1 and status["numberMisscheduled"] == 1
    assert status["numberReady"] == 1 and status["numberAvailable"] == 1 and status["numberUnavailable"] == 0


async def test_taints_no_schedule_blocks_new_pods_no_execute_evicts(h):
    h.seed(NODES, make_node("n1"), make_node("n2", taints=[{"key": "k", "effect": "NoSchedule"}]))
    h.seed(DAEMON_SETS, make_ds())
    await h.reconcile()
    assert sorted(h.pods_by_node()) == ["n1"]
    node = deep_copy(h.client.stored(NODES, None, "n1"))
    node["spec"]["taints"] = [{"key": "k", "effect": "NoExecute"}]
    h.put(NODES, node)
    await h.reconcile()
    assert h.pods() == []
    assert "SuccessfulDelete" in h.recorder.reasons()


async def test_unscheduled_pod_of_a_deleted_node_is_deleted(h):
    h.seed(NODES, make_node("n1"), make_node("n2"))
    h.seed(DAEMON_SETS, make_ds())
    await h.reconcile()
    del h.client.objects[h.client._key(NODES, None, "n2")]
    h.sync()
    await h.reconcile()
    assert sorted(h.pods_by_node()) == ["n1"]
    assert h.ds()["status"]["desiredNumberScheduled"] == 1


async def test_extra_pods_on_a_node_are_deleted_keeping_the_oldest(h):
    h.seed(NODES, make_node("n1"))
    h.seed(DAEMON_SETS, make_ds())
    await h.reconcile()
    first = h.pods()[0]
    h.clock.advance(5)
    dup = deep_copy(first)
    dup["metadata"] = {k: v for k, v in dup["metadata"].items() if k not in ("uid", "creationTimestamp")}
    dup["metadata"]["name"] = "agent-dup"
    h.client.seed(PODS, dup)
    h.sync()
    await h.reconcile()
    assert [name_of(p) for p in h.pods()] == [name_of(first)]


async def test_failed_pod_is_replaced_with_backoff(h):
    h.seed(NODES, make_node("n1"))
    h.seed(DAEMON_SETS, make_ds())
    await h.reconcile()
    h.client.stored(PODS, NS, name_of(h.pods()[0]))["status"] = {"phase": "Failed"}
    h.sync()
    await h.reconcile()
    assert h.pods() == [] and "FailedDaemonPod" in h.recorder.reasons()
    await h.reconcile()
    assert len(h.pods()) == 1
    h.client.stored(PODS, NS, name_of(h.pods()[0]))["status"] = {"phase": "Failed"}
    h.sync()
    requeue = await h.reconcile()  # within the backoff: left alone, looked at again later
    assert len(h.pods()) == 1 and requeue is not None and 0 < requeue <= 2
    h.clock.advance(3)
    await h.reconcile()
    assert h.pods() == []


async def test_rolling_update_max_unavailable_one(h):
    h.seed(NODES, make_node("n1"), make_node("n2"), make_node("n3"))
    h.seed(DAEMON_SETS, make_ds())
    await h.reconcile()
    h.mark_ready()
    old_hash = labels_of(h.pods()[0])[REVISION_HASH_LABEL]
    h.update_template("agent:2")
    await h.reconcile()  # new revision; one old pod deleted
    assert len(h.client.all(CONTROLLER_REVISIONS, NS)) == 2
    assert len(h.pods()) == 2
    for _ in range(6):
        await h.reconcile()  # recreate on the freed node, then wait for it to be ready
        h.mark_ready()
    pods = h.pods()
    assert len(pods) == 3 and all(labels_of(p)[REVISION_HASH_LABEL] != old_hash for p in pods)
    await h.reconcile()
    status = h.ds()["status"]
    assert status["updatedNumberScheduled"] == 3 and status["numberAvailable"] == 3
    assert status["observedGeneration"] == 2


async def test_rolling_update_never_exceeds_max_unavailable(h):
    h.seed(NODES, *(make_node(f"n{i}") for i in range(4)))
    h.seed(DAEMON_SETS, make_ds())
    await h.reconcile()
    h.mark_ready()
    h.update_template("agent:2")
    for _ in range(4):
        await h.reconcile()
        assert len(h.pods()) >= 3  # never two nodes without a pod at once (pods are not marked ready)


async def test_rolling_update_with_surge_keeps_old_pod_until_new_is_ready(h):
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    h.seed(NODES, make_node("n1"), make_node("n2"))
    h.seed(DAEMON_SETS, make_ds(strategy=strategy))
    await h.reconcile()
    h.mark_ready()
    h.update_template("agent:2")
    await h.reconcile()
    assert len(h.pods()) == 3  # one surge pod next to its old pod
    await h.reconcile()
    assert len(h.pods()) == 3  # the surge pod is not ready yet: nothing more
    new = [p for p in h.pods() if "pod-template-generation" in labels_of(p)
           and labels_of(p)["pod-template-generation"] == "2"]
    assert len(new) == 1
    h.mark_ready(new[0])
    for _ in range(6):
        await h.reconcile()
        h.mark_ready()
    pods = h.pods()
    assert len(pods) == 2 and {labels_of(p)["pod-template-generation"] for p in pods} == {"2"}


async def test_on_delete_only_replaces_deleted_pods(h):
    h.seed(NODES, make_node("n1"), make_node("n2"))
    h.seed(DAEMON_SETS, make_ds(strategy={"type": "OnDelete"}))
    await h.reconcile()
    h.mark_ready()
    h.update_template("agent:2")
    await h.reconcile()
    await h.reconcile()
    assert len(h.pods()) == 2 and h.ds()["status"]["updatedNumberScheduled"] == 0
    del h.client.objects[h.client._key(PODS, NS, name_of(h.pods_by_node()["n1"]))]
    h.sync()
    await h.reconcile()
    await h.reconcile()
    assert labels_of(h.pods_by_node()["n1"])["pod-template-generation"] == "2"
    assert h.ds()["status"]["updatedNumberScheduled"] == 1


async def test_rollback_renumbers_the_matching_revision(h):
    h.seed(NODES, make_node("n1"))
    h.seed(DAEMON_SETS, make_ds())
    await h.reconcile()
    h.update_template("agent:2")
    await h.reconcile()
    h.update_template("agent:1")
    await h.reconcile()
    revisions = {r["data"]["spec"]["template"]["spec"]["containers"][0]["image"]: r["revision"]
                 for r in h.client.all(CONTROLLER_REVISIONS, NS)}
    assert revisions == {"agent:1": 3, "agent:2": 2}


async def test_old_revisions_beyond_the_history_limit_are_deleted(h):
    h.seed(NODES, make_node("n1"))
    h.seed(DAEMON_SETS, make_ds(revisionHistoryLimit=1))
    await h.reconcile()
    for image in ("agent:2", "agent:3", "agent:4"):
        h.update_template(image)
        for _ in range(3):
            await h.reconcile()
    images = sorted(r["data"]["spec"]["template"]["spec"]["containers"][0]["image"]
                    for r in h.client.all(CONTROLLER_REVISIONS, NS))
    assert len(images) == 2 and "agent:4" in images


async def test_adopts_orphan_pods_and_ignores_others(h):
    h.seed(NODES, make_node("n1"))
    orphan = {"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "orphan", "namespace": NS, "labels": {"app": "agent"}},
              "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]}}
    h.seed(PODS, orphan)
    h.seed(DAEMON_SETS, make_ds(strategy={"type": "OnDelete"}))  # (RollingUpdate would replace it: not ready)
    await h.reconcile()
    stored = h.client.stored(PODS, NS, "orphan")
    assert stored["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
    assert [name_of(p) for p in h.pods()] == ["orphan"]  # the node already has a daemon pod


async def test_deleted_daemonset_is_forgotten(h):
    assert await h.ctrl.reconcile(KEY) is None
    assert h.client.actions == []


async def test_handlers_enqueue_the_owner_and_ignore_node_heartbeats(h):
    h.seed(NODES, make_node("n1"))
    h.seed(DAEMON_SETS, make_ds())
    ds = h.ds()
    pod = {"metadata": {"name": "p", "namespace": NS, "labels": {"app": "agent"}, "ownerReferences": [
        {"kind": "DaemonSet", "name": "agent", "uid": ds["metadata"]["uid"], "controller": True}]}}
    h.ctrl.on_node_update(make_node("n1"), {**make_node("n1"), "status": {"conditions": []}})
    assert len(h.ctrl.queue) == 0
    h.ctrl.on_pod_add(pod)
    assert len(h.ctrl.queue) == 1 and await h.ctrl.queue.get() == KEY
    h.ctrl.queue.done(KEY)
    h.ctrl.on_node_update(make_node("n1"), make_node("n1", {"x": "y"}))
    assert len(h.ctrl.queue) == 1


async def test_status_conflict_is_retried_once_on_a_fresh_read(h):
    h.seed(NODES, make_node("n1"))
    h.seed(DAEMON_SETS, make_ds())
    h.client.fail("update", "daemonsets", errors.conflict("daemonsets", "agent", errors.OBJECT_MODIFIED, "apps"))
    await h.reconcile()
    assert [a.verb for a in h.client.actions_of(plural="daemonsets")] == ["update", "get", "update"]
    assert h.ds()["status"]["desiredNumberScheduled"] == 1


async def test_failed_creation_is_reported_and_retried(h):
    h.seed(NODES, make_node("n1"), make_node("n2"))
    h.seed(DAEMON_SETS, make_ds())
    h.client.fail("create", "pods", errors.StatusError(403, "Forbidden", "exceeded quota"))
    with pytest.raises(RetryError):
        await h.ctrl.reconcile(KEY)
    assert "FailedCreate" in h.recorder.reasons()
    assert h.pods() == []  # slow start: the first batch (1 pod) failed, the second was not tried
    assert h.ctrl.expectations.satisfied(KEY)
    h.sync()
    await h.reconcile()
    assert len(h.pods()) == 2
