"""EndpointSlice and EndpointSliceMirroring controllers (discovery.k8s.io/v1, Kubernetes 1.35 rules)."""

from __future__ import annotations

import pytest

from controllers.controller import ControllerContext, RetryError
from controllers.endpointslice import EndpointSliceController, EndpointSliceMirroringController
from controllers.endpointslice.desired import MAX_ENDPOINTS_PER_SLICE
from controllers.endpointslice.mirrorplan import MAX_ENDPOINTS_PER_SUBSET
from controllers.endpointslice.tracker import SliceTracker
from controllers.endpointslice.triggertime import TriggerTimeTracker, format_trigger_time
from machinery import errors
from machinery.client import ENDPOINT_SLICES, ENDPOINTS, NODES, PODS, SERVICES
from machinery.clock import FakeClock
from machinery.meta import parse_rfc3339
from tests.fakes import FakeClient, FakeInformers, FakeRecorder

NS = "shop"
T0 = "2026-01-01T00:00:00Z"
KEY = f"{NS}/web"
SLICE_LABELS = {"tier": "front", "kubernetes.io/service-name": "web",
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
HTTP = {"name": "http", "port": 8080, "protocol": "TCP"}


# --- objects ------------------------------------------------------------------------------------------


def service(name="web", selector=None, ports=None, uid=None, **spec):
    body = {"selector": {"app": "web"} if selector is None else selector,
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}] if ports is None else ports,
            "clusterIP": "10.96.0.10", "ipFamilies": ["IPv4"], "type": "ClusterIP", **spec}
    if body["selector"] == {}:
        del body["selector"]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NS, "uid": uid or f"uid-svc-{name}", "labels": {"tier": "front"},
                         "creationTimestamp": T0},
            "spec": body}


def pod(name, ip="10.1.0.1", ready=True, labels=None, node="node-a", phase="Running", ports=None, deleting=False,
        ready_since=T0, rv="1"):
    meta = {"name": name, "namespace": NS, "uid": f"uid-{name}", "labels": {"app": "web"} if labels is None else labels,
            "resourceVersion": rv}
    if deleting:
        meta["deletionTimestamp"] = T0
    status = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                              "lastTransitionTime": ready_since}]}
    if ip:
        status["podIPs"] = [{"ip": i} for i in ip.split(",")]
        status["podIP"] = status["podIPs"][0]["ip"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nginx", "ports": ports or []}]},
            "status": status}


def node(name="node-a", zone="zone-1"):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {
        "topology.kubernetes.io/zone": zone} if zone else {}}}


def endpoint(name, ip, ready=True, serving=None, terminating=False, node="node-a", zone="zone-1"):
    ep = {"addresses": [ip], "conditions": {"ready": ready, "serving": ready if serving is None else serving,
                                            "terminating": terminating},
          "targetRef": {"kind": "Pod", "namespace": NS, "name": name, "uid": f"uid-{name}"}, "nodeName": node}
    if zone:
        ep["zone"] = zone
    return ep


@pytest.fixture
def client():
    return FakeClient(clock=FakeClock())


@pytest.fixture
def informers():
    inf = FakeInformers()
    inf.add(NODES, node("node-a"), node("node-b", zone=None))
    return inf


@pytest.fixture
def recorder():
    return FakeRecorder()


@pytest.fixture
def ctrl(client, informers, recorder):
    return EndpointSliceController(ControllerContext(client, informers, recorder, client.clock))


def slices(client):
    return sorted(client.all(ENDPOINT_SLICES, NS), key=lambda s: s["metadata"]["name"])


def verbs(client):
    return [(a.verb, a.resource) for a in client.actions]


async def sync(ctrl, client, informers, key=KEY):
    """Reconcile, then let the slice cache catch up with what was written (what the watch would do)."""
    result = await ctrl.reconcile(key)
    informers.sync_from(client, ENDPOINT_SLICES)
    return result


