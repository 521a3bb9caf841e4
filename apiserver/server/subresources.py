"""Subresources with their own request bodies: scale, binding, eviction, namespace finalize.

``status`` is handled by the generic handlers (it only changes which strategy applies).
"""

from __future__ import annotations

import copy

from starlette.requests import Request
from starlette.responses import Response

from apiserver.registry.options import WriteOptions
from apiserver.server import codec, podproxy
from apiserver.server.params import delete_options, write_options
from apiserver.server.patch import patch_transform
from machinery import errors as api
from machinery.meta import now_rfc3339


async def get_scale(request: Request, target) -> Response:
    from apiserver.registry.scale import scale_of

    obj = await target.store.get(target.namespace, target.name)
    return codec.json_response(scale_of(obj))


async def update_scale(request: Request, target) -> Response:
    from apiserver.registry.scale import apply_scale

    opts = write_options(request.query_params)
    body = codec.require_objects(codec.decode_object(await codec.read_body(request), codec.media_type(request)),
                                 "Scale", "metadata", "spec")
    stored, _ = await target.store.update(
        target.namespace, target.name, lambda current: apply_scale(current, copy.deepcopy(body)), opts)
    return await _scale_response(stored)


async def patch_scale(request: Request, target) -> Response:
    """Patch the Scale view of the object, then write the result back as spec.replicas."""
    from apiserver.registry.scale import apply_scale, scale_of

    opts = write_options(request.query_params)
    body = await codec.read_body(request)
    scale_target = _ScaleStore(target.store)
    transform, _ = patch_transform(scale_target, codec.media_type(request), body, opts, name=target.name)

    def update(current):
        if current is None:
            raise api.not_found(target.store.info.resource, target.name, target.store.info.group)
        return apply_scale(current, codec.require_objects(transform(scale_of(current)), "Scale", "metadata", "spec"))

    stored, _ = await target.store.update(target.namespace, target.name, update, opts)
    return await _scale_response(stored)


async def _scale_response(obj: dict) -> Response:
    from apiserver.registry.scale import scale_of

    return codec.json_response(scale_of(obj))


class _ScaleStore:
    """Just enough of a store for patch_transform to patch an autoscaling/v1 Scale."""

    supports_strategic_merge = True

    def __init__(self, store) -> None:
        from apiserver.resources import ResourceInfo

        self.info = ResourceInfo("autoscaling", "v1", store.info.resource, "Scale", store.info.namespaced)


async def create_binding(request: Request, target) -> Response:
    from apiserver.registry.core.pods import bind

    opts = write_options(request.query_params)
    binding = codec.require_objects(codec.decode_object(await codec.read_body(request), codec.media_type(request)),
                                    "Binding", "metadata", "target")
    if binding.get("kind") not in (None, "Binding"):
        raise api.bad_request(f"the kind in the data ({binding.get('kind')}) must be Binding")
    name = (binding.get("metadata") or {}).get("name") or target.name
    if name != target.name:
        raise api.bad_request("the name of the binding does not match the pod name in the URL")
    await target.store.update(target.namespace, target.name, lambda current: bind(current, binding), opts,
                              subresource="binding")
    return codec.json_response(codec.success_status(code=201), 201)


async def create_eviction(request: Request, target) -> Response:
    """Evict a pod: delete it with the eviction's DeleteOptions (disruption budgets checked first)."""
    eviction = codec.require_objects(codec.decode_object(await codec.read_body(request), codec.media_type(request)),
                                     "Eviction", "metadata", "deleteOptions")
    if eviction.get("kind") not in (None, "Eviction"):
        raise api.bad_request(f"the kind in the data ({eviction.get('kind')}) must be Eviction")
    options = delete_options(request.query_params, eviction.get("deleteOptions") or {})
    from apiserver.server.eviction import check_disruption_budgets

    pod = await target.store.get(target.namespace, target.name)
    await check_disruption_budgets(request.app.state.registry, pod, options.dry_run)
    if not options.dry_run and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
        await target.store.update(target.namespace, target.name, mark_disruption_target, WriteOptions(),
                                  subresource="status")
    await target.store.delete(target.namespace, target.name, options)
    return codec.json_response(codec.success_status(code=201), 201)


def mark_disruption_target(current: dict | None) -> dict:
    """The DisruptionTarget condition kube-apiserver sets on a pod it evicts (Jobs' podFailurePolicy reads it)."""
    if current is None:
        raise api.not_found("pods", "")
    status = current.setdefault("status", {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "DisruptionTarget"]
    conditions.append({"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                       "message": "Eviction API: evicting", "lastTransitionTime": now_rfc3339()})
    status["conditions"] = conditions
    return current


async def finalize_namespace(request: Request, target) -> Response:
    """PUT namespaces/x/finalize: only spec.finalizers may change (the namespace controller's call)."""
    opts = write_options(request.query_params)
    body = codec.require_objects(codec.decode_object(await codec.read_body(request), codec.media_type(request)),
                                 "Namespace", "metadata", "spec")
    wanted = (body.get("spec") or {}).get("finalizers") or []
    if not isinstance(wanted, list):
        raise api.bad_request('Namespace cannot be decoded: "spec.finalizers" must be a list')

    def finalize(current):
        if current is None:
            raise api.not_found("namespaces", target.name)
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise api.conflict("namespaces", target.name, api.OBJECT_MODIFIED)
        current.setdefault("spec", {})["finalizers"] = wanted
        if not wanted:
            current["spec"].pop("finalizers")
        return current

    stored, _ = await target.store.update(None, target.name, finalize, opts, subresource="finalize")
    return codec.json_response(stored)


_SUBRESOURCE_HANDLERS = {
    ("GET", "scale"): get_scale,
    ("UPDATE", "scale"): update_scale,
    ("PATCH", "scale"): patch_scale,
    ("POST", "binding"): create_binding,
    ("POST", "eviction"): create_eviction,
    ("UPDATE", "finalize"): finalize_namespace,
    # pods/log, exec, attach, portforward: the kubelet proxy (a WebSocket exec/attach comes in through app.py)
    ("GET", "log"): podproxy.get_log,
    **{(verb, sub): podproxy.connect_without_websocket for verb in ("GET", "POST") for sub in podproxy.STREAMS},
}

def handler_for(verb: str, subresource: str):
    return _SUBRESOURCE_HANDLERS.get((verb, subresource))
