"""Pod volumes: defaulting (SetDefaults_Volume and the per-source defaults) and validation.

A pod's volumes must have unique DNS-label names and exactly one source; containers may mount
only volumes that validated (Kubernetes builds the set of mountable names from the valid ones, so
a mount of a broken volume is also ``Not found``). Sources that kubemini's kubelet cannot run are
still accepted and checked as Kubernetes checks them, since clients create such pods.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from apiserver.registry.core.common import (
    as_dict,
    as_str,
    dicts,
    dns_label,
    is_int,
    nonnegative_quantity,
    one_of,
)
from apiserver.registry.core.containers import image_tag
from apiserver.registry.core.handlers import (
    default_field_ref,
    exactly_one,
    validate_object_field_ref,
    validate_resource_field_ref,
)
from apiserver.registry.core.storage import validate_claim_spec
from machinery import validation
from machinery.errors import FieldError, duplicate, forbidden, invalid_value, required

SOURCES = (
    "emptyDir", "hostPath", "gitRepo", "gcePersistentDisk", "awsElasticBlockStore", "secret", "nfs", "iscsi",
    "glusterfs", "flocker", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "quobyte",
    "downwardAPI", "fc", "azureFile", "vsphereVolume", "photonPersistentDisk", "portworxVolume", "azureDisk",
    "storageos", "configMap", "scaleIO", "projected", "csi", "ephemeral", "image",
)
DEFAULT_MODE = 0o644
FILE_MODE_ERROR = "must be a number between 0 and 0777 (octal), both inclusive"
HOST_PATH_TYPES = ["", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate",
                   "Socket"]
VOLUME_FIELD_PATHS = sorted({"metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace",
                             "metadata.uid"})
MIN_TOKEN_SECONDS = 600


# --- defaults -----------------------------------------------------------------------------------


def default_volume(volume: Any) -> None:
    """SetDefaults_Volume (no source → emptyDir) and each source's defaults. Idempotent."""
    if not isinstance(volume, dict):
        return
    if not any(volume.get(source) is not None for source in SOURCES):
        volume["emptyDir"] = {}
    for source in ("secret", "configMap", "downwardAPI", "projected"):
        body = volume.get(source)
        if isinstance(body, dict) and body.get("defaultMode") is None:
            body["defaultMode"] = DEFAULT_MODE
    host_path = volume.get("hostPath")
    if isinstance(host_path, dict) and host_path.get("type") is None:
        host_path["type"] = ""
    for _, item in dicts(as_dict(volume.get("downwardAPI")).get("items")):
        default_field_ref(item)
    for _, projection in dicts(as_dict(volume.get("projected")).get("sources")):
        for _, item in dicts(as_dict(projection.get("downwardAPI")).get("items")):
            default_field_ref(item)
        token = projection.get("serviceAccountToken")
        if isinstance(token, dict) and not token.get("expirationSeconds"):
            token["expirationSeconds"] = 3600
    iscsi = volume.get("iscsi")
    if isinstance(iscsi, dict) and not iscsi.get("iscsiInterface"):
        iscsi["iscsiInterface"] = "default"
    image = volume.get("image")
    if isinstance(image, dict) and not image.get("pullPolicy"):
        image["pullPolicy"] = "Always" if image_tag(as_str(image.get("reference"))) == "latest" else "IfNotPresent"
    claim_spec = as_dict(as_dict(as_dict(volume.get("ephemeral")).get("volumeClaimTemplate")).get("spec"))
    if claim_spec and not claim_spec.get("volumeMode"):
        claim_spec["volumeMode"] = "Filesystem"


# --- validation ---------------------------------------------------------------------------------


def validate_volumes(volumes: Any, path: str) -> tuple[set[str], list[FieldError]]:
    """(names of the volumes that validated, errors)."""
    names: set[str] = set()
    errs: list[FieldError] = []
    for i, volume in dicts(volumes):
        item = f"{path}[{i}]"
        own = validate_volume_source(volume, item)
        name = volume.get("name")
        if not name:
            own.append(required(f"{item}.name"))
        else:
            own += dns_label(name, f"{item}.name")
        if name in names:
            own.append(duplicate(f"{item}.name", name))
        if own:
            errs += own
        elif isinstance(name, str):
            names.add(name)
    return names, errs


