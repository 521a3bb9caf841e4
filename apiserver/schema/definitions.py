"""The Kubernetes v1.35 type definitions, loaded once, indexed by name and by group/version/kind.

Every schema-driven feature of the API server (field validation, unknown-field pruning, strategic merge
patch metadata, the served ``/openapi/v3``) reads types from one :class:`SchemaRegistry`, so they cannot
disagree. Built-in types come from the ``_definitions.json`` that the ``kubernetes-validate`` package ships
(JSON Schema 2020-12: ``$defs``, nullable as ``"type": [T, "null"]``, ``x-kubernetes-*`` extensions).
Custom resources add their CRD ``openAPIV3Schema`` per GVK at run time with :meth:`SchemaRegistry.register`.

Besides the raw dicts the registry hands out :class:`SchemaNode` views: a schema with ``$ref``/``allOf``
resolved lazily and children cached, which is what the hot paths (unknown-field walks, patching) need.
Caches derived from a definition live in :meth:`SchemaRegistry.cache` dicts keyed by definition name, so
re-registering a custom resource drops exactly the entries built from its old schema.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import orjson

KUBERNETES_VERSION = "v1.35.0"
DEFS_REF_PREFIX = "#/$defs/"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
LIST_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"

GVK_EXTENSION = "x-kubernetes-group-version-kind"
PRESERVE_UNKNOWN = "x-kubernetes-preserve-unknown-fields"
EMBEDDED_RESOURCE = "x-kubernetes-embedded-resource"
INT_OR_STRING = "x-kubernetes-int-or-string"


class GroupVersionKind(NamedTuple):
    """``(group, version, kind)``; a plain 3-tuple compares equal, so callers may pass either."""

    group: str
    version: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


GVK = GroupVersionKind | tuple[str, str, str]


def gvk_of(obj: dict[str, Any]) -> GroupVersionKind:
    """The GVK an object claims through ``apiVersion`` and ``kind`` (empty strings where missing)."""
    api_version = obj.get("apiVersion") or ""
    group, _, version = api_version.rpartition("/")
    return GroupVersionKind(group, version, obj.get("kind") or "")


def ref_name(ref: str) -> str:
    """``#/$defs/X`` (or ``#/components/schemas/X``) -> ``X``."""
    return ref.rpartition("/")[2]


def definition_name_for(gvk: GVK) -> str:
    """The name Kubernetes gives a custom resource's schema: reversed group, version, kind
    (``stable.example.com/v1 CronTab`` -> ``com.example.stable.v1.CronTab``)."""
    group, version, kind = gvk
    reversed_group = ".".join(reversed(group.split("."))) if group else "core"
    return f"{reversed_group}.{version}.{kind}"


def _builtin_definitions_path() -> Path:
    """Where kubernetes-validate keeps ``_definitions.json``. Found with ``find_spec`` rather than
    ``importlib.resources.files`` because importing that package pulls in python-jsonschema (~110 ms)."""
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the kubernetes-validate package (Kubernetes JSON schemas) is not installed")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    return package_dir / "kubernetes-json-schema" / f"{KUBERNETES_VERSION}-local" / "_definitions.json"


def load_builtin_definitions() -> dict[str, dict[str, Any]]:
    """Read ``_definitions.json`` for v1.35 (about 30 ms); callers normally use :func:`default_registry`."""
    data = orjson.loads(_builtin_definitions_path().read_bytes())
    return data["$defs"]


