"""From existing slices and desired endpoints to the fewest slice writes, and making those writes.

:func:`plan_port_mapping` is Kubernetes' ``reconcileByPortMapping`` for one (address type, port
set) group: endpoints that are gone are dropped and changed ones replaced in place; slices left
empty are deleted; new endpoints first fill the slices that are being rewritten anyway (fullest
first), then — when fewer than a slice's worth remain — the unchanged slice with the most
endpoints that can take them all, and otherwise new slices. :func:`recycle` turns a create plus a
delete of the same address type into one update, and :func:`apply_changes` writes creates, then
updates, then deletes (so endpoints never vanish between two writes), recording each write in the
:class:`~controllers.endpointslice.tracker.SliceTracker`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from controllers.endpointslice.desired import EndpointKey, endpoint_key
from controllers.endpointslice.service import namespace_terminating
from controllers.endpointslice.tracker import SliceTracker
from machinery.client import ENDPOINT_SLICES, ApiClient
from machinery.errors import StatusError, is_not_found
from machinery.meta import deep_copy, labels_of, name_of, namespace_of

Obj = dict[str, Any]


@dataclass
class SliceChanges:
    """Slices to create (unsaved, generateName), to update (full objects) and to delete (as cached)."""

    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)

    def extend(self, other: SliceChanges) -> None:
        self.create += other.create
        self.update += other.update
        self.delete += other.delete

    def __bool__(self) -> bool:
        return bool(self.create or self.update or self.delete)


def plan_port_mapping(existing: list[Obj], desired: dict[EndpointKey, Obj], make_slice: Callable[[], Obj],
                      labels: Mapping[str, str], max_per_slice: int) -> SliceChanges:
    """The writes that make ``existing`` slices (one port set, one address type) hold ``desired``.

    ``desired`` maps endpoint keys to endpoints in the order new endpoints should be placed; it is
    consumed. ``existing`` slices come from the cache and are never modified (changed copies are returned).
    """
    changes = SliceChanges()
    to_update: dict[str, Obj] = {}
    unchanged: dict[str, Obj] = {}
    for current in sorted(existing, key=name_of):
        kept, endpoint_changed = [], False
        for endpoint in current.get("endpoints") or ():
            wanted = desired.pop(endpoint_key(endpoint), None)
            if wanted is not None:
                kept.append(wanted)
                endpoint_changed = endpoint_changed or wanted != endpoint
        count = len(current.get("endpoints") or ())
        if endpoint_changed or len(kept) != count:
            if not kept:
                changes.delete.append(current)
            else:
                to_update[name_of(current)] = _with(current, kept, labels)
        elif dict(labels_of(current)) != dict(labels):
            to_update[name_of(current)] = _with(current, kept, labels)
        else:
            unchanged[name_of(current)] = current

    queue = list(desired.values())
    desired.clear()
    # fill the slices that are written anyway, fullest first
    for endpoint_slice in sorted(to_update.values(), key=lambda s: -len(s["endpoints"])):
        room = max_per_slice - len(endpoint_slice["endpoints"])
        if room > 0 and queue:
            endpoint_slice["endpoints"] += queue[:room]
            del queue[:room]
    # then one unchanged slice that can take the rest, or new slices
    while queue:
        target = None
        if len(queue) < max_per_slice and unchanged:
            target = _slice_to_fill(list(unchanged.values()), len(queue), max_per_slice)
        if target is None:
            target = make_slice()
        else:
            del unchanged[name_of(target)]
            target = _with(target, list(target.get("endpoints") or ()), labels)
        room = max_per_slice - len(target["endpoints"])
        target["endpoints"] += queue[:room]
        del queue[:room]
        if name_of(target):
            to_update[name_of(target)] = target
        else:
            changes.create.append(target)
    changes.update += to_update.values()
    return changes


def _with(current: Obj, endpoints: list[Obj], labels: Mapping[str, str]) -> Obj:
    updated = deep_copy(current)
    updated["endpoints"] = deep_copy(endpoints)
    updated.setdefault("metadata", {})["labels"] = dict(labels)
    return updated


def _slice_to_fill(candidates: list[Obj], count: int, max_per_slice: int) -> Obj | None:
    """getSliceToFill: the slice with the most endpoints that still has room for ``count`` more."""
    best = None
    for candidate in candidates:
        size = len(candidate.get("endpoints") or ())
        if size + count <= max_per_slice and (best is None or size > len(best.get("endpoints") or ())):
            best = candidate
    return best


def recycle(changes: SliceChanges, reusable: Callable[[Obj], bool]) -> None:
    """Write creates as updates of slices about to be deleted (same address type, ``reusable``).

    The new content takes the old slice's name and resourceVersion, so the update is conditional.
    """
    i = 0
    while i < len(changes.delete) and changes.create:
        old, new = changes.delete[i], changes.create[-1]
        if old.get("addressType") == new.get("addressType") and reusable(old):
            meta = new.setdefault("metadata", {})
            meta.pop("generateName", None)
            meta["name"] = name_of(old)
            meta["resourceVersion"] = (old.get("metadata") or {}).get("resourceVersion")
            changes.create.pop()
            changes.update.append(new)
            changes.delete.pop(i)
        else:
            i += 1


async def apply_changes(client: ApiClient, tracker: SliceTracker, namespace: str, changes: SliceChanges, *,
                        allow_create: bool = True) -> None:
    """Creates, then updates, then deletes; the first failure raises (the sync is retried).

    A create refused because the namespace is terminating ends the sync quietly: nothing more can be done.
    """
    if allow_create:
        for endpoint_slice in changes.create:
            try:
                created = await client.create(ENDPOINT_SLICES, endpoint_slice, namespace)
            except StatusError as err:
                if namespace_terminating(err):
                    return
                raise
            tracker.update(created)
    for endpoint_slice in changes.update:
        tracker.update(await client.replace(ENDPOINT_SLICES, endpoint_slice))
    for endpoint_slice in changes.delete:
        try:
            await client.delete(ENDPOINT_SLICES, name_of(endpoint_slice), namespace_of(endpoint_slice) or namespace)
        except StatusError as err:
            if not is_not_found(err):
                raise
        tracker.expect_deletion(endpoint_slice)