def validate_volume_source(volume: dict[str, Any], path: str) -> list[FieldError]:
    """Exactly one source (checked in Kubernetes' order); later ones are Forbidden."""
    return exactly_one(volume, SOURCES, path, "volume type", _check_source)


def _check_source(source: str, body: dict[str, Any], path: str) -> list[FieldError]:
    check = _SOURCE_CHECKS.get(source)
    return check(body, path) if check is not None else []


def _file_mode(mode: Any, path: str) -> list[FieldError]:
    if is_int(mode) and not 0 <= mode <= 0o777:
        return [invalid_value(path, mode, FILE_MODE_ERROR)]
    return []


def local_non_reserved_path(target: str, path: str) -> list[FieldError]:
    """A relative path inside the volume that does not start with '..' (reserved by the kubelet)."""
    errs = []
    if target.startswith("/"):
        errs.append(invalid_value(path, target, "must be a relative path"))
    if ".." in target.split("/"):
        errs.append(invalid_value(path, target, "must not contain '..'"))
    elif target.startswith(".."):
        errs.append(invalid_value(path, target, "must not start with '..'"))
    return errs


def _relative_file_path(target: Any, path: str) -> list[FieldError]:
    """The required ``path`` of a projected file: relative and inside the volume."""
    target = as_str(target)
    return local_non_reserved_path(target, path) if target else [required(path)]


def _item_path_and_mode(item: dict[str, Any], item_path: str) -> list[FieldError]:
    """The file a key-to-path or downward-API item projects: its ``path`` and optional ``mode``."""
    return _relative_file_path(item.get("path"), f"{item_path}.path") + _file_mode(
        item.get("mode"), f"{item_path}.mode")


