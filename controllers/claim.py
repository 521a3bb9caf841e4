"""Adoption and release of dependents by selector: who a controller's pods (or ReplicaSets) are.

A controller owns the objects whose controller ownerReference names it (by UID). Kubernetes also
lets it *adopt* orphans its selector matches and requires it to *release* owned objects whose labels
no longer match (client-go's ``ControllerRefManager``). Both are patches with the object's UID and
resourceVersion as preconditions, so a stale cache can never adopt or release the wrong object (nor
overwrite references changed meanwhile: the patch replaces the whole list); adoption is refused
while the owner is being deleted, and re-checked against a fresh read of the owner (the
``canAdopt`` recheck) so a deleted-and-recreated owner never adopts its predecessor's objects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from machinery.cache import NAMESPACE_INDEX, Indexer
from machinery.client import ApiClient, Resource
from machinery.errors import StatusError, is_not_found
from machinery.labels import Selector, selector_from_label_selector
from machinery.meta import (
    controller_ref,
    is_being_deleted,
    labels_of,
    name_of,
    namespace_of,
    new_controller_ref,
    uid_of,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class ControllerRefManager:
    """Claims dependents of one ``owner`` of kind ``owner_kind`` (apiVersion ``owner_api_version``)."""

    def __init__(self, client: ApiClient, owner: Obj, selector: Selector, dependents: Resource,
                 owner_resource: Resource, *, can_adopt_check: Callable[[], Any] | None = None) -> None:
        self.client = client
        self.owner = owner
        self.selector = selector
        self.dependents = dependents
        self.owner_resource = owner_resource
        self._can_adopt_checked: bool | None = None

    async def claim(self, candidates: Iterable[Obj], *, adoptable: Callable[[Obj], bool] = lambda _: True) -> list[Obj]:
        """The candidates this owner controls after adopting matching orphans and releasing non-matching ones."""
        claimed: list[Obj] = []
        owner_uid = uid_of(self.owner)
        for obj in candidates:
            ref = controller_ref(obj)
            matches = self.selector.matches(labels_of(obj))
            if ref is not None:
                if ref.get("uid") != owner_uid:
                    continue  # someone else's
                if matches:
                    claimed.append(obj)
                elif not is_being_deleted(self.owner):
                    await self._release(obj)
                continue
            if not matches or is_being_deleted(obj) or is_being_deleted(self.owner) or not adoptable(obj):
                continue
            adopted = await self._adopt(obj)
            if adopted is not None:
                claimed.append(adopted)
        return claimed

    async def _owner_still_ours(self) -> bool:
        """One fresh read of the owner per claim: it must still exist, with the same UID, not being deleted."""
        if self._can_adopt_checked is None:
            try:
                fresh = await self.client.get(self.owner_resource, name_of(self.owner), namespace_of(self.owner))
            except StatusError as err:
                if not is_not_found(err):
                    raise
                fresh = None
            self._can_adopt_checked = (fresh is not None and uid_of(fresh) == uid_of(self.owner)
                                       and not is_being_deleted(fresh))
        return self._can_adopt_checked

    async def _adopt(self, obj: Obj) -> Obj | None:
        if not await self._owner_still_ours():
            return None
        ref = new_controller_ref(self.owner, api_version=self.owner_resource.api_version,
                                 kind=self.owner_resource.kind)
        refs = [r for r in (obj.get("metadata") or {}).get("ownerReferences") or [] if r.get("uid") != ref["uid"]]
        patch = {"metadata": {"ownerReferences": [*refs, ref], **_preconditions(obj)}}
        try:
            return await self.client.patch(self.dependents, name_of(obj), patch, namespace_of(obj),
                                           patch_type="merge")
        except StatusError as err:
            if is_not_found(err):
                return None
            raise

    async def _release(self, obj: Obj) -> None:
        refs = [r for r in (obj.get("metadata") or {}).get("ownerReferences") or []
                if r.get("uid") != uid_of(self.owner)]
        patch = {"metadata": {"ownerReferences": refs or None, **_preconditions(obj)}}
        try:
            await self.client.patch(self.dependents, name_of(obj), patch, namespace_of(obj), patch_type="merge")
        except StatusError as err:
            if not is_not_found(err):
                raise


def _preconditions(obj: Mapping[str, Any]) -> dict[str, str]:
    """uid and resourceVersion of the cached ``obj``: a JSON merge patch replaces the whole ownerReferences
    list, so one computed from a stale copy could drop a controller reference set meanwhile (stealing the
    object) or restore one the garbage collector removed. A conflict retries on a fresher cache."""
    meta = obj.get("metadata") or {}
    preconditions = {"uid": uid_of(obj)}
    if meta.get("resourceVersion"):
        preconditions["resourceVersion"] = meta["resourceVersion"]
    return preconditions


def cached_controller(store: Indexer, obj: Mapping[str, Any], kind: str) -> Obj | None:
    """The ``kind`` object in ``store`` that ``obj``'s controller reference names, if its UID matches."""
    ref = controller_ref(obj)
    if ref is None or ref.get("kind") != kind:
        return None
    owner = store.get_by_name(namespace_of(obj), ref.get("name") or "")
    return owner if owner is not None and uid_of(owner) == ref.get("uid") else None


def selecting(store: Indexer, pod: Mapping[str, Any]) -> list[Obj]:
    """The objects in ``store`` in the pod's namespace whose ``spec.selector`` matches its labels."""
    found = []
    for obj in store.by_index(NAMESPACE_INDEX, namespace_of(pod)):
        selector = (obj.get("spec") or {}).get("selector")
        if selector and selector_from_label_selector(selector).matches(labels_of(pod)):
            found.append(obj)
    return found

