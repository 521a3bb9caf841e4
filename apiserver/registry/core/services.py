"""The Service strategy: type-dependent defaults, validation, and the hooks for IP/port allocation.

Kubernetes splits a Service write between defaulting (SetDefaults_Service), the REST layer's
allocators (cluster IPs, node ports, IP families) and validation. Here:

- :meth:`ServiceStrategy.default` — sessionAffinity, type, port protocol/targetPort, traffic
  policies, allocateLoadBalancerNodePorts, LoadBalancer ingress ipMode;
- ``prepare_for_create``/``prepare_for_update`` — clusterIP ↔ clusterIPs, values the client left
  out on update are kept (patchAllocatedValues), fields the new type does not use are dropped,
  and the IP family fields are filled for a single-stack IPv4 cluster;
- the allocator (the server's job) asks :func:`needs_cluster_ip`, :func:`needs_node_ports` and
  :func:`needs_health_check_node_port`, then fills ``clusterIP``+``clusterIPs``, ``nodePort``s and
  ``healthCheckNodePort`` before validation.

Endpoints live in :mod:`apiserver.registry.core.endpoints` (imported here to register it).
"""

from __future__ import annotations

import copy
from typing import Any

from apiserver.registry.builtin import register
from apiserver.registry.core import endpoints as _endpoints  # noqa: F401  (registers "endpoints")
from apiserver.registry.core.common import as_dict, as_list, dicts, is_int, spec_of
from apiserver.registry.core.service_validation import (
    validate_cluster_ip_update,
    validate_load_balancer_status,
    validate_service,
)
from apiserver.registry.strategy import Obj, Strategy
from machinery.errors import FieldError

CLIENT_IP_TIMEOUT = 10800
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


@register("", "services")
class ServiceStrategy(Strategy):
    name_rule = "dns1035"
    selectable_fields = ("spec.clusterIP", "spec.type")

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        if not spec.get("sessionAffinity"):
            spec["sessionAffinity"] = "None"
        if spec["sessionAffinity"] == "None":
            spec.pop("sessionAffinityConfig", None)
        elif spec["sessionAffinity"] == "ClientIP":
            config = as_dict(spec.get("sessionAffinityConfig"))
            if as_dict(config.get("clientIP")).get("timeoutSeconds") is None:
                spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": CLIENT_IP_TIMEOUT}}
        if not spec.get("type"):
            spec["type"] = "ClusterIP"
        for _, port in dicts(spec.get("ports")):
            if not port.get("protocol"):
                port["protocol"] = "TCP"
            if port.get("targetPort") in (None, 0, ""):
                port["targetPort"] = port.get("port")
        if externally_accessible(spec) and not spec.get("externalTrafficPolicy"):
            spec["externalTrafficPolicy"] = "Cluster"
        if spec.get("internalTrafficPolicy") is None and spec["type"] in ("ClusterIP", *NODE_PORT_TYPES):
            spec["internalTrafficPolicy"] = "Cluster"
        if spec["type"] == "LoadBalancer":
            if spec.get("allocateLoadBalancerNodePorts") is None:
                spec["allocateLoadBalancerNodePorts"] = True
            default_ingress_ip_mode(obj)

    def initial_status(self, obj: Obj) -> None:
        obj["status"] = {"loadBalancer": {}}

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        spec = obj.get("spec")
        if isinstance(spec, dict):
            if spec.get("clusterIP") and not as_list(spec.get("clusterIPs")):
                spec["clusterIPs"] = [spec["clusterIP"]]
            default_ip_families(spec)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        spec, old_spec = new.get("spec"), spec_of(old)
        if not isinstance(spec, dict):
            return
        _patch_allocated_values(spec, old_spec)
        _normalize_cluster_ips(spec, old_spec)
        _drop_type_dependent_fields(spec, old_spec, new)
        if needs_ip_fields(spec) and needs_ip_fields(old_spec):
            for name in ("ipFamilyPolicy", "ipFamilies"):
                if spec.get(name) is None and old_spec.get(name) is not None:
                    spec[name] = copy.deepcopy(old_spec[name])
        default_ip_families(spec)

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_service(spec_of(obj))

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_service(spec_of(new)) + validate_cluster_ip_update(spec_of(new), spec_of(old))

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        default_ingress_ip_mode(new)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_load_balancer_status(new)


# --- allocation hooks ---------------------------------------------------------------------------


def needs_ip_fields(spec: dict[str, Any]) -> bool:
    return bool(spec) and spec.get("type") != "ExternalName"


def is_headless(spec: dict[str, Any]) -> bool:
    return spec.get("clusterIP") == "None"


def needs_cluster_ip(svc: Obj) -> bool:
    """Whether the allocator must assign ``spec.clusterIP`` (and ``clusterIPs = [ip]``)."""
    spec = spec_of(svc)
    return spec.get("type", "ClusterIP") != "ExternalName" and not spec.get("clusterIP")


def _wants_node_ports(spec: dict[str, Any]) -> bool:
    kind = spec.get("type")
    return kind == "NodePort" or (kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is not False)


def needs_node_ports(svc: Obj) -> list[int]:
    """Indexes of ``spec.ports`` that still need a ``nodePort``."""
    spec = spec_of(svc)
    if not _wants_node_ports(spec):
        return []
    return [i for i, port in dicts(spec.get("ports")) if not port.get("nodePort")]


def needs_health_check_node_port(svc: Obj) -> bool:
    """A LoadBalancer with ``externalTrafficPolicy: Local`` needs a ``healthCheckNodePort``."""
    spec = spec_of(svc)
    return _wants_health_check(spec) and not spec.get("healthCheckNodePort")


