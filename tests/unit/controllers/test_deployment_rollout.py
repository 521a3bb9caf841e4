"""Rollout step arithmetic of the Deployment controller: RollingUpdate combos, Recreate ordering,
proportional scaling while a rollout is in flight, and revision history cleanup."""

from __future__ import annotations

import pytest

from controllers.deployment import util
from machinery.client import PODS, REPLICA_SETS
from machinery.meta import deep_copy, name_of
from tests.unit.controllers.test_deployment import NS, Harness, make_deployment, rolling


@pytest.fixture
def h() -> Harness:
    return Harness()


def set_image(image: str):
    def mutate(d: dict) -> None:
        d["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return mutate


async def settle(h: Harness, rounds: int = 3) -> None:
    """Reconcile and let the (fake) ReplicaSet controller catch up until nothing moves."""
    for _ in range(rounds):
        await h.reconcile()
        h.rs_controller()


class InvariantChecker:
    """Checks Kubernetes' rolling-update guarantees on the ReplicaSets' counts after every RS write:
    Σ spec.replicas ≤ replicas + maxSurge, and (after each RS-controller step) Σ availableReplicas ≥
    replicas - maxUnavailable."""

    def __init__(self, h: Harness, replicas: int, surge: int, unavailable: int) -> None:
        self.h, self.max_total, self.min_available = h, replicas + surge, replicas - unavailable
        self.peak_total = 0
        original = h.client.replace

        async def checked_replace(resource, obj, **kw):
            written = await original(resource, obj, **kw)
            if resource == REPLICA_SETS:
                self.check_total()
            return written

        h.client.replace = checked_replace  # type: ignore[method-assign]

    def check_total(self) -> None:
        total = sum(util.spec_replicas(rs) for rs in self.h.replica_sets())
        self.peak_total = max(self.peak_total, total)
        assert total <= self.max_total, self.h.sizes()

    def check_available(self) -> None:
        available = sum(util.status_int(rs, "availableReplicas") for rs in self.h.replica_sets())
        assert available >= self.min_available, self.h.sizes()


async def roll(h: Harness, replicas: int, surge: int, unavailable: int, image: str = "nginx:2",
               max_steps: int = 40) -> list[str]:
    """Change the image and drive the rollout; new pods become available one RS-controller step after
    they were created. Returns the ScalingReplicaSet event messages of the rollout."""
    mark = len(h.recorder.events)
    h.update(set_image(image))
    checker = InvariantChecker(h, replicas, surge, unavailable)
    for _ in range(max_steps):
        await h.reconcile()
        checker.check_total()
        h.rs_controller(lag=True)
        checker.check_available()
        if h.condition("Progressing")["reason"] == "NewReplicaSetAvailable" and \
                h.deployment()["metadata"]["generation"] == h.deployment()["status"]["observedGeneration"]:
            break
    else:
        raise AssertionError(f"rollout did not complete: {h.sizes()}")
    assert checker.peak_total == replicas + surge or surge == 0 or replicas < surge
    return h.scalings(mark)


async def start(h: Harness, replicas: int, strategy: dict) -> str:
    h.create(make_deployment(replicas=replicas, strategy=strategy))
    await settle(h)
    [rs] = h.replica_sets()
    return name_of(rs)


def renamed(messages: list[str], old: str, new: str) -> list[str]:
    return [m.replace(old, "OLD").replace(new, "NEW") for m in messages]


def new_name(h: Harness, old: str) -> str:
    return next(name_of(rs) for rs in h.replica_sets() if name_of(rs) != old)


# --- RollingUpdate -----------------------------------------------------------------------------------


async def test_rolling_25_percent_defaults_on_10_replicas(h):
    old = await start(h, 10, rolling("25%", "25%"))  # surge 3 (rounded up), unavailable 2 (rounded down)
    events = await roll(h, 10, 3, 2)
    assert renamed(events, old, new_name(h, old)) == [
        "Scaled up replica set NEW from 0 to 3", "Scaled down replica set OLD from 10 to 8",
        "Scaled up replica set NEW from 3 to 5", "Scaled down replica set OLD from 8 to 5",
        "Scaled up replica set NEW from 5 to 8", "Scaled down replica set OLD from 5 to 3",
        "Scaled up replica set NEW from 8 to 10", "Scaled down replica set OLD from 3 to 0",
    ]
    assert h.sizes() == {old: 0, new_name(h, old): 10}


async def test_rolling_without_surge_removes_before_adding(h):
    old = await start(h, 3, rolling(0, 1))
    events = await roll(h, 3, 0, 1)
    assert renamed(events, old, new_name(h, old)) == [
        "Scaled down replica set OLD from 3 to 2", "Scaled up replica set NEW from 0 to 1",
        "Scaled down replica set OLD from 2 to 1", "Scaled up replica set NEW from 1 to 2",
        "Scaled down replica set OLD from 1 to 0", "Scaled up replica set NEW from 2 to 3",
    ]
    new_rs = h.rs_named(new_name(h, old))
    assert new_rs["metadata"]["annotations"][util.MAX_REPLICAS_ANNOTATION] == "3"


async def test_rolling_without_unavailability_adds_before_removing(h):
    old = await start(h, 3, rolling(1, 0))
    events = await roll(h, 3, 1, 0)
    assert renamed(events, old, new_name(h, old)) == [
        "Scaled up replica set NEW from 0 to 1", "Scaled down replica set OLD from 3 to 2",
        "Scaled up replica set NEW from 1 to 2", "Scaled down replica set OLD from 2 to 1",
        "Scaled up replica set NEW from 2 to 3", "Scaled down replica set OLD from 1 to 0",
    ]


@pytest.mark.parametrize(("replicas", "surge", "unavailable", "resolved"), [
    (5, "30%", "30%", (2, 1)),
    (7, "50%", 0, (4, 0)),
    (4, 0, "50%", (0, 2)),
    (5, "0%", "10%", (0, 1)),  # both round to 0: unavailability 1
    (6, 2, 3, (2, 3)),
])
async def test_rolling_invariants_hold_at_every_step(h, replicas, surge, unavailable, resolved):
    assert util.resolve_fenceposts(surge, unavailable, replicas) == resolved
    old = await start(h, replicas, rolling(surge, unavailable))
    await roll(h, replicas, *resolved)
    assert h.sizes() == {old: 0, new_name(h, old): replicas}


async def test_second_rollout_in_flight_scales_down_all_old_replica_sets(h):
    old = await start(h, 4, rolling(1, 1))
    h.update(set_image("nginx:2"))
    await h.reconcile()
    h.rs_controller(lag=True)
    middle = new_name(h, old)
    events = await roll(h, 4, 1, 1, image="nginx:3")
    newest = next(name_of(rs) for rs in h.replica_sets() if name_of(rs) not in (old, middle))
    assert h.sizes() == {old: 0, middle: 0, newest: 4}
    assert events


async def test_unhealthy_old_replicas_are_cleaned_up_first(h):
    d = h.create(make_deployment(replicas=10, strategy=rolling(3, 2), image="nginx:3"))
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": d["metadata"]["uid"],
           "controller": True}
    for name, image, available, created in (("web-a", "nginx:1", 2, "2025-01-01T00:00:00Z"),
                                            ("web-b", "nginx:2", 5, "2025-01-02T00:00:00Z")):
        template = deep_copy(d["spec"]["template"])
        template["spec"]["containers"][0]["image"] = image
        h.client.seed(REPLICA_SETS, {
            "metadata": {"name": name, "namespace": NS, "labels": {"app": "web"}, "creationTimestamp": created,
                         "ownerReferences": [ref], "annotations": {util.DESIRED_REPLICAS_ANNOTATION: "10"}},
            "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "web"}}, "template": template},
            "status": {"replicas": 5, "availableReplicas": available}})
    await h.reconcile()
    sizes = h.sizes()
    new = next(n for n in sizes if n not in ("web-a", "web-b"))
    # the new RS surges to 3; max scale-down = 13 - 8 - 3 = 2, taken from web-a's 3 unavailable replicas;
    # only 7 are available (< 8), so no available replica is removed
    assert sizes == {"web-a": 3, "web-b": 5, new: 3}


