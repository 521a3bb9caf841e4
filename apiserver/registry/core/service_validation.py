"""Service validation with Kubernetes' field paths and messages (ValidateService and friends).

Kept apart from :mod:`apiserver.registry.core.services` (which holds defaulting and the allocation
hooks) so each stays readable. Covers ports (required unless headless or ExternalName, named and
unique when several, valid numbers and protocols, no duplicate port or nodePort per protocol),
type and session affinity, the clusterIP/clusterIPs/ipFamilies family rules of a single-stack IPv4
cluster, traffic policies, LoadBalancer-only fields, the immutable primary cluster IP and the
LoadBalancer status.
"""

from __future__ import annotations

from typing import Any

from apiserver.registry.core.common import (
    as_dict,
    as_list,
    as_str,
    dicts,
    dns_subdomain,
    ip_address,
    is_int,
    one_of,
    qualified_name,
    shown,
    spec_of,
    status_of,
)
from apiserver.registry.core.endpoints import non_special_ip, validate_port
from machinery.errors import FieldError, duplicate, forbidden, invalid_value, not_supported, required
from machinery.validation import (
    is_dns1123_subdomain,
    is_valid_cidr,
    is_valid_port_num,
    parse_ip_sloppy,
    validate_labels,
)

TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
AFFINITIES = ["ClientIP", "None"]
FAMILIES = ["IPv4", "IPv6"]
FAMILY_POLICIES = ["PreferDualStack", "RequireDualStack", "SingleStack"]
TRAFFIC_POLICIES = ["Cluster", "Local"]
TRAFFIC_DISTRIBUTIONS = ["PreferClose", "PreferSameNode", "PreferSameZone"]
IP_MODES = ["Proxy", "VIP"]
KUBELET_PORT = 10250
MAX_CLIENT_IP_TIMEOUT = 86400
CHANGED = "may not change once set"
LB_ONLY = "may only be used when `type` is 'LoadBalancer'"


def _headless(spec: dict[str, Any]) -> bool:
    return as_list(spec.get("clusterIPs")) == ["None"] or spec.get("clusterIP") == "None"


def validate_service(spec: dict[str, Any]) -> list[FieldError]:
    kind = spec.get("type")
    headless = _headless(spec)
    ports = list(dicts(spec.get("ports")))
    errs: list[FieldError] = []
    if not ports and not headless and kind != "ExternalName":
        errs.append(required("spec.ports"))
    errs += _type_specific(spec, kind, headless, ports)
    names: set[str] = set()
    for i, port in ports:
        errs += _validate_port(port, f"spec.ports[{i}]", len(ports) > 1, names)
    if spec.get("selector") is not None:
        errs += validate_labels(as_dict(spec.get("selector")), "spec.selector")
    errs += _session_affinity(spec)
    errs += _cluster_ips(spec)
    for i, ip in enumerate(as_list(spec.get("externalIPs"))):
        errs += non_special_ip(as_str(ip), f"spec.externalIPs[{i}]")
    errs += one_of(kind, "spec.type", TYPES)
    if kind == "ClusterIP":
        errs += [forbidden(f"spec.ports[{i}].nodePort", "may not be used when `type` is 'ClusterIP'")
                 for i, port in ports if port.get("nodePort")]
    errs += _duplicate_ports(ports)
    errs += _load_balancer_fields(spec, kind)
    errs += _traffic_policies(spec, kind)
    return errs


