"""Service and Endpoints strategies: defaults, allocation hooks, validation, update rules."""

from __future__ import annotations

import copy

from apiserver.registry.builtin import strategy_for
from apiserver.registry.core.services import needs_cluster_ip, needs_health_check_node_port, needs_node_ports
from apiserver.resources import BUILTIN_RESOURCES


def strategy(resource: str, group: str = ""):
    info = next(r for r in BUILTIN_RESOURCES if r.resource == resource and r.group == group)
    return strategy_for(info)


SERVICES = strategy("services")
ENDPOINTS = strategy("endpoints")


def service(**spec) -> dict:
    body = {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
            "spec": body}


def created(obj: dict, allocate: str | None = "10.96.0.10") -> dict:
    SERVICES.default(obj)
    SERVICES.prepare_for_create(obj)
    if allocate and needs_cluster_ip(obj):
        obj["spec"]["clusterIP"] = allocate
        obj["spec"]["clusterIPs"] = [allocate]
    for n, i in enumerate(needs_node_ports(obj)):
        obj["spec"]["ports"][i]["nodePort"] = 30000 + n
    return obj


def errors(obj: dict) -> list[str]:
    return [str(e) for e in SERVICES.validate(created(obj))]


def updated(old: dict, change) -> tuple[dict, list[str]]:
    new = copy.deepcopy(old)
    change(new["spec"])
    SERVICES.default(new)
    SERVICES.prepare_for_update(new, old)
    return new, [str(e) for e in SERVICES.validate_update(new, old)]


def test_cluster_ip_service_defaults():
    obj = created(service())
    assert obj["spec"] == {
        "selector": {"app": "web"},
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
        "sessionAffinity": "None",
        "type": "ClusterIP",
        "internalTrafficPolicy": "Cluster",
        "ipFamilyPolicy": "SingleStack",
        "ipFamilies": ["IPv4"],
        "clusterIP": "10.96.0.10",
        "clusterIPs": ["10.96.0.10"],
    }
    assert obj["status"] == {"loadBalancer": {}}
    assert SERVICES.validate(obj) == []


def test_node_port_and_load_balancer_defaults():
    node_port = created(service(type="NodePort"))
    assert node_port["spec"]["externalTrafficPolicy"] == "Cluster"
    assert node_port["spec"]["ports"][0]["nodePort"] == 30000
    lb = created(service(type="LoadBalancer", ports=[{"port": 80}, {"port": 443, "name": "https"}]))
    assert lb["spec"]["allocateLoadBalancerNodePorts"] is True
    assert needs_node_ports(service(type="LoadBalancer", allocateLoadBalancerNodePorts=False)) == []


