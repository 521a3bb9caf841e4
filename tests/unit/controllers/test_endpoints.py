"""Endpoints controller: v1 Endpoints from a Service's selected pods (Kubernetes 1.35 rules)."""

from __future__ import annotations

import pytest

from controllers.controller import ControllerContext
from controllers.endpoints import MAX_CAPACITY, EndpointsController
from machinery import errors
from machinery.client import ENDPOINTS, PODS, SERVICES
from machinery.clock import FakeClock
from tests.fakes import FakeClient, FakeInformers, FakeRecorder

NS = "shop"
T0 = "2026-01-01T00:00:00Z"


# --- objects ------------------------------------------------------------------------------------------


def service(name="web", selector=None, ports=None, **spec):
    body = {"selector": {"app": "web"} if selector is None else selector,
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}] if ports is None else ports,
            "clusterIP": "10.96.0.10", "ipFamilies": ["IPv4"], "type": "ClusterIP", **spec}
    if body["selector"] == {}:
        del body["selector"]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NS, "uid": f"uid-svc-{name}", "labels": {"tier": "front"},
                         "creationTimestamp": T0},
            "spec": body}


def pod(name, ip="10.1.0.1", ready=True, labels=None, node="node-a", phase="Running", ports=None, deleting=False,
        ready_since=T0, **spec):
    meta = {"name": name, "namespace": NS, "uid": f"uid-{name}", "labels": {"app": "web"} if labels is None else labels,
            "resourceVersion": "1"}
    if deleting:
        meta["deletionTimestamp"] = T0
    status = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                              "lastTransitionTime": ready_since}]}
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    containers = [{"name": "app", "image": "nginx", "ports": ports or []}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node, "containers": containers, **spec}, "status": status}


def ref(name):
    return {"kind": "Pod", "namespace": NS, "name": name, "uid": f"uid-{name}"}


def address(name, ip, node="node-a"):
    return {"ip": ip, "nodeName": node, "targetRef": ref(name)}


HTTP = {"name": "http", "port": 8080, "protocol": "TCP"}


@pytest.fixture
def client():
    return FakeClient(clock=FakeClock())


@pytest.fixture
def informers():
    return FakeInformers()


@pytest.fixture
def recorder():
    return FakeRecorder()


@pytest.fixture
def ctrl(client, informers, recorder):
    return EndpointsController(ControllerContext(client, informers, recorder, client.clock))


def stored(client, name="web"):
    return client.stored(ENDPOINTS, NS, name)


async def sync(ctrl, client, informers, key=f"{NS}/web"):
    """Reconcile, then let the Endpoints cache catch up with what was written."""
    result = await ctrl.reconcile(key)
    informers.sync_from(client, ENDPOINTS)
    return result


# --- addresses, readiness, ports -------------------------------------------------------------------------


async def test_ready_and_not_ready_pods_and_the_object_shape(ctrl, client, informers):
    informers.add(SERVICES, service())
    informers.add(PODS, pod("a", "10.1.0.1"), pod("b", "10.1.0.2", ready=False), pod("c", "10.1.0.3"))
    assert await ctrl.reconcile(f"{NS}/web") is None
    [create] = client.actions
    assert (create.verb, create.resource, create.namespace) == ("create", "endpoints", NS)
    ep = stored(client)
    assert ep["metadata"]["labels"] == {"tier": "front"}
    assert "annotations" not in ep["metadata"]  # the first sync of a Service has no trigger time
    assert ep["subsets"] == [{"addresses": [address("a", "10.1.0.1"), address("c", "10.1.0.3")],
                              "notReadyAddresses": [address("b", "10.1.0.2")],
                              "ports": [HTTP]}]