# --- proportional scaling -----------------------------------------------------------------------------


async def _mid_rollout(h: Harness) -> tuple[str, str]:
    old = await start(h, 10, rolling(3, 2))
    h.update(set_image("nginx:2"))
    await h.reconcile()
    h.rs_controller(lag=True)
    await h.reconcile()
    h.rs_controller(lag=True)
    new = new_name(h, old)
    assert h.sizes() == {old: 8, new: 5}
    return old, new


async def test_scaling_up_mid_rollout_is_proportional(h):
    old, new = await _mid_rollout(h)
    mark = len(h.recorder.events)
    h.update(lambda d: d["spec"].update(replicas=15))
    await h.reconcile()
    # 5 more (allowed 15 + 3 = 18, running 13): old 8·18/13 = 11.08 → +3, new 5·18/13 = 6.92 → +2
    assert h.sizes() == {old: 11, new: 7}
    assert h.scalings(mark) == [f"Scaled up replica set {old} from 8 to 11", f"Scaled up replica set {new} from 5 to 7"]
    for rs in h.replica_sets():
        ann = rs["metadata"]["annotations"]
        assert (ann[util.DESIRED_REPLICAS_ANNOTATION], ann[util.MAX_REPLICAS_ANNOTATION]) == ("15", "18")


async def test_scaling_down_mid_rollout_is_proportional(h):
    old, new = await _mid_rollout(h)
    h.update(lambda d: d["spec"].update(replicas=5))
    await h.reconcile()
    # allowed 5 + 3 = 8: old 8·8/13 = 4.92 → -3, new 5·8/13 = 3.08 → -2
    assert h.sizes() == {old: 5, new: 3}


async def test_scaling_to_zero_mid_rollout(h):
    old, new = await _mid_rollout(h)
    h.update(lambda d: d["spec"].update(replicas=0))
    await h.reconcile()
    assert h.sizes() == {old: 0, new: 0}