# --- the slice controller: shape ----------------------------------------------------------------------------


async def test_one_slice_with_conditions_node_zone_and_owner(ctrl, client, informers):
    informers.add(SERVICES, service())
    informers.add(PODS, pod("a", "10.1.0.1"), pod("b", "10.1.0.2", ready=False),
                  pod("c", "10.1.0.3", deleting=True), pod("d", "10.1.0.4", ready=False, deleting=True),
                  pod("e", "10.1.0.5", node="node-b"), pod("no-ip", ip=None), pod("done", "10.1.0.6", phase="Failed"))
    assert await sync(ctrl, client, informers) is None
    assert verbs(client) == [("create", "endpointslices")]
    [created] = slices(client)
    meta = created["metadata"]
    assert meta["name"] == "web-00001" and meta["generateName"] == "web-"
    assert meta["labels"] == SLICE_LABELS
    assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "uid-svc-web",
                                        "controller": True, "blockOwnerDeletion": True}]
    assert "annotations" not in meta
    assert created["addressType"] == "IPv4"
    assert created["ports"] == [HTTP]
    assert created["endpoints"] == [
        endpoint("a", "10.1.0.1"),
        endpoint("b", "10.1.0.2", ready=False),
        endpoint("c", "10.1.0.3", ready=False, serving=True, terminating=True),  # serving from Ready even now
        endpoint("d", "10.1.0.4", ready=False, serving=False, terminating=True),
        endpoint("e", "10.1.0.5", node="node-b", zone=None),
    ]


async def test_publish_not_ready_addresses_makes_every_endpoint_ready(ctrl, client, informers):
    informers.add(SERVICES, service(publishNotReadyAddresses=True))
    informers.add(PODS, pod("b", "10.1.0.2", ready=False), pod("c", "10.1.0.3", ready=False, deleting=True))
    await sync(ctrl, client, informers)
    [created] = slices(client)
    assert [e["conditions"] for e in created["endpoints"]] == [
        {"ready": True, "serving": False, "terminating": False},
        {"ready": True, "serving": False, "terminating": True}]


async def test_headless_service_label(ctrl, client, informers):
    informers.add(SERVICES, service(clusterIP="None"))
    informers.add(PODS, pod("a"))
    await sync(ctrl, client, informers)
    [created] = slices(client)
    assert created["metadata"]["labels"] == {**SLICE_LABELS, "service.kubernetes.io/headless": ""}


async def test_named_target_port_splits_slices_by_resolved_ports(ctrl, client, informers):
    informers.add(SERVICES, service(ports=[{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}]))
    informers.add(PODS, pod("a", "10.1.0.1", ports=[{"name": "web", "containerPort": 8080}]),
                  pod("b", "10.1.0.2", ports=[{"name": "web", "containerPort": 9000}]),
                  pod("c", "10.1.0.3", ports=[{"name": "web", "containerPort": 8080}]),
                  pod("d", "10.1.0.4"))
    await sync(ctrl, client, informers)
    by_port = {tuple(p["port"] for p in s.get("ports", [])): [e["targetRef"]["name"] for e in s["endpoints"]]
               for s in slices(client)}
    assert by_port == {(8080,): ["a", "c"], (9000,): ["b"], (): ["d"]}  # d has no port named "web"


async def test_ipv6_and_dual_stack(ctrl, client, informers):
    informers.add(SERVICES, service(clusterIP="fd00::10", ipFamilies=["IPv6", "IPv4"]))
    informers.add(PODS, pod("a", "10.1.0.1,fd00:1::1"), pod("b", "fd00:1::2"))
    await sync(ctrl, client, informers)
    got = {s["addressType"]: [e["addresses"] for e in s["endpoints"]] for s in slices(client)}
    assert got == {"IPv6": [["fd00:1::1"], ["fd00:1::2"]], "IPv4": [["10.1.0.1"]]}

    informers.add(SERVICES, service(clusterIP="fd00::10", ipFamilies=["IPv6"]))  # IPv4 no longer supported
    client.actions.clear()
    await sync(ctrl, client, informers)
    assert verbs(client) == [("delete", "endpointslices")]
    assert [s["addressType"] for s in slices(client)] == ["IPv6"]