class SchemaRegistry:
    """Definitions by name, the GVK index, and run-time registration of custom resource schemas.

    Definitions are stored in the package's internal form (JSON Schema 2020-12 with ``#/$defs/`` refs).
    They are shared and must be treated as read-only by every reader.
    """

    def __init__(self, definitions: dict[str, dict[str, Any]]) -> None:
        self._defs: dict[str, dict[str, Any]] = dict(definitions)
        self._by_gvk: dict[GroupVersionKind, str] = {}
        self._builtin_names = frozenset(self._defs)
        self._custom: dict[GroupVersionKind, str] = {}
        self._caches: dict[str, dict[str, Any]] = {}
        self._flat: dict[str, dict[str, Any]] = {}
        #: bumped on every register/unregister; whole-document caches compare it
        self.generation = 0
        for name, schema in self._defs.items():
            for entry in schema.get(GVK_EXTENSION, ()):
                gvk = GroupVersionKind(entry.get("group", ""), entry["version"], entry["kind"])
                self._by_gvk.setdefault(gvk, name)

    # --- lookups -------------------------------------------------------------------------------

    def definition(self, name: str) -> dict[str, Any] | None:
        return self._defs.get(name)

    def name_for(self, gvk: GVK) -> str | None:
        return self._by_gvk.get(GroupVersionKind(*gvk))

    def schema_for(self, gvk: GVK) -> dict[str, Any] | None:
        name = self.name_for(gvk)
        return self._defs[name] if name else None

    def is_custom(self, gvk: GVK) -> bool:
        return GroupVersionKind(*gvk) in self._custom

    def names(self) -> Iterator[str]:
        return iter(self._defs)

    def gvks(self) -> Iterator[GroupVersionKind]:
        return iter(self._by_gvk)

    def node(self, name: str) -> SchemaNode | None:
        """The shared, lazily resolved view of definition ``name``."""
        nodes = self.cache("nodes")
        node = nodes.get(name)
        if node is None:
            schema = self._defs.get(name)
            if schema is None:
                return None
            node = nodes[name] = SchemaNode(self, schema, custom=name not in self._builtin_names)
        return node

    def node_for(self, gvk: GVK) -> SchemaNode | None:
        name = self.name_for(gvk)
        return self.node(name) if name else None

    def reachable(self, roots: Any) -> set[str]:
        """Names of the definitions in ``roots`` and every definition they reference, transitively."""
        seen: set[str] = set()
        stack = [r for r in roots if r in self._defs]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            _collect_refs(self._defs[name], stack)
        return seen

    def flattened(self, name: str) -> dict[str, Any]:
        """Definition ``name`` with its own ``$ref``/``allOf`` merged in (read-only, cached)."""
        flat = self._flat.get(name)
        if flat is None:
            flat = self._flat[name] = flatten(self, self._defs[name])
        return flat

    # --- caches --------------------------------------------------------------------------------

    def cache(self, purpose: str) -> dict[str, Any]:
        """A dict for values derived from definitions, keyed by definition name. Entries for a name are
        dropped whenever that definition is (re-)registered or removed."""
        cache = self._caches.get(purpose)
        if cache is None:
            cache = self._caches[purpose] = {}
        return cache

    def _invalidate(self, name: str) -> None:
        self._flat.pop(name, None)
        for cache in self._caches.values():
            cache.pop(name, None)
        self.generation += 1

    # --- custom resources ----------------------------------------------------------------------

    def register(self, gvk: GVK, schema: dict[str, Any], *, name: str | None = None) -> str:
        """Serve ``gvk`` with a structural OpenAPI v3 schema as found in a CRD's ``openAPIV3Schema``.

        ``apiVersion``/``kind`` become strings and ``metadata`` becomes ObjectMeta whatever the CRD says
        (as Kubernetes does). Registering the same GVK again replaces the schema. Returns the definition
        name (``com.example.stable.v1.CronTab``). Built-in kinds cannot be replaced.
        """
        gvk = GroupVersionKind(*gvk)
        existing = self._by_gvk.get(gvk)
        if existing in self._builtin_names:
            raise ValueError(f"{gvk} is a built-in kind; its schema cannot be replaced")
        name = name or definition_name_for(gvk)
        if name in self._builtin_names:
            raise ValueError(f"definition name {name!r} is taken by a built-in type")
        if existing and existing != name:
            self.unregister(gvk)
        self._defs[name] = custom_resource_definition(gvk, schema)
        self._by_gvk[gvk] = name
        self._custom[gvk] = name
        self._invalidate(name)
        return name

    def unregister(self, gvk: GVK) -> None:
        """Forget a custom resource's schema (its CRD version was removed). Unknown GVKs are ignored."""
        gvk = GroupVersionKind(*gvk)
        name = self._custom.pop(gvk, None)
        if name is None:
            return
        self._by_gvk.pop(gvk, None)
        self._defs.pop(name, None)
        self._invalidate(name)


