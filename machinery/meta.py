"""Small helpers over API objects (plain JSON dicts) that every component uses.

Objects travel as dicts end to end, so reading ``metadata`` safely, building ``"ns/name"`` keys,
copying an object before changing it and printing timestamps the way Kubernetes serialises
``metav1.Time`` / ``metav1.MicroTime`` all live here, once. Readers never mutate their argument and
tolerate missing ``metadata``.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson

Obj = dict[str, Any]
_EMPTY: Mapping[str, Any] = {}


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or _EMPTY


def name_of(obj: Mapping[str, Any]) -> str:
    return _meta(obj).get("name") or ""


def namespace_of(obj: Mapping[str, Any]) -> str:
    return _meta(obj).get("namespace") or ""


def uid_of(obj: Mapping[str, Any]) -> str:
    return _meta(obj).get("uid") or ""


def resource_version_of(obj: Mapping[str, Any]) -> str:
    return _meta(obj).get("resourceVersion") or ""


def is_being_deleted(obj: Mapping[str, Any]) -> bool:
    """Whether the object has a ``deletionTimestamp`` (deletion started; finalizers or grace may keep it)."""
    return bool(_meta(obj).get("deletionTimestamp"))


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    """The object's labels (read-only; an empty mapping when it has none)."""
    return _meta(obj).get("labels") or _EMPTY


def annotations_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    """The object's annotations (read-only; an empty mapping when it has none)."""
    return _meta(obj).get("annotations") or _EMPTY


def key_of(obj: Mapping[str, Any]) -> str:
    """The cache/work-queue key: ``"namespace/name"``, or ``"name"`` for cluster-scoped objects."""
    meta = _meta(obj)
    namespace = meta.get("namespace")
    name = meta.get("name") or ""
    return f"{namespace}/{name}" if namespace else name


def make_key(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


def split_key(key: str) -> tuple[str, str]:
    """``"ns/name"`` → ``("ns", "name")``; ``"name"`` → ``("", "name")`` (cache.SplitMetaNamespaceKey)."""
    parts = key.split("/")
    if len(parts) == 1:
        return "", parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise ValueError(f"unexpected key format: {key!r}")


# --- owner references ------------------------------------------------------------------------------


def controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ownerReference with ``controller: true``, if any (metav1.GetControllerOf)."""
    for ref in _meta(obj).get("ownerReferences") or ():
        if ref.get("controller") is True:
            return ref
    return None


def is_controlled_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    """Whether ``owner`` (matched by UID) is ``obj``'s controller (metav1.IsControlledBy)."""
    ref = controller_ref(obj)
    owner_uid = uid_of(owner)
    return ref is not None and bool(owner_uid) and ref.get("uid") == owner_uid


def new_controller_ref(owner: Mapping[str, Any], *, api_version: str | None = None,
                       kind: str | None = None) -> Obj:
    """An ownerReference naming ``owner`` as controller, blocking owner deletion (NewControllerRef)."""
    return {
        "apiVersion": api_version or owner.get("apiVersion") or "",
        "kind": kind or owner.get("kind") or "",
        "name": name_of(owner),
        "uid": uid_of(owner),
        "controller": True,
        "blockOwnerDeletion": True,
    }


# --- copying and field access ----------------------------------------------------------------------


def deep_copy(obj: Any) -> Any:
    """A deep copy of a JSON value.

    orjson round-tripping is several times faster than ``copy.deepcopy`` on API objects (see
    tests/unit/machinery/test_meta.py); values orjson cannot encode (ints beyond 64 bits, non-string
    keys, tuples meant to stay tuples) fall back to ``copy.deepcopy``.
    """
    try:
        return orjson.loads(orjson.dumps(obj))
    except (orjson.JSONEncodeError, TypeError):
        return copy.deepcopy(obj)


def field_value(obj: Mapping[str, Any], dotted_path: str) -> Any:
    """The value at ``spec.nodeName``-style paths, or None when any step is missing."""
    current: Any = obj
    for part in dotted_path.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
        if current is None:
            return None
    return current


# --- time ---------------------------------------------------------------------------------------------


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        return now.replace(tzinfo=UTC)
    return now.astimezone(UTC)


def format_rfc3339(moment: datetime) -> str:
    """metav1.Time's wire form: UTC, whole seconds, ``Z`` (``2026-11-22T10:00:00Z``)."""
    # whole seconds by integer arithmetic: a float timestamp rounds up near the next second in far years
    return _format_second((_utc(moment) - _EPOCH) // _SECOND)


@functools.lru_cache(maxsize=16)
def _format_second(epoch_second: int) -> str:
    """strftime is slow and objects are stamped many times a second: format each second once."""
    return datetime.fromtimestamp(epoch_second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_rfc3339_micro(moment: datetime) -> str:
    """metav1.MicroTime's wire form: UTC with six fractional digits (``...T10:00:00.123456Z``)."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_rfc3339(now: datetime | None = None) -> str:
    """The current time (or ``now``) as metav1.Time serialises it."""
    return format_rfc3339(_utc(now))


def micro_time_now(now: datetime | None = None) -> str:
    """The current time (or ``now``) as metav1.MicroTime serialises it."""
    return format_rfc3339_micro(_utc(now))


_RFC3339_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def parse_rfc3339(text: str) -> datetime:
    """Parse RFC 3339 (``Z`` or an offset; any fraction, truncated to microseconds) to aware UTC."""
    match = _RFC3339_RE.fullmatch(text)
    if not match:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    tz = UTC
    if not zulu:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        tz = timezone(-offset if sign == "-" else offset)
    moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz)
    return moment.astimezone(UTC)