# --- the slice controller: at most 100 per slice, reuse, placeholder -----------------------------------------


def many_pods(count, start=0):
    return [pod(f"p{i:04d}", f"10.2.{i // 200}.{i % 200 + 1}") for i in range(start, start + count)]


async def test_slices_hold_at_most_100_endpoints_and_are_reused(ctrl, client, informers):
    informers.add(SERVICES, service())
    pods = many_pods(250)
    informers.add(PODS, *pods)
    await sync(ctrl, client, informers)
    assert sorted(len(s["endpoints"]) for s in slices(client)) == [50, MAX_ENDPOINTS_PER_SLICE, 100]

    client.actions.clear()
    await sync(ctrl, client, informers)
    assert client.actions == []  # a second sync with nothing new writes nothing

    for p in pods[:100]:  # the whole first slice goes: it is deleted, the others stay untouched
        informers.informer(PODS).store.delete(f"{NS}/{p['metadata']['name']}")
    await sync(ctrl, client, informers)
    assert verbs(client) == [("delete", "endpointslices")]
    assert sorted(len(s["endpoints"]) for s in slices(client)) == [50, 100]

    client.actions.clear()
    informers.add(PODS, *many_pods(30, start=1000))  # new endpoints go to the slice with room, not a new one
    await sync(ctrl, client, informers)
    assert verbs(client) == [("update", "endpointslices")]
    assert sorted(len(s["endpoints"]) for s in slices(client)) == [80, 100]


async def test_placeholder_without_endpoints_is_kept_then_reused(ctrl, client, informers):
    informers.add(SERVICES, service())
    await sync(ctrl, client, informers)
    [placeholder] = slices(client)
    assert placeholder["endpoints"] == [] and "ports" not in placeholder
    assert placeholder["metadata"]["labels"] == SLICE_LABELS

    client.actions.clear()
    await sync(ctrl, client, informers)
    assert client.actions == []  # the placeholder is not deleted and recreated

    informers.add(PODS, pod("a"))
    await sync(ctrl, client, informers)
    assert verbs(client) == [("update", "endpointslices")]  # create + delete recycled into one update
    [used] = slices(client)
    assert used["metadata"]["name"] == placeholder["metadata"]["name"]
    assert used["ports"] == [HTTP] and [e["targetRef"]["name"] for e in used["endpoints"]] == ["a"]

    client.actions.clear()
    informers.informer(PODS).store.delete(f"{NS}/a")
    await sync(ctrl, client, informers)
    assert verbs(client) == [("update", "endpointslices")]
    [back] = slices(client)
    assert back["endpoints"] == [] and "ports" not in back


async def test_slices_of_an_older_service_with_the_same_name_are_deleted(ctrl, client, informers):
    old = client.seed(ENDPOINT_SLICES, {
        "metadata": {"name": "web-old", "namespace": NS, "labels": SLICE_LABELS,
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "before",
                                          "controller": True}]},
        "addressType": "IPv4", "endpoints": [endpoint("a", "10.1.0.1")], "ports": [HTTP]})
    informers.sync_from(client, ENDPOINT_SLICES)
    informers.add(SERVICES, service())
    informers.add(PODS, pod("a"))
    await sync(ctrl, client, informers)
    assert old["metadata"]["name"] not in {s["metadata"]["name"] for s in slices(client)}
    [current] = slices(client)
    assert current["metadata"]["ownerReferences"][0]["uid"] == "uid-svc-web"


