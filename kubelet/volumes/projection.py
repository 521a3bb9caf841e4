"""What the files of configMap, secret, downwardAPI and projected volumes should contain (their payloads).

Each builder returns a :data:`~kubelet.volumes.atomic.Payload` (path → bytes and mode) for the atomic writer, or
raises :class:`ProjectionError` with Kubernetes' message. Rules, as in Kubernetes' MakePayload/CollectData:

* without ``items`` every key becomes a file named after it; with ``items`` only the listed keys, at their
  ``path``, with their own ``mode`` or the volume's ``defaultMode`` (0644 when unset);
* a missing object of an ``optional`` source gives no files, a missing key of an optional source is skipped;
  otherwise ``configmap "x" not found`` / ``configmap references non-existent config key: k``;
* downwardAPI items read metadata fields (labels/annotations as sorted ``k="v"`` lines) or a named container's
  resources (unset limits read as node allocatable);
* projected volumes merge their sources in order (later paths win); every failing source is reported.
  serviceAccountToken, clusterTrustBundle and podCertificate sources are rejected for now.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
from collections.abc import Mapping
from typing import Any

from kubelet.env import ContainerConfigError, container_resource_value, metadata_field_value
from kubelet.objects import ObjectSource
from kubelet.volumes.atomic import FileProjection, Payload
from kubelet.volumes.layout import CONFIG_MAP, DOWNWARD_API, PROJECTED, SECRET

DEFAULT_MODE = 0o644
UNSUPPORTED_PROJECTIONS = ("serviceAccountToken", "clusterTrustBundle", "podCertificate")


class ProjectionError(Exception):
    """The payload cannot be built (missing object or key, bad field reference, unsupported source)."""


def _mode(value: Any, default: int) -> int:
    return int(value) & 0o777 if value is not None else default


def _decode(value: str | None, what: str) -> bytes:
    try:
        return base64.b64decode(value or "", validate=True)
    except (binascii.Error, ValueError):
        raise ProjectionError(f"{what} is not valid base64") from None


def _key_values(kind: str, obj: Mapping[str, Any] | None) -> dict[str, bytes]:
    """Every key of a ConfigMap (``data`` and ``binaryData``) or Secret (``data``) as bytes."""
    if obj is None:
        return {}
    if kind == CONFIG_MAP:
        values = {key: (value or "").encode() for key, value in (obj.get("data") or {}).items()}
        for key, value in (obj.get("binaryData") or {}).items():
            values[key] = _decode(value, f"binaryData key {key}")
        return values
    return {key: _decode(value, f"secret key {key}") for key, value in (obj.get("data") or {}).items()}


async def _fetch(kind: str, namespace: str, name: str, source: ObjectSource) -> Mapping[str, Any] | None:
    read = source.config_map if kind == CONFIG_MAP else source.secret
    noun = "configmap" if kind == CONFIG_MAP else "secret"
    try:
        return await read(namespace, name)
    except Exception as err:
        raise ProjectionError(f"couldn't get {noun} {namespace}/{name}: {err}") from None


async def key_payload(kind: str, spec: Mapping[str, Any], namespace: str, source: ObjectSource,
                      default_mode: int) -> Payload:
    """A configMap or secret source (``spec`` has ``name``/``secretName``, ``items``, ``optional``)."""
    name = (spec.get("secretName") if kind == SECRET and "secretName" in spec else spec.get("name")) or ""
    optional, noun = bool(spec.get("optional")), ("configmap" if kind == CONFIG_MAP else "secret")
    obj = await _fetch(kind, namespace, name, source)
    if obj is None and not optional:
        raise ProjectionError(f'{noun} "{name}" not found')
    values = _key_values(kind, obj)
    items = spec.get("items") or []
    if not items:
        return {key: FileProjection(data, default_mode) for key, data in values.items()}
    payload: Payload = {}
    for item in items:
        key = item.get("key") or ""
        if key not in values:
            if optional:
                continue
            what = "config key" if kind == CONFIG_MAP else "secret key"
            raise ProjectionError(f"{noun} references non-existent {what}: {key}")
        payload[item.get("path") or key] = FileProjection(values[key], _mode(item.get("mode"), default_mode))
    return payload


def _find_container(pod: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    spec = pod.get("spec") or {}
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        if container.get("name") == name:
            return container
    raise ProjectionError(f"container {name} not found")


def downward_payload(items: list[Mapping[str, Any]], pod: Mapping[str, Any], node_allocatable: Mapping[str, str],
                     default_mode: int) -> Payload:
    """A downwardAPI volume or projected source; errors of all items are reported together."""
    payload: Payload = {}
    errors: list[str] = []
    for item in items:
        path = posixpath.normpath(item.get("path") or "")
        try:
            if item.get("fieldRef"):
                value = metadata_field_value(pod, (item["fieldRef"].get("fieldPath") or ""))
            elif item.get("resourceFieldRef"):
                ref = item["resourceFieldRef"]
                container = _find_container(pod, ref.get("containerName") or "")
                value = container_resource_value(ref, container, node_allocatable)
            else:
                value = ""
        except (ContainerConfigError, ProjectionError) as err:
            errors.append(str(err))
            continue
        payload[path] = FileProjection(value.encode(), _mode(item.get("mode"), default_mode))
    _raise_aggregate(errors)
    return payload


def _raise_aggregate(errors: list[str]) -> None:
    """Kubernetes' aggregate error text: the error itself, or ``[e1, e2]``."""
    if len(errors) == 1:
        raise ProjectionError(errors[0])
    if errors:
        raise ProjectionError("[" + ", ".join(errors) + "]")


async def projected_payload(spec: Mapping[str, Any], pod: Mapping[str, Any], source: ObjectSource,
                            node_allocatable: Mapping[str, str]) -> Payload:
    default_mode = _mode(spec.get("defaultMode"), DEFAULT_MODE)
    namespace = (pod.get("metadata") or {}).get("namespace") or ""
    payload: Payload = {}
    errors: list[str] = []
    for item in spec.get("sources") or []:
        try:
            if item.get("configMap") is not None:
                payload |= await key_payload(CONFIG_MAP, item["configMap"], namespace, source, default_mode)
            elif item.get("secret") is not None:
                payload |= await key_payload(SECRET, item["secret"], namespace, source, default_mode)
            elif item.get("downwardAPI") is not None:
                payload |= downward_payload(item["downwardAPI"].get("items") or [], pod, node_allocatable,
                                            default_mode)
            else:
                kind = next((k for k in UNSUPPORTED_PROJECTIONS if item.get(k) is not None), "")
                errors.append(f"projected {kind or 'unknown source'} volumes are not supported by kubemini yet")
        except ProjectionError as err:
            errors.append(str(err))
    _raise_aggregate(errors)
    return payload


async def volume_payload(kind: str, volume: Mapping[str, Any], pod: Mapping[str, Any], source: ObjectSource,
                         node_allocatable: Mapping[str, str]) -> Payload:
    """The payload of a volume of ``kind`` (one of CONFIG_MAP, SECRET, DOWNWARD_API, PROJECTED)."""
    spec = volume.get(kind) or {}
    namespace = (pod.get("metadata") or {}).get("namespace") or ""
    if kind == PROJECTED:
        return await projected_payload(spec, pod, source, node_allocatable)
    default_mode = _mode(spec.get("defaultMode"), DEFAULT_MODE)
    if kind == DOWNWARD_API:
        return downward_payload(spec.get("items") or [], pod, node_allocatable, default_mode)
    return await key_payload(kind, spec, namespace, source, default_mode)
