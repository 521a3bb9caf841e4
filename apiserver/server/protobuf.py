"""Decoding the Kubernetes protobuf request bodies that ``kubectl create <kind> NAME`` sends.

kubectl's typed generators (``create namespace``, ``create configmap``, ``create secret generic``,
``create serviceaccount``, ``create deployment``, ``create service``, ``create job``, ``create cronjob``)
POST ``application/vnd.kubernetes.protobuf``:
the magic ``k8s\\0`` and a ``runtime.Unknown`` message (field 1 TypeMeta, field 2 the object's own
message bytes). Only the kinds below are understood, each with the fields of its message by field
number (the numbers of Kubernetes' published API; for Deployments, the fields those generators
fill). A field outside this table is refused with a 415 naming its path, rather than dropped, so
nothing a client sent is silently lost. Go writes empty non-pointer fields; they are left out, as JSON's omitempty does.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from machinery import errors as api

MAGIC = b"k8s\x00"

# kinds of fields: s string, b bytes, i integer (0 = unset), i0 integer pointer (0 is a value), t bool,
# T metav1.Time, ms map<string,string>, mb map<string,bytes>, mq map<string,Quantity>, rs repeated
# string, ios IntOrString, - skipped, a nested message table, or [table] for a repeated message
_TYPE_META = {1: ("apiVersion", "s"), 2: ("kind", "s")}
_UNKNOWN = {1: ("typeMeta", _TYPE_META), 2: ("raw", "b"), 3: ("contentEncoding", "s"), 4: ("contentType", "s")}
_OBJECT_META = {
    1: ("name", "s"), 2: ("generateName", "s"), 3: ("namespace", "s"), 4: ("selfLink", "s"), 5: ("uid", "s"),
    6: ("resourceVersion", "s"), 7: ("generation", "i"), 8: ("creationTimestamp", "T"),
    9: ("deletionTimestamp", "T"), 10: ("deletionGracePeriodSeconds", "i"), 11: ("labels", "ms"),
    12: ("annotations", "ms"), 14: ("finalizers", "rs"),
}
_QUANTITY_MAP = "mq"  # map<string, Quantity{string = 1}>
_LABEL_SELECTOR = {1: ("matchLabels", "ms")}
_CONTAINER_PORT = {1: ("name", "s"), 2: ("hostPort", "i"), 3: ("containerPort", "i"), 4: ("protocol", "s"),
                   5: ("hostIP", "s")}
_RESOURCES = {1: ("limits", _QUANTITY_MAP), 2: ("requests", _QUANTITY_MAP)}
_CONTAINER = {
    1: ("name", "s"), 2: ("image", "s"), 3: ("command", "rs"), 4: ("args", "rs"), 5: ("workingDir", "s"),
    6: ("ports", [_CONTAINER_PORT]), 8: ("resources", _RESOURCES), 13: ("terminationMessagePath", "s"),
    14: ("imagePullPolicy", "s"), 16: ("stdin", "t"), 17: ("stdinOnce", "t"), 18: ("tty", "t"),
    20: ("terminationMessagePolicy", "s"),
}
_POD_SPEC = {
    2: ("containers", [_CONTAINER]), 3: ("restartPolicy", "s"), 6: ("dnsPolicy", "s"),
    8: ("serviceAccountName", "s"), 9: ("serviceAccount", "s"), 10: ("nodeName", "s"), 11: ("hostNetwork", "t"),
    12: ("hostPID", "t"), 13: ("hostIPC", "t"), 16: ("hostname", "s"), 17: ("subdomain", "s"),
    19: ("schedulerName", "s"), 24: ("priorityClassName", "s"),
}
_POD_TEMPLATE = {1: ("metadata", _OBJECT_META), 2: ("spec", _POD_SPEC)}
_DEPLOYMENT_SPEC = {1: ("replicas", "i0"), 2: ("selector", _LABEL_SELECTOR), 3: ("template", _POD_TEMPLATE),
                    4: ("strategy", {1: ("type", "s")}), 5: ("minReadySeconds", "i"),
                    6: ("revisionHistoryLimit", "i0"), 7: ("paused", "t"), 9: ("progressDeadlineSeconds", "i0")}
_SERVICE_PORT = {1: ("name", "s"), 2: ("protocol", "s"), 3: ("port", "i"), 4: ("targetPort", "ios"),
                 5: ("nodePort", "i"), 6: ("appProtocol", "s")}
_SERVICE_SPEC = {1: ("ports", [_SERVICE_PORT]), 2: ("selector", "ms"), 3: ("clusterIP", "s"), 4: ("type", "s"),
                 5: ("externalIPs", "rs"), 7: ("sessionAffinity", "s"), 8: ("loadBalancerIP", "s"),
                 9: ("loadBalancerSourceRanges", "rs"), 10: ("externalName", "s"),
                 11: ("externalTrafficPolicy", "s"), 12: ("healthCheckNodePort", "i"),
                 13: ("publishNotReadyAddresses", "t"), 17: ("ipFamilyPolicy", "s"), 18: ("clusterIPs", "rs"),
                 19: ("ipFamilies", "rs"), 21: ("loadBalancerClass", "s"), 22: ("internalTrafficPolicy", "s")}
_JOB_SPEC = {1: ("parallelism", "i0"), 2: ("completions", "i0"), 3: ("activeDeadlineSeconds", "i0"),
             4: ("selector", _LABEL_SELECTOR), 5: ("manualSelector", "t"), 6: ("template", _POD_TEMPLATE),
             7: ("backoffLimit", "i0"), 8: ("ttlSecondsAfterFinished", "i0"), 9: ("completionMode", "s"),
             10: ("suspend", "t")}
_CRON_JOB_SPEC = {1: ("schedule", "s"), 2: ("startingDeadlineSeconds", "i0"), 3: ("concurrencyPolicy", "s"),
                  4: ("suspend", "t"), 5: ("jobTemplate", {1: ("metadata", _OBJECT_META), 2: ("spec", _JOB_SPEC)}),
                  6: ("successfulJobsHistoryLimit", "i0"), 7: ("failedJobsHistoryLimit", "i0"), 8: ("timeZone", "s")}
KINDS: dict[str, dict[int, tuple[str, Any]]] = {
    # status is the server's: a create resets it, so whatever a client encoded there is skipped
    "Deployment": {1: ("metadata", _OBJECT_META), 2: ("spec", _DEPLOYMENT_SPEC), 3: ("status", "-")},
    "Namespace": {1: ("metadata", _OBJECT_META), 2: ("spec", {1: ("finalizers", "rs")}),
                  3: ("status", {1: ("phase", "s")})},
    "ConfigMap": {1: ("metadata", _OBJECT_META), 2: ("data", "ms"), 3: ("binaryData", "mb"), 4: ("immutable", "t")},
    "Secret": {1: ("metadata", _OBJECT_META), 2: ("data", "mb"), 3: ("type", "s"), 4: ("stringData", "ms"),
               5: ("immutable", "t")},
    "ServiceAccount": {1: ("metadata", _OBJECT_META), 4: ("automountServiceAccountToken", "t")},
    "Service": {1: ("metadata", _OBJECT_META), 2: ("spec", _SERVICE_SPEC), 3: ("status", "-")},
    "Job": {1: ("metadata", _OBJECT_META), 2: ("spec", _JOB_SPEC), 3: ("status", "-")},
    "CronJob": {1: ("metadata", _OBJECT_META), 2: ("spec", _CRON_JOB_SPEC), 3: ("status", "-")},
}


class _Unsupported(Exception):
    pass


def decode(body: bytes, kind: str, api_version: str) -> dict[str, Any]:
    """The JSON form of a protobuf body for ``kind``; 415 when it cannot be decoded faithfully."""
    table = KINDS.get(kind)
    if table is None:
        raise _refuse(f"protobuf bodies are decoded only for {', '.join(sorted(KINDS))}, not {kind}")
    if not body.startswith(MAGIC):
        raise api.bad_request("the protobuf body does not start with the Kubernetes magic number")
    try:
        envelope = _message(memoryview(body)[len(MAGIC):], _UNKNOWN)
        type_meta = envelope.get("typeMeta") or {}
        if type_meta.get("kind") not in (None, "", kind):
            raise api.bad_request(
                f"the kind in the data ({type_meta['kind']}) does not match the expected kind ({kind})")
        obj = _message(memoryview(envelope.get("raw") or b""), table)
    except _Unsupported as exc:
        raise _refuse(f"the {kind} holds {exc}, which kubemini cannot decode from protobuf") from None
    except (IndexError, ValueError, UnicodeDecodeError):
        raise api.bad_request("the protobuf body is malformed") from None
    return {"apiVersion": type_meta.get("apiVersion") or api_version, "kind": kind, **obj}


def _refuse(why: str) -> api.StatusError:
    return api.StatusError(415, "UnsupportedMediaType",
                           f"{why}; send JSON or YAML instead (e.g. `kubectl create -f` with a manifest)")


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: memoryview):
    """(field number, wire type, value) for each field; value is an int or a memoryview."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
            if pos > len(buf):
                raise ValueError("truncated field")
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _message(buf: memoryview, table: dict[int, tuple[str, Any]]) -> dict[str, Any]:
    """Go's encoder writes non-pointer fields even when empty (``""``, 0, the zero time); those
    are left out here, as JSON's omitempty leaves them out."""
    out: dict[str, Any] = {}
    for number, _wire, value in _fields(buf):
        entry = table.get(number)
        if entry is None:
            raise _Unsupported(f"field number {number}")
        name, kind = entry
        try:
            _field(out, name, kind, value)
        except _Unsupported as exc:
            raise _Unsupported(f"{exc} in {name}") from None
    return out


