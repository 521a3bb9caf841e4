"""The per-field metadata strategic merge patch needs, behind a small protocol.

How a list merges (by merge key, as a set, or replaced) is not in the JSON: Kubernetes keeps it as
``x-kubernetes-patch-strategy``/``-patch-merge-key`` (and ``-list-type``/``-list-map-keys``) on
each field of the OpenAPI definitions. The patch code asks a :class:`PatchSchema` for them, so it
does not care where they come from: the API server implements the protocol on the v1.35 definitions
(apiserver/schema/patchmeta.py), tests use :class:`DictPatchSchema`, and fields nobody knows use
:data:`UNKNOWN_SCHEMA` (objects merge, lists are replaced).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class PatchSchema(Protocol):
    """Patch metadata of one field (or of a whole kind at the root). Implementations are immutable."""

    def field(self, name: str) -> PatchSchema | None:
        """Schema of property ``name`` of an object, or of any value of a map; None if unknown."""
        ...

    def items(self) -> PatchSchema | None:
        """Schema of the items of a list; None if unknown."""
        ...

    @property
    def patch_strategy(self) -> str:
        """``x-kubernetes-patch-strategy``: "", "merge", "replace", "retainKeys" or "merge,retainKeys"."""
        ...

    @property
    def patch_merge_key(self) -> str:
        """``x-kubernetes-patch-merge-key`` ("" if none)."""
        ...

    @property
    def list_type(self) -> str:
        """``x-kubernetes-list-type``: "atomic", "set", "map" or ""."""
        ...

    @property
    def list_map_keys(self) -> tuple[str, ...]:
        """``x-kubernetes-list-map-keys`` of a list-type map."""
        ...

    @property
    def is_map(self) -> bool:
        """True for an additionalProperties-style map (labels, annotations, resources.limits)."""
        ...


class _UnknownSchema:
    """The schema of a field without metadata: every child is unknown too."""

    __slots__ = ()

    def field(self, name: str) -> PatchSchema | None:
        return self

    def items(self) -> PatchSchema | None:
        return self

    @property
    def patch_strategy(self) -> str:
        return ""

    @property
    def patch_merge_key(self) -> str:
        return ""

    @property
    def list_type(self) -> str:
        return ""

    @property
    def list_map_keys(self) -> tuple[str, ...]:
        return ()

    @property
    def is_map(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "UNKNOWN_SCHEMA"


UNKNOWN_SCHEMA: PatchSchema = _UnknownSchema()
"""Schema for data without metadata: objects merge key by key, lists are replaced wholesale."""


class DictPatchSchema:
    """A :class:`PatchSchema` read from a nested plain dict, for tests and small hand-written schemas.

    Every node is a dict with these optional keys::

        fields:      {name: node}   the properties of an object
        values:      node           makes the node a map (labels-like); the schema of every value
        items:       node           the schema of list items
        strategy:    str            x-kubernetes-patch-strategy
        mergeKey:    str            x-kubernetes-patch-merge-key
        listType:    str            x-kubernetes-list-type
        listMapKeys: [str]          x-kubernetes-list-map-keys

    e.g. ``DictPatchSchema({"fields": {"containers": {"strategy": "merge", "mergeKey": "name"}}})``.
    """

    __slots__ = ("_node",)

    def __init__(self, node: Mapping[str, Any]) -> None:
        self._node = node

    def field(self, name: str) -> PatchSchema | None:
        if "values" in self._node:
            return _wrap(self._node["values"])
        return _wrap((self._node.get("fields") or {}).get(name))

    def items(self) -> PatchSchema | None:
        return _wrap(self._node.get("items"))

    @property
    def patch_strategy(self) -> str:
        return str(self._node.get("strategy", ""))

    @property
    def patch_merge_key(self) -> str:
        return str(self._node.get("mergeKey", ""))

    @property
    def list_type(self) -> str:
        return str(self._node.get("listType", ""))

    @property
    def list_map_keys(self) -> tuple[str, ...]:
        return tuple(self._node.get("listMapKeys", ()))

    @property
    def is_map(self) -> bool:
        return "values" in self._node

    def __repr__(self) -> str:
        return f"DictPatchSchema({self._node!r})"


def _wrap(node: Mapping[str, Any] | None) -> DictPatchSchema | None:
    return None if node is None else DictPatchSchema(node)
