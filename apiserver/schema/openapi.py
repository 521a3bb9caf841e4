"""The ``/openapi/v3`` documents the API server serves, generated from the resource table and schemas.

kubectl needs them for ``apply``/``create``/``replace`` (it looks for a PATCH operation with the object's
``x-kubernetes-group-version-kind`` and a ``fieldValidation`` query parameter, then leaves validation to
the server), for ``explain`` (component schemas carrying ``x-kubernetes-group-version-kind`` arrays) and,
because we list ``application/strategic-merge-patch+json`` for built-ins, to compute client-side-apply
patches from the published patch metadata. One document per group-version (OpenAPI 3.0.0) holds a path
item per resource and subresource and every component schema reachable from its kinds, converted from
the definitions' JSON Schema 2020-12 to OpenAPI 3.0 the way Kubernetes publishes them.

Documents are serialised once and cached with their hash; they are rebuilt when the resource list is
replaced (:meth:`OpenAPIDocuments.set_resources`) or a custom resource schema is (un)registered.
Response headers (``Cache-Control``/``Expires`` for hashed URLs) are the server's business.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import orjson

from apiserver.resources import BUILTIN_RESOURCES, ResourceInfo, Subresource
from apiserver.schema.definitions import (
    GVK_EXTENSION,
    KUBERNETES_VERSION,
    LIST_META,
    SchemaRegistry,
    default_registry,
    definition_name_for,
    ref_name,
)
from apiserver.schema.walk import holds_subschemas, map_subschemas

COMPONENTS_REF_PREFIX = "#/components/schemas/"
STATUS = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
DELETE_OPTIONS = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"
PATCH = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
API_RESOURCE_LIST = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList"
INT_OR_STRING_DEF = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY_DEF = "io.k8s.apimachinery.pkg.api.resource.Quantity"

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def gv_path(group: str, version: str) -> str:
    """The key of a group-version in the ``/openapi/v3`` index: ``api/v1``, ``apis/apps/v1``."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


# --- schema conversion: JSON Schema 2020-12 ($defs) -> OpenAPI 3.0 (components) -----------------

def to_openapi_schema(schema: Any, *, drop_type_enums: bool = False) -> Any:
    """One schema in the form Kubernetes publishes in ``/openapi/v3``.

    ``#/$defs/X`` -> ``#/components/schemas/X``, and a ``$ref`` with siblings becomes
    ``allOf: [{$ref}]`` plus the siblings (OpenAPI 3.0 ignores siblings of ``$ref``); ``type: [T, "null"]``
    -> ``type: T``; ``null`` leaves enums; ``enum`` on apiVersion/kind of top-level kinds is dropped
    (Kubernetes publishes none). Extensions (``x-kubernetes-*``) are kept. Returns a new dict.
    """
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    ref = schema.get("$ref")
    target = {"$ref": COMPONENTS_REF_PREFIX + ref_name(ref)} if isinstance(ref, str) else None
    for key, value in schema.items():
        if key == "$ref":
            continue
        if key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if len(types) == 1:
                out["type"] = types[0]
            elif types:
                out["type"] = types  # not expected in Kubernetes' own types; left for the reader
        elif key == "enum":
            values = [v for v in value if v is not None]
            if values:
                out[key] = values
        elif holds_subschemas(key):
            out[key] = map_subschemas(key, value, to_openapi_schema, drop_type_enums=drop_type_enums)
        else:
            out[key] = value
    if target is None:
        return out
    if not out:
        return target
    all_of = out.pop("allOf", [])
    return {"allOf": [target, *all_of], **out}