async def test_changed_endpoint_and_service_labels_update_in_place(ctrl, client, informers):
    informers.add(SERVICES, service())
    informers.add(PODS, pod("a", "10.1.0.1"), pod("b", "10.1.0.2"))
    await sync(ctrl, client, informers)
    client.actions.clear()
    informers.add(PODS, pod("b", "10.1.0.2", ready=False, ready_since="2026-01-01T00:01:00Z"))
    relabelled = service()
    relabelled["metadata"]["labels"] = {"tier": "back"}
    informers.add(SERVICES, relabelled)
    await sync(ctrl, client, informers)
    assert verbs(client) == [("update", "endpointslices")]
    [updated] = slices(client)
    assert updated["endpoints"][1]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert updated["metadata"]["labels"] == {**SLICE_LABELS, "tier": "back"}
    assert updated["metadata"]["annotations"] == {"endpoints.kubernetes.io/last-change-trigger-time":
                                                  "2026-01-01T00:01:00Z"}


# --- the slice controller: stale caches, missing nodes, deleted services ------------------------------------


async def test_a_lagging_slice_cache_is_refused_not_duplicated(ctrl, client, informers):
    informers.add(SERVICES, service())
    informers.add(PODS, pod("a"))
    await ctrl.reconcile(KEY)  # the created slice is not in the cache yet
    with pytest.raises(RetryError, match="out of date"):
        await ctrl.reconcile(KEY)
    assert verbs(client) == [("create", "endpointslices")]
    informers.sync_from(client, ENDPOINT_SLICES)
    assert await ctrl.reconcile(KEY) is None
    assert verbs(client) == [("create", "endpointslices")]


async def test_a_deleted_slice_still_cached_is_stale(ctrl, client, informers):
    informers.add(SERVICES, service())
    pods = many_pods(150)
    informers.add(PODS, *pods)
    await sync(ctrl, client, informers)
    for p in pods[100:]:
        informers.informer(PODS).store.delete(f"{NS}/{p['metadata']['name']}")
    await ctrl.reconcile(KEY)
    assert verbs(client)[-1] == ("delete", "endpointslices")
    with pytest.raises(RetryError, match="out of date"):
        await ctrl.reconcile(KEY)  # the deleted slice is still in the cache
    informers.sync_from(client, ENDPOINT_SLICES)
    assert await ctrl.reconcile(KEY) is None


async def test_pods_on_unknown_nodes_are_skipped_and_retried(ctrl, client, informers):
    informers.add(SERVICES, service())
    informers.add(PODS, pod("a"), pod("lost", "10.1.0.9", node="gone"))
    with pytest.raises(RetryError, match="lost"):
        await ctrl.reconcile(KEY)  # the pods it can publish are published all the same
    informers.sync_from(client, ENDPOINT_SLICES)
    [created] = slices(client)
    assert [e["targetRef"]["name"] for e in created["endpoints"]] == ["a"]

    informers.add(SERVICES, service(publishNotReadyAddresses=True))
    assert await sync(ctrl, client, informers) is None
    [updated] = slices(client)
    assert [e["targetRef"]["name"] for e in updated["endpoints"]] == ["a", "lost"]
    assert "zone" not in updated["endpoints"][1]


@pytest.mark.parametrize("svc", [None, service(selector={}), service(type="ExternalName")],
                         ids=["deleted", "selector-less", "external-name"])
async def test_no_slices_for_deleted_selector_less_or_external_name_services(ctrl, client, informers, svc):
    if svc is not None:
        informers.add(SERVICES, svc)
    informers.add(PODS, pod("a"))
    assert await ctrl.reconcile(KEY) is None
    assert client.actions == []


async def test_failed_write_records_an_event_and_raises(ctrl, client, informers, recorder):
    informers.add(SERVICES, service())
    client.fail("create", "endpointslices", errors.internal_error("boom"))
    with pytest.raises(errors.StatusError):
        await ctrl.reconcile(KEY)
    assert recorder.reasons() == ["FailedToUpdateEndpointSlices"]


