"""The pods/resize subresource: the one way to change a running pod's cpu and memory.

Pod resources are immutable through a normal update; ``PUT``/``PATCH .../pods/<name>/resize`` takes a
whole Pod but keeps only ``spec.containers[*].resources`` and the sidecars'
``spec.initContainers[*].resources`` (plus ``resizePolicy``, so that changing it is *reported* rather
than silently dropped); every other field, metadata and status included, comes from the stored pod.
Validation follows Kubernetes v1.35's ``ValidatePodResize``:

- the resulting spec must be valid (requests ≤ limits, quantities, ...);
- pods with pod-level resources, static (mirror) pods and Windows pods cannot be resized;
- containers may not be added, removed, renamed or reordered;
- the QoS class may not change; requests and limits may not be removed;
- only cpu and memory may change; non-sidecar init containers not at all;
- a pod whose running containers report no ``resources`` runs on a node without resize support.

kubemini additions/simplifications: a pod in a terminal phase (Succeeded/Failed) cannot be resized
(Kubernetes accepts the write and the kubelet ignores it); resource lists of a container that had
none are compared like empty lists (Kubernetes lets a non-cpu/memory resource be *added* there).
"""

from __future__ import annotations

import copy
from typing import Any

from apiserver.registry.core.common import as_dict, as_list, as_str, dicts, meta_of, normalized, spec_of, status_of
from apiserver.registry.core.podspec import validate_pod_spec
from apiserver.registry.core.resourcelist import default_requests_from_limits
from machinery.errors import FieldError, forbidden, invalid_value
from machinery.podspec import is_sidecar
from machinery.qos import pod_qos_class
from machinery.quantity import QuantityError, parse_quantity

Obj = dict[str, Any]

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
TERMINAL_PHASES = ("Succeeded", "Failed")
RESIZABLE = ("cpu", "memory")
ONLY_CPU_MEMORY = "only cpu and memory resources are mutable"
ONLY_CPU_MEMORY_SIDECAR = "only cpu and memory resources for sidecar containers are mutable"
INIT_IMMUTABLE = "resources for non-sidecar init containers are immutable"
QOS_CHANGED = "Pod QOS Class may not change as a result of resizing"


# --- prepare ------------------------------------------------------------------------------------


def prepare_resize(new: Obj, old: Obj) -> None:
    """Make ``new`` the stored pod with only the resize fields taken from ``new`` (dropNonResizeUpdates).

    When containers were added, removed, renamed or reordered, ``new``'s container lists are kept
    as sent so that validation reports it. Requests default to limits as on any pod write.
    """
    new_spec, old_spec = spec_of(new), spec_of(old)
    lists = {kind: _merge_containers(new_spec.get(kind), old_spec.get(kind))
             for kind in ("containers", "initContainers")}
    merged = copy.deepcopy(old)
    spec = merged.setdefault("spec", {})
    for kind, containers in lists.items():
        if containers is not None:
            spec[kind] = containers
        for _, ctr in dicts(spec.get(kind)):
            default_requests_from_limits(ctr.get("resources"))
    meta = new.get("metadata")
    if isinstance(meta, dict):  # the store keeps a reference to this dict: refill it, don't replace it
        meta.clear()
        meta.update(merged.get("metadata") or {})
        merged["metadata"] = meta
    new.clear()
    new.update(merged)


def _merge_containers(new_list: Any, old_list: Any) -> list[Any] | None:
    """The old containers with the new ones' resources and resizePolicy; the new list as-is when the
    names do not line up; None when there are no containers of this kind."""
    new_items, old_items = as_list(new_list), as_list(old_list)
    if not new_items and not old_items:
        return None
    names = [as_dict(c).get("name") for c in new_items]
    if names != [as_dict(c).get("name") for c in old_items]:
        return copy.deepcopy(new_items)
    merged = copy.deepcopy(old_items)
    for ctr, sent in zip(merged, new_items, strict=True):
        if not isinstance(ctr, dict):
            continue
        for key in ("resources", "resizePolicy"):
            if as_dict(sent).get(key) is None:
                ctr.pop(key, None)
            else:
                ctr[key] = copy.deepcopy(sent[key])
    return merged


# --- validate -----------------------------------------------------------------------------------


def validate_resize(new: Obj, old: Obj) -> list[FieldError]:
    """ValidatePodResize for ``new`` as :func:`prepare_resize` left it. Must not mutate either."""
    new_spec, old_spec = spec_of(new), spec_of(old)
    refused = _unresizable(new_spec, old)
    if refused:
        return [forbidden("", refused)]
    errs = validate_pod_spec(new.get("spec"), "spec", pod=True)
    order = _ordering_errors(new_spec, old_spec)
    if order:
        return errs + order
    old_qos = as_str(status_of(old).get("qosClass")) or pod_qos_class(old)
    if pod_qos_class(new) != old_qos:
        errs.append(invalid_value("spec", old_qos, QOS_CHANGED))
    if not _node_supports_resize(old):
        errs.append(forbidden("spec", "Pod running on node without support for resize"))
    inits = [("initContainers", i, ctr, old_ctr) for i, ctr, old_ctr in _pairs(new_spec, old_spec, "initContainers")]
    apps = [("containers", i, ctr, old_ctr) for i, ctr, old_ctr in _pairs(new_spec, old_spec, "containers")]
    for kind, i, ctr, old_ctr in inits + apps:  # Kubernetes checks sidecars first here
        if kind == "containers" or is_sidecar(old_ctr):
            errs += _removal_errors(as_dict(ctr.get("resources")), as_dict(old_ctr.get("resources")),
                                    f"spec.{kind}[{i}].resources")
    for kind, _, ctr, old_ctr in apps + inits:
        errs += _non_resizable_change(kind, ctr, old_ctr)
    if errs:
        return _unique(errs)
    if _without_containers(new_spec) != _without_containers(old_spec):
        errs.append(forbidden("spec", ONLY_CPU_MEMORY))
    return errs


