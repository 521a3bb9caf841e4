"""StatefulSet controller: reconcile against fakes, asserting the API actions it takes."""

from __future__ import annotations

import pytest

from controllers.controller import ControllerContext
from controllers.statefulset import StatefulSetController, util
from controllers.statefulset.controller import new_revision
from machinery.client import CONTROLLER_REVISIONS, PERSISTENT_VOLUME_CLAIMS, PODS, STATEFUL_SETS
from machinery.clock import FakeClock
from machinery.meta import format_rfc3339, name_of
from tests.fakes import FakeClient, FakeInformers, FakeRecorder

NS = "default"
ALL = (STATEFUL_SETS, PODS, CONTROLLER_REVISIONS, PERSISTENT_VOLUME_CLAIMS)


def make_sts(name="web", replicas=3, image="nginx:1", policy="OrderedReady", strategy=None, **spec):
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": replicas, "serviceName": "svc", "podManagementPolicy": policy,
                 "selector": {"matchLabels": {"app": name}},
                 "updateStrategy": strategy or {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": image}]}},
                 **spec},
    }


class Env:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.client = FakeClient(clock=self.clock)
        self.informers = FakeInformers()
        self.recorder = FakeRecorder()
        self.ctrl = StatefulSetController(ControllerContext(self.client, self.informers, self.recorder, self.clock))

    def seed(self, sts: dict) -> dict:
        stored = self.client.seed(STATEFUL_SETS, sts)
        self.sync()
        return stored

    def sync(self) -> None:
        self.informers.sync_from(self.client, *ALL)

    async def reconcile(self, name: str = "web") -> float | None:
        """One reconcile with the caches mirroring the client (what the watch would show), then resync."""
        self.sync()
        self.client.actions.clear()
        result = await self.ctrl.reconcile(f"{NS}/{name}")
        self.sync()
        return result

    def pods(self) -> dict[str, dict]:
        return {name_of(p): p for p in self.client.all(PODS, NS)}

    def sts(self, name: str = "web") -> dict:
        return self.client.stored(STATEFUL_SETS, NS, name)

    def mark_ready(self, *names: str, phase: str = "Running") -> None:
        stamp = format_rfc3339(self.clock.now())
        for name in names:
            pod = self.client.stored(PODS, NS, name)
            pod["status"] = {"phase": phase, "conditions": [
                {"type": "Ready", "status": "True" if phase == "Running" else "False", "lastTransitionTime": stamp}]}

    def update_spec(self, **changes) -> None:
        sts = self.sts()
        sts["spec"].update(changes)
        sts["metadata"]["generation"] += 1

    def created(self, plural: str = "pods") -> list[str]:
        return [name_of(a.body) for a in self.client.actions_of("create", plural)]

    def deleted(self, plural: str = "pods") -> list[str]:
        return [a.name for a in self.client.actions_of("delete", plural)]


@pytest.fixture
def env():
    return Env()


