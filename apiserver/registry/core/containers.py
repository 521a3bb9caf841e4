"""Containers, init containers and ephemeral containers: defaulting and validation.

SetDefaults_Container (image pull policy from the tag, termination message path/policy, port
protocol) and the per-container checks of ValidatePodSpec: names unique across all container
lists, image required, ports, mounts referring to declared volumes, resources, restart policy
(only ``Always``, and only on init containers: sidecars) and probes. Used for Pods and for every
workload's pod template through :mod:`apiserver.registry.core.podspec`.
"""

from __future__ import annotations

import posixpath
from typing import Any

from apiserver.registry.core.common import (
    PROTOCOLS,
    as_dict,
    as_str,
    dicts,
    dns_label,
    in_range,
    is_int,
    not_found,
    one_of,
)
from apiserver.registry.core.handlers import (
    default_env,
    default_lifecycle,
    default_probe,
    validate_container_probes,
    validate_env,
    validate_env_from,
)
from apiserver.registry.core.resourcelist import validate_resource_requirements
from machinery import validation
from machinery.errors import FieldError, duplicate, forbidden, invalid_value, not_supported, required

PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
MAX_ID = 2147483647
EPHEMERAL_FORBIDDEN = ("ports", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "resources")


# --- defaults -----------------------------------------------------------------------------------


def image_tag(image: str) -> str:
    """The tag Kubernetes' image-name parser reports: "latest" when there is neither tag nor digest."""
    image = image.strip()
    if not image:
        return ""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return last.rsplit(":", 1)[1]
    return "" if digest else "latest"


def default_container(ctr: Any) -> None:
    """SetDefaults_Container and the defaults of its parts. Idempotent."""
    if not isinstance(ctr, dict):
        return
    if not ctr.get("imagePullPolicy"):
        ctr["imagePullPolicy"] = "Always" if image_tag(as_str(ctr.get("image"))) == "latest" else "IfNotPresent"
    if not ctr.get("terminationMessagePath"):
        ctr["terminationMessagePath"] = "/dev/termination-log"
    if not ctr.get("terminationMessagePolicy"):
        ctr["terminationMessagePolicy"] = "File"
    if ctr.get("resources") is None:
        ctr["resources"] = {}
    for _, port in dicts(ctr.get("ports")):
        if not port.get("protocol"):
            port["protocol"] = "TCP"
    default_env(ctr.get("env"))
    for probe in PROBES:
        default_probe(ctr.get(probe))
    default_lifecycle(ctr.get("lifecycle"))


def default_host_network_ports(ctr: Any) -> None:
    """With hostNetwork, a port's hostPort defaults to its containerPort (pods only)."""
    for _, port in dicts(as_dict(ctr).get("ports")):
        if not port.get("hostPort") and is_int(port.get("containerPort")):
            port["hostPort"] = port["containerPort"]


# --- validation ---------------------------------------------------------------------------------


def validate_all_containers(spec: dict[str, Any], path: str, volumes: set[str], *, pod: bool) -> list[FieldError]:
    """containers, initContainers and ephemeralContainers of one PodSpec at ``path``."""
    grace = spec.get("terminationGracePeriodSeconds") if is_int(spec.get("terminationGracePeriodSeconds")) else None
    host_network = spec.get("hostNetwork") is True
    containers = spec.get("containers")
    errs: list[FieldError] = []
    if not containers:
        errs.append(required(f"{path}.containers"))
    names: set[str] = set()
    for i, ctr in dicts(containers):
        item = f"{path}.containers[{i}]"
        errs += _validate_common(ctr, item, names, volumes, pod=pod)
        errs += validate_container_probes(ctr, item, None, grace)
        if ctr.get("restartPolicy") is not None:
            errs.append(forbidden(f"{item}.restartPolicy", "may not be set for non-init containers"))
        errs += _host_network_ports(ctr, item, host_network)
    for i, ctr in dicts(spec.get("initContainers")):
        item = f"{path}.initContainers[{i}]"
        errs += _validate_common(ctr, item, names, volumes, pod=pod)
        policy = ctr.get("restartPolicy")
        if policy is not None and policy != "Always":
            errs.append(not_supported(f"{item}.restartPolicy", policy, ["Always"]))
        errs += validate_container_probes(ctr, item, policy == "Always", grace)
        errs += _host_network_ports(ctr, item, host_network)
    for i, ctr in dicts(spec.get("ephemeralContainers")):
        item = f"{path}.ephemeralContainers[{i}]"
        errs += _validate_common(ctr, item, names, volumes, pod=pod)
        for name in EPHEMERAL_FORBIDDEN:
            if ctr.get(name) not in (None, [], {}):
                errs.append(forbidden(f"{item}.{name}", "cannot be set for an Ephemeral Container"))
    return errs


