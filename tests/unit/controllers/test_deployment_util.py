"""The Deployment controller's pure arithmetic: template hash, fenceposts, proportions, annotations, conditions."""

from __future__ import annotations

import pytest

from controllers.deployment import util

TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1"}]}}


def rs(name: str, replicas: int, *, created: str = "2026-01-01T00:00:00Z", revision: str | None = None,
       available: int = 0, annotations: dict | None = None) -> dict:
    ann = dict(annotations or {})
    if revision is not None:
        ann[util.REVISION_ANNOTATION] = revision
    return {"metadata": {"name": name, "uid": f"uid-{name}", "creationTimestamp": created, "annotations": ann},
            "spec": {"replicas": replicas, "template": TEMPLATE},
            "status": {"replicas": replicas, "availableReplicas": available}}


def deployment(replicas: int = 10, surge: int | str = "25%", unavailable: int | str = "25%", **spec) -> dict:
    return {"metadata": {"name": "web", "generation": 1},
            "spec": {"replicas": replicas, "template": TEMPLATE,
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                     **spec}}


# --- hash ----------------------------------------------------------------------------------------------


def test_hash_is_stable_and_uses_the_safe_alphabet():
    first = util.compute_hash(TEMPLATE, None)
    assert first == util.compute_hash({"spec": TEMPLATE["spec"], "metadata": TEMPLATE["metadata"]}, None)
    assert first == "f6c9c4f89"  # pinned: a changed hash renames every ReplicaSet after an upgrade
    assert set(first) <= set("bcdfghjklmnpqrstvwxz2456789")