def _component(registry: SchemaRegistry, name: str) -> dict[str, Any]:
    """Component schema ``name`` (converted once per definition; shared, read-only)."""
    cache = registry.cache("openapi-components")
    component = cache.get(name)
    if component is None:
        definition = registry.definition(name) or {}
        if name == INT_OR_STRING_DEF:
            # As kube-openapi publishes it in v3 (oneOf + format, no "type": kubectl explain then prints
            # <IntOrString>), plus the structural-schema marker CRD tooling keys on.
            component = {
                "description": definition.get("description", "IntOrString holds an int32 or a string."),
                "oneOf": [{"type": "integer"}, {"type": "string"}],
                "format": "int-or-string",
                "x-kubernetes-int-or-string": True,
            }
        elif name == QUANTITY_DEF:
            # kube-openapi: oneOf string/number, no "type" (kubectl explain prints map[string]Quantity)
            component = {
                "description": definition.get("description", "A fixed-point number with a suffix."),
                "oneOf": [{"type": "string"}, {"type": "number"}],
            }
        else:
            component = to_openapi_schema(definition, drop_type_enums=GVK_EXTENSION in definition)
        cache[name] = component
    return component


# --- paths and operations -----------------------------------------------------------------------


def _query(name: str, description: str, type_: str = "string") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "description": description,
        "schema": {"type": type_, "uniqueItems": True},
    }


_PRETTY = _query("pretty", "If 'true', the output is pretty printed.")
_DRY_RUN = _query("dryRun", "When present, the change is validated and computed but not persisted (All).")
_FIELD_MANAGER = _query("fieldManager", "Name of the actor making the change, recorded in managedFields.")
_FIELD_VALIDATION = _query(
    "fieldValidation",
    "How unknown and duplicate fields in the body are treated: Ignore (drop them), Warn (drop them and send "
    "a Warning header per field) or Strict (fail the request with 400 BadRequest).",
)
_FORCE = _query("force", "Server-side apply: take ownership of fields other managers own.", "boolean")
_LIST_PARAMS = [
    _query("allowWatchBookmarks", "Ask for BOOKMARK events on a watch.", "boolean"),
    _query("continue", "The continue token of the previous page of a paginated list."),
    _query("fieldSelector", "Restrict the list of returned objects by their fields."),
    _query("labelSelector", "Restrict the list of returned objects by their labels."),
    _query("limit", "Maximum number of objects to return in one page.", "integer"),
    _query("resourceVersion", "Where a list or watch starts; see the API concepts documentation."),
    _query("resourceVersionMatch", "How resourceVersion applies to a list: Exact or NotOlderThan."),
    _query("sendInitialEvents", "Start a watch with synthetic events for the current state.", "boolean"),
    _query("timeoutSeconds", "Timeout for the list or watch call.", "integer"),
    _query("watch", "Watch for changes instead of listing; see resourceVersion.", "boolean"),
]
_DELETE_PARAMS = [
    _DRY_RUN,
    _query("gracePeriodSeconds", "Seconds before the object is deleted; 0 deletes immediately.", "integer"),
    _query("orphanDependents", "Deprecated: use propagationPolicy.", "boolean"),
    _query("propagationPolicy", "Garbage collection of dependents: Orphan, Background or Foreground."),
]
_WRITE_PARAMS = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]

_VERB_OPERATION = {  # verb -> (HTTP method, operationId verb, x-kubernetes-action)
    "list": ("get", "list", "list"),
    "create": ("post", "create", "post"),
    "deletecollection": ("delete", "delete", "deletecollection"),
    "get": ("get", "read", "get"),
    "update": ("put", "replace", "put"),
    "patch": ("patch", "patch", "patch"),
    "delete": ("delete", "delete", "delete"),
}


def _camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in text.replace("-", ".").split(".") if part)


def _group_word(group: str) -> str:
    """``""`` -> ``Core``; ``rbac.authorization.k8s.io`` -> ``RbacAuthorization`` (operationId/tag style)."""
    if not group:
        return "Core"
    return _camel(group.removesuffix(".k8s.io"))


def _tag(group: str, version: str) -> str:
    return f"{group.removesuffix('.k8s.io').replace('.', '') if group else 'core'}_{version}"


def _gvk_object(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "version": version, "kind": kind}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": COMPONENTS_REF_PREFIX + name}


