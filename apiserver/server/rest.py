"""Resource endpoints: every verb on namespaced, cluster-scoped and all-namespaces paths.

URLs are resolved once into a :class:`Target` (resource store, namespace, name, subresource);
handlers parse parameters and bodies, call the registry, and render JSON, Tables or watch
streams. Every error leaves as a ``metav1.Status``.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from apiserver.metrics import observe_request
from apiserver.registry.errors import interpret
from apiserver.registry.generic import ResourceStore
from apiserver.registry.options import WriteOptions
from apiserver.registry.registry import Registry
from apiserver.schema import validate as schema
from apiserver.server import codec, subresources, tables
from apiserver.server.params import delete_options, list_options, truthy, write_options
from apiserver.server.patch import patch_transform
from apiserver.server.watch import watch_response
from apiserver.storage.errors import StorageError
from machinery import errors as api

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    store: ResourceStore
    namespace: str | None
    name: str | None
    subresource: str = ""


def resolve(registry: Registry, group: str, version: str, path: str) -> Target:
    """Map ``namespaces/ns/pods/x/status``-style paths onto a store, namespace, name and subresource."""
    parts = [p for p in path.split("/") if p]
    namespace = None
    if len(parts) >= 3 and parts[0] == "namespaces" and not (
        len(parts) == 3 and parts[2] in ("status", "finalize")
    ):
        namespace, parts = parts[1], parts[2:]
    if not parts or len(parts) > 3:
        raise _not_found_path()
    store = registry.get(group, version, parts[0])
    if store is None:
        raise _not_found_path()
    if namespace is not None and not store.info.namespaced:
        raise _not_found_path()
    name = parts[1] if len(parts) > 1 else None
    sub = parts[2] if len(parts) > 2 else ""
    if sub and store.info.subresource(sub) is None:
        raise _not_found_path()
    if store.info.namespaced and name is not None and namespace is None:
        raise _not_found_path()
    return Target(store, namespace, name, sub)


def _not_found_path() -> api.StatusError:
    return api.StatusError(404, "NotFound", "the server could not find the requested resource",
                           {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})


class ResourceHandler:
    """The ASGI-facing entry: one instance serves every resource path."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def core(self, request: Request) -> Response:
        return await self._serve(request, "", "v1", request.path_params["path"])

    async def grouped(self, request: Request) -> Response:
        p = request.path_params
        return await self._serve(request, p["group"], p["version"], p["path"])

    async def _serve(self, request: Request, group: str, version: str, path: str) -> Response:
        started = time.perf_counter()
        verb, resource, code = request.method, "", 500
        try:
            target = resolve(self.registry, group, version, path)
            resource = target.store.info.resource
            verb = _verb(request, target)
            response = await self._dispatch(request, target, verb)
            code = response.status_code
            return response
        except api.StatusError as err:
            code = err.code
            return codec.error_response(err)
        except StorageError as err:  # a storage error no layer translated: still a proper Status
            status = interpret(err, target.store.info)
            code = status.code
            return codec.error_response(status)
        except Exception:
            log.exception("internal error serving %s %s", request.method, request.url.path)
            code = 500
            return codec.error_response(api.internal_error("an unexpected error occurred; see the server log"))
        finally:
            if verb != "WATCH":
                observe_request(verb, resource, code, time.perf_counter() - started)

    async def _dispatch(self, request: Request, target: Target, verb: str) -> Response:
        if not target.subresource and _API_VERBS.get(verb) not in target.store.info.verbs:
            raise _not_allowed(request, target)
        handler = _HANDLERS.get((verb, target.subresource))
        if handler is None:
            handler = subresources.handler_for(verb, target.subresource)
        if handler is None:
            raise _not_allowed(request, target)
        return await handler(request, target)


def _not_allowed(request: Request, target: Target) -> api.StatusError:
    sub = f"/{target.subresource}" if target.subresource else ""
    return api.method_not_allowed(f"the server does not allow this method on the requested resource "
                                  f"({request.method} {target.store.info.resource}{sub})")


#: request verb → the API verb a resource must list to allow it (PUT/PATCH on a collection: none)
_API_VERBS = {"GET": "get", "LIST": "list", "WATCH": "watch", "CREATE": "create", "UPDATE": "update",
              "PATCH": "patch", "DELETE": "delete", "DELETECOLLECTION": "deletecollection"}


def _verb(request: Request, target: Target) -> str:
    method = request.method
    if method == "GET":
        if target.name:
            return "GET"
        return "WATCH" if truthy(request.query_params, "watch") else "LIST"
    if method == "POST":
        return "CREATE" if not target.name else "POST"
    if method == "PUT":
        return "UPDATE" if target.name else "PUT-COLLECTION"
    if method == "PATCH":
        return "PATCH" if target.name else "PATCH-COLLECTION"
    if method == "DELETE":
        return "DELETE" if target.name else "DELETECOLLECTION"
    return method


# --- handlers ---------------------------------------------------------------------------------------