# --- the slice controller: event handlers -------------------------------------------------------------------


async def drain(ctrl):
    keys = set()
    while len(ctrl.queue):
        key = await ctrl.queue.get()
        ctrl.queue.done(key)
        keys.add(key)
    return keys


async def test_pod_and_node_events_enqueue_the_selecting_services(ctrl, informers):
    informers.add(SERVICES, service("web"), service("db", selector={"app": "db"}))
    informers.add(PODS, pod("a"), pod("x", labels={"app": "db"}, node="node-b"))
    ctrl.on_pod_add(pod("a"))
    assert await drain(ctrl) == {KEY}
    ctrl.on_pod_update(pod("a"), pod("a", ready=False, rv="2"))
    assert await drain(ctrl) == {KEY}
    ctrl.on_node_update(node("node-a"), node("node-a", zone="zone-2"))
    assert await drain(ctrl) == {KEY}
    ctrl.on_node_update(node("node-a"), node("node-a"))
    assert await drain(ctrl) == set()
    ctrl.on_node_change(node("node-b"))  # a node appearing or going
    assert await drain(ctrl) == {f"{NS}/db"}


async def test_slice_events_of_our_own_writes_are_ignored_others_enqueue_after_a_delay(ctrl, client, informers,
                                                                                     monkeypatch):
    delayed = []
    monkeypatch.setattr(ctrl.queue, "add_after", lambda key, seconds: delayed.append((key, seconds)))
    informers.add(SERVICES, service())
    informers.add(PODS, pod("a"))
    await sync(ctrl, client, informers)
    [ours] = slices(client)
    ctrl.on_slice_add(ours)
    assert delayed == []

    edited = {**ours, "metadata": {**ours["metadata"], "generation": 2}}
    ctrl.on_slice_update(ours, edited)
    assert delayed == [(KEY, 1.0)]

    ctrl.on_slice_delete(ours)  # nobody asked for that: sync again
    assert delayed == [(KEY, 1.0), (KEY, 1.0)]

    foreign = {**ours, "metadata": {**ours["metadata"], "uid": "x",
                                    "labels": {**SLICE_LABELS, "endpointslice.kubernetes.io/managed-by": "me"}}}
    ctrl.on_slice_add(foreign)
    assert len(delayed) == 2


# --- trackers ------------------------------------------------------------------------------------------------


def test_slice_tracker_generations_and_deletions():
    tracker = SliceTracker()
    s = {"metadata": {"namespace": NS, "uid": "u1", "generation": 2, "labels": {"kubernetes.io/service-name": "web"}}}
    assert tracker.should_sync(s) and not tracker.has(s)
    tracker.update(s)
    assert not tracker.should_sync(s) and tracker.has(s)
    assert tracker.stale(KEY, [])  # we wrote it, the cache has not got it
    older = {**s, "metadata": {**s["metadata"], "generation": 1}}
    assert tracker.stale(KEY, [older]) and not tracker.stale(KEY, [s])
    tracker.expect_deletion(s)
    assert tracker.stale(KEY, [s]) and not tracker.stale(KEY, [])
    assert tracker.handle_deletion(s)  # expected
    tracker.update(s)
    assert not tracker.handle_deletion(s)  # not expected
    tracker.update(s)
    tracker.delete_service(KEY)
    assert not tracker.stale(KEY, [])


def test_trigger_time_is_the_earliest_unpublished_change():
    tracker = TriggerTimeTracker()
    svc = service()
    assert tracker.compute(KEY, svc, [pod("a", ready_since="2026-01-01T00:01:00Z")]) is None  # first sync
    assert tracker.compute(KEY, svc, [pod("a", ready_since="2026-01-01T00:01:00Z")]) is None  # nothing moved
    moved = tracker.compute(KEY, svc, [pod("a", ready_since="2026-01-01T00:03:00Z"),
                                       pod("b", ready_since="2026-01-01T00:02:00Z")])
    assert moved == parse_rfc3339("2026-01-01T00:02:00Z")
    assert format_trigger_time(parse_rfc3339("2026-01-01T00:02:00.120Z")) == "2026-01-01T00:02:00.12Z"
    tracker.forget(KEY)
    assert tracker.compute(KEY, svc, []) is None