async def test_scaling_a_settled_deployment_scales_its_only_replica_set(h):
    only = await start(h, 3, rolling(1, 0))
    h.update(lambda d: d["spec"].update(replicas=6))
    mark = len(h.recorder.events)
    await h.reconcile()
    assert h.sizes() == {only: 6}
    assert h.scalings(mark) == [f"Scaled up replica set {only} from 3 to 6"]
    h.rs_controller()
    h.update(lambda d: d["spec"].update(replicas=2))
    await h.reconcile()
    assert h.sizes() == {only: 2}


# --- Recreate ---------------------------------------------------------------------------------------


def add_pods(h: Harness, rs: dict, count: int, phase: str = "Running") -> list[dict]:
    pods = []
    for i in range(count):
        pods.append(h.client.seed(PODS, {
            "metadata": {"name": f"{name_of(rs)}-{i}", "namespace": NS,
                         "labels": rs["spec"]["template"]["metadata"]["labels"],
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name_of(rs),
                                              "uid": rs["metadata"]["uid"], "controller": True}]},
            "spec": {}, "status": {"phase": phase}}))
    return pods


async def test_recreate_scales_old_to_zero_and_waits_for_its_pods_before_creating_the_new(h):
    h.create(make_deployment(replicas=3, strategy={"type": "Recreate"}))
    await settle(h)
    [old] = h.replica_sets()
    pods = add_pods(h, old, 3)
    h.update(set_image("nginx:2"))

    mark = h.mark()
    await h.reconcile()
    assert h.sizes() == {name_of(old): 0}
    assert h.actions(mark, "create") == []
    assert h.condition("Progressing") is not None

    await h.reconcile()  # the RS status still counts 3 pods
    h.rs_controller()  # status says 0, but the pods are still there (terminating)
    await h.reconcile()
    assert h.actions(mark, "create") == []

    for pod in pods[1:]:
        del h.client.objects[("pods", NS, name_of(pod))]
    h.client.stored(PODS, NS, name_of(pods[0]))["status"]["phase"] = "Failed"  # a finished pod does not count
    await h.reconcile()
    [created] = h.actions(mark, "create", "replicasets")
    assert created.body["spec"]["replicas"] == 3
    new = new_name(h, name_of(old))
    assert h.scalings()[-1] == f"Scaled up replica set {new} from 0 to 3"
    assert h.sizes() == {name_of(old): 0, new: 3}


async def test_recreate_first_rollout_and_unknown_pods_count_as_running(h):
    h.create(make_deployment(replicas=2, strategy={"type": "Recreate"}))
    await settle(h)
    [old] = h.replica_sets()
    add_pods(h, old, 1, phase="Unknown")
    h.update(set_image("nginx:2"))
    for _ in range(3):
        await h.reconcile()
        h.rs_controller()
    assert len(h.replica_sets()) == 1


# --- revision history ---------------------------------------------------------------------------------


def seed_history(h: Harness, limit: int, *, paused: bool = False, complete: bool = True) -> None:
    d = make_deployment(replicas=3, image="nginx:new", revisionHistoryLimit=limit, paused=paused)
    d["metadata"]["generation"] = 1
    if complete:
        d["status"] = {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3,
                       "readyReplicas": 3}
    d = h.create(d)
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": d["metadata"]["uid"],
           "controller": True}
    for revision in range(1, 6):
        image = "nginx:new" if revision == 5 else f"nginx:{revision}"
        template = deep_copy(d["spec"]["template"])
        template["spec"]["containers"][0]["image"] = image
        replicas = 3 if revision == 5 else 0
        status = {"replicas": 1 if revision == 2 else replicas, "availableReplicas": replicas,
                  "observedGeneration": 1}
        h.client.seed(REPLICA_SETS, {
            "metadata": {"name": f"web-r{revision}", "namespace": NS, "labels": {"app": "web"},
                         "creationTimestamp": f"2025-01-0{revision}T00:00:00Z", "ownerReferences": [ref],
                         "annotations": {util.REVISION_ANNOTATION: str(revision),
                                         util.DESIRED_REPLICAS_ANNOTATION: "3", util.MAX_REPLICAS_ANNOTATION: "4"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "template": template},
            "status": status})


async def test_history_beyond_the_limit_is_deleted_oldest_first_once_complete(h):
    seed_history(h, limit=2)
    await h.reconcile()
    # 4 old RSes, limit 2: the two oldest revisions are candidates; r2 still has a pod, so it stays
    assert [a.name for a in h.actions(verb="delete")] == ["web-r1"]


async def test_history_is_cleaned_while_paused(h):
    seed_history(h, limit=0, paused=True)
    await h.reconcile()
    assert [a.name for a in h.actions(verb="delete")] == ["web-r1", "web-r3", "web-r4"]


async def test_history_is_kept_while_a_rollout_is_in_progress(h):
    seed_history(h, limit=0, complete=False)
    await h.reconcile()
    assert h.actions(verb="delete") == []