async def test_ordered_ready_creates_one_pod_at_a_time(env):
    env.seed(make_sts())
    await env.reconcile()
    assert env.created() == ["web-0"]
    [revision] = env.client.all(CONTROLLER_REVISIONS, NS)
    pod = env.pods()["web-0"]
    assert pod["metadata"]["labels"] == {"app": "web", util.POD_NAME_LABEL: "web-0", util.POD_INDEX_LABEL: "0",
                                         util.REVISION_LABEL: name_of(revision)}
    assert (pod["spec"]["hostname"], pod["spec"]["subdomain"]) == ("web-0", "svc")
    [ref] = pod["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["controller"]) == ("StatefulSet", "web", True)
    assert "SuccessfulCreate" in env.recorder.reasons()

    await env.reconcile()  # web-0 is not ready yet: nothing more
    assert env.created() == []
    env.mark_ready("web-0")
    await env.reconcile()
    assert env.created() == ["web-1"]
    env.mark_ready("web-1")
    await env.reconcile()
    assert env.created() == ["web-2"]
    env.mark_ready("web-2")
    await env.reconcile()
    status = env.sts()["status"]
    assert (status["replicas"], status["readyReplicas"], status["availableReplicas"], status["currentReplicas"],
            status["updatedReplicas"]) == (3, 3, 3, 3, 3)
    assert status["currentRevision"] == status["updateRevision"] == name_of(revision)
    assert status["observedGeneration"] == 1


async def test_parallel_creates_all_pods_at_once(env):
    env.seed(make_sts(policy="Parallel"))
    await env.reconcile()
    assert sorted(env.created()) == ["web-0", "web-1", "web-2"]


async def test_revision_object_and_template(env):
    sts = env.seed(make_sts())
    await env.reconcile()
    [revision] = env.client.all(CONTROLLER_REVISIONS, NS)
    assert revision["revision"] == 1
    assert revision["metadata"]["name"] == f"web-{revision['metadata']['labels'][util.HASH_LABEL]}"
    assert revision["metadata"]["ownerReferences"][0]["uid"] == sts["metadata"]["uid"]
    assert revision["data"]["spec"]["template"]["$patch"] == "replace"
    assert util.template_of_revision(revision) == sts["spec"]["template"]


async def test_ordered_scale_down_removes_highest_ordinal_first_one_at_a_time(env):
    env.seed(make_sts(policy="Parallel"))
    await env.reconcile()
    env.mark_ready("web-0", "web-1", "web-2")
    env.sts()["spec"]["podManagementPolicy"] = "OrderedReady"
    env.update_spec(replicas=1)
    await env.reconcile()
    assert env.deleted() == ["web-2"]
    await env.reconcile()
    assert env.deleted() == ["web-1"]
    await env.reconcile()
    assert env.deleted() == []
    assert list(env.pods()) == ["web-0"]
    assert env.sts()["status"]["replicas"] == 1


async def test_ordered_scale_down_waits_for_terminating_pod(env):
    env.seed(make_sts(policy="Parallel"))
    await env.reconcile()
    env.mark_ready("web-0", "web-1", "web-2")
    env.client.stored(PODS, NS, "web-2")["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    env.sts()["spec"]["podManagementPolicy"] = "OrderedReady"
    env.update_spec(replicas=1)
    await env.reconcile()
    assert env.deleted() == []


async def test_parallel_scale_down_deletes_all_condemned(env):
    env.seed(make_sts(policy="Parallel"))
    await env.reconcile()
    env.update_spec(replicas=1)
    await env.reconcile()
    assert env.deleted() == ["web-2", "web-1"]


async def test_ordinals_start(env):
    env.seed(make_sts(replicas=2, policy="Parallel", ordinals={"start": 5}))
    await env.reconcile()
    assert sorted(env.created()) == ["web-5", "web-6"]
    assert env.pods()["web-5"]["metadata"]["labels"][util.POD_INDEX_LABEL] == "5"


CLAIM = {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                "resources": {"requests": {"storage": "1Gi"}}}}


async def test_claims_are_created_before_the_pod_and_mounted(env):
    env.seed(make_sts(replicas=1, volumeClaimTemplates=[CLAIM]))
    await env.reconcile()
    assert [(a.verb, a.resource, a.name) for a in env.client.actions
            if a.verb == "create" and a.resource != "controllerrevisions"] == [
        ("create", "persistentvolumeclaims", "data-web-0"), ("create", "pods", "web-0")]
    claim = env.client.stored(PERSISTENT_VOLUME_CLAIMS, NS, "data-web-0")
    assert claim["metadata"]["labels"] == {"app": "web"}
    assert claim["spec"]["resources"] == {"requests": {"storage": "1Gi"}}
    assert "ownerReferences" not in claim["metadata"]  # Retain
    volumes = env.pods()["web-0"]["spec"]["volumes"]
    assert volumes == [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}}]


async def test_existing_claim_is_reused(env):
    env.client.seed(PERSISTENT_VOLUME_CLAIMS, {"metadata": {"name": "data-web-0", "namespace": NS}, "spec": {}})
    env.seed(make_sts(replicas=1, volumeClaimTemplates=[CLAIM]))
    await env.reconcile()
    assert env.created("persistentvolumeclaims") == []
    assert env.created() == ["web-0"]