def _wants_health_check(spec: dict[str, Any]) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def externally_accessible(spec: dict[str, Any]) -> bool:
    kind = spec.get("type")
    return kind in NODE_PORT_TYPES or (kind == "ClusterIP" and bool(as_list(spec.get("externalIPs"))))


# --- defaulting helpers -------------------------------------------------------------------------


def default_ip_families(spec: dict[str, Any]) -> None:
    """The allocator's family defaults on a single-stack IPv4 cluster. Idempotent."""
    if not needs_ip_fields(spec):
        return
    if is_headless(spec) and not as_dict(spec.get("selector")):
        spec.setdefault("ipFamilyPolicy", "RequireDualStack")
        if not as_list(spec.get("ipFamilies")):
            spec["ipFamilies"] = ["IPv4"]
        families = spec["ipFamilies"]
        if spec["ipFamilyPolicy"] in ("RequireDualStack", "PreferDualStack") and len(families) == 1:
            families.append("IPv6" if families[0] == "IPv4" else "IPv4")
        return
    if spec.get("ipFamilyPolicy") is None:
        spec["ipFamilyPolicy"] = "SingleStack"
    if not as_list(spec.get("ipFamilies")):
        spec["ipFamilies"] = ["IPv4"]


def default_ingress_ip_mode(obj: Obj) -> None:
    """A LoadBalancer ingress with an ``ip`` gets ``ipMode: VIP``."""
    if spec_of(obj).get("type") != "LoadBalancer":
        return
    for _, ingress in dicts(as_dict(as_dict(obj.get("status")).get("loadBalancer")).get("ingress")):
        if ingress.get("ip") and not ingress.get("ipMode"):
            ingress["ipMode"] = "VIP"


def _patch_allocated_values(spec: dict[str, Any], old: dict[str, Any]) -> None:
    """Values the server allocated and the client left out of an update are carried over."""
    if needs_ip_fields(old) and needs_ip_fields(spec):
        if not spec.get("clusterIP") and old.get("clusterIP"):
            spec["clusterIP"] = old["clusterIP"]
        if not as_list(spec.get("clusterIPs")) and as_list(old.get("clusterIPs")):
            spec["clusterIPs"] = list(old["clusterIPs"])
    if _wants_node_ports(old) and _wants_node_ports(spec):
        new_ports = {p.get("nodePort") for _, p in dicts(spec.get("ports")) if p.get("nodePort")}
        by_name = {p.get("name") or "": p.get("nodePort") for _, p in dicts(old.get("ports"))}
        for _, port in dicts(spec.get("ports")):
            previous = by_name.get(port.get("name") or "")
            if not port.get("nodePort") and is_int(previous) and previous and previous not in new_ports:
                port["nodePort"] = previous
    both_check = _wants_health_check(old) and _wants_health_check(spec)
    if both_check and not spec.get("healthCheckNodePort") and old.get("healthCheckNodePort"):
        spec["healthCheckNodePort"] = old["healthCheckNodePort"]


def _normalize_cluster_ips(spec: dict[str, Any], old: dict[str, Any]) -> None:
    """Old clients manage only ``clusterIP``: keep ``clusterIPs`` in step with it."""
    cleared = as_list(old.get("clusterIPs")) and not as_list(spec.get("clusterIPs"))
    if cleared and old.get("clusterIP") == spec.get("clusterIP"):
        spec["clusterIPs"] = list(old["clusterIPs"])
    if old.get("clusterIP") != spec.get("clusterIP"):
        same_ips = as_list(spec.get("clusterIPs")) == as_list(old.get("clusterIPs"))
        if old.get("clusterIP") and not spec.get("clusterIP"):
            if same_ips:
                spec.pop("clusterIPs", None)
        elif same_ips:
            spec["clusterIPs"] = [spec.get("clusterIP")]


def _drop_type_dependent_fields(spec: dict[str, Any], old: dict[str, Any], new_obj: Obj) -> None:
    """A type change drops the values the new type does not use, unless the client changed them."""
    if needs_ip_fields(old) and not needs_ip_fields(spec):
        if as_list(spec.get("clusterIPs")) == as_list(old.get("clusterIPs")):
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        for name in ("ipFamilies", "ipFamilyPolicy"):
            if spec.get(name) == old.get(name):
                spec.pop(name, None)
    if _wants_node_ports(old) and not _wants_node_ports(spec):
        old_ports = [p.get("nodePort") for _, p in dicts(old.get("ports"))]
        if [p.get("nodePort") for _, p in dicts(spec.get("ports"))] == old_ports:
            for _, port in dicts(spec.get("ports")):
                port.pop("nodePort", None)
    same_check_port = spec.get("healthCheckNodePort") == old.get("healthCheckNodePort")
    if _wants_health_check(old) and not _wants_health_check(spec) and same_check_port:
        spec.pop("healthCheckNodePort", None)
    if old.get("type") == "LoadBalancer" and spec.get("type") != "LoadBalancer":
        for name in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
            if spec.get(name) == old.get(name):
                spec.pop(name, None)
    same_policy = spec.get("externalTrafficPolicy") == old.get("externalTrafficPolicy")
    if externally_accessible(old) and not externally_accessible(spec) and same_policy:
        spec.pop("externalTrafficPolicy", None)
    if spec.get("type") != "LoadBalancer" and isinstance(new_obj.get("status"), dict):
        new_obj["status"] = {**new_obj["status"], "loadBalancer": {}}