def custom_resource_definition(gvk: GroupVersionKind, schema: dict[str, Any]) -> dict[str, Any]:
    """A CRD ``openAPIV3Schema`` as a registry definition: ``apiVersion``, ``kind`` and ``metadata`` are
    fixed up the way the API server treats them for custom resources, and the GVK is recorded."""
    definition = copy.deepcopy(schema) if schema else {}
    definition.setdefault("type", "object")
    properties = dict(definition.get("properties") or {})
    properties["apiVersion"] = {
        "description": "APIVersion defines the versioned schema of this representation of an object.",
        "type": "string",
    }
    properties["kind"] = {
        "description": "Kind is a string value representing the REST resource this object represents.",
        "type": "string",
    }
    properties["metadata"] = {
        "$ref": DEFS_REF_PREFIX + OBJECT_META,
        "description": "Standard object's metadata.",
    }
    definition["properties"] = properties
    definition[GVK_EXTENSION] = [{"group": gvk.group, "version": gvk.version, "kind": gvk.kind}]
    return definition


def _collect_refs(schema: Any, out: list[str]) -> None:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            out.append(ref_name(ref))
        for key, value in schema.items():
            if key not in ("description", "enum", "default", "example", GVK_EXTENSION):
                _collect_refs(value, out)
    elif isinstance(schema, list):
        for value in schema:
            _collect_refs(value, out)