def _type_specific(spec: dict[str, Any], kind: Any, headless: bool, ports: list) -> list[FieldError]:
    errs: list[FieldError] = []
    if kind == "LoadBalancer":
        errs += [invalid_value(f"spec.ports[{i}]", port.get("port"),
                               f"may not expose port {KUBELET_PORT} externally since it is used by kubelet")
                 for i, port in ports if port.get("port") == KUBELET_PORT]
    if kind in ("LoadBalancer", "NodePort") and headless:
        errs.append(invalid_value("spec.clusterIPs[0]", "None", f"may not be set to 'None' for {kind} services"))
    if kind == "ExternalName":
        if as_list(spec.get("clusterIPs")) or spec.get("clusterIP"):
            errs.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        if as_list(spec.get("ipFamilies")):
            errs.append(forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
        if spec.get("ipFamilyPolicy") is not None:
            errs.append(forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"))
        cname = as_str(spec.get("externalName")).removesuffix(".")
        errs += dns_subdomain(cname, "spec.externalName") if cname else [required("spec.externalName")]
    return errs


def _validate_port(port: dict[str, Any], path: str, require_name: bool, names: set[str]) -> list[FieldError]:
    errs = validate_port(port, path, require_name=require_name, names=names, target_port=True)
    node_port = port.get("nodePort")
    if node_port:
        errs += [invalid_value(f"{path}.nodePort", node_port, m) for m in is_valid_port_num(node_port)]
    return errs


def _duplicate_ports(ports: list) -> list[FieldError]:
    errs: list[FieldError] = []
    node_ports: set[tuple[Any, Any]] = set()
    pairs: set[tuple[Any, Any]] = set()
    for i, port in ports:
        if port.get("nodePort"):
            key = (port.get("protocol"), port.get("nodePort"))
            if key in node_ports:
                errs.append(duplicate(f"spec.ports[{i}].nodePort", port.get("nodePort")))
            node_ports.add(key)
        key = (port.get("protocol"), port.get("port"))
        if key in pairs:
            errs.append(duplicate(f"spec.ports[{i}]", shown({"port": key[1], "protocol": key[0]})))
        pairs.add(key)
    return errs


def _session_affinity(spec: dict[str, Any]) -> list[FieldError]:
    affinity = spec.get("sessionAffinity")
    errs = one_of(affinity, "spec.sessionAffinity", AFFINITIES)
    config = spec.get("sessionAffinityConfig")
    if affinity == "ClientIP":
        timeout = as_dict(as_dict(config).get("clientIP")).get("timeoutSeconds")
        if not is_int(timeout) or not 0 < timeout <= MAX_CLIENT_IP_TIMEOUT:
            errs.append(invalid_value("spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout,
                                      f"must be greater than 0 and less than {MAX_CLIENT_IP_TIMEOUT}"))
    elif affinity == "None" and config is not None:
        errs.append(forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None"))
    return errs


def _cluster_ips(spec: dict[str, Any]) -> list[FieldError]:
    """ValidateServiceClusterIPsRelatedFields, for a single-stack IPv4 cluster."""
    if spec.get("type") == "ExternalName":
        return []
    errs: list[FieldError] = []
    cluster_ip, ips = as_str(spec.get("clusterIP")), [as_str(ip) for ip in as_list(spec.get("clusterIPs"))]
    if cluster_ip:
        if not ips:
            errs.append(required("spec.clusterIPs"))
        elif ips[0] != cluster_ip:
            errs.append(invalid_value("spec.clusterIPs", shown(ips), "first value must match `clusterIP`"))
    elif ips:
        errs.append(invalid_value("spec.clusterIPs", shown(ips), "must be empty when `clusterIP` is not specified"))
    families = as_list(spec.get("ipFamilies"))
    for i, family in enumerate(families):
        if family not in FAMILIES:
            errs.append(not_supported(f"spec.ipFamilies[{i}]", family, FAMILIES))
        if family in families[:i]:
            errs.append(duplicate(f"spec.ipFamilies[{i}]", family))
    policy = spec.get("ipFamilyPolicy")
    if policy is not None and policy not in FAMILY_POLICIES:
        errs.append(not_supported("spec.ipFamilyPolicy", policy, FAMILY_POLICIES))
    bad_ips = False
    for i, ip in enumerate(ips):
        if i == 0 and ip == "None":
            if len(ips) > 1:
                bad_ips = True
                errs.append(invalid_value("spec.clusterIPs", shown(ips), "'None' must be the first and only value"))
            continue
        ip_errs = ip_address(ip, f"spec.clusterIPs[{i}]")
        bad_ips = bad_ips or bool(ip_errs)
        errs += ip_errs
    if len(ips) > 2:
        errs.append(invalid_value("spec.clusterIPs", shown(ips), "may only hold up to 2 values"))
    if bad_ips:
        return errs
    if len(ips) > 1 and len({parse_ip_sloppy(ip).version for ip in ips}) != 2:  # type: ignore[union-attr]
        errs.append(invalid_value("spec.clusterIPs", shown(ips),
                                  "may specify no more than one IP for each IP family, i.e 192.168.0.1, 2000::1"))
    if ips and ips[0] != "None":
        for i, (ip, family) in enumerate(zip(ips, families, strict=False)):
            version = parse_ip_sloppy(ip).version  # type: ignore[union-attr]
            if (family == "IPv4" and version == 6) or (family == "IPv6" and version == 4):
                want = "IPv4" if family == "IPv4" else "IPv6"
                errs.append(invalid_value(f"spec.clusterIPs[{i}]", ip,
                                          f"expected an {want} value as indicated by `ipFamilies[{i}]`"))
    return errs + _single_stack_cluster(spec, ips, families, policy)


def _single_stack_cluster(spec: dict[str, Any], ips: list[str], families: list, policy: Any) -> list[FieldError]:
    """What the allocator of an IPv4-only cluster rejects (headless selectorless services excepted)."""
    if spec.get("clusterIP") == "None" and not as_dict(spec.get("selector")):
        return []
    errs: list[FieldError] = []
    if policy == "RequireDualStack":
        errs.append(invalid_value("spec.ipFamilyPolicy", policy,
                                  "this cluster is not configured for dual-stack services"))
    for i, family in enumerate(families):
        if family == "IPv6":
            errs.append(invalid_value(f"spec.ipFamilies[{i}]", family, "not configured on this cluster"))
    return errs


def _load_balancer_fields(spec: dict[str, Any], kind: Any) -> list[FieldError]:
    errs: list[FieldError] = []
    ranges = as_list(spec.get("loadBalancerSourceRanges"))
    if ranges and kind != "LoadBalancer":
        errs.append(forbidden("spec.loadBalancerSourceRanges", LB_ONLY))
    for i, cidr in enumerate(ranges):
        if is_valid_cidr(as_str(cidr).strip()):
            errs.append(invalid_value(f"spec.loadBalancerSourceRanges[{i}]", cidr,
                                      "must be a list of IP ranges. For example, 10.240.0.0/24,10.250.0.0/24 "))
    if spec.get("loadBalancerClass") is not None:
        if kind != "LoadBalancer":
            errs.append(forbidden("spec.loadBalancerClass", LB_ONLY))
        errs += qualified_name(as_str(spec.get("loadBalancerClass")), "spec.loadBalancerClass")
    if spec.get("allocateLoadBalancerNodePorts") is not None and kind != "LoadBalancer":
        errs.append(forbidden("spec.allocateLoadBalancerNodePorts", LB_ONLY))
    if spec.get("loadBalancerIP"):
        errs += ip_address(spec["loadBalancerIP"], "spec.loadBalancerIP")
    return errs


def _traffic_policies(spec: dict[str, Any], kind: Any) -> list[FieldError]:
    errs: list[FieldError] = []
    external = spec.get("externalTrafficPolicy")
    has_external_ips = bool(as_list(spec.get("externalIPs")))
    accessible = kind in ("NodePort", "LoadBalancer") or (kind == "ClusterIP" and has_external_ips)
    if not accessible:
        if external:
            errs.append(invalid_value("spec.externalTrafficPolicy", external,
                                      "may only be set for externally-accessible services"))
    else:
        errs += one_of(external, "spec.externalTrafficPolicy", TRAFFIC_POLICIES)
    health = spec.get("healthCheckNodePort")
    if health:
        if kind != "LoadBalancer" or external != "Local":
            errs.append(invalid_value("spec.healthCheckNodePort", health,
                                      "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` "
                                      "is 'Local'"))
        else:
            errs += [invalid_value("spec.healthCheckNodePort", health, m) for m in is_valid_port_num(health)]
    internal = spec.get("internalTrafficPolicy")
    if internal is None:
        if kind in ("ClusterIP", "NodePort", "LoadBalancer"):
            errs.append(required("spec.internalTrafficPolicy"))
    elif internal not in TRAFFIC_POLICIES:
        errs.append(not_supported("spec.internalTrafficPolicy", internal, TRAFFIC_POLICIES))
    errs += one_of(spec.get("trafficDistribution"), "spec.trafficDistribution", TRAFFIC_DISTRIBUTIONS,
                   allow_empty=True)
    return errs


def validate_cluster_ip_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    """The primary (and secondary) cluster IP and the primary family never change once set."""
    if "ExternalName" in (new.get("type"), old.get("type")):
        return []
    errs: list[FieldError] = []
    old_ips, new_ips = as_list(old.get("clusterIPs")), as_list(new.get("clusterIPs"))
    if old_ips:
        if not new_ips or new_ips[0] != old_ips[0]:
            errs.append(invalid_value("spec.clusterIPs[0]", shown(new_ips), CHANGED))
        elif len(old_ips) > 1 and len(new_ips) > 1 and new_ips[1] != old_ips[1]:
            errs.append(invalid_value("spec.clusterIPs[1]", shown(new_ips), CHANGED))
    old_families, new_families = as_list(old.get("ipFamilies")), as_list(new.get("ipFamilies"))
    if old_families and new_families and new_families[0] != old_families[0]:
        errs.append(invalid_value("spec.ipFamilies[0]", shown(new_families), CHANGED))
    return errs


def validate_load_balancer_status(svc: dict[str, Any]) -> list[FieldError]:
    ingresses = list(dicts(as_dict(status_of(svc).get("loadBalancer")).get("ingress")))
    path = "status.loadBalancer.ingress"
    if ingresses and spec_of(svc).get("type") != "LoadBalancer":
        return [forbidden(path, "may only be used when `spec.type` is 'LoadBalancer'")]
    errs: list[FieldError] = []
    for i, ingress in ingresses:
        item = f"{path}[{i}]"
        ip, mode, hostname = as_str(ingress.get("ip")), ingress.get("ipMode"), as_str(ingress.get("hostname"))
        if ip:
            errs += ip_address(ip, f"{item}.ip")
        if mode is not None and not ip:
            errs.append(forbidden(f"{item}.ipMode", "may not be specified when `ip` is not set"))
        elif mode is not None and mode not in IP_MODES:
            errs.append(not_supported(f"{item}.ipMode", mode, IP_MODES))
        if hostname:
            errs += [invalid_value(f"{item}.hostname", hostname, m) for m in is_dns1123_subdomain(hostname)]
            if parse_ip_sloppy(hostname) is not None:
                errs.append(invalid_value(f"{item}.hostname", hostname, "must be a DNS name, not an IP address"))
    return errs