class _GroupVersionBuilder:
    """Assembles one group-version document; remembers which component schemas it references."""

    def __init__(self, registry: SchemaRegistry, group: str, version: str) -> None:
        self.registry = registry
        self.group = group
        self.version = version
        self.prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        self.paths: dict[str, dict[str, Any]] = {}
        self.roots: set[str] = {STATUS, DELETE_OPTIONS, PATCH, API_RESOURCE_LIST}
        self.synthetic: dict[str, dict[str, Any]] = {}
        word = _group_word(group) + _camel(version)
        self.word = word
        self.tag = _tag(group, version)
        self.paths[self.prefix + "/"] = {
            "get": {
                "tags": [self.tag],
                "description": "get available resources",
                "operationId": f"get{word}APIResources",
                "responses": self._responses({"200": API_RESOURCE_LIST}, builtin=True),
            }
        }

    # --- schemas -------------------------------------------------------------------------------

    def kind_schema(self, group: str, version: str, kind: str) -> str | None:
        name = self.registry.name_for((group, version, kind))
        if name is not None:
            self.roots.add(name)
        return name

    def list_schema(self, resource: ResourceInfo, item_name: str) -> str:
        name = self.registry.name_for((resource.group, resource.version, resource.list_kind))
        if name is not None:
            self.roots.add(name)
            return name
        # custom resources: Kubernetes publishes a synthetic <Kind>List beside the kind
        name = definition_name_for((resource.group, resource.version, resource.list_kind))
        self.roots.add(LIST_META)
        self.synthetic[name] = {
            "description": f"{resource.list_kind} is a list of {resource.kind}",
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"description": "APIVersion of this list.", "type": "string"},
                "items": {
                    "description": f"List of {resource.resource}.",
                    "type": "array",
                    "items": _ref(item_name),
                },
                "kind": {"description": "Kind of this list.", "type": "string"},
                "metadata": {"allOf": [_ref(LIST_META)], "description": "Standard list metadata."},
            },
            GVK_EXTENSION: [_gvk_object(resource.group, resource.version, resource.list_kind)],
        }
        return name

    def _responses(
        self, codes: dict[str, str | None], *, builtin: bool, watch: bool = False
    ) -> dict[str, Any]:
        media = ["application/json", "application/yaml"]
        if builtin:
            media.append("application/vnd.kubernetes.protobuf")
        if watch:
            media += ["application/json;stream=watch"]
            if builtin:
                media.append("application/vnd.kubernetes.protobuf;stream=watch")
        out: dict[str, Any] = {}
        for code, schema in codes.items():
            response: dict[str, Any] = {"description": _CODE_TEXT[code]}
            if schema is not None:
                response["content"] = {m: {"schema": _ref(schema)} for m in media}
            out[code] = response
        out["401"] = {"description": "Unauthorized"}
        return out

    # --- operations ----------------------------------------------------------------------------

    def _operation(
        self,
        verb: str,
        kind_word: str,
        gvk: dict[str, str],
        schema: str | None,
        *,
        builtin: bool,
        namespaced: bool,
        list_schema: str | None = None,
        all_namespaces: bool = False,
    ) -> tuple[str, dict[str, Any]]:
        method, id_verb, action = _VERB_OPERATION[verb]
        scope = "Namespaced" if namespaced and not all_namespaces else ""
        collection = "Collection" if verb == "deletecollection" else ""
        suffix = "ForAllNamespaces" if all_namespaces else ""
        op: dict[str, Any] = {
            "tags": [self.tag],
            "description": f"{_VERB_TEXT[verb]} {gvk['kind']}",
            "operationId": f"{id_verb}{self.word}{collection}{scope}{kind_word}{suffix}",
        }
        if verb == "list":
            op["parameters"] = list(_LIST_PARAMS)
            op["responses"] = self._responses({"200": list_schema}, builtin=builtin, watch=True)
        elif verb in ("create", "update"):
            op["parameters"] = list(_WRITE_PARAMS)
            op["requestBody"] = {
                "content": {"*/*": {"schema": _ref(schema)}} if schema else {},
                "required": True,
            }
            codes = (
                {"200": schema, "201": schema}
                if verb == "update"
                else {"200": schema, "201": schema, "202": schema}
            )
            op["responses"] = self._responses(codes, builtin=builtin)
        elif verb == "patch":
            op["parameters"] = [*_WRITE_PARAMS, _FORCE]
            media = [JSON_PATCH, MERGE_PATCH, *([STRATEGIC_MERGE_PATCH] if builtin else []), APPLY_PATCH]
            op["requestBody"] = {"content": {m: {"schema": _ref(PATCH)} for m in media}, "required": True}
            op["responses"] = self._responses({"200": schema, "201": schema}, builtin=builtin)
        elif verb == "get":
            op["responses"] = self._responses({"200": schema}, builtin=builtin)
        elif verb == "delete":
            op["parameters"] = list(_DELETE_PARAMS)
            op["requestBody"] = {"content": {"*/*": {"schema": _ref(DELETE_OPTIONS)}}}
            op["responses"] = self._responses(
                {"200": schema or STATUS, "202": schema or STATUS}, builtin=builtin
            )
        elif verb == "deletecollection":
            op["parameters"] = [*_DELETE_PARAMS, *(p for p in _LIST_PARAMS if p["name"] != "watch")]
            op["requestBody"] = {"content": {"*/*": {"schema": _ref(DELETE_OPTIONS)}}}
            op["responses"] = self._responses({"200": STATUS}, builtin=builtin)
        op["x-kubernetes-action"] = action
        op["x-kubernetes-group-version-kind"] = gvk
        return method, op

    def add_resource(self, resource: ResourceInfo, *, builtin: bool) -> bool:
        schema = self.kind_schema(resource.group, resource.version, resource.kind)
        if schema is None:
            return False
        gvk = _gvk_object(resource.group, resource.version, resource.kind)
        verbs = set(resource.verbs)
        base = (
            f"{self.prefix}/namespaces/{{namespace}}/{resource.resource}"
            if resource.namespaced
            else (f"{self.prefix}/{resource.resource}")
        )
        scope_params = (
            [_path_param("namespace", "object name and auth scope, such as for teams and projects")]
            if (resource.namespaced)
            else []
        )
        name_param = _path_param("name", f"name of the {resource.kind}")
        common = {"builtin": builtin, "namespaced": resource.namespaced}

        collection: dict[str, Any] = {}
        list_schema = self.list_schema(resource, schema) if "list" in verbs else None
        for verb in ("list", "create", "deletecollection"):
            if verb in verbs:
                method, op = self._operation(
                    verb, resource.kind, gvk, schema, list_schema=list_schema, **common
                )
                collection[method] = op
        if collection:
            self.paths[base] = {**collection, "parameters": [*scope_params, _PRETTY]}

        item: dict[str, Any] = {}
        for verb in ("get", "update", "patch", "delete"):
            if verb in verbs:
                method, op = self._operation(verb, resource.kind, gvk, schema, **common)
                item[method] = op
        if item:
            self.paths[f"{base}/{{name}}"] = {**item, "parameters": [name_param, *scope_params, _PRETTY]}

        if resource.namespaced and "list" in verbs:
            method, op = self._operation(
                "list", resource.kind, gvk, schema, list_schema=list_schema, all_namespaces=True, **common
            )
            self.paths[f"{self.prefix}/{resource.resource}"] = {method: op, "parameters": [_PRETTY]}

        for sub in resource.subresources:
            self._add_subresource(resource, sub, base, name_param, scope_params, builtin=builtin)
        return True

    def _add_subresource(
        self,
        resource: ResourceInfo,
        sub: Subresource,
        base: str,
        name_param: dict[str, Any],
        scope_params: list[dict[str, Any]],
        *,
        builtin: bool,
    ) -> None:
        if sub.kind == resource.kind and sub.group == resource.group and sub.version == resource.version:
            schema: str | None = self.kind_schema(resource.group, resource.version, resource.kind)
        else:
            schema = self.kind_schema(sub.group, sub.version, sub.kind)
        gvk = _gvk_object(sub.group, sub.version, sub.kind)
        kind_word = resource.kind + _camel(sub.name)
        ops: dict[str, Any] = {}
        for verb in ("get", "create", "update", "patch"):
            if verb in sub.verbs:
                method, op = self._operation(
                    verb, kind_word, gvk, schema, builtin=builtin, namespaced=resource.namespaced
                )
                ops[method] = op
        if ops:
            self.paths[f"{base}/{{name}}/{sub.name}"] = {
                **ops,
                "parameters": [name_param, *scope_params, _PRETTY],
            }

    def document(self) -> dict[str, Any]:
        components = {name: _component(self.registry, name) for name in self.registry.reachable(self.roots)}
        components.update(self.synthetic)
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
            "paths": self.paths,
            "components": {
                "schemas": dict(sorted(components.items())),
                "securitySchemes": {
                    "BearerToken": {
                        "type": "apiKey",
                        "description": "Bearer Token authentication",
                        "name": "authorization",
                        "in": "header",
                    }
                },
            },
            "security": [{"BearerToken": []}],
        }


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "description": description,
        "required": True,
        "schema": {"type": "string", "uniqueItems": True},
    }