def _key_to_paths(items: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, item in dicts(items):
        item_path = f"{path}[{i}]"
        if not item.get("key"):
            errs.append(required(f"{item_path}.key"))
        errs += _item_path_and_mode(item, item_path)
    return errs


def _keys_source(name_field: str, source: dict[str, Any], path: str) -> list[FieldError]:
    """A secret or configMap volume: the object's name (under ``name_field``), modes and items."""
    errs = [] if source.get(name_field) else [required(f"{path}.{name_field}")]
    errs += _file_mode(source.get("defaultMode"), f"{path}.defaultMode")
    return errs + _key_to_paths(source.get("items"), f"{path}.items")


def _host_path(source: dict[str, Any], path: str) -> list[FieldError]:
    target = as_str(source.get("path"))
    errs = [] if target else [required(f"{path}.path")]
    if ".." in target.split("/"):
        errs.append(invalid_value(f"{path}.path", target, "must not contain '..'"))
    return errs + one_of(source.get("type"), f"{path}.type", HOST_PATH_TYPES, allow_empty=True)


def _empty_dir(source: dict[str, Any], path: str) -> list[FieldError]:
    limit = source.get("sizeLimit")
    if limit is not None and nonnegative_quantity(limit, f"{path}.sizeLimit"):
        return [forbidden(f"{path}.sizeLimit", "SizeLimit field must be a valid resource quantity")]
    return []


def _downward_items(items: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, item in dicts(items):
        item_path = f"{path}[{i}]"
        errs += _item_path_and_mode(item, item_path)
        refs = [k for k in ("fieldRef", "resourceFieldRef") if isinstance(item.get(k), dict)]
        if len(refs) > 1:
            errs.append(invalid_value(f"{item_path}.resourceFieldRef", "resource",
                                      "fieldRef and resourceFieldRef can not be specified simultaneously"))
        if "fieldRef" in refs:
            errs += validate_object_field_ref(item["fieldRef"], f"{item_path}.fieldRef", VOLUME_FIELD_PATHS)
        elif "resourceFieldRef" in refs:
            errs += validate_resource_field_ref(item["resourceFieldRef"], f"{item_path}.resourceFieldRef")
        else:
            errs.append(required(item_path, "one of fieldRef and resourceFieldRef is required"))
    return errs


def _downward_api(source: dict[str, Any], path: str) -> list[FieldError]:
    return _file_mode(source.get("defaultMode"), f"{path}.defaultMode") + _downward_items(
        source.get("items"), f"{path}.items")


def _projected(source: dict[str, Any], path: str) -> list[FieldError]:
    errs = _file_mode(source.get("defaultMode"), f"{path}.defaultMode")
    for i, projection in dicts(source.get("sources")):
        item = f"{path}.sources[{i}]"
        kinds = [k for k in ("secret", "configMap", "downwardAPI", "serviceAccountToken", "clusterTrustBundle",
                             "podCertificate") if isinstance(projection.get(k), dict)]
        if len(kinds) > 1:
            errs.append(forbidden(item, "may not specify more than 1 volume type per source"))
        for kind in kinds[:1]:
            body = projection[kind]
            if kind in ("secret", "configMap"):
                if not body.get("name"):
                    errs.append(required(f"{item}.{kind}.name"))
                errs += _key_to_paths(body.get("items"), f"{item}.{kind}.items")
            elif kind == "downwardAPI":
                errs += _downward_items(body.get("items"), f"{item}.downwardAPI.items")
            elif kind == "serviceAccountToken":
                errs += _token_projection(body, f"{item}.serviceAccountToken")
    return errs


def _token_projection(body: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seconds = body.get("expirationSeconds")
    if is_int(seconds) and seconds < MIN_TOKEN_SECONDS:
        errs.append(invalid_value(f"{path}.expirationSeconds", seconds,
                                  "may not specify a duration less than 10 minutes"))
    elif is_int(seconds) and seconds > 1 << 32:
        errs.append(invalid_value(f"{path}.expirationSeconds", seconds,
                                  "may not specify a duration larger than 2^32 seconds"))
    return errs + _relative_file_path(body.get("path"), f"{path}.path")


def _claim(source: dict[str, Any], path: str) -> list[FieldError]:
    return [] if source.get("claimName") else [required(f"{path}.claimName")]


def _nfs(source: dict[str, Any], path: str) -> list[FieldError]:
    errs = [] if source.get("server") else [required(f"{path}.server")]
    target = as_str(source.get("path"))
    if not target:
        errs.append(required(f"{path}.path"))
    elif not target.startswith("/"):
        errs.append(invalid_value(f"{path}.path", target, "must be an absolute path"))
    return errs


def _csi(source: dict[str, Any], path: str) -> list[FieldError]:
    driver = source.get("driver")
    if not driver:
        return [required(f"{path}.driver")]
    msgs = validation.is_dns1123_subdomain(as_str(driver).lower())
    return [invalid_value(f"{path}.driver", driver, m) for m in msgs]


def _ephemeral(source: dict[str, Any], path: str) -> list[FieldError]:
    template = source.get("volumeClaimTemplate")
    if not isinstance(template, dict):
        return [required(f"{path}.volumeClaimTemplate")]
    return validate_claim_spec(as_dict(template.get("spec")), f"{path}.volumeClaimTemplate.spec")


def _image(source: dict[str, Any], path: str) -> list[FieldError]:
    errs = [] if source.get("reference") else [required(f"{path}.reference")]
    return errs + one_of(source.get("pullPolicy"), f"{path}.pullPolicy", ["Always", "IfNotPresent", "Never"],
                         allow_empty=True)


_SOURCE_CHECKS = {
    "secret": partial(_keys_source, "secretName"), "configMap": partial(_keys_source, "name"),
    "hostPath": _host_path, "emptyDir": _empty_dir, "downwardAPI": _downward_api, "projected": _projected,
    "persistentVolumeClaim": _claim, "nfs": _nfs, "csi": _csi, "ephemeral": _ephemeral, "image": _image,
}
