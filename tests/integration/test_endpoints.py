"""Endpoints, EndpointSlices and mirroring against the real API server and the session controller-manager.

No kubelet runs here: pods get their IP and Ready condition written through ``pods/status`` (as
tests/integration/podsim.py does), on a Node object this test creates so the EndpointSlice
controller can publish them (it skips pods whose Node it does not know)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from tests.support import wait_for

pytestmark = pytest.mark.usefixtures("controller_manager")

TIMEOUT = 15
SLICE_LABEL = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"


@pytest.fixture
def node(api):
    name = "ep-node-" + uuid.uuid4().hex[:8]
    body = {"metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": "zone-a"}}}
    assert api.post("/api/v1/nodes", json=body).status_code == 201
    yield name
    api.delete(f"/api/v1/nodes/{name}")


def make_pod(api: httpx.Client, namespace: str, name: str, node: str, ip: str, web_port: int, ready: bool) -> None:
    pod = {"metadata": {"name": name, "labels": {"app": "web"}},
           "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nginx",
                                                      "ports": [{"name": "web", "containerPort": web_port}]}]}}
    created = api.post(f"/api/v1/namespaces/{namespace}/pods", json=pod)
    assert created.status_code == 201, created.text
    set_ready(api, namespace, name, ip, ready)


def set_ready(api: httpx.Client, namespace: str, name: str, ip: str, ready: bool) -> None:
    """Write what a kubelet would report: Running, the pod IP, and the Ready condition."""
    path = f"/api/v1/namespaces/{namespace}/pods/{name}"
    pod = api.get(path).json()
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    flag = "True" if ready else "False"
    pod["status"] = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "10.0.0.100",
                     "conditions": [{"type": "Ready", "status": flag, "lastTransitionTime": now},
                                    {"type": "ContainersReady", "status": flag, "lastTransitionTime": now}]}
    resp = api.put(f"{path}/status", json=pod)
    assert resp.status_code == 200, resp.text


def get_json(kubectl, *args: str) -> dict:
    return json.loads(kubectl("get", *args, "-o", "json"))


def addresses_by_port(endpoints: dict) -> dict[int, tuple[set[str], set[str]]]:
    """port -> (ready IPs, not-ready IPs) over all subsets."""
    found: dict[int, tuple[set[str], set[str]]] = {}
    for subset in endpoints.get("subsets") or ():
        for port in subset.get("ports") or ():
            ready, not_ready = found.setdefault(port["port"], (set(), set()))
            ready.update(a["ip"] for a in subset.get("addresses") or ())
            not_ready.update(a["ip"] for a in subset.get("notReadyAddresses") or ())
    return found


def slice_endpoints(kubectl, namespace: str, service: str) -> dict[str, tuple[int, bool]]:
    """IP -> (resolved port, ready) over the service's EndpointSlices."""
    slices = get_json(kubectl, "endpointslices", "-n", namespace, "-l", f"{SLICE_LABEL}={service}")["items"]
    return {e["addresses"][0]: (s["ports"][0]["port"], e["conditions"]["ready"])
            for s in slices for e in s["endpoints"]}