_CODE_TEXT = {"200": "OK", "201": "Created", "202": "Accepted"}
_VERB_TEXT = {
    "list": "list or watch objects of kind",
    "create": "create a",
    "deletecollection": "delete collection of",
    "get": "read the specified",
    "update": "replace the specified",
    "patch": "partially update the specified",
    "delete": "delete a",
}

_NAMESPACES = next(r for r in BUILTIN_RESOURCES if r.group == "" and r.resource == "namespaces")


class OpenAPIDocuments:
    """The ``/openapi/v3`` index and one pre-serialised document per group-version.

    Built lazily and cached; :meth:`set_resources` (CRDs established or removed) and schema
    (un)registration in the registry invalidate everything. Must be used from one thread (the event
    loop); building all documents for the built-in resources takes a few tens of milliseconds.
    """

    def __init__(self, resources: Iterable[ResourceInfo], *, registry: SchemaRegistry | None = None) -> None:
        self._registry = registry or default_registry()
        self._resources: tuple[ResourceInfo, ...] = ()
        self._docs: dict[str, bytes] | None = None
        self._hashes: dict[str, str] = {}
        self._generation = -1
        self.set_resources(resources)

    def set_resources(self, resources: Iterable[ResourceInfo]) -> None:
        """Replace the served resources (e.g. after a CRD is established); drops every cached document."""
        self._resources = tuple(resources)
        self._docs = None

    def _built(self) -> dict[str, bytes]:
        docs = self._docs
        if docs is None or self._generation != self._registry.generation:
            docs = self._docs = self._build()
            self._generation = self._registry.generation
            self._hashes = {path: hashlib.sha512(body).hexdigest().upper() for path, body in docs.items()}
        return docs

    def _build(self) -> dict[str, bytes]:
        builders: dict[str, _GroupVersionBuilder] = {}
        served: set[str] = set()
        resources = list(self._resources)
        if not any(r.group == "" and r.resource == "namespaces" for r in resources):
            resources.append(_NAMESPACES)  # kubectl checks the Namespace PATCH for custom resources
        for resource in resources:
            path = gv_path(resource.group, resource.version)
            builder = builders.get(path)
            if builder is None:
                builder = builders[path] = _GroupVersionBuilder(
                    self._registry, resource.group, resource.version
                )
            builtin = not self._registry.is_custom((resource.group, resource.version, resource.kind))
            if builder.add_resource(resource, builtin=builtin):
                served.add(path)
        return {
            path: orjson.dumps(builders[path].document(), option=orjson.OPT_SORT_KEYS)
            for path in sorted(served, key=lambda p: (not p.startswith("api/"), p))
        }

    def index(self) -> dict[str, Any]:
        """``{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=<H>"}, ...}}``."""
        docs = self._built()
        return {
            "paths": {
                path: {"serverRelativeURL": f"/openapi/v3/{path}?hash={self._hashes[path]}"} for path in docs
            }
        }

    def document(self, gv_path: str) -> bytes | None:
        """The serialised OpenAPI 3.0 document of ``api/v1`` / ``apis/<group>/<version>``, or None."""
        return self._built().get(gv_path.strip("/"))

    def hash(self, gv_path: str) -> str | None:
        """The hash in the index's URL for ``gv_path`` (uppercase hex SHA-512 of the document)."""
        self._built()
        return self._hashes.get(gv_path.strip("/"))