# --- mirroring ------------------------------------------------------------------------------------------------

MIRROR_LABELS = {"team": "db", "kubernetes.io/service-name": "ext",
                 "endpointslice.kubernetes.io/managed-by": "endpointslicemirroring-controller.k8s.io"}


def manual_endpoints(subsets, labels=None, annotations=None, name="ext"):
    meta = {"name": name, "namespace": NS, "uid": f"uid-ep-{name}", "labels": {"team": "db"} if labels is None
            else labels}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta, "subsets": subsets}


@pytest.fixture
def mirror(client, informers, recorder):
    return EndpointSliceMirroringController(ControllerContext(client, informers, recorder, client.clock))


async def mirror_sync(mirror, client, informers, key=f"{NS}/ext"):
    result = await mirror.reconcile(key)
    informers.sync_from(client, ENDPOINT_SLICES)
    return result


SUBSETS = [
    {"addresses": [{"ip": "192.168.0.1", "nodeName": "n1"}, {"ip": "192.168.0.2", "hostname": "two"}],
     "notReadyAddresses": [{"ip": "192.168.0.3"}],
     "ports": [{"name": "sql", "port": 5432, "protocol": "TCP"}]},
    {"addresses": [{"ip": "fd00::1"}], "ports": [{"name": "sql", "port": 5432, "protocol": "TCP"}]},
    {"addresses": [{"ip": "192.168.1.1", "targetRef": {"kind": "Pod", "name": "x", "namespace": NS}}],
     "ports": [{"name": "admin", "port": 9000, "protocol": "TCP", "appProtocol": "http"}]},
]


async def test_mirrors_a_selector_less_services_endpoints(mirror, client, informers):
    informers.add(SERVICES, service("ext", selector={}))
    informers.add(ENDPOINTS, manual_endpoints(SUBSETS, annotations={
        "note": "kept", "kubectl.kubernetes.io/last-applied-configuration": "{}",
        "endpoints.kubernetes.io/last-change-trigger-time": T0}))
    assert await mirror_sync(mirror, client, informers) is None
    got = {(s["addressType"], s["ports"][0]["port"]): s for s in slices(client)}
    assert set(got) == {("IPv4", 5432), ("IPv6", 5432), ("IPv4", 9000)}
    sql = got[("IPv4", 5432)]
    assert sql["metadata"]["generateName"] == "ext-"
    assert sql["metadata"]["labels"] == MIRROR_LABELS
    assert sql["metadata"]["annotations"] == {"note": "kept"}
    assert sql["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Endpoints", "name": "ext",
                                                   "uid": "uid-ep-ext", "controller": True,
                                                   "blockOwnerDeletion": True}]
    assert sql["ports"] == [{"name": "sql", "port": 5432, "protocol": "TCP"}]
    assert sql["endpoints"] == [
        {"addresses": ["192.168.0.1"], "conditions": {"ready": True}, "nodeName": "n1"},
        {"addresses": ["192.168.0.2"], "conditions": {"ready": True}, "hostname": "two"},
        {"addresses": ["192.168.0.3"], "conditions": {"ready": False}},
    ]
    admin = got[("IPv4", 9000)]
    assert admin["ports"] == [{"name": "admin", "port": 9000, "protocol": "TCP", "appProtocol": "http"}]
    assert admin["endpoints"][0]["targetRef"] == {"kind": "Pod", "name": "x", "namespace": NS}

    client.actions.clear()
    await mirror_sync(mirror, client, informers)
    assert client.actions == []  # already mirrored


