"""The (legacy) Endpoints strategy: address/port subsets written by the endpoints controller.

Registered through :mod:`apiserver.registry.core.services` (Endpoints belong with Services).
Defaults: port protocol TCP. Validation follows ValidateEndpoints: each subset has addresses or
not-ready addresses; addresses are IPs outside the unspecified/loopback/link-local ranges;
hostnames are DNS labels; ports are valid, named when there are several, with known protocols.
"""

from __future__ import annotations

from typing import Any

from apiserver.registry.builtin import register
from apiserver.registry.core.common import (
    PROTOCOLS,
    as_str,
    dicts,
    dns_label,
    dns_subdomain,
    one_of,
    port_num_or_name,
    qualified_name,
)
from apiserver.registry.strategy import Obj, Strategy
from machinery.errors import FieldError, duplicate, invalid_value, required
from machinery.validation import is_valid_port_num, parse_ip_sloppy


@register("", "endpoints")
class EndpointsStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        for _, subset in dicts(obj.get("subsets")):
            for _, port in dicts(subset.get("ports")):
                if not port.get("protocol"):
                    port["protocol"] = "TCP"

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_subsets(obj.get("subsets"), "subsets")


def validate_subsets(subsets: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, subset in dicts(subsets):
        item = f"{path}[{i}]"
        if not subset.get("addresses") and not subset.get("notReadyAddresses"):
            errs.append(required(item, "must specify `addresses` or `notReadyAddresses`"))
        for kind in ("addresses", "notReadyAddresses"):
            for j, address in dicts(subset.get(kind)):
                errs += validate_endpoint_address(address, f"{item}.{kind}[{j}]")
        ports = list(dicts(subset.get("ports")))
        for j, port in ports:
            errs += validate_port(port, f"{item}.ports[{j}]", require_name=len(ports) > 1)
    return errs


def validate_endpoint_address(address: dict[str, Any], path: str) -> list[FieldError]:
    errs = non_special_ip(as_str(address.get("ip")), f"{path}.ip")
    if address.get("hostname"):
        errs += dns_label(address["hostname"], f"{path}.hostname")
    if address.get("nodeName") is not None:
        errs += dns_subdomain(address["nodeName"], f"{path}.nodeName")
    return errs


def non_special_ip(value: str, path: str) -> list[FieldError]:
    """ValidateNonSpecialIP: a usable unicast address."""
    ip = parse_ip_sloppy(value)
    if ip is None:
        return [invalid_value(path, value, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")]
    errs = []
    if ip.is_unspecified:
        errs.append(invalid_value(path, value, f"may not be unspecified ({value})"))
    if ip.is_loopback:
        errs.append(invalid_value(path, value, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
    if ip.is_link_local:
        errs.append(invalid_value(path, value, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
    if _link_local_multicast(ip):
        errs.append(invalid_value(path, value,
                                  "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"))
    return errs


def _link_local_multicast(ip: Any) -> bool:
    packed = ip.packed
    if ip.version == 4:
        return packed[:3] == bytes([224, 0, 0])
    return packed[0] == 0xFF and packed[1] & 0x0F == 0x02


def validate_port(port: dict[str, Any], path: str, *, require_name: bool, names: set[str] | None = None,
                  target_port: bool = False) -> list[FieldError]:
    """ValidateEndpointPort, and with ``names`` and ``target_port`` validateServicePort: the name is a
    DNS label (required when ``require_name``), the number valid, the protocol known, an appProtocol a
    qualified name. ``names`` collects the names seen so far; a name already in it is a Duplicate.
    ``target_port`` also checks a Service port's ``targetPort`` (a number or an IANA name)."""
    errs: list[FieldError] = []
    name = port.get("name")
    if require_name and not name:
        errs.append(required(f"{path}.name"))
    elif name:
        errs += dns_label(name, f"{path}.name")
        if names is not None:
            if name in names:
                errs.append(duplicate(f"{path}.name", name))
            names.add(as_str(name))
    errs += [invalid_value(f"{path}.port", port.get("port"), m) for m in is_valid_port_num(port.get("port"))]
    errs += one_of(port.get("protocol"), f"{path}.protocol", PROTOCOLS)
    if target_port:
        errs += port_num_or_name(port.get("targetPort"), f"{path}.targetPort")
    if port.get("appProtocol") is not None:
        errs += qualified_name(as_str(port["appProtocol"]), f"{path}.appProtocol")
    return errs