def flatten(registry: SchemaRegistry, schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with ``$ref`` and ``allOf`` merged into one dict: properties and required lists are
    united, and the schema's own keys win over the referenced type's (a field's
    ``x-kubernetes-patch-strategy`` beside a ``$ref`` describes the field). Does not mutate its input."""
    ref = schema.get("$ref")
    all_of = schema.get("allOf")
    if ref is None and not all_of:
        return schema
    merged: dict[str, Any] = {}
    if isinstance(ref, str) and registry.definition(ref_name(ref)) is not None:
        _merge_into(merged, registry.flattened(ref_name(ref)))
    for sub in all_of or ():
        if isinstance(sub, dict):
            _merge_into(merged, flatten(registry, sub))
    _merge_into(merged, {k: v for k, v in schema.items() if k not in ("$ref", "allOf")})
    return merged


def _merge_into(target: dict[str, Any], source: dict[str, Any]) -> None:
    for key, value in source.items():
        if key == "properties" and isinstance(target.get(key), dict):
            target[key] = {**target[key], **value}
        elif key == "required" and isinstance(target.get(key), list):
            target[key] = list(dict.fromkeys([*target[key], *value]))
        else:
            target[key] = value


_MISSING: Any = object()


def _is_plain_ref(schema: dict[str, Any]) -> bool:
    """A ``$ref`` whose siblings only document it: the referenced type's shared node can stand for it."""
    return "$ref" in schema and all(k in ("$ref", "description", "default") for k in schema)


class SchemaNode:
    """One schema with ``$ref``/``allOf`` resolved on first use; children are created once and cached.

    ``custom`` marks nodes built from a custom resource's schema: there an object without properties
    holds nothing unless it says ``x-kubernetes-preserve-unknown-fields`` (structural pruning), while
    built-in objects without properties (RawExtension, FieldsV1, JSON) are free-form.
    """

    __slots__ = ("_children", "_flat", "_items", "_shape", "_values", "custom", "registry", "schema")

    def __init__(self, registry: SchemaRegistry, schema: dict[str, Any], *, custom: bool = False) -> None:
        self.registry = registry
        self.schema = schema
        self.custom = custom
        self._flat: dict[str, Any] | None = None
        self._children: dict[str, SchemaNode | None] = {}
        self._items: Any = _MISSING
        self._values: Any = _MISSING
        self._shape: tuple[Any, ...] | None = None

    @property
    def flat(self) -> dict[str, Any]:
        flat = self._flat
        if flat is None:
            flat = self._flat = flatten(self.registry, self.schema)
        return flat

    def _child(self, schema: Any) -> SchemaNode | None:
        if not isinstance(schema, dict):
            return None
        if _is_plain_ref(schema):
            node = self.registry.node(ref_name(schema["$ref"]))
            if node is not None:
                return node
        return SchemaNode(self.registry, schema, custom=self.custom)

    # --- structure -----------------------------------------------------------------------------

    @property
    def properties(self) -> dict[str, Any]:
        return self.flat.get("properties") or {}

    def declared(self, name: str) -> SchemaNode | None:
        """The declared property ``name`` (not map values)."""
        try:
            return self._children[name]
        except KeyError:
            raw = self.properties.get(name)
            node = self._children[name] = self._child(raw) if raw is not None else None
            return node

    def field(self, name: str) -> SchemaNode | None:
        """The schema of key ``name`` of an object: a declared property or, for maps, the value schema."""
        node = self.declared(name)
        if node is None and self.is_map:
            return self.values()
        return node

    def items(self) -> SchemaNode | None:
        if self._items is _MISSING:
            self._items = self._child(self.flat.get("items"))
        return self._items

    def values(self) -> SchemaNode | None:
        """The ``additionalProperties`` schema of a map (None when values are untyped or not a map)."""
        if self._values is _MISSING:
            additional = self.flat.get("additionalProperties")
            self._values = self._child(additional) if isinstance(additional, dict) else None
        return self._values

    @property
    def is_map(self) -> bool:
        additional = self.flat.get("additionalProperties")
        return additional is not None and additional is not False and not self.properties

    @property
    def preserves_unknown(self) -> bool:
        """True when keys this schema does not declare are kept (and not reported as unknown)."""
        flat = self.flat
        if flat.get(PRESERVE_UNKNOWN) is True:
            return True
        if flat.get("properties") or flat.get("additionalProperties") is not None:
            return False
        if not self.custom:
            return True  # RawExtension, FieldsV1, JSON: free-form objects without declared fields
        # custom resources: an object without declared fields holds nothing (structural pruning)
        kind = flat.get("type")
        return not (kind == "object" or (isinstance(kind, list) and "object" in kind))

    @property
    def shape(self) -> tuple[dict[str, SchemaNode], SchemaNode | None, SchemaNode | None, bool, bool]:
        """``(fields, map_values, items, keeps_unknown, embedded_resource)`` computed once: everything a
        walk over objects needs, as plain locals (the unknown-field walk runs on every write)."""
        shape = self._shape
        if shape is None:
            fields = {}
            for name in self.properties:
                child = self.declared(name)
                if child is not None:
                    fields[name] = child
            values = self.values() if self.is_map else None
            shape = self._shape = (
                fields,
                values,
                self.items(),
                self.preserves_unknown,
                self.embedded_resource,
            )
        return shape

    @property
    def embedded_resource(self) -> bool:
        return self.flat.get(EMBEDDED_RESOURCE) is True

    def extension(self, key: str, default: Any = None) -> Any:
        return self.flat.get(key, default)

    def __repr__(self) -> str:
        ref = self.schema.get("$ref")
        return f"SchemaNode({ref_name(ref) if ref else sorted(self.schema)[:4]})"


@functools.cache
def default_registry() -> SchemaRegistry:
    """The process-wide registry over the v1.35 built-in definitions (loaded on first use)."""
    return SchemaRegistry(load_builtin_definitions())