async def test_mirror_follows_changes_in_place(mirror, client, informers):
    informers.add(SERVICES, service("ext", selector={}))
    informers.add(ENDPOINTS, manual_endpoints(SUBSETS[:1]))
    await mirror_sync(mirror, client, informers)
    [before] = slices(client)
    client.actions.clear()
    changed = [{**SUBSETS[0], "addresses": [{"ip": "192.168.0.9"}]}]
    informers.add(ENDPOINTS, manual_endpoints(changed, labels={"team": "ops"}))
    await mirror_sync(mirror, client, informers)
    assert verbs(client) == [("update", "endpointslices")]
    [after] = slices(client)
    assert after["metadata"]["name"] == before["metadata"]["name"]
    assert [e["addresses"][0] for e in after["endpoints"]] == ["192.168.0.9", "192.168.0.3"]
    assert after["metadata"]["labels"]["team"] == "ops"

    client.actions.clear()
    ports_changed = [{**changed[0], "ports": [{"name": "sql", "port": 5433, "protocol": "TCP"}]}]
    informers.add(ENDPOINTS, manual_endpoints(ports_changed, labels={"team": "ops"}))
    await mirror_sync(mirror, client, informers)
    assert verbs(client) == [("update", "endpointslices")]  # a new group recycles the old group's slice
    [recycled] = slices(client)
    assert recycled["metadata"]["name"] == before["metadata"]["name"] and recycled["ports"][0]["port"] == 5433


@pytest.mark.parametrize("change", ["selector-added", "endpoints-deleted", "service-deleted", "skip-mirror"])
async def test_mirrored_slices_are_deleted_when_mirroring_stops(mirror, client, informers, change):
    informers.add(SERVICES, service("ext", selector={}))
    informers.add(ENDPOINTS, manual_endpoints(SUBSETS))
    await mirror_sync(mirror, client, informers)
    assert len(slices(client)) == 3
    if change == "selector-added":
        informers.add(SERVICES, service("ext"))
    elif change == "endpoints-deleted":
        informers.informer(ENDPOINTS).store.delete(f"{NS}/ext")
    elif change == "service-deleted":
        informers.informer(SERVICES).store.delete(f"{NS}/ext")
    else:
        informers.add(ENDPOINTS, manual_endpoints(SUBSETS, labels={"endpointslice.kubernetes.io/skip-mirror": "true"}))
    await mirror_sync(mirror, client, informers)
    assert slices(client) == []


async def test_invalid_and_excess_addresses_are_skipped_with_events(mirror, client, informers, recorder):
    informers.add(SERVICES, service("ext", selector={}))
    addresses = [{"ip": f"10.{i // 250}.{i % 250}.1"} for i in range(MAX_ENDPOINTS_PER_SUBSET + 5)]
    subsets = [{"addresses": [{"ip": "0-not-an-ip"}, *addresses], "ports": [{"port": 80, "protocol": "TCP"}]}]
    informers.add(ENDPOINTS, manual_endpoints(subsets))
    await mirror_sync(mirror, client, informers)
    [mirrored] = slices(client)
    assert len(mirrored["endpoints"]) == MAX_ENDPOINTS_PER_SUBSET
    assert recorder.reasons() == ["InvalidIPAddress", "TooManyAddressesToMirror"]


async def test_mirroring_handlers(mirror):
    mirror.on_service_add(service("web"))  # has a selector: the slice controller's business
    mirror.on_endpoints_add(manual_endpoints([], annotations={"control-plane.alpha.kubernetes.io/leader": "{}"}))
    assert await drain(mirror) == set()
    mirror.on_service_add(service("ext", selector={}))
    mirror.on_endpoints_add(manual_endpoints([], name="other"))
    mirror.on_service_update(service("web"), service("web", selector={}))
    assert await drain(mirror) == {f"{NS}/ext", f"{NS}/other", KEY}