def test_endpoints_and_slices_follow_pod_readiness_and_named_ports(api, kubectl, namespace, node):
    make_pod(api, namespace, "a", node, "10.20.0.1", 8080, ready=True)
    make_pod(api, namespace, "b", node, "10.20.0.2", 8081, ready=True)
    make_pod(api, namespace, "c", node, "10.20.0.3", 8080, ready=False)
    service = {"metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "web"}]}}
    assert api.post(f"/api/v1/namespaces/{namespace}/services", json=service).status_code == 201

    expected = {8080: ({"10.20.0.1"}, {"10.20.0.3"}), 8081: ({"10.20.0.2"}, set())}
    wait_for(lambda: addresses_by_port(get_json(kubectl, "endpoints", "web", "-n", namespace)) == expected,
             TIMEOUT, message="Endpoints with a named targetPort resolved per pod")
    table = kubectl("get", "endpoints", "web", "-n", namespace)
    assert "10.20.0.1:8080" in table and "10.20.0.2:8081" in table and "10.20.0.3" not in table

    want = {"10.20.0.1": (8080, True), "10.20.0.2": (8081, True), "10.20.0.3": (8080, False)}
    wait_for(lambda: slice_endpoints(kubectl, namespace, "web") == want, TIMEOUT, message="EndpointSlices")
    slices = get_json(kubectl, "endpointslices", "-n", namespace, "-l", f"{SLICE_LABEL}=web")["items"]
    for endpoint_slice in slices:
        assert endpoint_slice["metadata"]["name"].startswith("web-")
        assert endpoint_slice["metadata"]["labels"][MANAGED_BY] == "endpointslice-controller.k8s.io"
        assert endpoint_slice["metadata"]["ownerReferences"][0]["kind"] == "Service"
        assert endpoint_slice["addressType"] == "IPv4"
        assert {e["zone"] for e in endpoint_slice["endpoints"]} == {"zone-a"}
    assert "10.20.0.1" in kubectl("get", "endpointslices", "-n", namespace)

    set_ready(api, namespace, "a", "10.20.0.1", ready=False)
    expected = {8080: (set(), {"10.20.0.1", "10.20.0.3"}), 8081: ({"10.20.0.2"}, set())}
    wait_for(lambda: addresses_by_port(get_json(kubectl, "endpoints", "web", "-n", namespace)) == expected,
             TIMEOUT, message="a moved to notReadyAddresses")
    wait_for(lambda: slice_endpoints(kubectl, namespace, "web")["10.20.0.1"] == (8080, False), TIMEOUT,
             message="a ready=false in its slice")

    kubectl("delete", "service", "web", "-n", namespace)
    wait_for(lambda: api.get(f"/api/v1/namespaces/{namespace}/endpoints/web").status_code == 404, TIMEOUT,
             message="Endpoints deleted with the Service")
    wait_for(lambda: not slice_endpoints(kubectl, namespace, "web"), TIMEOUT,
             message="EndpointSlices deleted with the Service")


def test_selector_less_service_endpoints_are_mirrored(api, kubectl, namespace):
    service = {"metadata": {"name": "db"}, "spec": {"ports": [{"name": "sql", "port": 5432}]}}
    assert api.post(f"/api/v1/namespaces/{namespace}/services", json=service).status_code == 201
    endpoints = {"metadata": {"name": "db", "labels": {"team": "data"}},
                 "subsets": [{"addresses": [{"ip": "192.168.5.1"}], "notReadyAddresses": [{"ip": "192.168.5.2"}],
                              "ports": [{"name": "sql", "port": 5432}]}]}
    assert api.post(f"/api/v1/namespaces/{namespace}/endpoints", json=endpoints).status_code == 201

    def mirrored():
        items = get_json(kubectl, "endpointslices", "-n", namespace, "-l", f"{SLICE_LABEL}=db")["items"]
        return items if items and items[0]["endpoints"] else None
    [endpoint_slice] = wait_for(mirrored, TIMEOUT, message="the mirrored EndpointSlice")
    assert endpoint_slice["metadata"]["labels"][MANAGED_BY] == "endpointslicemirroring-controller.k8s.io"
    assert endpoint_slice["metadata"]["labels"]["team"] == "data"
    assert {e["addresses"][0]: e["conditions"]["ready"] for e in endpoint_slice["endpoints"]} == \
        {"192.168.5.1": True, "192.168.5.2": False}
    # the Endpoints controller leaves a selector-less Service's Endpoints as the user wrote them
    assert api.get(f"/api/v1/namespaces/{namespace}/endpoints/db").json()["subsets"][0]["addresses"] == \
        [{"ip": "192.168.5.1"}]

    assert api.delete(f"/api/v1/namespaces/{namespace}/endpoints/db").status_code == 200
    wait_for(lambda: not get_json(kubectl, "endpointslices", "-n", namespace, "-l", f"{SLICE_LABEL}=db")["items"],
             TIMEOUT, message="mirrored slices deleted with the Endpoints")
