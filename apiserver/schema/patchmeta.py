"""Strategic merge patch metadata read from the v1.35 schemas (the ``PatchSchema`` of machinery.patch).

Strategic merge patch and server-side apply need, for every field they walk, its
``x-kubernetes-patch-strategy``/``-patch-merge-key`` and ``x-kubernetes-list-type``/``-list-map-keys``.
Kubernetes compiles these into Go struct tags; we read them from the same definitions that drive
validation and ``/openapi/v3``. :class:`SchemaPatchMeta` satisfies the ``PatchSchema`` protocol of
``machinery/patch/schema.py`` structurally; kinds without a schema get that module's ``UNKNOWN_SCHEMA``
(objects merge, lists are replaced). Patching is hot, so nodes resolve ``$ref``/``allOf`` on first use
and cache their children.
"""

from __future__ import annotations

from typing import Any

from apiserver.schema.definitions import GVK, SchemaNode, SchemaRegistry, default_registry
from machinery.patch.schema import UNKNOWN_SCHEMA, PatchSchema

_MISSING: Any = object()


class SchemaPatchMeta:
    """Patch metadata of one field (or of a whole kind at the root).

    ``field(name)`` is a declared property or, for maps, the value schema; ``items()`` is the element
    schema of a list. Both return None where the schema says nothing (unknown or free-form data), which
    patchers treat as "replace/merge as plain JSON".
    """

    __slots__ = ("_fields", "_items", "_node")

    def __init__(self, node: SchemaNode) -> None:
        self._node = node
        self._fields: dict[str, SchemaPatchMeta | None] = {}
        self._items: Any = _MISSING

    def field(self, name: str) -> SchemaPatchMeta | None:
        try:
            return self._fields[name]
        except KeyError:
            child = self._node.field(name)
            meta = self._fields[name] = SchemaPatchMeta(child) if child is not None else None
            return meta

    def items(self) -> SchemaPatchMeta | None:
        if self._items is _MISSING:
            child = self._node.items()
            self._items = SchemaPatchMeta(child) if child is not None else None
        return self._items

    @property
    def patch_strategy(self) -> str:
        """``x-kubernetes-patch-strategy`` of this field: ``merge``, ``retainKeys``, ``merge,retainKeys``,
        ``replace`` or ``""``."""
        return self._node.extension("x-kubernetes-patch-strategy", "")

    @property
    def patch_merge_key(self) -> str:
        return self._node.extension("x-kubernetes-patch-merge-key", "")

    @property
    def list_type(self) -> str:
        """``x-kubernetes-list-type``: ``atomic``, ``set``, ``map`` or ``""``."""
        return self._node.extension("x-kubernetes-list-type", "")

    @property
    def list_map_keys(self) -> tuple[str, ...]:
        return tuple(self._node.extension("x-kubernetes-list-map-keys", ()))

    @property
    def is_map(self) -> bool:
        """A map (``additionalProperties``) rather than a struct: keys are data, not field names."""
        return self._node.is_map

    @property
    def map_type(self) -> str:
        """``x-kubernetes-map-type`` (``atomic``/``granular``) of a struct or map, ``""`` if unset."""
        return self._node.extension("x-kubernetes-map-type", "")

    def __repr__(self) -> str:
        return f"SchemaPatchMeta({self._node!r}, strategy={self.patch_strategy!r})"


def patch_schema_for(gvk: GVK, *, registry: SchemaRegistry | None = None) -> PatchSchema:
    """The root patch metadata of ``gvk`` (shared and cached); ``UNKNOWN_SCHEMA`` when the kind has no
    schema. Use :func:`has_patch_schema` to tell the two apart."""
    registry = registry or default_registry()
    name = registry.name_for(gvk)
    node = registry.node(name) if name is not None else None
    if node is None:
        return UNKNOWN_SCHEMA
    roots = registry.cache("patchmeta")
    meta = roots.get(name)
    if meta is None:
        meta = roots[name] = SchemaPatchMeta(node)
    return meta


def has_patch_schema(gvk: GVK, *, registry: SchemaRegistry | None = None) -> bool:
    return (registry or default_registry()).name_for(gvk) is not None