async def test_named_target_port_is_resolved_per_pod(ctrl, client, informers):
    ports = [{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"},
             {"name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"}]
    informers.add(SERVICES, service(ports=ports))
    informers.add(PODS,
                  pod("a", "10.1.0.1", ports=[{"name": "web", "containerPort": 8080}]),
                  pod("b", "10.1.0.2", ports=[{"name": "web", "containerPort": 8081, "protocol": "TCP"}]),
                  pod("c", "10.1.0.3", ports=[{"name": "web", "containerPort": 8080, "protocol": "UDP"}]),
                  pod("d", "10.1.0.4", ports=[{"name": "web", "containerPort": 8080}]))
    await ctrl.reconcile(f"{NS}/web")
    metrics = {"name": "metrics", "port": 9090, "protocol": "TCP"}
    # RepackSubsets: ports offered by the same addresses share a subset. a and d resolve "web" to 8080,
    # b to 8081, c has no TCP port named "web"; all four offer 9090.
    assert stored(client)["subsets"] == [
        {"addresses": [address("a", "10.1.0.1"), address("d", "10.1.0.4")],
         "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
        {"addresses": [address(n, f"10.1.0.{i}") for i, n in enumerate("abcd", 1)], "ports": [metrics]},
        {"addresses": [address("b", "10.1.0.2")], "ports": [{"name": "http", "port": 8081, "protocol": "TCP"}]},
    ]


async def test_pods_with_the_same_ports_share_one_subset(ctrl, client, informers):
    ports = [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
             {"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"}]
    informers.add(SERVICES, service(ports=ports))
    informers.add(PODS, pod("a", "10.1.0.1"), pod("b", "10.1.0.2", ready=False))
    await ctrl.reconcile(f"{NS}/web")
    assert stored(client)["subsets"] == [{"addresses": [address("a", "10.1.0.1")],
                                         "notReadyAddresses": [address("b", "10.1.0.2")],
                                         "ports": [{"name": "dns", "port": 5353, "protocol": "UDP"}, HTTP]}]


async def test_named_port_of_a_sidecar_resolves(ctrl, client, informers):
    informers.add(SERVICES, service(ports=[{"name": "http", "port": 80, "targetPort": "proxy", "protocol": "TCP"}]))
    sidecar = {"name": "envoy", "image": "envoy", "restartPolicy": "Always",
               "ports": [{"name": "proxy", "containerPort": 15001}]}
    informers.add(PODS, pod("a", initContainers=[sidecar]))
    await ctrl.reconcile(f"{NS}/web")
    assert stored(client)["subsets"][0]["ports"] == [{"name": "http", "port": 15001, "protocol": "TCP"}]


async def test_pod_lacking_every_port_is_left_out(ctrl, client, informers):
    informers.add(SERVICES, service(ports=[{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}]))
    informers.add(PODS, pod("a"))
    await ctrl.reconcile(f"{NS}/web")
    assert stored(client)["subsets"] == []


async def test_pods_without_ip_terminal_or_terminating_are_left_out(ctrl, client, informers):
    informers.add(SERVICES, service())
    informers.add(PODS, pod("a", "10.1.0.1"), pod("no-ip", ip=None), pod("done", "10.1.0.2", phase="Succeeded"),
                  pod("failed", "10.1.0.3", phase="Failed"), pod("going", "10.1.0.4", deleting=True),
                  pod("other", "10.1.0.5", labels={"app": "db"}))
    await ctrl.reconcile(f"{NS}/web")
    assert stored(client)["subsets"] == [{"addresses": [address("a", "10.1.0.1")], "ports": [HTTP]}]


async def test_publish_not_ready_addresses_puts_everything_in_addresses(ctrl, client, informers):
    informers.add(SERVICES, service(publishNotReadyAddresses=True))
    informers.add(PODS, pod("a", "10.1.0.1", ready=False), pod("going", "10.1.0.4", deleting=True),
                  pod("done", "10.1.0.2", phase="Succeeded"))
    await ctrl.reconcile(f"{NS}/web")
    assert stored(client)["subsets"] == [{"addresses": [address("a", "10.1.0.1"), address("going", "10.1.0.4")],
                                         "ports": [HTTP]}]


async def test_headless_service_is_labelled_and_may_have_no_ports(ctrl, client, informers):
    informers.add(SERVICES, service(ports=[], clusterIP="None"))
    informers.add(PODS, pod("a", "10.1.0.1", hostname="a", subdomain="web"))
    await ctrl.reconcile(f"{NS}/web")
    ep = stored(client)
    assert ep["metadata"]["labels"] == {"tier": "front", "service.kubernetes.io/headless": ""}
    assert ep["subsets"] == [{"addresses": [{**address("a", "10.1.0.1"), "hostname": "a"}]}]


async def test_ipv6_service_uses_the_pods_ipv6_address(ctrl, client, informers):
    informers.add(SERVICES, service(clusterIP="fd00::10", ipFamilies=["IPv6"]))
    dual = pod("a", "10.1.0.1")
    dual["status"]["podIPs"] = [{"ip": "10.1.0.1"}, {"ip": "fd00:1::1"}]
    informers.add(PODS, dual, pod("v4only", "10.1.0.2"))
    await ctrl.reconcile(f"{NS}/web")
    assert stored(client)["subsets"] == [{"addresses": [address("a", "fd00:1::1")], "ports": [HTTP]}]


# --- writing only what changed ----------------------------------------------------------------------------


async def test_nothing_written_when_nothing_changed(ctrl, client, informers):
    informers.add(SERVICES, service())
    informers.add(PODS, pod("a"))
    await sync(ctrl, client, informers)
    client.actions.clear()
    assert await sync(ctrl, client, informers) is None
    assert client.actions == []


async def test_readiness_flip_moves_the_address_and_stamps_the_trigger_time(ctrl, client, informers):
    informers.add(SERVICES, service())
    informers.add(PODS, pod("a", "10.1.0.1"), pod("b", "10.1.0.2"))
    await sync(ctrl, client, informers)
    informers.add(PODS, pod("b", "10.1.0.2", ready=False, ready_since="2026-01-01T00:05:00.250Z"))
    await sync(ctrl, client, informers)
    update = client.actions[-1]
    assert (update.verb, update.resource) == ("update", "endpoints")
    ep = stored(client)
    assert ep["subsets"] == [{"addresses": [address("a", "10.1.0.1")], "notReadyAddresses": [address("b", "10.1.0.2")],
                              "ports": [HTTP]}]
    assert ep["metadata"]["annotations"] == {"endpoints.kubernetes.io/last-change-trigger-time":
                                             "2026-01-01T00:05:00.25Z"}


async def test_user_annotations_are_kept_and_labels_follow_the_service(ctrl, client, informers):
    informers.add(SERVICES, service())
    informers.add(PODS, pod("a"))
    await sync(ctrl, client, informers)
    ep = stored(client)
    ep["metadata"]["annotations"] = {"owner": "me"}
    client.seed(ENDPOINTS, ep)
    informers.sync_from(client, ENDPOINTS)
    relabelled = service()
    relabelled["metadata"]["labels"] = {"tier": "back"}
    informers.add(SERVICES, relabelled)
    await sync(ctrl, client, informers)
    ep = stored(client)
    assert ep["metadata"]["labels"] == {"tier": "back"}
    assert ep["metadata"]["annotations"] == {"owner": "me"}


async def test_over_capacity_is_truncated_and_annotated_then_cleared(ctrl, client, informers):
    informers.add(SERVICES, service())
    pods = [pod(f"p{i:04d}", f"10.2.{i // 250}.{i % 250 + 1}", ready=i % 2 == 0) for i in range(MAX_CAPACITY + 200)]
    informers.add(PODS, *pods)
    await sync(ctrl, client, informers)
    ep = stored(client)
    [subset] = ep["subsets"]
    assert len(subset["addresses"]) == 600  # every ready address fits, not-ready ones fill the rest
    assert len(subset["notReadyAddresses"]) == MAX_CAPACITY - 600
    assert ep["metadata"]["annotations"]["endpoints.kubernetes.io/over-capacity"] == "truncated"

    client.actions.clear()
    await sync(ctrl, client, informers)
    assert client.actions == []  # a truncated object is not rewritten again and again

    for p in pods[MAX_CAPACITY - 10:]:
        informers.informer(PODS).store.delete(f"{NS}/{p['metadata']['name']}")
    await sync(ctrl, client, informers)
    ep = stored(client)
    assert sum(len(s.get("addresses", [])) + len(s.get("notReadyAddresses", [])) for s in ep["subsets"]) \
        == MAX_CAPACITY - 10
    assert "endpoints.kubernetes.io/over-capacity" not in ep["metadata"].get("annotations", {})


# --- lifecycle --------------------------------------------------------------------------------------------


async def test_deleted_service_deletes_its_endpoints(ctrl, client, informers):
    client.seed(ENDPOINTS, {"metadata": {"name": "web", "namespace": NS}, "subsets": []})
    assert await ctrl.reconcile(f"{NS}/web") is None
    assert [(a.verb, a.name) for a in client.actions] == [("delete", "web")]
    assert stored(client) is None
    assert await ctrl.reconcile(f"{NS}/web") is None  # already gone: fine


@pytest.mark.parametrize("svc", [service(selector={}), service(type="ExternalName", externalName="db.example.com")],
                         ids=["selector-less", "external-name"])
async def test_user_managed_endpoints_are_left_alone(ctrl, client, informers, svc):
    informers.add(SERVICES, svc)
    informers.add(PODS, pod("a"))
    informers.add(ENDPOINTS, {"metadata": {"name": "web", "namespace": NS}, "subsets": []})
    assert await ctrl.reconcile(f"{NS}/web") is None
    assert client.actions == []


async def test_namespace_terminating_ends_quietly_other_errors_raise_with_an_event(ctrl, client, informers,
                                                                                  recorder):
    informers.add(SERVICES, service())
    refused = errors.forbidden_error("endpoints", "web", f"unable to create new content in namespace {NS} "
                                     "because it is being terminated")
    refused.details["causes"] = [{"reason": "NamespaceTerminating", "field": "metadata.namespace"}]
    client.fail("create", "endpoints", refused)
    assert await ctrl.reconcile(f"{NS}/web") is None
    assert recorder.events == []

    client.fail("create", "endpoints", errors.internal_error("etcd is sad"))
    with pytest.raises(errors.StatusError):
        await ctrl.reconcile(f"{NS}/web")
    assert recorder.reasons() == ["FailedToCreateEndpoint"]


# --- event handlers ---------------------------------------------------------------------------------------


async def drain(ctrl):
    keys = set()
    while len(ctrl.queue):
        key = await ctrl.queue.get()
        ctrl.queue.done(key)
        keys.add(key)
    return keys


async def test_pod_events_enqueue_the_services_selecting_the_pod(ctrl, informers):
    informers.add(SERVICES, service("web"), service("all-web", selector={"app": "web"}),
                  service("db", selector={"app": "db"}), service("manual", selector={}))
    old = pod("a")
    ctrl.on_pod_add(old)
    assert await drain(ctrl) == {f"{NS}/web", f"{NS}/all-web"}

    ctrl.on_pod_update(old, old)  # a resync
    assert await drain(ctrl) == set()

    unready = pod("a", ready=False)
    unready["metadata"]["resourceVersion"] = "2"
    ctrl.on_pod_update(old, unready)
    assert await drain(ctrl) == {f"{NS}/web", f"{NS}/all-web"}

    moved = pod("a", labels={"app": "db"})
    moved["metadata"]["resourceVersion"] = "3"
    ctrl.on_pod_update(old, moved)  # only labels changed: the services it left and joined
    assert await drain(ctrl) == {f"{NS}/web", f"{NS}/all-web", f"{NS}/db"}

    annotated = pod("a")
    annotated["metadata"]["resourceVersion"] = "4"
    annotated["metadata"]["annotations"] = {"x": "y"}
    ctrl.on_pod_update(old, annotated)  # nothing an endpoint shows
    assert await drain(ctrl) == set()


async def test_leftover_endpoints_are_looked_at_once_leader_locks_excepted(ctrl, informers):
    informers.add(ENDPOINTS, {"metadata": {"name": "gone", "namespace": NS}},
                  {"metadata": {"name": "lock", "namespace": NS,
                                "annotations": {"control-plane.alpha.kubernetes.io/leader": "{}"}}})
    ctrl.enqueue_leftover_endpoints()
    assert await drain(ctrl) == {f"{NS}/gone"}