def _field(out: dict[str, Any], name: str, kind: Any, value: Any) -> None:
    """Store one decoded field into ``out``."""
    if kind == "-":
        return
    if isinstance(kind, dict):
        out[name] = _message(value, kind)
    elif isinstance(kind, list):  # repeated message
        out.setdefault(name, []).append(_message(value, kind[0]))
    elif kind == "i0":  # an integer pointer: zero is a value, not "unset"
        out[name] = value - (1 << 64) if value >= 1 << 63 else value
    elif kind == "s":
        if len(value):
            out[name] = bytes(value).decode()
    elif kind == "b":
        out[name] = bytes(value)
    elif kind == "i":
        if value:
            out[name] = value - (1 << 64) if value >= 1 << 63 else value
    elif kind == "t":
        if value:
            out[name] = True
    elif kind == "T":
        seconds = _message(value, {1: ("seconds", "i"), 2: ("nanos", "i")}).get("seconds", 0)
        if seconds:
            out[name] = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    elif kind == "ios":  # intstr.IntOrString {type = 1 (0 int, 1 string), intVal = 2, strVal = 3}
        parsed = _message(value, {1: ("type", "i"), 2: ("intVal", "i"), 3: ("strVal", "s")})
        if parsed.get("type") == 1:
            out[name] = parsed.get("strVal", "")
        elif "intVal" in parsed:
            out[name] = parsed["intVal"]
    elif kind == "rs":
        out.setdefault(name, []).append(bytes(value).decode())
    elif kind == _QUANTITY_MAP:
        entry_value = _message(value, {1: ("key", "s"), 2: ("value", {1: ("string", "s")})})
        out.setdefault(name, {})[entry_value.get("key", "")] = (entry_value.get("value") or {}).get("string", "0")
    else:  # maps: repeated entries {1: key, 2: value}
        entry_value = _message(value, {1: ("key", "s"), 2: ("value", "b")})
        raw = entry_value.get("value", b"")
        decoded = raw.decode() if kind == "ms" else base64.b64encode(raw).decode()
        out.setdefault(name, {})[entry_value.get("key", "")] = decoded