def _unresizable(new_spec: dict[str, Any], old: Obj) -> str:
    """Why this pod cannot be resized at all ("" when it can)."""
    old_spec = spec_of(old)
    if _pod_level_set(old_spec) or _pod_level_set(new_spec):
        return "pods with pod-level resources cannot be resized"
    if MIRROR_ANNOTATION in as_dict(meta_of(old).get("annotations")):
        return "static pods cannot be resized"
    if as_dict(old_spec.get("os")).get("name") == "windows":
        return "windows pods cannot be resized"
    phase = status_of(old).get("phase")
    if phase in TERMINAL_PHASES:
        return f'pods in phase "{phase}" cannot be resized'
    return ""


def _pod_level_set(spec: dict[str, Any]) -> bool:
    resources = as_dict(spec.get("resources"))
    return bool(as_dict(resources.get("requests")) or as_dict(resources.get("limits")))


def _ordering_errors(new_spec: dict[str, Any], old_spec: dict[str, Any]) -> list[FieldError]:
    errs = []
    for kind in ("containers", "initContainers"):
        new_items, old_items = as_list(new_spec.get(kind)), as_list(old_spec.get(kind))
        if len(new_items) != len(old_items):
            errs.append(forbidden(f"spec.{kind}", f"{kind} may not be added or removed on resize"))
            continue
        for i, (ctr, old_ctr) in enumerate(zip(new_items, old_items, strict=True)):
            if as_dict(ctr).get("name") != as_dict(old_ctr).get("name"):
                errs.append(forbidden(f"spec.{kind}[{i}].name", f"{kind} may not be renamed or reordered on resize"))
    return errs


def _node_supports_resize(old: Obj) -> bool:
    """isPodResizeRequestSupported: the first running container must report its resources."""
    for _, status in dicts(status_of(old).get("containerStatuses")):
        if "running" in as_dict(status.get("state")):
            return isinstance(status.get("resources"), dict)
    return True


def _pairs(new_spec: dict[str, Any], old_spec: dict[str, Any], kind: str):
    for i, (ctr, old_ctr) in enumerate(zip(as_list(new_spec.get(kind)), as_list(old_spec.get(kind)), strict=False)):
        yield i, as_dict(ctr), as_dict(old_ctr)


def _removal_errors(new_res: dict[str, Any], old_res: dict[str, Any], path: str) -> list[FieldError]:
    """validateContainerResize: a request or limit that was set must stay set."""
    errs = []
    for key, text in (("requests", "resource requests cannot be removed"),
                      ("limits", "resource limits cannot be removed")):
        if set(as_dict(old_res.get(key))) - set(as_dict(new_res.get(key))):
            errs.append(forbidden(f"{path}.{key}", text))
    return errs


def _non_resizable_change(kind: str, ctr: dict[str, Any], old_ctr: dict[str, Any]) -> list[FieldError]:
    """Anything but cpu/memory changed in a container (or anything at all in a plain init container)."""
    if kind == "initContainers" and not is_sidecar(old_ctr):
        return [] if _canonical(ctr) == _canonical(old_ctr) else [forbidden("spec", INIT_IMMUTABLE)]
    munged = dict(ctr)
    munged["resources"] = _with_old_cpu_memory(as_dict(ctr.get("resources")), as_dict(old_ctr.get("resources")))
    if _canonical(munged) == _canonical(old_ctr):
        return []
    return [forbidden("spec", ONLY_CPU_MEMORY if kind == "containers" else ONLY_CPU_MEMORY_SIDECAR)]


def _with_old_cpu_memory(res: dict[str, Any], old_res: dict[str, Any]) -> dict[str, Any]:
    """The new resources with cpu and memory put back to their old values (dropCPUMemoryUpdates)."""
    out = {}
    for key in ("requests", "limits"):
        values = {k: v for k, v in as_dict(res.get(key)).items() if k not in RESIZABLE}
        values.update({k: v for k, v in as_dict(old_res.get(key)).items() if k in RESIZABLE})
        out[key] = values
    for key, value in res.items():
        if key not in ("requests", "limits"):
            out[key] = value
    return out


def _canonical(ctr: dict[str, Any]) -> bytes:
    """A container for comparison: quantities in canonical form, empties dropped."""
    res = as_dict(ctr.get("resources"))
    canon = dict(ctr)
    canon["resources"] = {**res, **{key: {k: _canonical_quantity(v) for k, v in as_dict(res.get(key)).items()}
                                    for key in ("requests", "limits")}}
    return normalized(canon)


def _canonical_quantity(value: Any) -> Any:
    try:
        return str(parse_quantity(value))
    except (QuantityError, TypeError, ValueError):
        return value


def _without_containers(spec: dict[str, Any]) -> bytes:
    return normalized({k: v for k, v in spec.items() if k not in ("containers", "initContainers")})


def _unique(errs: list[FieldError]) -> list[FieldError]:
    seen: set[str] = set()
    out = []
    for err in errs:
        if str(err) not in seen:
            seen.add(str(err))
            out.append(err)
    return out