def test_client_ip_affinity_gets_timeout():
    obj = created(service(sessionAffinity="ClientIP"))
    assert obj["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_headless_services():
    selectorless = created(service(clusterIP="None", selector=None, ports=[]))
    assert selectorless["spec"]["ipFamilyPolicy"] == "RequireDualStack"
    assert selectorless["spec"]["ipFamilies"] == ["IPv4", "IPv6"]
    assert selectorless["spec"]["clusterIPs"] == ["None"]
    assert SERVICES.validate(selectorless) == []
    with_selector = created(service(clusterIP="None"))
    assert with_selector["spec"]["ipFamilies"] == ["IPv4"]
    assert not needs_cluster_ip(with_selector)


def test_external_name():
    obj = created(service(type="ExternalName", externalName="example.com.", ports=[]))
    assert "ipFamilies" not in obj["spec"] and "internalTrafficPolicy" not in obj["spec"]
    assert not needs_cluster_ip(obj)
    assert SERVICES.validate(obj) == []
    assert errors(service(type="ExternalName", ports=[])) == ["spec.externalName: Required value"]


def test_ports_required_unless_headless_or_external_name():
    assert errors(service(ports=[])) == ["spec.ports: Required value"]


def test_port_validation():
    errs = errors(service(ports=[{"port": 80}, {"port": 0, "name": "b", "protocol": "ICMP", "targetPort": "Web_1"},
                                 {"port": 80, "name": "b"}]))
    assert errs == [
        "spec.ports[0].name: Required value",
        "spec.ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        'spec.ports[1].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
        'spec.ports[1].targetPort: Invalid value: "Web_1": must contain only alpha-numeric characters (a-z, 0-9), '
        "and hyphens (-)",
        'spec.ports[2].name: Duplicate value: "b"',
        'spec.ports[2]: Duplicate value: {"port":80,"protocol":"TCP"}',
    ]


def test_type_selector_and_node_port_rules():
    errs = errors(service(type="Magic", selector={"app": "-x"}))
    assert any(e.startswith('spec.selector: Invalid value: "-x"') for e in errs)
    assert 'spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", ' \
           '"LoadBalancer", "NodePort"' in errs
    assert errors(service(ports=[{"port": 80, "nodePort": 30001}])) == [
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
    assert errors(service(type="NodePort", clusterIP="None")) == [
        'spec.clusterIPs[0]: Invalid value: "None": may not be set to \'None\' for NodePort services']


def test_traffic_policy_rules():
    assert errors(service(externalTrafficPolicy="Local")) == [
        'spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services']
    lb = service(type="LoadBalancer", externalTrafficPolicy="Local")
    assert needs_health_check_node_port(created(copy.deepcopy(lb)))
    assert errors(service(allocateLoadBalancerNodePorts=False)) == [
        "spec.allocateLoadBalancerNodePorts: Forbidden: may only be used when `type` is 'LoadBalancer'"]


def test_cluster_ip_fields_must_agree():
    assert errors(service(clusterIP="10.96.0.5", clusterIPs=["10.96.0.6"])) == [
        'spec.clusterIPs: Invalid value: []string{"10.96.0.6"}: first value must match `clusterIP`']
    assert errors(service(clusterIP="10.96.0.999")) == [
        'spec.clusterIPs[0]: Invalid value: "10.96.0.999": must be a valid IP address, (e.g. 10.9.8.7 or '
        "2001:db8::ffff)"]
    v6 = created(service(ipFamilies=["IPv6"]), allocate=None)
    assert [str(e) for e in SERVICES.validate(v6)] == [
        'spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster']


def test_cluster_ip_is_immutable():
    old = created(service())
    _, errs = updated(old, lambda s: s.update(clusterIP="10.96.0.11"))
    assert errs == ['spec.clusterIPs[0]: Invalid value: []string{"10.96.0.11"}: may not change once set']


def test_update_without_allocated_values_keeps_them():
    old = created(service(type="NodePort"))
    new, errs = updated(old, lambda s: [s.pop("clusterIP"), s.pop("clusterIPs"), s["ports"][0].pop("nodePort")])
    assert errs == []
    assert new["spec"]["clusterIP"] == "10.96.0.10" and new["spec"]["clusterIPs"] == ["10.96.0.10"]
    assert new["spec"]["ports"][0]["nodePort"] == 30000


def test_changing_type_drops_dependent_fields():
    old = created(service(type="NodePort"))
    new, errs = updated(old, lambda s: s.update(type="ClusterIP"))
    assert errs == []
    assert "nodePort" not in new["spec"]["ports"][0]
    assert "externalTrafficPolicy" not in new["spec"]
    to_external, errs = updated(old, lambda s: s.update(type="ExternalName", externalName="example.com"))
    assert errs == []
    assert "clusterIP" not in to_external["spec"] and "ipFamilies" not in to_external["spec"]


def test_load_balancer_status():
    lb = created(service(type="LoadBalancer"))
    new = copy.deepcopy(lb)
    new["status"] = {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"hostname": "1.2.3.4"}]}}
    SERVICES.prepare_for_status_update(new, lb)
    assert new["status"]["loadBalancer"]["ingress"][0]["ipMode"] == "VIP"
    assert [str(e) for e in SERVICES.validate_status_update(new, lb)] == [
        'status.loadBalancer.ingress[1].hostname: Invalid value: "1.2.3.4": must be a DNS name, not an IP address']
    plain = created(service())
    plain["status"] = new["status"]
    assert [str(e) for e in SERVICES.validate_status_update(plain, plain)] == [
        "status.loadBalancer.ingress: Forbidden: may only be used when `spec.type` is 'LoadBalancer'"]


def test_field_selectors_and_name_rule():
    obj = created(service())
    fields = SERVICES.field_values(obj)
    assert fields["spec.clusterIP"] == "10.96.0.10" and fields["spec.type"] == "ClusterIP"
    assert SERVICES.name_rule == "dns1035"


def test_endpoints():
    obj = {"metadata": {"name": "web", "namespace": "default"}, "subsets": [
        {"addresses": [{"ip": "10.1.0.5", "hostname": "Web"}, {"ip": "127.0.0.1"}], "ports": [{"port": 80}]},
        {"ports": [{"port": 80, "name": "a"}, {"port": 70000, "protocol": "TCP"}]},
    ]}
    ENDPOINTS.default(obj)
    assert obj["subsets"][0]["ports"][0]["protocol"] == "TCP"
    errs = [str(e) for e in ENDPOINTS.validate(obj)]
    assert errs[0].startswith('subsets[0].addresses[0].hostname: Invalid value: "Web"')
    assert errs[1:] == [
        'subsets[0].addresses[1].ip: Invalid value: "127.0.0.1": may not be in the loopback range '
        "(127.0.0.0/8, ::1/128)",
        "subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`",
        "subsets[1].ports[1].name: Required value",
        "subsets[1].ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
    ]
