"""DeploymentController against fakes: new ReplicaSets, status and conditions, pause, rollback, handlers.

Rollout step arithmetic (rolling update combos, Recreate, proportional scaling, history cleanup)
is in test_deployment_rollout.py; both use the :class:`Harness` defined here.
"""

from __future__ import annotations

from typing import Any

import pytest

from controllers.controller import ControllerContext
from controllers.deployment import DeploymentController, util
from machinery import errors
from machinery.client import DEPLOYMENTS, PODS, REPLICA_SETS
from machinery.meta import deep_copy, key_of, name_of
from tests.fakes import FakeClient, FakeClock, FakeInformers, FakeRecorder

NS = "default"


class StatusClient(FakeClient):
    """FakeClient whose /status writes keep labels and annotations too, as kubemini's API server (and
    Kubernetes' deployment status strategy) do: the controller records the revision that way."""

    async def replace(self, resource, obj, *, subresource=None, **kw):
        written = await super().replace(resource, obj, subresource=subresource, **kw)
        if subresource == "status":
            stored = self.stored(resource, obj["metadata"].get("namespace"), obj["metadata"]["name"])
            for field in ("labels", "annotations"):
                if field in obj["metadata"]:
                    stored["metadata"][field] = deep_copy(obj["metadata"][field])
                    written["metadata"][field] = deep_copy(obj["metadata"][field])
        return written


def make_deployment(name: str = "web", replicas: int = 3, image: str = "nginx:1", *,
                    strategy: dict | None = None, **spec: Any) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": image}]}},
            "strategy": strategy or {"type": "RollingUpdate",
                                     "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            **spec,
        },
    }


def rolling(surge: int | str, unavailable: int | str) -> dict:
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}


