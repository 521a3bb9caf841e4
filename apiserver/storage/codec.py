"""How objects are stored in etcd: JSON bytes without resourceVersion; the revision comes from etcd.

Kubernetes never stores ``metadata.resourceVersion`` inside the value: it is the key's
``mod_revision``. Encoding strips it and decoding puts it back, so an object read from anywhere in
the server carries the revision it was read at.
"""

from __future__ import annotations

from typing import Any

import orjson


def encode(obj: dict[str, Any]) -> bytes:
    """Serialise ``obj`` for etcd, without its resourceVersion. Does not mutate ``obj``."""
    meta = obj.get("metadata")
    if meta and "resourceVersion" in meta:
        rv = meta.pop("resourceVersion")
        try:
            return orjson.dumps(obj)
        finally:
            meta["resourceVersion"] = rv
    return orjson.dumps(obj)


def decode(value: bytes, revision: int) -> dict[str, Any]:
    """Parse a stored value and stamp it with ``revision`` as its resourceVersion."""
    obj = orjson.loads(value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return obj


def with_resource_version(obj: dict[str, Any], revision: int) -> dict[str, Any]:
    obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return obj
