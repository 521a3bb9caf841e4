"""PodTopologySpread: skew filtering, minDomains, inclusion policies, default constraints and spread scoring.

The cluster has zones a (n1, n2), b (n3, n4) and c (n5); rows place pods and say which nodes the
incoming pod may use, with the exact reasons and codes ("... (missing required label)" cannot be
fixed by preemption, a skew violation can). Scores are checked against values worked out by hand
from Kubernetes' formula (count * log(domains + 2) + maxSkew - 1, then reversed min-max).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from machinery.client import REPLICA_SETS, SERVICES
from machinery.informer import SharedInformerFactory
from scheduler.framework import ClusterEvent, Code, CycleState, Handle, NodeInfo, NodeScore, PodInfo, Snapshot
from scheduler.plugins.podtopologyspread import (
    ERR_REASON_CONSTRAINTS_NOT_MATCH,
    ERR_REASON_NODE_LABEL_NOT_MATCH,
    DomainCountCache,
    NodeCountCache,
    PodTopologySpread,
)

Obj = dict[str, Any]
ZONE, HOST = "topology.kubernetes.io/zone", "kubernetes.io/hostname"
_uids = itertools.count()
SKEW = "skew"
LABEL = "label"


def make_pod(name: str = "p", namespace: str = "default", labels: dict[str, str] | None = None,
             constraints: list[Obj] | None = None, owner: str | None = None, **spec: Any) -> PodInfo:
    meta: Obj = {"name": name, "namespace": namespace, "uid": f"uid-{next(_uids)}", "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": "rs-uid",
                                    "controller": True}]
    full_spec: Obj = {"containers": [{"name": "c"}], **spec}
    if constraints:
        full_spec["topologySpreadConstraints"] = constraints
    return PodInfo({"metadata": meta, "spec": full_spec})


def web(namespace: str = "default", constraints: list[Obj] | None = None, **labels: str) -> PodInfo:
    return make_pod("web", namespace, {"app": "web", **labels}, constraints)


def constraint(key: str = ZONE, max_skew: int = 1, when: str = "DoNotSchedule",
               selector: Obj | None = None, **extra: Any) -> Obj:
    return {"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": {"app": "web"}} if selector is None else selector, **extra}


def make_node(name: str, zone: str | None, taints: list[Obj] | None = None) -> NodeInfo:
    labels = {HOST: name}
    if zone is not None:
        labels[ZONE] = zone
    return NodeInfo({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints or []}})


def make_cluster(placements: dict[str, list[PodInfo]], extra: list[NodeInfo] = (),
                 taint_zone_a: bool = False) -> Snapshot:
    taints = [{"key": "maintenance", "effect": "NoSchedule"}] if taint_zone_a else None
    nodes = [make_node("n1", "a", taints), make_node("n2", "a", taints), make_node("n3", "b"), make_node("n4", "b"),
             make_node("n5", "c"), *extra]
    for node in nodes:
        for pod in placements.get(node.name, ()):
            node.add_pod(pod)
    return Snapshot(nodes)


def make_plugin(snapshot: Snapshot, args: Obj | None = None, replica_sets: list[Obj] = (),
                services: list[Obj] = ()) -> PodTopologySpread:
    informers = SharedInformerFactory(None)  # type: ignore[arg-type]  # never started: stores to fill
    for obj in replica_sets:
        informers.informer(REPLICA_SETS).store.upsert(obj)
    for obj in services:
        informers.informer(SERVICES).store.upsert(obj)
    handle = Handle(client=None, informers=informers, clock=None, snapshot=lambda: snapshot)  # type: ignore[arg-type]
    return PodTopologySpread(args or {}, handle)


def verdicts(pod: PodInfo, snapshot: Snapshot, plugin: PodTopologySpread | None = None) -> Any:
    plugin = plugin or make_plugin(snapshot)
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
        elif status.reasons == (ERR_REASON_CONSTRAINTS_NOT_MATCH,):
            assert status.code == Code.UNSCHEDULABLE
            result[node.name] = SKEW
        else:
            assert status.reasons == (ERR_REASON_NODE_LABEL_NOT_MATCH,)
            assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
            result[node.name] = LABEL
    return result


def ws(n: int, namespace: str = "default", **labels: str) -> list[PodInfo]:
    return [web(namespace, **labels) for _ in range(n)]


NOT_ZONE_A = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
    {"matchExpressions": [{"key": ZONE, "operator": "NotIn", "values": ["a"]}]}]}}}
ALL_FIT = {"n1": None, "n2": None, "n3": None, "n4": None, "n5": None}

FILTER_CASES = [
    ("zone spread: the fuller zones are refused", web(constraints=[constraint()]),
     {"n1": ws(1), "n2": ws(1), "n3": ws(1), "n5": ws(1)},
     {"n1": SKEW, "n2": SKEW, "n3": None, "n4": None, "n5": None}),
    ("maxSkew 2 allows one more", web(constraints=[constraint(max_skew=2)]),
     {"n1": ws(1), "n2": ws(1), "n3": ws(1), "n5": ws(1)}, ALL_FIT),
    ("a pod its own selector does not match adds nothing", make_pod(labels={"app": "db"}, constraints=[constraint()]),
     {"n1": ws(2), "n3": ws(1), "n5": ws(1)}, ALL_FIT),
    ("hostname spread", web(constraints=[constraint(HOST)]),
     {"n1": ws(1), "n2": ws(1), "n3": ws(1), "n4": ws(1)},
     {"n1": SKEW, "n2": SKEW, "n3": SKEW, "n4": SKEW, "n5": None}),
    ("both constraints must hold", web(constraints=[constraint(), constraint(HOST)]),
     {"n1": ws(1), "n3": ws(1), "n4": ws(1), "n5": ws(1)},
     {"n1": SKEW, "n2": None, "n3": SKEW, "n4": SKEW, "n5": SKEW}),
    ("other namespaces are not counted", web(constraints=[constraint()]),
     {"n1": ws(3, "other"), "n3": ws(1)}, {"n1": None, "n2": None, "n3": SKEW, "n4": SKEW, "n5": None}),
    ("terminating pods are not counted", web(constraints=[constraint()]),
     {"n1": [make_pod("old", labels={"app": "web"}, constraints=None)]}, "terminating"),
    ("minDomains above the domain count makes the global minimum 0",
     web(constraints=[constraint(minDomains=4)]),
     {"n1": ws(1), "n3": ws(1), "n5": ws(1)}, {"n1": SKEW, "n2": SKEW, "n3": SKEW, "n4": SKEW, "n5": SKEW}),
    ("minDomains met", web(constraints=[constraint(minDomains=3)]),
     {"n1": ws(1), "n3": ws(1), "n5": ws(1)}, ALL_FIT),
    ("nodeAffinityPolicy Honor leaves zone a out of the minimum",
     make_pod("web", labels={"app": "web"}, constraints=[constraint()], affinity=NOT_ZONE_A),
     {"n3": ws(1), "n5": ws(1)}, ALL_FIT),
    ("nodeAffinityPolicy Ignore counts zone a's empty domain",
     make_pod("web", labels={"app": "web"}, constraints=[constraint(nodeAffinityPolicy="Ignore")],
              affinity=NOT_ZONE_A),
     {"n3": ws(1), "n5": ws(1)}, {"n1": None, "n2": None, "n3": SKEW, "n4": SKEW, "n5": SKEW}),
    ("matchLabelKeys counts only the same revision", web(constraints=[constraint(matchLabelKeys=["rev"])], rev="2"),
     {"n1": ws(2, rev="1"), "n3": ws(1, rev="2")}, {"n1": None, "n2": None, "n3": SKEW, "n4": SKEW, "n5": None}),
    ("an empty labelSelector counts nothing", web(constraints=[constraint(selector={})]),
     {"n1": ws(3)}, ALL_FIT),
    ("only ScheduleAnyway constraints: nothing to filter", web(constraints=[constraint(when="ScheduleAnyway")]),
     {"n1": ws(3)}, "skip"),
    ("no constraints and no owner: nothing to do", web(), {"n1": ws(3)}, "skip"),
]


@pytest.mark.parametrize(("description", "pod", "placements", "expected"), FILTER_CASES,
                         ids=[c[0] for c in FILTER_CASES])
def test_filter(description: str, pod: PodInfo, placements: dict[str, list[PodInfo]], expected: Any) -> None:
    if expected == "terminating":
        for pods in placements.values():
            for pod_info in pods:
                pod_info.pod["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
        expected = ALL_FIT
    assert verdicts(pod, make_cluster(placements)) == expected


def test_missing_topology_label_is_unresolvable() -> None:
    snapshot = make_cluster({"n1": ws(1)}, extra=[make_node("n6", None)])
    result = verdicts(web(constraints=[constraint()]), snapshot)
    assert result["n6"] == LABEL
    assert result["n1"] == SKEW and result["n3"] is None


@pytest.mark.parametrize(("policy", "tolerate", "expected_n3"), [
    ("Ignore", False, SKEW),   # zone a counts with 0 pods: minimum 0
    ("Honor", False, None),    # tainted zone a is left out: minimum 1
    ("Honor", True, SKEW),     # tolerated: zone a counts again
])
def test_node_taints_policy(policy: str, tolerate: bool, expected_n3: str | None) -> None:
    tolerations = [{"key": "maintenance", "operator": "Exists"}] if tolerate else []
    pod = make_pod("web", labels={"app": "web"}, constraints=[constraint(nodeTaintsPolicy=policy)],
                   tolerations=tolerations)
    snapshot = make_cluster({"n3": ws(1), "n5": ws(1)}, taint_zone_a=True)
    assert verdicts(pod, snapshot)["n3"] == expected_n3


def test_counts_follow_changes_to_nodes() -> None:
    """The per-node count cache must notice pods added and removed between cycles."""
    snapshot = make_cluster({"n1": ws(1)})
    plugin = make_plugin(snapshot)
    pod = web(constraints=[constraint()])
    assert verdicts(pod, snapshot, plugin)["n1"] == SKEW
    n1 = snapshot.node_infos[0]
    for other in snapshot.node_infos[2], snapshot.node_infos[4]:  # zones b and c catch up
        other.add_pod(web())  # (without a generation bump: the pod count still tells)
    assert verdicts(pod, snapshot, plugin)["n1"] is None
    n1.remove_pod(n1.pods[0])
    n1.add_pod(make_pod("db", labels={"app": "db"}))  # same number of pods, different ones
    n1.generation += 1
    assert verdicts(pod, snapshot, plugin) == {"n1": None, "n2": None, "n3": SKEW, "n4": SKEW, "n5": SKEW}


def test_counts_depend_on_each_pods_node_affinity() -> None:
    """One plugin, two pods of a workload with different node affinity: the cached counts must not mix."""
    snapshot = make_cluster({"n3": ws(1), "n5": ws(1)})
    plugin = make_plugin(snapshot)
    honoring = make_pod("web", labels={"app": "web"}, constraints=[constraint()], affinity=NOT_ZONE_A)
    assert verdicts(honoring, snapshot, plugin) == ALL_FIT
    plain = web(constraints=[constraint()])
    assert verdicts(plain, snapshot, plugin) == {"n1": None, "n2": None, "n3": SKEW, "n4": SKEW, "n5": SKEW}
    assert verdicts(honoring, snapshot, plugin) == ALL_FIT


def test_domain_count_cache_follows_relabelled_nodes_and_evicts() -> None:
    nodes = make_cluster({"n1": ws(1), "n3": ws(2)}).node_infos
    counts = NodeCountCache(max_keys=1)
    domains = DomainCountCache(max_keys=1)

    def webs() -> dict[str, int]:
        counter = counts.counter("web", lambda pods: sum(1 for p in pods if p.labels.get("app") == "web"))
        return domains.totals("web", nodes, ZONE, [ZONE], counter)

    def anything() -> dict[str, int]:
        return domains.totals("all", nodes, ZONE, None, counts.counter("all", len))

    assert webs() == {"a": 1, "b": 2, "c": 0}
    nodes[2].node = {"metadata": {"name": "n3", "labels": {HOST: "n3", ZONE: "c"}}}  # n3 moves to zone c
    nodes[2].generation += 1
    assert webs() == {"a": 1, "b": 0, "c": 2}
    nodes[4].node = {"metadata": {"name": "n5", "labels": {HOST: "n5"}}}  # n5 loses its zone: not counted
    nodes[4].generation += 1
    assert webs() == {"a": 1, "b": 0, "c": 2}
    nodes[3].node = nodes[4].node = {"metadata": {"name": "x", "labels": {}}}
    nodes[3].generation += 1
    assert anything() == {"a": 1, "c": 2, "": 0}  # evicts "web"; None required keys read a missing label as ""
    assert webs() == {"a": 1, "c": 2}


def test_add_and_remove_pod_update_the_counts() -> None:
    snapshot = make_cluster({"n1": ws(1), "n3": ws(1), "n5": ws(1)})
    plugin = make_plugin(snapshot)
    pod = web(constraints=[constraint()])
    state = CycleState()
    plugin.pre_filter(state, pod, snapshot.node_infos)
    n1, n3 = snapshot.node_infos[0], snapshot.node_infos[2]
    assert plugin.filter(state, pod, n1) is None
    dry_run = state.clone()
    plugin.add_pod(dry_run, pod, web(), n1)
    assert plugin.filter(dry_run, pod, n1).reasons == (ERR_REASON_CONSTRAINTS_NOT_MATCH,)
    assert plugin.filter(state, pod, n1) is None  # the original state is untouched
    plugin.remove_pod(dry_run, pod, n3.pods[0], n3)  # zone b drops to 0: the minimum follows
    assert plugin.filter(dry_run, pod, snapshot.node_infos[4]).reasons == (ERR_REASON_CONSTRAINTS_NOT_MATCH,)
    plugin.add_pod(dry_run, pod, web("other"), n3)  # another namespace: ignored
    assert plugin.filter(dry_run, pod, n3) is None


# --- default constraints ----------------------------------------------------------------------------

RS = {"metadata": {"name": "web-rs", "namespace": "default", "uid": "rs-uid"},
      "spec": {"selector": {"matchLabels": {"app": "web"}}}}


def test_list_defaulting_uses_the_owner_selector() -> None:
    args = {"defaultingType": "List", "defaultConstraints": [
        {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule"}]}
    snapshot = make_cluster({"n1": ws(1), "n3": ws(1)})
    pod = make_pod("web-1", labels={"app": "web"}, owner="web-rs")
    plugin = make_plugin(snapshot, args, replica_sets=[RS])
    assert verdicts(pod, snapshot, plugin) == {"n1": SKEW, "n2": SKEW, "n3": SKEW, "n4": SKEW, "n5": None}
    # without the ReplicaSet in the store nothing selects the pod: no default constraints
    assert verdicts(pod, snapshot, make_plugin(snapshot, args)) == "skip"
    # a Service selecting the pod gives a selector too
    service = {"metadata": {"name": "svc", "namespace": "default"}, "spec": {"selector": {"app": "web"}}}
    plugin = make_plugin(snapshot, args, services=[service])
    assert verdicts(make_pod("x", labels={"app": "web"}), snapshot, plugin)["n5"] is None
    assert verdicts(make_pod("x", labels={"app": "web"}), snapshot, plugin)["n1"] == SKEW


def test_default_selector_merges_services_and_owner() -> None:
    service = {"metadata": {"name": "svc", "namespace": "default"}, "spec": {"selector": {"tier": "front"}}}
    other = {"metadata": {"name": "db", "namespace": "default"}, "spec": {"selector": {"app": "db"}}}
    headless = {"metadata": {"name": "none", "namespace": "default"}, "spec": {}}
    plugin = make_plugin(make_cluster({}), replica_sets=[RS], services=[service, other, headless])
    pod = make_pod("w", labels={"app": "web", "tier": "front"}, owner="web-rs")
    assert str(plugin.default_selector(pod)) == "app=web,tier=front"


@pytest.mark.parametrize(("args", "message"), [
    ({"defaultingType": "System", "defaultConstraints": [{"maxSkew": 1}]}, "must be empty"),
    ({"defaultingType": "Other"}, "defaultingType"),
    ({"defaultingType": "List", "defaultConstraints": [
        {"maxSkew": 0, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule"}]}, "maxSkew"),
    ({"defaultingType": "List", "defaultConstraints": [
        {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": {"matchLabels": {"a": "b"}}}]}, "labelSelector"),
    ({"defaultingType": "List", "defaultConstraints": [
        {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "Sometimes"}]}, "whenUnsatisfiable"),
])
def test_invalid_args(args: Obj, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_plugin(make_cluster({}), args)


# --- scoring ------------------------------------------------------------------------------------------


def scores(pod: PodInfo, snapshot: Snapshot, plugin: PodTopologySpread | None = None,
           filtered: list[NodeInfo] | None = None) -> Any:
    plugin = plugin or make_plugin(snapshot)
    nodes = snapshot.node_infos if filtered is None else filtered
    state = CycleState()
    status = plugin.pre_score(state, pod, nodes)
    if status is not None:
        assert status.code == Code.SKIP
        return "skip"
    node_scores = [NodeScore(n.name, plugin.score(state, pod, n)) for n in nodes]
    raw = {s.name: s.score for s in node_scores}
    plugin.normalize_score(state, pod, node_scores)
    return raw, {s.name: s.score for s in node_scores}


def soft(key: str = ZONE, max_skew: int = 1, **extra: Any) -> Obj:
    return constraint(key, max_skew, "ScheduleAnyway", **extra)


def test_score_zone() -> None:
    # 3 zones: weight log(5) = 1.609; zone a has 2 pods -> 3.2 -> 3, zone b 1 -> 2, zone c 0
    snapshot = make_cluster({"n1": ws(1), "n2": ws(1), "n3": ws(1)})
    raw, normalized = scores(web(constraints=[soft()]), snapshot)
    assert raw == {"n1": 3, "n2": 3, "n3": 2, "n4": 2, "n5": 0}
    assert normalized == {"n1": 0, "n2": 0, "n3": 33, "n4": 33, "n5": 100}


def test_score_hostname_with_max_skew() -> None:
    # 5 nodes: weight log(7) = 1.946, plus maxSkew - 1 = 1: n1 2 pods -> 4.89 -> 5, n3 1 pod -> 2.95 -> 3, others 1
    snapshot = make_cluster({"n1": ws(2), "n3": ws(1)})
    raw, normalized = scores(web(constraints=[soft(HOST, max_skew=2)]), snapshot)
    assert raw == {"n1": 5, "n2": 1, "n3": 3, "n4": 1, "n5": 1}
    assert normalized == {"n1": 20, "n2": 100, "n3": 60, "n4": 100, "n5": 100}


def test_score_ignores_nodes_without_the_label_and_counts_only_filtered_domains() -> None:
    snapshot = make_cluster({"n1": ws(2), "n3": ws(1)}, extra=[make_node("n6", None)])
    nodes = snapshot.node_infos
    # n5 (zone c) was filtered out: 2 domains left, weight log(4) = 1.386; n6 lacks the zone label
    raw, normalized = scores(web(constraints=[soft()]), snapshot, filtered=[*nodes[:4], nodes[5]])
    assert raw == {"n1": 3, "n2": 3, "n3": 1, "n4": 1, "n6": 0}
    assert normalized == {"n1": 33, "n2": 33, "n3": 100, "n4": 100, "n6": 0}


def test_score_all_zero_is_max() -> None:
    snapshot = make_cluster({})
    assert scores(web(constraints=[soft()]), snapshot)[1] == {n: 100 for n in ("n1", "n2", "n3", "n4", "n5")}


def test_score_skips_without_soft_constraints() -> None:
    assert scores(web(constraints=[constraint()]), make_cluster({})) == "skip"
    assert scores(web(), make_cluster({})) == "skip"  # no owner: no default constraints


def test_score_system_defaults_for_a_replica_set_pod() -> None:
    # hostname maxSkew 3 (weight log(8)), zone maxSkew 5 (4 domains a, b, c and n6's "": weight log(6));
    # n6 has no zone label but still gets hostname spreading
    snapshot = make_cluster({"n1": ws(1), "n3": ws(2), "n5": ws(1, "other")}, extra=[make_node("n6", None)])
    plugin = make_plugin(snapshot, replica_sets=[RS])
    raw, normalized = scores(make_pod("web-1", labels={"app": "web"}, owner="web-rs"), snapshot, plugin)
    assert raw == {"n1": 10, "n2": 8, "n3": 14, "n4": 10, "n5": 6, "n6": 2}
    assert normalized == {"n1": 42, "n2": 57, "n3": 14, "n4": 42, "n5": 71, "n6": 100}


def test_events_to_register() -> None:
    events = make_plugin(make_cluster({})).events_to_register()
    for event in (ClusterEvent("Pod", "Add"), ClusterEvent("Pod", "Delete"), ClusterEvent("Pod", "UpdatePodLabel"),
                  ClusterEvent("Node", "Add"), ClusterEvent("Node", "Delete"), ClusterEvent("Node", "UpdateNodeLabel"),
                  ClusterEvent("Node", "UpdateNodeTaint")):
        assert event in events