class Harness:
    """A controller over a fake cluster; ``rs_controller`` plays the ReplicaSet controller."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.client = StatusClient(clock=self.clock)
        self.informers = FakeInformers()
        self.recorder = FakeRecorder()
        self.ctrl = DeploymentController(ControllerContext(client=self.client, informers=self.informers,
                                                           recorder=self.recorder, clock=self.clock))

    # --- state -----------------------------------------------------------------------------------

    def create(self, d: dict) -> dict:
        return self.client.seed(DEPLOYMENTS, d)

    def deployment(self, name: str = "web") -> dict:
        return self.client.stored(DEPLOYMENTS, NS, name)

    def update(self, mutate, name: str = "web") -> None:
        """Change the deployment as a user would (spec changes bump metadata.generation)."""
        d = deep_copy(self.deployment(name))
        mutate(d)
        stored = self.client.stored(DEPLOYMENTS, NS, name)
        generation = stored["metadata"].get("generation", 1)
        if d.get("spec") != stored.get("spec"):
            generation += 1
        d["metadata"]["generation"] = generation
        self.client.objects[("deployments.apps", NS, name)] = d

    def replica_sets(self) -> list[dict]:
        return sorted(self.client.all(REPLICA_SETS, NS), key=util.by_creation)

    def rs_named(self, name: str) -> dict:
        return self.client.stored(REPLICA_SETS, NS, name)

    def sizes(self) -> dict[str, int]:
        return {name_of(rs): util.spec_replicas(rs) for rs in self.replica_sets()}

    def rs_controller(self, *, available: bool = True, lag: bool = False) -> None:
        """Make every RS's status match its spec (pods created or deleted, observed).

        ``available``: the pods are available; with ``lag`` only the pods that existed at the previous
        call are (new pods become available one call later).
        """
        for rs in self.client.all(REPLICA_SETS, NS):
            status = rs.setdefault("status", {})
            replicas = util.spec_replicas(rs)
            previous = int(status.get("replicas") or 0)
            if not available:
                ready = min(int(status.get("availableReplicas") or 0), replicas)
            elif lag:
                ready = min(previous, replicas)
            else:
                ready = replicas
            status.update(replicas=replicas, readyReplicas=ready, availableReplicas=ready,
                          observedGeneration=rs["metadata"].get("generation", 1))

    def set_rs_status(self, name: str, **status: Any) -> None:
        self.rs_named(name).setdefault("status", {}).update(status)

    # --- acting ----------------------------------------------------------------------------------

    def sync_caches(self) -> None:
        self.informers.sync_from(self.client, DEPLOYMENTS, REPLICA_SETS, PODS)

    async def reconcile(self, name: str = "web") -> float | None:
        self.sync_caches()
        return await self.ctrl.reconcile(f"{NS}/{name}")

    def mark(self) -> int:
        return len(self.client.actions)

    def actions(self, since: int = 0, verb: str | None = None, plural: str | None = None) -> list:
        return [a for a in self.client.actions[since:]
                if (verb is None or a.verb == verb) and (plural is None or a.resource == plural)]

    def scalings(self, since: int = 0) -> list[str]:
        return [msg for _, _, reason, msg in self.recorder.events[since:] if reason == "ScalingReplicaSet"]

    def condition(self, kind: str, name: str = "web") -> dict | None:
        return util.get_condition(self.deployment(name).get("status") or {}, kind)


@pytest.fixture
def h() -> Harness:
    return Harness()


def new_rs_name(d: dict, collision_count: int | None = None) -> str:
    return f"{name_of(d)}-{util.compute_hash(d['spec']['template'], collision_count)}"


# --- the new ReplicaSet ------------------------------------------------------------------------------


async def test_creates_the_new_replica_set_like_kubernetes(h):
    d = make_deployment(replicas=3, strategy=rolling(1, 0))
    d["metadata"]["annotations"] = {"kubernetes.io/change-cause": "first", util.LAST_APPLIED_ANNOTATION: "{}"}
    d = h.create(d)
    await h.reconcile()
    [created] = h.replica_sets()
    pod_hash = util.compute_hash(d["spec"]["template"], None)
    assert name_of(created) == f"web-{pod_hash}"
    assert created["metadata"]["labels"] == {"app": "web", "pod-template-hash": pod_hash}
    assert created["spec"]["selector"] == {"matchLabels": {"app": "web", "pod-template-hash": pod_hash}}
    assert created["spec"]["template"]["metadata"]["labels"] == {"app": "web", "pod-template-hash": pod_hash}
    assert created["spec"]["template"]["spec"] == d["spec"]["template"]["spec"]
    assert created["spec"]["replicas"] == 3
    assert created["metadata"]["ownerReferences"] == [{
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": d["metadata"]["uid"],
        "controller": True, "blockOwnerDeletion": True}]
    assert created["metadata"]["annotations"] == {
        "kubernetes.io/change-cause": "first", util.REVISION_ANNOTATION: "1",
        util.DESIRED_REPLICAS_ANNOTATION: "3", util.MAX_REPLICAS_ANNOTATION: "4"}
    assert h.deployment()["metadata"]["annotations"][util.REVISION_ANNOTATION] == "1"
    assert h.scalings() == [f"Scaled up replica set web-{pod_hash} from 0 to 3"]


async def test_a_second_sync_finds_the_replica_set_instead_of_creating_another(h):
    h.create(make_deployment())
    await h.reconcile()
    mark = h.mark()
    await h.reconcile()
    assert h.actions(mark, "create") == []
    assert len(h.replica_sets()) == 1


async def test_hash_collision_bumps_collision_count_and_the_next_sync_uses_another_name(h):
    d = h.create(make_deployment())
    clashing = {"metadata": {"name": new_rs_name(d), "namespace": NS, "labels": {"app": "web"},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                                  "uid": d["metadata"]["uid"], "controller": True}]},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web", "other": "x"}},
                         "template": {"metadata": {"labels": {"app": "web", "other": "x"}},
                                      "spec": {"containers": [{"name": "app", "image": "other"}]}}}}
    h.client.seed(REPLICA_SETS, clashing)
    with pytest.raises(errors.StatusError) as caught:
        await h.reconcile()
    assert errors.is_already_exists(caught.value)
    assert h.deployment()["status"]["collisionCount"] == 1
    await h.reconcile()
    assert h.rs_named(new_rs_name(d, 1))["spec"]["replicas"] == 3


async def test_slow_cache_already_exists_takes_our_equal_replica_set(h):
    d = h.create(make_deployment())
    await h.reconcile()
    h.sync_caches()
    h.informers.informer(REPLICA_SETS).store.replace([])  # the RS watch event has not arrived yet
    mark = h.mark()
    await h.ctrl.reconcile(f"{NS}/web")
    assert [a.verb for a in h.actions(mark, plural="replicasets")] == ["create", "get"]
    assert "collisionCount" not in h.deployment()["status"]
    assert h.rs_named(new_rs_name(d))


async def test_adopts_a_matching_orphan_replica_set(h):
    d = h.create(make_deployment())
    orphan = {"metadata": {"name": new_rs_name(d), "namespace": NS,
                           "labels": {"app": "web", "pod-template-hash": "x"}},
              "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                       "template": deep_copy(d["spec"]["template"])}}
    h.client.seed(REPLICA_SETS, orphan)
    await h.reconcile()
    [rs] = h.replica_sets()
    assert rs["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
    assert h.actions(verb="create", plural="replicasets") == []


async def test_empty_selector_is_refused_with_a_warning(h):
    d = make_deployment()
    d["spec"]["selector"] = {}
    h.create(d)
    assert await h.reconcile() is None
    assert h.recorder.reasons() == ["SelectingAll"]
    assert h.replica_sets() == []
    assert h.deployment()["status"]["observedGeneration"] == 1


async def test_a_deployment_being_deleted_only_gets_status(h):
    d = make_deployment()
    d["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    d["metadata"]["finalizers"] = ["foregroundDeletion"]
    h.create(d)
    await h.reconcile()
    assert h.replica_sets() == []
    assert h.deployment()["status"]["observedGeneration"] == 1


async def test_missing_deployment_is_nothing_to_do(h):
    assert await h.reconcile("gone") is None
    assert h.client.actions == []


# --- status and conditions ---------------------------------------------------------------------------


async def test_status_and_conditions_through_a_rollout(h):
    h.create(make_deployment(replicas=3, strategy=rolling(1, 0)))
    requeue = await h.reconcile()
    [rs] = h.replica_sets()
    status = h.deployment()["status"]
    assert status["observedGeneration"] == 1
    assert status["unavailableReplicas"] == 3
    assert h.condition("Available")["reason"] == "MinimumReplicasUnavailable"
    progressing = h.condition("Progressing")
    assert progressing["reason"] == "NewReplicaSetCreated"
    assert progressing["message"] == f'Created new replica set "{name_of(rs)}"'
    assert requeue == pytest.approx(601)  # look again at the progress deadline

    h.clock.advance(30)
    h.rs_controller()
    h.set_rs_status(name_of(rs), terminatingReplicas=1)
    assert await h.reconcile() is None
    status = h.deployment()["status"]
    assert {k: status.get(k) for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                                       "terminatingReplicas")} == {
        "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3, "terminatingReplicas": 1}
    assert "unavailableReplicas" not in status
    available = h.condition("Available")
    assert (available["status"], available["reason"], available["message"]) == (
        "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    done = h.condition("Progressing")
    assert (done["status"], done["reason"], done["message"]) == (
        "True", "NewReplicaSetAvailable", f'ReplicaSet "{name_of(rs)}" has successfully progressed.')
    assert done["lastTransitionTime"] == progressing["lastTransitionTime"]  # still True since creation
    assert done["lastUpdateTime"] == "2026-01-01T00:00:30Z"


async def test_status_is_written_only_when_it_changed(h):
    h.create(make_deployment())
    await h.reconcile()
    h.rs_controller()
    await h.reconcile()
    mark = h.mark()
    h.clock.advance(5)
    await h.reconcile()
    assert h.actions(mark, "update") == []


async def test_progress_bumps_last_update_time(h):
    h.create(make_deployment(replicas=4, strategy=rolling(0, 1)))
    await h.reconcile()
    h.rs_controller(available=False)
    h.clock.advance(10)
    await h.reconcile()  # pods exist now: progress
    [rs] = h.replica_sets()
    h.set_rs_status(name_of(rs), readyReplicas=2, availableReplicas=2)
    h.clock.advance(10)
    await h.reconcile()  # more available: progress again
    cond = h.condition("Progressing")
    assert cond["reason"] == "ReplicaSetUpdated"
    assert cond["message"].endswith("is progressing.")
    assert cond["lastUpdateTime"] == "2026-01-01T00:00:20Z"
    assert cond["lastTransitionTime"] == "2026-01-01T00:00:00Z"


async def test_progress_deadline_exceeded(h):
    h.create(make_deployment(replicas=2, progressDeadlineSeconds=60))
    assert await h.reconcile() == pytest.approx(61)
    h.rs_controller(available=False)  # pods are created but never become available
    h.clock.advance(30)
    assert await h.reconcile() == pytest.approx(61)  # pods appeared: progress, the deadline moves
    h.clock.advance(30)
    assert await h.reconcile() == pytest.approx(31)  # no progress: still waiting for the deadline
    h.clock.advance(31)
    assert await h.reconcile() is None
    cond = h.condition("Progressing")
    [rs] = h.replica_sets()
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "False", "ProgressDeadlineExceeded", f'ReplicaSet "{name_of(rs)}" has timed out progressing.')
    assert cond["lastTransitionTime"] == "2026-01-01T00:01:31Z"


async def test_no_progress_deadline_means_no_progressing_condition(h):
    h.create(make_deployment(progressDeadlineSeconds=util.MAX_INT32))
    assert await h.reconcile() is None
    assert h.condition("Progressing") is None
    assert h.condition("Available") is not None


async def test_replica_failure_is_copied_from_the_new_replica_set(h):
    h.create(make_deployment())
    await h.reconcile()
    [rs] = h.replica_sets()
    h.set_rs_status(name_of(rs), conditions=[{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                                              "message": "quota", "lastTransitionTime": "2026-01-01T00:00:00Z"}])
    await h.reconcile()
    failure = h.condition("ReplicaFailure")
    assert (failure["reason"], failure["message"]) == ("FailedCreate", "quota")


# --- pause, resume, rollback, restart ----------------------------------------------------------------


async def test_paused_deployment_scales_but_does_not_roll(h):
    h.create(make_deployment(replicas=3))
    await h.reconcile()
    h.rs_controller()
    await h.reconcile()
    [first] = h.replica_sets()
    h.update(lambda d: d["spec"].update(paused=True))
    await h.reconcile()
    cond = h.condition("Progressing")
    assert (cond["status"], cond["reason"], cond["message"]) == ("Unknown", "DeploymentPaused", "Deployment is paused")
    h.update(lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image="nginx:2"))
    h.update(lambda d: d["spec"].update(replicas=5))
    await h.reconcile()
    assert h.sizes() == {name_of(first): 5}  # scaled, no new ReplicaSet
    h.update(lambda d: d["spec"].update(paused=False))
    await h.reconcile()
    assert len(h.replica_sets()) == 2
    assert h.condition("Progressing")["reason"] == "NewReplicaSetCreated"
    assert any(reason == "DeploymentResumed" for reason in _progressing_reasons(h))


def _progressing_reasons(h: Harness) -> list[str]:
    reasons = []
    for action in h.actions(verb="update", plural="deployments"):
        cond = util.get_condition((action.body or {}).get("status") or {}, "Progressing")
        if cond:
            reasons.append(cond["reason"])
    return reasons


async def test_rollback_reuses_the_old_replica_set_and_bumps_its_revision(h):
    h.create(make_deployment(replicas=2))
    await h.reconcile()
    h.rs_controller()
    await h.reconcile()
    [v1] = h.replica_sets()
    h.update(lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image="nginx:2"))
    for _ in range(6):
        await h.reconcile()
        h.rs_controller()
    v2 = next(rs for rs in h.replica_sets() if name_of(rs) != name_of(v1))
    assert h.sizes() == {name_of(v1): 0, name_of(v2): 2}
    assert h.deployment()["metadata"]["annotations"][util.REVISION_ANNOTATION] == "2"

    # kubectl rollout undo: the old RS's template, minus the hash label, copied into the deployment
    def undo(d: dict) -> None:
        template = deep_copy(h.rs_named(name_of(v1))["spec"]["template"])
        del template["metadata"]["labels"]["pod-template-hash"]
        d["spec"]["template"] = template

    h.update(undo)
    mark = h.mark()
    for _ in range(6):
        await h.reconcile()
        h.rs_controller()
    assert h.actions(mark, "create", "replicasets") == []
    assert h.sizes() == {name_of(v1): 2, name_of(v2): 0}
    ann = h.rs_named(name_of(v1))["metadata"]["annotations"]
    assert ann[util.REVISION_ANNOTATION] == "3"
    assert ann[util.REVISION_HISTORY_ANNOTATION] == "1"
    assert h.deployment()["metadata"]["annotations"][util.REVISION_ANNOTATION] == "3"
    assert h.condition("Progressing")["reason"] == "NewReplicaSetAvailable"


async def test_restart_annotation_in_the_template_starts_a_rollout(h):
    h.create(make_deployment(replicas=2))
    await h.reconcile()
    h.rs_controller()
    h.update(lambda d: d["spec"]["template"]["metadata"].update(
        annotations={"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}))
    await h.reconcile()
    assert len(h.replica_sets()) == 2


async def test_min_ready_seconds_is_passed_on_to_the_new_replica_set(h):
    h.create(make_deployment(minReadySeconds=5))
    await h.reconcile()
    [rs] = h.replica_sets()
    assert rs["spec"]["minReadySeconds"] == 5
    h.update(lambda d: d["spec"].update(minReadySeconds=7))
    await h.reconcile()
    assert h.rs_named(name_of(rs))["spec"]["minReadySeconds"] == 7


# --- event handlers ----------------------------------------------------------------------------------


def _recording(h: Harness) -> list[str]:
    seen: list[str] = []
    h.ctrl.enqueue = lambda obj: seen.append(key_of(obj))  # type: ignore[method-assign]
    return seen


async def test_rs_handlers_enqueue_the_owner_or_the_selecting_deployments(h):
    d = h.create(make_deployment())
    h.create(make_deployment(name="other"))
    h.sync_caches()
    seen = _recording(h)
    owned = {"metadata": {"name": "web-x", "namespace": NS, "resourceVersion": "1", "labels": {"app": "web"},
                          "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": d["metadata"]["uid"],
                                               "controller": True}]}}
    orphan = {"metadata": {"name": "o", "namespace": NS, "resourceVersion": "1", "labels": {"app": "other"}}}
    h.ctrl.on_rs_add(owned)
    h.ctrl.on_rs_add(orphan)
    h.ctrl.on_rs_delete(owned)
    released = deep_copy(owned)
    released["metadata"].update(resourceVersion="2", ownerReferences=[], labels={"app": "other"})
    h.ctrl.on_rs_update(owned, released)  # controller ref dropped: the old owner and the new selector
    h.ctrl.on_rs_update(owned, owned)  # resync: nothing
    assert seen == [f"{NS}/web", f"{NS}/other", f"{NS}/web", f"{NS}/web", f"{NS}/other"]


async def test_pod_delete_wakes_a_recreate_deployment_when_its_last_pod_is_gone(h):
    h.create(make_deployment(strategy={"type": "Recreate"}))
    await h.reconcile()
    h.sync_caches()
    [rs] = h.replica_sets()
    pod = {"metadata": {"name": "p1", "namespace": NS, "labels": {"app": "web"},
                        "ownerReferences": [{"kind": "ReplicaSet", "name": name_of(rs), "uid": rs["metadata"]["uid"],
                                             "controller": True}]}}
    other = deep_copy(pod)
    other["metadata"]["name"] = "p2"
    h.informers.add(PODS, other)
    seen = _recording(h)
    h.ctrl.on_pod_delete(pod)
    assert seen == []  # p2 still there
    h.informers.informer(PODS).store.delete(key_of(other))
    h.ctrl.on_pod_delete(other)
    assert seen == [f"{NS}/web"]
