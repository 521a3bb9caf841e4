"""PersistentVolume and PersistentVolumeClaim strategies (and the claim-spec check pods reuse).

PersistentVolumes: reclaim policy defaults to Retain and volume mode to Filesystem; a new volume
starts ``Pending`` with ``lastPhaseTransitionTime``; capacity (storage only, positive), access
modes and exactly one volume source are required; the source, volume mode and node affinity do not
change afterwards. Claims: volume mode defaults to Filesystem and a new claim starts ``Pending``;
access modes and a positive storage request are required; afterwards the spec is immutable except
``volumeName`` (set once), and — for bound claims — the storage request and volumeAttributesClassName.
"""

from __future__ import annotations

import copy
from typing import Any

from apiserver.registry.builtin import register
from apiserver.registry.core.common import (
    as_dict,
    as_list,
    as_str,
    describe_diff,
    dicts,
    dns_subdomain,
    immutable,
    key_path,
    normalized,
    one_of,
    positive_quantity,
    quantity,
    shown,
    spec_of,
    status_of,
)
from apiserver.registry.core.placement import validate_node_selector_term
from apiserver.registry.core.resourcelist import validate_quantity_value
from apiserver.registry.strategy import Obj, Strategy
from machinery.errors import FieldError, forbidden, invalid_value, not_supported, required
from machinery.labels import validate_label_selector
from machinery.meta import now_rfc3339

ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]
VOLUME_MODES = ["Block", "Filesystem"]
RECLAIM_POLICIES = ["Delete", "Recycle", "Retain"]
PV_PHASES = ["Available", "Bound", "Failed", "Pending", "Released"]
PVC_PHASES = ["Bound", "Lost", "Pending"]
PV_SOURCES = (
    "gcePersistentDisk", "awsElasticBlockStore", "hostPath", "glusterfs", "nfs", "rbd", "iscsi", "cinder",
    "cephfs", "fc", "flocker", "flexVolume", "azureFile", "vsphereVolume", "quobyte", "azureDisk",
    "photonPersistentDisk", "portworxVolume", "scaleIO", "local", "storageos", "csi",
)
PVC_IMMUTABLE = ("spec is immutable after creation except resources.requests and volumeAttributesClassName "
                 "for bound claims")