async def handle_get(request: Request, target: Target) -> Response:
    store = target.store
    obj = await store.get(target.namespace, target.name, request.query_params.get("resourceVersion", ""))
    if codec.wants_table(request):
        return codec.json_response(tables.table_for(request, store, [obj], revision=_rv(obj)))
    return codec.json_response(obj)


async def handle_list(request: Request, target: Target) -> Response:
    store = target.store
    result = await store.list(target.namespace, list_options(request.query_params))
    list_meta: dict = {"resourceVersion": str(result.revision)}
    if result.continue_token:
        list_meta["continue"] = result.continue_token
        if result.remaining is not None:
            list_meta["remainingItemCount"] = result.remaining
    if codec.wants_table(request):
        table = tables.table_for(request, store, result.items, revision=result.revision)
        table["metadata"] = list_meta
        return codec.json_response(table)
    info = store.info
    body = {"kind": info.list_kind, "apiVersion": info.api_version, "metadata": list_meta, "items": result.items}
    return codec.json_response(body)


async def handle_watch(request: Request, target: Target) -> Response:
    return await watch_response(request, target.store, target.namespace)


async def handle_create(request: Request, target: Target) -> Response:
    store = target.store
    opts = write_options(request.query_params)
    obj = await _read_object(request, opts, target)
    created = await store.create(target.namespace, obj, opts)
    return _write_response(created, 201, opts)


async def handle_update(request: Request, target: Target) -> Response:
    opts = write_options(request.query_params)
    body = await _read_object(request, opts, target)
    stored, created = await target.store.update(
        target.namespace, target.name, lambda _current: copy.deepcopy(body), opts, subresource=target.subresource,
    )
    return _write_response(stored, 201 if created else 200, opts)


async def handle_patch(request: Request, target: Target) -> Response:
    opts = write_options(request.query_params)
    content_type = codec.media_type(request)
    body = await codec.read_body(request)
    transform, creates = patch_transform(target.store, content_type, body, opts, name=target.name)
    stored, created = await target.store.update(
        target.namespace, target.name, transform, opts, subresource=target.subresource,
        allow_create=creates,
    )
    return _write_response(stored, 201 if created else 200, opts)


async def handle_delete(request: Request, target: Target) -> Response:
    body = await _read_optional_body(request)
    options = delete_options(request.query_params, body)
    obj, gone = await target.store.delete(target.namespace, target.name, options)
    # kube-apiserver answers 202 for a pending deletion only when orphanDependents=false was asked
    accepted = not gone and options.orphan_dependents is False
    return codec.json_response(obj, 202 if accepted else 200)


async def handle_delete_collection(request: Request, target: Target) -> Response:
    store = target.store
    body = await _read_optional_body(request)
    options = delete_options(request.query_params, body)
    result = await store.list(target.namespace, list_options(request.query_params))
    deleted = []
    for obj in result.items:
        meta = obj["metadata"]
        try:
            gone_obj, _ = await store.delete(meta.get("namespace"), meta["name"], copy.copy(options))
            deleted.append(gone_obj)
        except api.StatusError as err:
            if not api.is_not_found(err):
                raise
    info = store.info
    return codec.json_response({"kind": info.list_kind, "apiVersion": info.api_version,
                                "metadata": {"resourceVersion": str(result.revision)}, "items": deleted})


async def _read_object(request: Request, opts: WriteOptions, target: Target) -> dict:
    body = await codec.read_body(request)
    info = target.store.info
    obj = codec.decode_object(body, codec.media_type(request), kind=info.kind, api_version=info.api_version)
    if opts.field_validation != "Ignore" and codec.media_type(request) in ("", codec.JSON):
        problems = schema.strict_problems([], schema.duplicate_fields(body))
        schema.report_field_problems(problems, opts.field_validation, opts.warnings)
    return obj


async def _read_optional_body(request: Request) -> dict | None:
    body = await codec.read_body(request)
    if not body.strip():
        return None
    return codec.decode_object(body, codec.media_type(request))


def _write_response(obj: dict, status_code: int, opts: WriteOptions) -> Response:
    response = codec.json_response(obj, status_code)
    for name, value in codec.warning_headers(opts.warnings):
        response.headers.append(name, value)
    return response


def _rv(obj: dict) -> int:
    return int((obj.get("metadata") or {}).get("resourceVersion") or 0)


_HANDLERS = {
    ("GET", ""): handle_get,
    ("LIST", ""): handle_list,
    ("WATCH", ""): handle_watch,
    ("CREATE", ""): handle_create,
    ("UPDATE", ""): handle_update,
    ("PATCH", ""): handle_patch,
    ("DELETE", ""): handle_delete,
    ("DELETECOLLECTION", ""): handle_delete_collection,
    ("GET", "status"): handle_get,
    ("UPDATE", "status"): handle_update,
    ("PATCH", "status"): handle_patch,
    # pods/resize: a whole Pod in and out; PodStrategy.prepare_for_resize/validate_resize keep only resources
    ("GET", "resize"): handle_get,
    ("UPDATE", "resize"): handle_update,
    ("PATCH", "resize"): handle_patch,
}
