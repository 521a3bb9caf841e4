"""PATCH: turning a patch body into a transform the generic store applies inside its CAS loop.

Supported types: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch
(built-in kinds, driven by the schemas' merge keys and strategies) and apply patches
(``application/apply-patch+yaml``, which create the object when it is missing).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from apiserver.registry.generic import ResourceStore
from apiserver.registry.options import WriteOptions
from apiserver.schema.patchmeta import patch_schema_for
from apiserver.server import codec
from machinery import errors as api
from machinery.patch import PatchError
from machinery.patch.json_patch import apply_json_patch
from machinery.patch.merge import apply_merge_patch
from machinery.patch.strategic import apply_strategic_merge_patch

Transform = Callable[[dict | None], dict]


def patch_transform(
    store: ResourceStore, content_type: str, body: bytes, opts: WriteOptions, *, name: str | None,
) -> tuple[Transform, bool]:
    """The transform for this patch, and whether it may create the object (apply patches do)."""
    info = store.info
    accepted = list(codec.PATCH_TYPES if store.supports_strategic_merge else
                    [t for t in codec.PATCH_TYPES if t != codec.STRATEGIC_PATCH])
    if content_type not in accepted:
        raise api.unsupported_media_type(content_type, accepted)
    patch = codec.decode_patch(body, content_type)
    gvk = (info.group, info.version, info.kind)

    if content_type == codec.APPLY_PATCH:
        if not opts.field_manager:
            raise api.bad_request("PATCH, application/apply-patch+yaml requires fieldManager to be set")
        return _apply_transform(store, patch, gvk, name), True

    def transform(current: dict | None) -> dict:
        if current is None:
            raise api.not_found(info.resource, name or "", info.group)
        try:
            if content_type == codec.JSON_PATCH:
                result = apply_json_patch(current, patch)
            elif content_type == codec.MERGE_PATCH:
                result = apply_merge_patch(current, patch)
            else:
                result = apply_strategic_merge_patch(current, patch, patch_schema_for(gvk))
        except PatchError as exc:
            raise _patch_failed(exc) from None
        if not isinstance(result, dict):
            raise api.StatusError(422, "Invalid", "the patched object is not a JSON object")
        return result

    return transform, False


def _apply_transform(store: ResourceStore, applied: dict[str, Any], gvk, name: str | None) -> Transform:
    """Server-side apply, simplified: the applied configuration is merged into the live object
    (strategic merge semantics); fields owned by other managers are not tracked yet."""
    info = store.info
    codec.require_objects(applied, info.kind, "metadata")
    if applied.get("apiVersion") != info.api_version or applied.get("kind") != info.kind:
        raise api.bad_request(
            f"the apply configuration must set apiVersion {info.api_version!r} and kind {info.kind!r}")
    applied_name = (applied.get("metadata") or {}).get("name")
    if applied_name and name and applied_name != name:
        raise api.bad_request(f"the name of the object ({applied_name}) does not match the name on the URL ({name})")

    def transform(current: dict | None) -> dict:
        if current is None:
            return copy.deepcopy(applied)
        try:
            return apply_strategic_merge_patch(current, applied, patch_schema_for(gvk))
        except PatchError as exc:
            raise _patch_failed(exc) from None

    return transform


def _patch_failed(exc: PatchError) -> api.StatusError:
    """400 for a malformed patch, 422 for one that does not apply to the object."""
    if exc.code == 422:
        return api.StatusError(422, "Invalid", exc.message)
    return api.bad_request(exc.message)