async def test_when_deleted_delete_makes_the_set_owner_of_claims(env):
    sts = env.seed(make_sts(replicas=1, volumeClaimTemplates=[CLAIM],
                            persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete", "whenScaled": "Retain"}))
    await env.reconcile()
    [ref] = env.client.stored(PERSISTENT_VOLUME_CLAIMS, NS, "data-web-0")["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["uid"], ref["controller"]) == ("StatefulSet", sts["metadata"]["uid"], False)


async def test_when_scaled_delete_hands_claims_to_the_condemned_pod(env):
    env.seed(make_sts(replicas=2, policy="Parallel", volumeClaimTemplates=[CLAIM],
                      persistentVolumeClaimRetentionPolicy={"whenDeleted": "Retain", "whenScaled": "Delete"}))
    await env.reconcile()
    pod = env.pods()["web-1"]
    env.update_spec(replicas=1)
    await env.reconcile()
    assert env.deleted() == ["web-1"]
    [patch] = env.client.actions_of("patch", "persistentvolumeclaims")
    assert patch.name == "data-web-1"
    [ref] = env.client.stored(PERSISTENT_VOLUME_CLAIMS, NS, "data-web-1")["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["uid"]) == ("Pod", pod["metadata"]["uid"])
    assert "ownerReferences" not in env.client.stored(PERSISTENT_VOLUME_CLAIMS, NS, "data-web-0")["metadata"]


async def ready_set(env, **kw) -> None:
    env.seed(make_sts(policy="Parallel", **kw))
    await env.reconcile()
    env.mark_ready(*env.pods())
    await env.reconcile()


async def test_rolling_update_replaces_pods_from_the_highest_ordinal(env):
    await ready_set(env)
    old = env.sts()["status"]["currentRevision"]
    env.update_spec(template=make_sts(image="nginx:2")["spec"]["template"])
    await env.reconcile()
    assert env.deleted() == ["web-2"]
    revisions = sorted(env.client.all(CONTROLLER_REVISIONS, NS), key=lambda r: r["revision"])
    assert [r["revision"] for r in revisions] == [1, 2]
    new = name_of(revisions[1])
    status = env.sts()["status"]
    assert (status["currentRevision"], status["updateRevision"]) == (old, new)
    await env.reconcile()  # web-2 recreated from the update revision
    assert env.created() == ["web-2"]
    assert env.pods()["web-2"]["metadata"]["labels"][util.REVISION_LABEL] == new
    assert env.pods()["web-2"]["spec"]["containers"][0]["image"] == "nginx:2"
    await env.reconcile()  # not ready yet: web-1 waits
    assert env.deleted() == []
    env.mark_ready("web-2")
    await env.reconcile()
    assert env.deleted() == ["web-1"]
    for name in ("web-1", "web-0"):
        await env.reconcile()
        env.mark_ready(name)
        await env.reconcile()
    status = env.sts()["status"]
    assert status["currentRevision"] == status["updateRevision"] == new
    assert (status["currentReplicas"], status["updatedReplicas"]) == (3, 3)


async def test_partition_keeps_lower_ordinals_at_the_current_revision(env):
    await ready_set(env, strategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    old = env.sts()["status"]["currentRevision"]
    env.update_spec(template=make_sts(image="nginx:2")["spec"]["template"])
    await env.reconcile()
    assert env.deleted() == ["web-2"]
    await env.reconcile()
    env.mark_ready("web-2")
    await env.reconcile()
    assert env.deleted() == []
    status = env.sts()["status"]
    assert (status["currentRevision"], status["currentReplicas"], status["updatedReplicas"]) == (old, 2, 1)
    # a pod below the partition that disappears comes back at the current revision
    del env.client.objects[(PODS.qualified, NS, "web-0")]
    await env.reconcile()
    assert env.created() == ["web-0"]
    assert env.pods()["web-0"]["metadata"]["labels"][util.REVISION_LABEL] == old


async def test_on_delete_does_not_replace_pods(env):
    await ready_set(env, strategy={"type": "OnDelete"})
    env.update_spec(template=make_sts(image="nginx:2")["spec"]["template"])
    await env.reconcile()
    assert env.deleted() == []
    del env.client.objects[(PODS.qualified, NS, "web-1")]
    await env.reconcile()
    assert env.pods()["web-1"]["spec"]["containers"][0]["image"] == "nginx:2"


async def test_rollback_renumbers_the_matching_revision(env):
    await ready_set(env, strategy={"type": "OnDelete"})
    first = env.sts()["status"]["updateRevision"]
    env.update_spec(template=make_sts(image="nginx:2")["spec"]["template"])
    await env.reconcile()
    env.update_spec(template=make_sts(image="nginx:1")["spec"]["template"])
    await env.reconcile()
    assert len(env.client.all(CONTROLLER_REVISIONS, NS)) == 2
    assert env.client.stored(CONTROLLER_REVISIONS, NS, first)["revision"] == 3
    assert env.sts()["status"]["updateRevision"] == first


async def test_history_beyond_the_limit_is_deleted(env):
    await ready_set(env, strategy={"type": "OnDelete"}, revisionHistoryLimit=1)
    for image in ("nginx:2", "nginx:3", "nginx:4"):
        env.update_spec(template=make_sts(image=image)["spec"]["template"])
        await env.reconcile()
    # live: the current revision (pods) and the update revision; at most one more kept
    assert len(env.client.all(CONTROLLER_REVISIONS, NS)) == 3
    assert len(env.deleted("controllerrevisions")) == 1


async def test_failed_pod_is_deleted_then_recreated(env):
    await ready_set(env)
    env.mark_ready("web-1", phase="Failed")
    await env.reconcile()
    assert env.deleted() == ["web-1"]
    await env.reconcile()
    assert env.created() == ["web-1"]


async def test_identity_is_repaired(env):
    await ready_set(env)
    env.client.stored(PODS, NS, "web-1")["metadata"]["labels"].pop(util.POD_NAME_LABEL)
    await env.reconcile()
    [update] = env.client.actions_of("update", "pods")
    assert update.body["metadata"]["labels"][util.POD_NAME_LABEL] == "web-1"


async def test_a_member_with_another_hostname_is_left_alone(env):
    """Hostname and subdomain are immutable: a pod with other ones keeps them (no update that must fail)."""
    await ready_set(env)
    env.client.stored(PODS, NS, "web-1")["spec"]["hostname"] = "custom"
    await env.reconcile()
    assert not env.client.actions_of("update", "pods")


async def test_min_ready_seconds_requeues_and_holds_the_next_pod(env):
    env.seed(make_sts(replicas=2, minReadySeconds=10))
    await env.reconcile()
    env.mark_ready("web-0")
    assert await env.reconcile() == 10.0
    assert env.created() == []
    env.clock.advance(11)
    await env.reconcile()
    assert env.created() == ["web-1"]


async def test_orphan_member_is_adopted_and_foreign_names_ignored(env):
    env.seed(make_sts(replicas=1))
    env.client.seed(PODS, {"metadata": {"name": "web-0", "namespace": NS, "labels": {"app": "web"}}, "spec": {}})
    env.client.seed(PODS, {"metadata": {"name": "other-0", "namespace": NS, "labels": {"app": "web"}}, "spec": {}})
    await env.reconcile()
    [patch] = env.client.actions_of("patch", "pods")
    assert patch.name == "web-0"
    assert env.created() == []


async def test_deleted_set_is_ignored(env):
    assert await env.reconcile("missing") is None
    assert env.client.actions == []


async def test_revision_name_collision_bumps_the_collision_count(env):
    sts = env.seed(make_sts(replicas=1))
    clash = new_revision(sts, util.revision_data(sts), 1, 0)
    clash["data"] = {"spec": {"template": {"other": True}}}
    clash["metadata"]["ownerReferences"] = []
    env.client.seed(CONTROLLER_REVISIONS, clash)
    await env.reconcile()
    status = env.sts()["status"]
    assert status["collisionCount"] == 1
    assert status["updateRevision"] != name_of(clash)
    assert env.pods()["web-0"]["metadata"]["labels"][util.REVISION_LABEL] == status["updateRevision"]


async def test_a_replaced_pod_is_not_deleted_by_a_stale_cache(env):
    await ready_set(env)
    env.update_spec(template=make_sts(image="nginx:2")["spec"]["template"])
    env.sync()
    env.client.stored(PODS, NS, "web-2")["metadata"]["uid"] = "replaced"  # the cache still has the old uid
    env.client.actions.clear()
    await env.ctrl.reconcile(f"{NS}/web")
    assert env.deleted() == ["web-2"]
    assert "web-2" in env.pods()
    assert "FailedDelete" not in env.recorder.reasons()


def test_pod_events_enqueue_the_owning_set(env):
    sts = env.seed(make_sts())
    owned = {"metadata": {"name": "web-0", "namespace": NS, "labels": {"app": "web"}, "ownerReferences": [
        {"kind": "StatefulSet", "name": "web", "uid": sts["metadata"]["uid"], "controller": True}]}}
    env.ctrl.on_pod_add(owned)
    assert len(env.ctrl.queue) == 1


def test_status_counts_terminating_pods_as_replicas_only():
    sts = make_sts()
    pods = [{"metadata": {"name": "web-0", "labels": {util.REVISION_LABEL: "r1"}},
             "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
            {"metadata": {"name": "web-1", "labels": {util.REVISION_LABEL: "r1"},
                          "deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Pending"}}]
    status = util.calculate_status(sts, pods, "r1", "r2", 0, FakeClock().now())
    assert (status["replicas"], status["readyReplicas"], status["currentReplicas"], status["updatedReplicas"]) == (
        2, 1, 1, 0)
    assert status["currentRevision"] == "r1"