def test_hash_changes_with_the_template_and_the_collision_count():
    other = {**TEMPLATE, "spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}
    base = util.compute_hash(TEMPLATE, None)
    assert util.compute_hash(other, None) != base
    assert util.compute_hash(TEMPLATE, 0) != base  # as in Kubernetes, a nil count differs from 0
    assert len({util.compute_hash(TEMPLATE, n) for n in range(20)}) == 20


def test_fnv1a_and_safe_encoding_match_the_reference_values():
    assert util._fnv1a_32(b"") == 0x811C9DC5
    assert util._fnv1a_32(b"a") == 0xE40C292C  # FNV-1a 32 test vector
    assert util.safe_encode_string("0123456789") == "456789bcdf"


def test_equal_ignore_hash_ignores_only_the_hash_label_and_empty_fields():
    labelled = {**TEMPLATE, "metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}}}
    assert util.equal_ignore_hash(labelled, TEMPLATE)
    assert util.equal_ignore_hash({**TEMPLATE, "metadata": {**TEMPLATE["metadata"], "annotations": {}}}, TEMPLATE)
    assert not util.equal_ignore_hash({**TEMPLATE, "metadata": {"labels": {"app": "other"}}}, TEMPLATE)


def test_find_new_replica_set_picks_the_oldest_with_an_equal_template():
    newer = rs("web-b", 1, created="2026-01-02T00:00:00Z")
    older = rs("web-a", 1, created="2026-01-01T00:00:00Z")
    other = {**rs("web-c", 1), "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "x"}}}}}
    d = deployment()
    assert util.find_new_replica_set(d, [newer, other, older]) is older
    assert [r["metadata"]["name"] for r in util.find_old_replica_sets(d, [newer, other, older])] == ["web-b", "web-c"]


# --- fenceposts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("surge", "unavailable", "desired", "expected"), [
    ("25%", "25%", 10, (3, 2)),   # surge rounds up, unavailability down
    ("25%", "25%", 3, (1, 0)),
    ("30%", "30%", 5, (2, 1)),
    (2, 1, 10, (2, 1)),
    (0, "10%", 5, (0, 1)),        # both resolve to 0: unavailability becomes 1
    ("0%", "0%", 4, (0, 1)),
    ("100%", 0, 4, (4, 0)),
])
def test_resolve_fenceposts(surge, unavailable, desired, expected):
    assert util.resolve_fenceposts(surge, unavailable, desired) == expected


def test_max_unavailable_is_capped_by_replicas_and_zero_for_recreate():
    assert util.max_unavailable(deployment(replicas=2, surge=0, unavailable=5)) == 2
    assert util.max_unavailable(deployment(replicas=0)) == 0
    recreate = deployment()
    recreate["spec"]["strategy"] = {"type": "Recreate"}
    assert util.max_unavailable(recreate) == 0
    assert util.max_surge(recreate) == 0


def test_a_non_percent_string_is_refused():
    with pytest.raises(ValueError):
        util.scaled_value("5", 10, round_up=True)


def test_new_rs_new_replicas_stays_within_surge():
    d = deployment(replicas=10, surge=3, unavailable=2)
    new = rs("new", 0)
    assert util.new_rs_new_replicas(d, [rs("old", 10), new], new) == 3
    assert util.new_rs_new_replicas(d, [rs("old", 8), rs("new", 3)], rs("new", 3)) == 5
    assert util.new_rs_new_replicas(d, [rs("old", 10), rs("new", 3)], rs("new", 3)) == 3  # at the cap
    assert util.new_rs_new_replicas(d, [rs("old", 1), rs("new", 9)], rs("new", 9)) == 10  # never above replicas


def test_proportions_round_half_up_and_never_exceed_what_is_left():
    d = deployment(replicas=15, surge=3, unavailable=2)
    old = rs("old", 8, annotations={util.MAX_REPLICAS_ANNOTATION: "13"})
    new = rs("new", 5, annotations={util.MAX_REPLICAS_ANNOTATION: "13"})
    assert util.replica_set_fraction(old, d) == 3   # 8 * 18 / 13 = 11.08 → 11
    assert util.replica_set_fraction(new, d) == 2   # 5 * 18 / 13 = 6.92 → 7
    assert util.replica_set_proportion(new, d, 5, 4) == 1
    half = rs("half", 1, annotations={util.MAX_REPLICAS_ANNOTATION: "2"})
    assert util.replica_set_fraction(half, deployment(replicas=3, surge=0, unavailable=1)) == 1  # 1.5 → 2
    assert util._round_ratio(5, 2) == 3 and util._round_ratio(7, 2) == 4


def test_find_active_or_latest():
    old1, old2 = rs("a", 0, created="2026-01-01T00:00:00Z"), rs("b", 0, created="2026-01-02T00:00:00Z")
    assert util.find_active_or_latest(None, [old1, old2]) is old2  # nothing active: the newest
    new = rs("n", 0)
    assert util.find_active_or_latest(new, [old1, old2]) is new
    running = rs("r", 2)
    assert util.find_active_or_latest(new, [old1, running]) is running
    assert util.find_active_or_latest(rs("n", 1), [running]) is None  # two active: proportional case


# --- annotations ---------------------------------------------------------------------------------------


def test_new_replica_set_annotations_for_a_new_rs():
    d = deployment(replicas=4, surge=1, unavailable=0)
    d["metadata"]["annotations"] = {"team": "a", util.LAST_APPLIED_ANNOTATION: "{}", util.REVISION_ANNOTATION: "7"}
    new = {"metadata": {}}
    assert util.set_new_replica_set_annotations(d, new, 3, exists=False)
    assert new["metadata"]["annotations"] == {
        "team": "a", util.REVISION_ANNOTATION: "3", util.DESIRED_REPLICAS_ANNOTATION: "4",
        util.MAX_REPLICAS_ANNOTATION: "5"}


def test_reused_rs_gets_the_new_revision_and_keeps_its_history():
    d = deployment()
    old = {"metadata": {"annotations": {util.REVISION_ANNOTATION: "2", util.REVISION_HISTORY_ANNOTATION: "1"}}}
    assert util.set_new_replica_set_annotations(d, old, 5, exists=True)
    assert old["metadata"]["annotations"][util.REVISION_ANNOTATION] == "5"
    assert old["metadata"]["annotations"][util.REVISION_HISTORY_ANNOTATION] == "1,2"
    assert not util.set_new_replica_set_annotations(d, old, 5, exists=True)  # idempotent
    assert not util.set_new_replica_set_annotations(d, old, 4, exists=True)  # never lowered


def test_revision_history_is_bounded():
    ann = {util.REVISION_HISTORY_ANNOTATION: ",".join(str(i) for i in range(1, 600))}
    util._append_revision_history(ann, "600")
    history = ann[util.REVISION_HISTORY_ANNOTATION]
    assert len(history) <= util.MAX_REVISION_HISTORY_CHARS and history.endswith(",600")
    assert not history.startswith("1,")


# --- conditions ----------------------------------------------------------------------------------------


def test_set_condition_keeps_transition_time_while_status_is_unchanged():
    status: dict = {}
    util.set_condition(status, util.new_condition("Progressing", "True", "A", "m", "t1"))
    util.set_condition(status, util.new_condition("Progressing", "True", "A", "other", "t2"))
    assert status["conditions"][0]["lastUpdateTime"] == "t1"  # same status and reason: untouched
    util.set_condition(status, util.new_condition("Progressing", "True", "B", "m", "t3"))
    assert status["conditions"][0]["lastTransitionTime"] == "t1"
    assert status["conditions"][0]["lastUpdateTime"] == "t3"
    util.set_condition(status, util.new_condition("Progressing", "False", "C", "m", "t4"))
    assert status["conditions"][0]["lastTransitionTime"] == "t4"
    util.remove_condition(status, "Progressing")
    assert "conditions" not in status
