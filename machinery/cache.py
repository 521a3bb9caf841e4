"""The informer's local store: objects by ``"namespace/name"`` key plus secondary indexes.

Controllers read the cluster from here instead of asking the API server (client-go's
``cache.Indexer``). An index function maps an object to the index values it is filed under; the
standard ones cover what kubemini's controllers look up: by namespace, by ``spec.nodeName``, by owner
UID and by label. Objects handed out are the store's own: callers must treat them as read-only and
``deep_copy`` before changing anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from machinery.meta import key_of, labels_of, namespace_of

Obj = dict[str, Any]
IndexFunc = Callable[[Obj], Iterable[str]]

NAMESPACE_INDEX = "namespace"
NODE_NAME_INDEX = "spec.nodeName"
OWNER_UID_INDEX = "ownerUID"
LABEL_INDEX = "label"


def index_by_namespace(obj: Obj) -> Iterable[str]:
    return (namespace_of(obj),)


def index_by_node_name(obj: Obj) -> Iterable[str]:
    node = (obj.get("spec") or {}).get("nodeName")
    return (node,) if node else ()


def index_by_owner_uid(obj: Obj) -> Iterable[str]:
    return [ref["uid"] for ref in (obj.get("metadata") or {}).get("ownerReferences") or () if ref.get("uid")]


def index_by_label(obj: Obj) -> Iterable[str]:
    """Each label as ``key=value`` (look up with ``by_index(LABEL_INDEX, "app=web")``)."""
    return [f"{k}={v}" for k, v in labels_of(obj).items()]


STANDARD_INDEXERS: Mapping[str, IndexFunc] = {
    NAMESPACE_INDEX: index_by_namespace,
    NODE_NAME_INDEX: index_by_node_name,
    OWNER_UID_INDEX: index_by_owner_uid,
    LABEL_INDEX: index_by_label,
}


class Indexer:
    """A thread-unsafe (single event loop) keyed store with secondary indexes."""

    def __init__(self, indexers: Mapping[str, IndexFunc] | None = None) -> None:
        self._items: dict[str, Obj] = {}
        self._indexers: dict[str, IndexFunc] = dict(STANDARD_INDEXERS if indexers is None else indexers)
        self._indices: dict[str, dict[str, set[str]]] = {name: {} for name in self._indexers}

    # --- reads ------------------------------------------------------------------------------------

    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def get_by_name(self, namespace: str | None, name: str) -> Obj | None:
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def list(self) -> list[Obj]:
        return list(self._items.values())

    def keys(self) -> list[str]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self):
        """Iterate over keys (a snapshot, so the store may change meanwhile)."""
        return iter(list(self._items))

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def by_index(self, index: str, value: str) -> list[Obj]:
        """Objects filed under ``value`` in ``index`` (KeyError for an index that does not exist)."""
        keys = self._indices[index].get(value, ())
        return [self._items[k] for k in keys]

    def index_values(self, index: str) -> list[str]:
        return list(self._indices[index])

    def add_indexers(self, indexers: Mapping[str, IndexFunc]) -> None:
        """Add indexes (existing objects are indexed at once)."""
        for name, func in indexers.items():
            if name in self._indexers:
                raise ValueError(f"index {name!r} already exists")
            self._indexers[name] = func
            self._indices[name] = {}
            for key, obj in self._items.items():
                self._file(name, key, obj)

    # --- writes (the informer's) ---------------------------------------------------------------------

    def upsert(self, obj: Obj) -> Obj | None:
        """Store ``obj`` under its key; returns the object it replaced."""
        key = key_of(obj)
        old = self._items.get(key)
        if old is not None:
            self._unfile(key, old)
        self._items[key] = obj
        for name in self._indexers:
            self._file(name, key, obj)
        return old

    def delete(self, key: str) -> Obj | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unfile(key, old)
        return old

    def replace(self, objs: Iterable[Obj]) -> None:
        self._items = {}
        self._indices = {name: {} for name in self._indexers}
        for obj in objs:
            self.upsert(obj)

    def _file(self, index: str, key: str, obj: Obj) -> None:
        bucket = self._indices[index]
        for value in self._indexers[index](obj):
            bucket.setdefault(value, set()).add(key)

    def _unfile(self, key: str, obj: Obj) -> None:
        for name, func in self._indexers.items():
            bucket = self._indices[name]
            for value in func(obj):
                keys = bucket.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del bucket[value]