def _validate_common(ctr: dict[str, Any], path: str, names: set[str], volumes: set[str],
                     *, pod: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    name = ctr.get("name")
    if not name:
        errs.append(required(f"{path}.name"))
    else:
        errs += dns_label(name, f"{path}.name")
        if name in names:
            errs.append(duplicate(f"{path}.name", name))
        if isinstance(name, str):
            names.add(name)
    image = ctr.get("image")
    if not image:
        errs.append(required(f"{path}.image"))
    elif pod and isinstance(image, str) and image != image.strip():
        errs.append(invalid_value(f"{path}.image", image, "must not have leading or trailing whitespace"))
    errs += one_of(ctr.get("imagePullPolicy"), f"{path}.imagePullPolicy", PULL_POLICIES)
    policy = ctr.get("terminationMessagePolicy")
    if not policy:
        errs.append(required(f"{path}.terminationMessagePolicy"))
    elif policy not in ("File", "FallbackToLogsOnError"):
        errs.append(invalid_value(f"{path}.terminationMessagePolicy", policy,
                                  "must be 'File' or 'FallbackToLogsOnError'"))
    errs += validate_ports(ctr.get("ports"), f"{path}.ports")
    errs += validate_env(ctr.get("env"), f"{path}.env")
    errs += validate_env_from(ctr.get("envFrom"), f"{path}.envFrom")
    errs += validate_volume_mounts(ctr, path, volumes)
    errs += validate_resource_requirements(ctr.get("resources"), f"{path}.resources")
    errs += _validate_security_context(ctr.get("securityContext"), f"{path}.securityContext")
    return errs


def validate_ports(ports: Any, path: str) -> list[FieldError]:
    """Container ports: named ports unique IANA service names, numbers 1-65535, known protocols."""
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, port in dicts(ports):
        item = f"{path}[{i}]"
        name = port.get("name")
        if name:
            msgs = validation.is_valid_port_name(as_str(name))
            if msgs:
                errs += [invalid_value(f"{item}.name", name, m) for m in msgs]
            elif name in names:
                errs.append(duplicate(f"{item}.name", name))
            else:
                names.add(name)
        container_port = port.get("containerPort")
        if not container_port:
            errs.append(required(f"{item}.containerPort"))
        else:
            errs += [invalid_value(f"{item}.containerPort", container_port, m)
                     for m in validation.is_valid_port_num(container_port)]
        host_port = port.get("hostPort")
        if host_port:
            errs += [invalid_value(f"{item}.hostPort", host_port, m) for m in validation.is_valid_port_num(host_port)]
        errs += one_of(port.get("protocol"), f"{item}.protocol", PROTOCOLS)
    return errs


def _host_network_ports(ctr: dict[str, Any], path: str, host_network: bool) -> list[FieldError]:
    if not host_network:
        return []
    return [
        invalid_value(f"{path}.ports[{j}].hostPort", port.get("hostPort") or 0,
                      "must match `containerPort` when `hostNetwork` is true")
        for j, port in dicts(ctr.get("ports"))
        if (port.get("hostPort") or 0) != port.get("containerPort")
    ]


def validate_volume_mounts(ctr: dict[str, Any], ctr_path: str, volumes: set[str]) -> list[FieldError]:
    """Each mount names a declared volume and a unique mount path; sub-paths stay inside the volume."""
    path = f"{ctr_path}.volumeMounts"
    errs: list[FieldError] = []
    mount_points: set[str] = set()
    devices = {as_str(d.get("name")): as_str(d.get("devicePath")) for _, d in dicts(ctr.get("volumeDevices"))}
    for i, mount in dicts(ctr.get("volumeMounts")):
        item = f"{path}[{i}]"
        name, mount_path = as_str(mount.get("name")), as_str(mount.get("mountPath"))
        if not name:
            errs.append(required(f"{item}.name"))
        if name not in volumes:
            errs.append(not_found(f"{item}.name", name))
        if not mount_path:
            errs.append(required(f"{item}.mountPath"))
        if mount_path in mount_points:
            errs.append(invalid_value(f"{item}.mountPath", mount_path, "must be unique"))
        mount_points.add(mount_path)
        if name and name in devices:
            errs.append(invalid_value(f"{item}.name", name, "must not already exist in volumeDevices"))
        if mount_path and mount_path in devices.values():
            errs.append(invalid_value(f"{item}.mountPath", mount_path,
                                      "must not already exist as a path in volumeDevices"))
        sub_path, sub_path_expr = as_str(mount.get("subPath")), as_str(mount.get("subPathExpr"))
        if sub_path:
            errs += local_descending_path(sub_path, f"{path}.subPath")
        if sub_path_expr:
            if sub_path:
                errs.append(invalid_value(f"{item}.subPathExpr", sub_path_expr,
                                          "subPathExpr and subPath are mutually exclusive"))
            errs += local_descending_path(sub_path_expr, f"{path}.subPathExpr")
        propagation = mount.get("mountPropagation")
        if propagation is not None:
            errs += one_of(propagation, f"{path}.mountPropagation", ["Bidirectional", "HostToContainer", "None"])
    for i, device in dicts(ctr.get("volumeDevices")):
        if as_str(device.get("name")) not in volumes:
            errs.append(not_found(f"{ctr_path}.volumeDevices[{i}].name", device.get("name")))
    return errs


def local_descending_path(target: str, path: str) -> list[FieldError]:
    """A relative path that never steps out of its volume (no '..' element)."""
    errs = []
    if posixpath.isabs(target):
        errs.append(invalid_value(path, target, "must be a relative path"))
    if ".." in target.replace("\\", "/").split("/"):
        errs.append(invalid_value(path, target, "must not contain '..'"))
    return errs


def _validate_security_context(context: Any, path: str) -> list[FieldError]:
    ctx = as_dict(context)
    errs: list[FieldError] = []
    for name in ("runAsUser", "runAsGroup"):
        errs += in_range(ctx.get(name), f"{path}.{name}", 0, MAX_ID)
    if ctx.get("privileged") is True and ctx.get("allowPrivilegeEscalation") is False:
        errs.append(invalid_value(path, "", "cannot set `allowPrivilegeEscalation` to false and "
                                  "`privileged` to true"))
    return errs