def _access_modes(modes: Any, path: str, *, required_detail: str) -> list[FieldError]:
    modes = as_list(modes)
    if not modes:
        return [required(path, required_detail)]
    errs = [not_supported(path, mode, ACCESS_MODES) for mode in modes if mode not in ACCESS_MODES]
    if "ReadWriteOncePod" in modes and len(set(modes)) > 1:
        errs.append(forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return errs


def validate_claim_spec(spec: dict[str, Any], path: str) -> list[FieldError]:
    """ValidatePersistentVolumeClaimSpec (also used for ephemeral volume claim templates)."""
    errs = _access_modes(spec.get("accessModes"), f"{path}.accessModes",
                         required_detail="at least 1 access mode is required")
    if isinstance(spec.get("selector"), dict):
        errs += validate_label_selector(spec["selector"], f"{path}.selector")
    storage_path = key_path(f"{path}.resources", "storage")
    requests = as_dict(as_dict(spec.get("resources")).get("requests"))
    if "storage" not in requests:
        errs.append(required(storage_path))
    else:
        errs += positive_quantity(requests["storage"], storage_path) or validate_quantity_value(
            "storage", requests["storage"], storage_path)
    if spec.get("storageClassName"):
        errs += dns_subdomain(spec["storageClassName"], f"{path}.storageClassName")
    if spec.get("volumeMode") is not None:
        errs += one_of(spec["volumeMode"], f"{path}.volumeMode", VOLUME_MODES)
    return errs


@register("", "persistentvolumes")
class PersistentVolumeStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            if not spec.get("persistentVolumeReclaimPolicy"):
                spec["persistentVolumeReclaimPolicy"] = "Retain"
            if not spec.get("volumeMode"):
                spec["volumeMode"] = "Filesystem"

    def initial_status(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending", "lastPhaseTransitionTime": now_rfc3339()}

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = spec_of(obj)
        errs = _access_modes(spec.get("accessModes"), "spec.accessModes", required_detail="")
        capacity = as_dict(spec.get("capacity"))
        if not capacity:
            errs.append(required("spec.capacity"))
        elif "storage" not in capacity or len(capacity) > 1:
            errs.append(not_supported("spec.capacity", shown(capacity), ["storage"]))
        for name, value in capacity.items():
            errs += positive_quantity(value, key_path("spec.capacity", name)) or validate_quantity_value(
                name, value, key_path("spec.capacity", name))
        errs += _pv_source(spec)
        errs += one_of(spec.get("persistentVolumeReclaimPolicy"), "spec.persistentVolumeReclaimPolicy",
                       RECLAIM_POLICIES, allow_empty=True)
        errs += one_of(spec.get("volumeMode"), "spec.volumeMode", VOLUME_MODES, allow_empty=True)
        if spec.get("storageClassName"):
            errs += dns_subdomain(spec["storageClassName"], "spec.storageClassName")
        affinity = as_dict(as_dict(spec.get("nodeAffinity")).get("required"))
        for i, term in dicts(affinity.get("nodeSelectorTerms")):
            errs += validate_node_selector_term(term, f"spec.nodeAffinity.required.nodeSelectorTerms[{i}]")
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        new_spec, old_spec = spec_of(new), spec_of(old)
        changed = [name for name in PV_SOURCES if new_spec.get(name) != old_spec.get(name)]
        if changed:
            diff = "\n".join(f"  {name}: {shown(old_spec.get(name))} -> {shown(new_spec.get(name))}"
                             for name in changed)
            errs.append(forbidden("spec.persistentvolumesource",
                                  "spec.persistentvolumesource is immutable after creation\n" + diff))
        errs += immutable(new_spec.get("volumeMode"), old_spec.get("volumeMode"), "volumeMode")
        if old_spec.get("nodeAffinity") is not None:
            errs += immutable(new_spec.get("nodeAffinity"), old_spec.get("nodeAffinity"), "nodeAffinity")
        return errs

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        """A phase change stamps ``lastPhaseTransitionTime``."""
        status = new.get("status")
        if isinstance(status, dict) and status.get("phase") != status_of(old).get("phase"):
            status["lastPhaseTransitionTime"] = now_rfc3339()

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return one_of(status_of(new).get("phase"), "status.phase", PV_PHASES, allow_empty=True)


def _pv_source(spec: dict[str, Any]) -> list[FieldError]:
    sources = [name for name in PV_SOURCES if spec.get(name) is not None]
    if not sources:
        return [required("spec", "must specify a volume type")]
    errs = [forbidden(f"spec.{name}", "may not specify more than 1 volume type") for name in sources[1:]]
    kind, body = sources[0], as_dict(spec.get(sources[0]))
    path = f"spec.{kind}"
    if kind in ("hostPath", "local"):
        if not body.get("path"):
            errs.append(required(f"{path}.path"))
        elif ".." in as_str(body["path"]).split("/"):
            errs.append(invalid_value(f"{path}.path", body["path"], "must not contain '..'"))
        if kind == "local" and spec.get("nodeAffinity") is None:
            errs.append(required("spec.nodeAffinity", "Local volumes require node affinity"))
    elif kind == "nfs":
        if not body.get("server"):
            errs.append(required(f"{path}.server"))
        if not body.get("path"):
            errs.append(required(f"{path}.path"))
        elif not as_str(body["path"]).startswith("/"):
            errs.append(invalid_value(f"{path}.path", body["path"], "must be an absolute path"))
    elif kind == "csi":
        for name in ("driver", "volumeHandle"):
            if not body.get(name):
                errs.append(required(f"{path}.{name}"))
    return errs


@register("", "persistentvolumeclaims")
class PersistentVolumeClaimStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict) and not spec.get("volumeMode"):
            spec["volumeMode"] = "Filesystem"

    def initial_status(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending"}

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_claim_spec(spec_of(obj), "spec")

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        new_spec, old_spec = copy.deepcopy(spec_of(new)), copy.deepcopy(spec_of(old))
        if not old_spec.get("volumeName"):
            _copy_key(new_spec, old_spec, "volumeName")
        bound = status_of(new).get("phase") == "Bound"
        if bound:
            _copy_key(new_spec, old_spec, "volumeAttributesClassName")
            new_requests = as_dict(as_dict(new_spec.get("resources")).get("requests"))
            old_requests = as_dict(as_dict(old_spec.get("resources")).get("requests"))
            if "storage" in old_requests:
                new_requests["storage"] = old_requests["storage"]
        if normalized(new_spec) != normalized(old_spec):
            errs.append(forbidden("spec", PVC_IMMUTABLE + "\n" + describe_diff(old_spec, new_spec)))
        errs += _storage_decrease(new, old)
        errs += immutable(spec_of(new).get("volumeMode"), spec_of(old).get("volumeMode"), "volumeMode")
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return one_of(status_of(new).get("phase"), "status.phase", PVC_PHASES, allow_empty=True)


def _copy_key(target: dict[str, Any], source: dict[str, Any], key: str) -> None:
    if key in target:
        source[key] = target[key]
    else:
        source.pop(key, None)


def _storage_decrease(new: Obj, old: Obj) -> list[FieldError]:
    """Shrinking is allowed only down to (not including) the recorded capacity (expansion recovery)."""
    def storage(obj: Obj, *keys: str) -> Any:
        value: Any = obj
        for key in keys:
            value = as_dict(value).get(key)
        return quantity(value)

    new_size = storage(new, "spec", "resources", "requests", "storage")
    old_size = storage(old, "spec", "resources", "requests", "storage")
    if new_size is None or old_size is None or not new_size < old_size:
        return []
    capacity = storage(old, "status", "capacity", "storage")
    if (capacity is not None and new_size <= capacity) or new_size.sign() <= 0:
        return [forbidden("spec.resources.requests.storage", "field can not be less than status.capacity")]
    return []
