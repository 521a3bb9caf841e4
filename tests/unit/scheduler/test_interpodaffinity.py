"""InterPodAffinity: required affinity, anti-affinity and its symmetry, namespaces, and preferred scoring.

A small cluster — two nodes in zone a, one in zone b, one without a zone label — and table rows that
place existing pods and ask which nodes an incoming pod may use, with the exact reason strings and
codes (affinity: UNSCHEDULABLE_AND_UNRESOLVABLE; anti-affinity: UNSCHEDULABLE, preemption may help).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from machinery.client import NAMESPACES
from machinery.informer import SharedInformerFactory
from scheduler.framework import ClusterEvent, Code, CycleState, Handle, NodeInfo, NodeScore, PodInfo, Snapshot
from scheduler.plugins.interpodaffinity import (
    ERR_REASON_AFFINITY,
    ERR_REASON_ANTI_AFFINITY,
    ERR_REASON_EXISTING_ANTI_AFFINITY,
    InterPodAffinity,
)

Obj = dict[str, Any]
ZONE, HOST = "topology.kubernetes.io/zone", "kubernetes.io/hostname"
_uids = itertools.count()

AFFINITY = ("affinity", Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_AFFINITY)
ANTI = ("anti", Code.UNSCHEDULABLE, ERR_REASON_ANTI_AFFINITY)
EXISTING = ("existing", Code.UNSCHEDULABLE, ERR_REASON_EXISTING_ANTI_AFFINITY)


def make_pod(name: str = "p", namespace: str = "default", labels: dict[str, str] | None = None,
             affinity: Obj | None = None) -> PodInfo:
    spec: Obj = {"containers": [{"name": "c"}]}
    if affinity:
        spec["affinity"] = affinity
    return PodInfo({"metadata": {"name": name, "namespace": namespace, "uid": f"uid-{next(_uids)}",
                                 "labels": labels or {}}, "spec": spec})


def pod_term(topology_key: str, match_labels: dict[str, str] | None = None, **extra: Any) -> Obj:
    result: Obj = {"topologyKey": topology_key, **extra}
    if match_labels is not None:
        result["labelSelector"] = {"matchLabels": match_labels}
    return result


def required(*terms: Obj, anti: bool = False) -> Obj:
    group = "podAntiAffinity" if anti else "podAffinity"
    return {group: {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}}


def preferred(*weighted: tuple[int, Obj], anti: bool = False) -> Obj:
    group = "podAntiAffinity" if anti else "podAffinity"
    return {group: {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": w, "podAffinityTerm": t} for w, t in weighted]}}


def make_cluster(placements: dict[str, list[PodInfo]] | None = None) -> Snapshot:
    nodes = [
        NodeInfo({"metadata": {"name": "n1", "labels": {ZONE: "a", HOST: "n1"}}}),
        NodeInfo({"metadata": {"name": "n2", "labels": {ZONE: "a", HOST: "n2"}}}),
        NodeInfo({"metadata": {"name": "n3", "labels": {ZONE: "b", HOST: "n3"}}}),
        NodeInfo({"metadata": {"name": "n4", "labels": {HOST: "n4"}}}),
    ]
    for node in nodes:
        for pod in (placements or {}).get(node.name, ()):
            node.add_pod(pod)
    return Snapshot(nodes)


NAMESPACE_OBJECTS = [
    {"metadata": {"name": "default", "labels": {}}},
    {"metadata": {"name": "other", "labels": {"team": "x"}}},
    {"metadata": {"name": "prod", "labels": {"env": "prod"}}},
]


def make_plugin(snapshot: Snapshot, args: Obj | None = None) -> InterPodAffinity:
    informers = SharedInformerFactory(None)  # type: ignore[arg-type]  # never started: a store to fill
    store = informers.informer(NAMESPACES).store
    for ns in NAMESPACE_OBJECTS:
        store.upsert(ns)
    handle = Handle(client=None, informers=informers, clock=None, snapshot=lambda: snapshot)  # type: ignore[arg-type]
    return InterPodAffinity(args or {}, handle)


def verdicts(pod: PodInfo, placements: dict[str, list[PodInfo]]) -> dict[str, str | None] | str:
    """Per node: None (fits) or the short name of the rejection; "skip" when PreFilter skips."""
    snapshot = make_cluster(placements)
    plugin = make_plugin(snapshot)
    state = CycleState()
    _, status = plugin.pre_filter(state, pod, snapshot.node_infos)
    if status is not None:
        assert status.code == Code.SKIP
        return "skip"
    result: dict[str, str | None] = {}
    for node in snapshot.node_infos:
        status = plugin.filter(state, pod, node)
        if status is None:
            result[node.name] = None
            continue
        kind = next(k for k, code, reason in (AFFINITY, ANTI, EXISTING) if status.reasons == (reason,))
        expected_code = {"affinity": AFFINITY[1], "anti": ANTI[1], "existing": EXISTING[1]}[kind]
        assert status.code == expected_code
        result[node.name] = kind
    return result


def db(namespace: str = "default", **labels: str) -> PodInfo:
    return make_pod("db", namespace, {"app": "db", **labels})


def web(namespace: str = "default", affinity: Obj | None = None, **labels: str) -> PodInfo:
    return make_pod("web", namespace, {"app": "web", **labels}, affinity)


FILTER_CASES = [
    ("affinity: nodes in the db pod's zone", web(affinity=required(pod_term(ZONE, {"app": "db"}))),
     {"n1": [db()]}, {"n1": None, "n2": None, "n3": "affinity", "n4": "affinity"}),
    ("affinity: hostname", web(affinity=required(pod_term(HOST, {"app": "db"}))),
     {"n3": [db()]}, {"n1": "affinity", "n2": "affinity", "n3": None, "n4": "affinity"}),
    ("affinity: nothing matches and the pod does not match itself",
     web(affinity=required(pod_term(ZONE, {"app": "db"}))),
     {}, {"n1": "affinity", "n2": "affinity", "n3": "affinity", "n4": "affinity"}),
    ("affinity: first pod of a self-affine group goes anywhere with the label",
     web(affinity=required(pod_term(ZONE, {"app": "web"}))),
     {}, {"n1": None, "n2": None, "n3": None, "n4": "affinity"}),
    ("affinity: self-affine group with a member only next to it",
     web(affinity=required(pod_term(ZONE, {"app": "web"}))),
     {"n3": [web()]}, {"n1": "affinity", "n2": "affinity", "n3": None, "n4": "affinity"}),
    ("affinity: a pod must match all terms to count",
     web(affinity=required(pod_term(ZONE, {"app": "db"}), pod_term(HOST, {"tier": "cache"}))),
     {"n1": [db()], "n2": [make_pod("cache", labels={"tier": "cache"})]},
     {"n1": "affinity", "n2": "affinity", "n3": "affinity", "n4": "affinity"}),
    ("affinity: one pod matching all terms",
     web(affinity=required(pod_term(ZONE, {"app": "db"}), pod_term(HOST, {"role": "primary"}))),
     {"n2": [db(role="primary")]}, {"n1": "affinity", "n2": None, "n3": "affinity", "n4": "affinity"}),
    ("affinity: other namespace does not count by default", web(affinity=required(pod_term(ZONE, {"app": "db"}))),
     {"n1": [db("other")]}, {"n1": "affinity", "n2": "affinity", "n3": "affinity", "n4": "affinity"}),
    ("affinity: namespaces list", web(affinity=required(pod_term(ZONE, {"app": "db"}, namespaces=["other"]))),
     {"n1": [db("other")], "n3": [db()]}, {"n1": None, "n2": None, "n3": "affinity", "n4": "affinity"}),
    ("affinity: namespaceSelector", web(affinity=required(
        pod_term(ZONE, {"app": "db"}, namespaceSelector={"matchLabels": {"team": "x"}}))),
     {"n1": [db()], "n3": [db("other")]}, {"n1": "affinity", "n2": "affinity", "n3": None, "n4": "affinity"}),
    ("affinity: empty namespaceSelector selects all namespaces", web(affinity=required(
        pod_term(ZONE, {"app": "db"}, namespaceSelector={}))),
     {"n3": [db("prod")]}, {"n1": "affinity", "n2": "affinity", "n3": None, "n4": "affinity"}),
    ("affinity: namespaceSelector for a namespace the store does not have", web(affinity=required(
        pod_term(ZONE, {"app": "db"}, namespaceSelector={"matchLabels": {"team": "y"}}))),
     {"n3": [db("ghost")]}, {"n1": "affinity", "n2": "affinity", "n3": "affinity", "n4": "affinity"}),
    ("affinity: matchLabelKeys narrows to the same version",
     web(affinity=required(pod_term(ZONE, {"app": "db"}, matchLabelKeys=["version"])), version="v2"),
     {"n1": [db(version="v1")], "n3": [db(version="v2")]},
     {"n1": "affinity", "n2": "affinity", "n3": None, "n4": "affinity"}),
    ("anti-affinity: hostname", web(affinity=required(pod_term(HOST, {"app": "web"}), anti=True)),
     {"n1": [web()]}, {"n1": "anti", "n2": None, "n3": None, "n4": None}),
    ("anti-affinity: zone, a node without the label is fine", web(affinity=required(
        pod_term(ZONE, {"app": "web"}), anti=True)),
     {"n1": [web()]}, {"n1": "anti", "n2": "anti", "n3": None, "n4": None}),
    ("anti-affinity: nil labelSelector matches nothing", web(affinity=required(pod_term(HOST), anti=True)),
     {"n1": [web()]}, {"n1": None, "n2": None, "n3": None, "n4": None}),
    ("anti-affinity: mismatchLabelKeys keeps tenants apart", make_pod(
        "t", labels={"tenant": "a"}, affinity=required(pod_term(
            HOST, None, labelSelector={"matchExpressions": [{"key": "tenant", "operator": "Exists"}]},
            mismatchLabelKeys=["tenant"]), anti=True)),
     {"n1": [make_pod("x", labels={"tenant": "b"})], "n2": [make_pod("y", labels={"tenant": "a"})]},
     {"n1": "anti", "n2": None, "n3": None, "n4": None}),
    ("symmetry: an existing pod's anti-affinity keeps the pod out of its zone", web(),
     {"n1": [make_pod("lonely", affinity=required(pod_term(ZONE, {"app": "web"}), anti=True))]},
     {"n1": "existing", "n2": "existing", "n3": None, "n4": None}),
    ("symmetry: the existing pod's term does not select the pod", db(),
     {"n1": [make_pod("lonely", affinity=required(pod_term(ZONE, {"app": "web"}), anti=True))]}, "skip"),
    ("symmetry: only the terms selecting the pod count", db(),
     {"n1": [make_pod("lonely", affinity=required(pod_term(ZONE, {"app": "web"}), anti=True))],
      "n3": [make_pod("hermit", affinity=required(pod_term(HOST, {"app": "db"}), anti=True))]},
     {"n1": None, "n2": None, "n3": "existing", "n4": None}),
    ("symmetry: the existing pod's namespaceSelector against the pod's namespace labels", web("prod"),
     {"n3": [make_pod("guard", "other", affinity=required(pod_term(
         HOST, {"app": "web"}, namespaceSelector={"matchLabels": {"env": "prod"}}), anti=True))]},
     {"n1": None, "n2": None, "n3": "existing", "n4": None}),
    ("symmetry: namespaceSelector does not select the pod's namespace", web("default"),
     {"n3": [make_pod("guard", "other", affinity=required(pod_term(
         HOST, {"app": "web"}, namespaceSelector={"matchLabels": {"env": "prod"}}), anti=True))]},
     "skip"),
    ("symmetry: existing pod's own namespace by default", web("prod"),
     {"n3": [make_pod("guard", "default", affinity=required(pod_term(HOST, {"app": "web"}), anti=True))]},
     "skip"),
    ("affinity is checked before anti-affinity", web(affinity={
        **required(pod_term(ZONE, {"app": "db"})), **required(pod_term(HOST, {"app": "web"}), anti=True)}),
     {"n1": [db(), web()]}, {"n1": "anti", "n2": None, "n3": "affinity", "n4": "affinity"}),
    ("no affinity anywhere: skip", web(), {"n1": [db()]}, "skip"),
]


@pytest.mark.parametrize(("description", "pod", "placements", "expected"), FILTER_CASES,
                         ids=[c[0] for c in FILTER_CASES])
def test_filter(description: str, pod: PodInfo, placements: dict[str, list[PodInfo]], expected: Any) -> None:
    assert verdicts(pod, placements) == expected


def test_filter_without_pre_filter_state_is_an_error() -> None:
    plugin = make_plugin(make_cluster())
    status = plugin.filter(CycleState(), web(), make_cluster().node_infos[0])
    assert status is not None and status.code == Code.ERROR


def test_invalid_selector_is_unresolvable() -> None:
    pod = web(affinity=required(pod_term(ZONE, None, labelSelector={
        "matchExpressions": [{"key": "app", "operator": "Bogus"}]})))
    snapshot = make_cluster()
    _, status = make_plugin(snapshot).pre_filter(CycleState(), pod, snapshot.node_infos)
    assert status is not None and status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert status.reasons[0].startswith("parsing pod: ")


def test_counts_follow_changes_to_nodes() -> None:
    """Counts are kept across cycles per node; a node the scheduler cache changed is counted again."""
    snapshot = make_cluster({"n1": [web()]})
    plugin = make_plugin(snapshot)
    incoming = web(affinity=required(pod_term(ZONE, {"app": "web"}), anti=True))

    def refused() -> list[str]:
        state = CycleState()
        plugin.pre_filter(state, incoming, snapshot.node_infos)
        return [n.name for n in snapshot.node_infos if plugin.filter(state, incoming, n) is not None]

    assert refused() == ["n1", "n2"]
    n1, n3 = snapshot.node_infos[0], snapshot.node_infos[2]
    n3.add_pod(web())
    n3.generation += 1
    assert refused() == ["n1", "n2", "n3"]
    n1.remove_pod(n1.pods[0])
    n1.add_pod(db())  # same pod count: the generation tells
    n1.generation += 1
    assert refused() == ["n3"]


def test_terms_sharing_a_topology_key_count_once_each() -> None:
    """A pod matching two terms with the same key counts twice, so removing it leaves no trace."""
    incoming = web(affinity=required(pod_term(ZONE, {"app": "web"}), pod_term(ZONE, {"tier": "front"})),
                   tier="front")
    snapshot = make_cluster({"n3": [web(tier="front")]})
    plugin = make_plugin(snapshot)
    state = CycleState()
    plugin.pre_filter(state, incoming, snapshot.node_infos)
    n1, n3 = snapshot.node_infos[0], snapshot.node_infos[2]
    assert plugin.filter(state, incoming, n1).reasons == (ERR_REASON_AFFINITY,)
    plugin.remove_pod(state, incoming, n3.pods[0], n3)
    assert plugin.filter(state, incoming, n1) is None  # nothing matches any more: the first pod may go anywhere


def test_add_and_remove_pod_update_the_counts() -> None:
    incoming = web(affinity=required(pod_term(HOST, {"app": "web"}), anti=True))
    snapshot = make_cluster({"n1": [web()]})
    plugin = make_plugin(snapshot)
    state = CycleState()
    plugin.pre_filter(state, incoming, snapshot.node_infos)
    n1, n2 = snapshot.node_infos[0], snapshot.node_infos[1]
    victim = n1.pods[0]
    dry_run = state.clone()
    plugin.remove_pod(dry_run, incoming, victim, n1)
    assert plugin.filter(dry_run, incoming, n1) is None
    assert plugin.filter(state, incoming, n1) is not None  # the original state is untouched
    plugin.add_pod(dry_run, incoming, web(), n2)
    assert plugin.filter(dry_run, incoming, n2).reasons == (ERR_REASON_ANTI_AFFINITY,)
    # an added pod with anti-affinity against the incoming pod blocks its zone (symmetry)
    plugin.add_pod(dry_run, incoming, make_pod("guard", affinity=required(pod_term(ZONE, {"app": "web"}), anti=True)),
                   snapshot.node_infos[2])
    assert plugin.filter(dry_run, incoming, snapshot.node_infos[2]).reasons == (ERR_REASON_EXISTING_ANTI_AFFINITY,)


# --- scoring --------------------------------------------------------------------------------------


def scores(pod: PodInfo, placements: dict[str, list[PodInfo]], args: Obj | None = None) -> Any:
    snapshot = make_cluster(placements)
    plugin = make_plugin(snapshot, args)
    state = CycleState()
    status = plugin.pre_score(state, pod, snapshot.node_infos)
    if status is not None:
        assert status.code == Code.SKIP
        return "skip"
    node_scores = [NodeScore(n.name, plugin.score(state, pod, n)) for n in snapshot.node_infos]
    raw = {s.name: s.score for s in node_scores}
    plugin.normalize_score(state, pod, node_scores)
    return raw, {s.name: s.score for s in node_scores}


SCORE_CASES = [
    ("preferred affinity", web(affinity=preferred((10, pod_term(ZONE, {"app": "db"})))), {"n1": [db()]},
     ({"n1": 10, "n2": 10, "n3": 0, "n4": 0}, {"n1": 100, "n2": 100, "n3": 0, "n4": 0})),
    ("preferred anti-affinity", web(affinity=preferred((4, pod_term(HOST, {"app": "web"})), anti=True)),
     {"n1": [web()], "n2": [web(), web()]},
     ({"n1": -4, "n2": -8, "n3": 0, "n4": 0}, {"n1": 50, "n2": 0, "n3": 100, "n4": 100})),
    ("affinity and anti-affinity together", web(affinity={
        **preferred((10, pod_term(ZONE, {"app": "db"}))), **preferred((5, pod_term(HOST, {"app": "web"})), anti=True)}),
     {"n1": [db(), web()], "n3": [db()]},
     ({"n1": 5, "n2": 10, "n3": 10, "n4": 0}, {"n1": 50, "n2": 100, "n3": 100, "n4": 0})),
    ("existing pod's required affinity counts hardPodAffinityWeight", web(),
     {"n3": [make_pod("fan", affinity=required(pod_term(ZONE, {"app": "web"})))]},
     ({"n1": 0, "n2": 0, "n3": 1, "n4": 0}, {"n1": 0, "n2": 0, "n3": 100, "n4": 0})),
    ("existing pod's preferred anti-affinity", web(),
     {"n1": [make_pod("shy", affinity=preferred((7, pod_term(ZONE, {"app": "web"})), anti=True))]},
     ({"n1": -7, "n2": -7, "n3": 0, "n4": 0}, {"n1": 0, "n2": 0, "n3": 100, "n4": 100})),
    ("existing pod's preferred affinity with a namespaceSelector", web("prod"),
     {"n2": [make_pod("friend", "other", affinity=preferred(
         (3, pod_term(HOST, {"app": "web"}, namespaceSelector={"matchLabels": {"env": "prod"}}))))]},
     ({"n1": 0, "n2": 3, "n3": 0, "n4": 0}, {"n1": 0, "n2": 100, "n3": 0, "n4": 0})),
    ("incoming preferred term with a namespaceSelector", web(affinity=preferred(
        (2, pod_term(ZONE, {"app": "db"}, namespaceSelector={"matchLabels": {"team": "x"}})))),
     {"n1": [db()], "n3": [db("other")]},
     ({"n1": 0, "n2": 0, "n3": 2, "n4": 0}, {"n1": 0, "n2": 0, "n3": 100, "n4": 0})),
    ("no affinity anywhere", web(), {"n1": [db()]}, "skip"),
    ("nothing matches", web(affinity=preferred((10, pod_term(ZONE, {"app": "nope"})))), {"n1": [db()]}, "skip"),
]


@pytest.mark.parametrize(("description", "pod", "placements", "expected"), SCORE_CASES,
                         ids=[c[0] for c in SCORE_CASES])
def test_score(description: str, pod: PodInfo, placements: dict[str, list[PodInfo]], expected: Any) -> None:
    assert scores(pod, placements) == expected


def test_hard_pod_affinity_weight_arg() -> None:
    placements = {"n3": [make_pod("fan", affinity=required(pod_term(ZONE, {"app": "web"})))]}
    raw, _ = scores(web(), placements, {"hardPodAffinityWeight": 5})
    assert raw == {"n1": 0, "n2": 0, "n3": 5, "n4": 0}
    assert scores(web(), placements, {"hardPodAffinityWeight": 0}) == "skip"


def test_ignore_preferred_terms_of_existing_pods() -> None:
    placements = {"n1": [make_pod("shy", affinity=preferred((7, pod_term(ZONE, {"app": "web"})), anti=True))]}
    assert scores(web(), placements, {"ignorePreferredTermsOfExistingPods": True}) == "skip"
    pod = web(affinity=preferred((1, pod_term(HOST, {"app": "db"}))))
    raw, _ = scores(pod, placements, {"ignorePreferredTermsOfExistingPods": True})
    assert raw["n1"] == -7  # the incoming pod has preferences: existing pods' terms count again


def test_equal_scores_normalize_to_zero() -> None:
    pod = web(affinity=preferred((10, pod_term(HOST, {"app": "db"}))))
    placements = {"n1": [db()], "n2": [db()], "n3": [db()], "n4": [db()]}
    assert scores(pod, placements)[1] == {"n1": 0, "n2": 0, "n3": 0, "n4": 0}


@pytest.mark.parametrize("weight", [-1, 101, "1"])
def test_invalid_hard_pod_affinity_weight(weight: Any) -> None:
    with pytest.raises(ValueError, match="hardPodAffinityWeight"):
        make_plugin(make_cluster(), {"hardPodAffinityWeight": weight})


def test_events_to_register() -> None:
    events = make_plugin(make_cluster()).events_to_register()
    for event in (ClusterEvent("Pod", "Add"), ClusterEvent("Pod", "Delete"), ClusterEvent("Pod", "UpdatePodLabel"),
                  ClusterEvent("Node", "Add"), ClusterEvent("Node", "UpdateNodeLabel")):
        assert event in events
