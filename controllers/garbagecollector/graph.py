"""The ownerReference graph: one node per object uid, edges from owners to their dependents.

Kubernetes' GraphBuilder, for one event loop. Informer events on every monitored resource are
applied to the graph as they arrive (:meth:`DependencyGraph.observe` / :meth:`DependencyGraph.observe_delete`);
the graph decides which nodes deserve a look and puts their uids into the collector's two queues:

* ``attempt_to_delete`` — dependents whose owner disappeared, owners referenced but never observed
  ("virtual" nodes, to be verified with a live GET), objects being deleted in the foreground and
  their dependents, owners a dependent stopped blocking;
* ``attempt_to_orphan`` — objects that started deletion with the ``orphan`` finalizer.

A virtual node stands for an owner some dependent references but no informer has shown (not synced
yet, of a kind we cannot watch, or already gone). When the collector verifies it absent it calls
:meth:`DependencyGraph.virtual_delete`, which behaves like a delete event: the dependents are queued
and find the owner dangling.

Simplification relative to Kubernetes: there is no separate graphChanges queue and worker — handlers
run on the single event loop, so applying a change right away gives the same serial order without
locks.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from machinery.client.resources import Resource
from machinery.meta import is_being_deleted

log = logging.getLogger(__name__)

Obj = Mapping[str, Any]
OwnerRef = Mapping[str, Any]

ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"


class Queue(Protocol):
    def add(self, item: str) -> None: ...

    def add_rate_limited(self, item: str) -> None: ...


@dataclass(frozen=True)
class ObjectReference:
    """An object's coordinates: what an ownerReference names, plus the namespace it is looked up in."""

    api_version: str
    kind: str
    name: str
    uid: str
    namespace: str = ""

    @classmethod
    def of_owner(cls, ref: OwnerRef, namespace: str = "") -> ObjectReference:
        return cls(ref.get("apiVersion") or "", ref.get("kind") or "", ref.get("name") or "", ref.get("uid") or "",
                   namespace)

    @classmethod
    def of_object(cls, obj: Obj, resource: Resource | None = None) -> ObjectReference:
        """The identity of an observed object (apiVersion/kind from the informer's resource when absent)."""
        meta = obj.get("metadata") or {}
        api_version = obj.get("apiVersion") or (resource.api_version if resource else "")
        kind = obj.get("kind") or (resource.kind if resource else "")
        return cls(api_version, kind, meta.get("name") or "", meta.get("uid") or "", meta.get("namespace") or "")

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    def matches(self, ref: OwnerRef) -> bool:
        """Whether ``ref`` names this object with the same uid, name, kind and apiVersion."""
        return (ref.get("uid") == self.uid and ref.get("name") == self.name and ref.get("kind") == self.kind
                and ref.get("apiVersion") == self.api_version)

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.api_version}/{self.kind} {where} (uid {self.uid})"


class Node:
    """One object in the graph. ``owners`` are its ownerReferences as last observed (read-only)."""

    __slots__ = ("being_deleted", "deleting_dependents", "dependents", "identity", "owners", "virtual")

    def __init__(self, identity: ObjectReference, owners: Iterable[OwnerRef] = (), *, virtual: bool = False,
                 being_deleted: bool = False, deleting_dependents: bool = False) -> None:
        self.identity = identity
        self.owners: list[OwnerRef] = list(owners)
        self.dependents: set[Node] = set()
        self.virtual = virtual
        self.being_deleted = being_deleted
        self.deleting_dependents = deleting_dependents

    @property
    def uid(self) -> str:
        return self.identity.uid

    def blocking_dependents(self) -> list[Node]:
        """Dependents whose reference to this node has ``blockOwnerDeletion: true``."""
        return [dep for dep in self.dependents
                if any(ref.get("uid") == self.uid and ref.get("blockOwnerDeletion") is True for ref in dep.owners)]

    def __repr__(self) -> str:
        return f"<Node {self.identity}{' virtual' if self.virtual else ''}>"


class AbsentOwnerCache:
    """A bounded LRU set of owners verified absent, so dependents of a deleted owner cost no GET each."""

    def __init__(self, size: int = 500) -> None:
        self.size = size
        self._items: OrderedDict[ObjectReference, None] = OrderedDict()

    def add(self, ref: ObjectReference) -> None:
        self._items[ref] = None
        self._items.move_to_end(ref)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __contains__(self, ref: object) -> bool:
        if ref in self._items:
            self._items.move_to_end(ref)  # type: ignore[arg-type]
            return True
        return False

    def __len__(self) -> int:
        return len(self._items)


class DependencyGraph:
    """uid → :class:`Node`, kept current from informer events; feeds the collector's queues."""

    def __init__(self, attempt_to_delete: Queue, attempt_to_orphan: Queue, absent_owners: AbsentOwnerCache) -> None:
        self.attempt_to_delete = attempt_to_delete
        self.attempt_to_orphan = attempt_to_orphan
        self.absent_owners = absent_owners
        self.nodes: dict[str, Node] = {}

    def node(self, uid: str) -> Node | None:
        return self.nodes.get(uid)

    def __len__(self) -> int:
        return len(self.nodes)

    # --- informer events --------------------------------------------------------------------------------

    def observe(self, obj: Obj, resource: Resource | None = None, old: Obj | None = None) -> None:
        """An add (``old`` None) or update event for ``obj``."""
        identity = ObjectReference.of_object(obj, resource)
        if not identity.uid:
            return
        meta = obj.get("metadata") or {}
        refs = list(meta.get("ownerReferences") or ())
        existing = self.nodes.get(identity.uid)
        if existing is None:
            node = Node(identity, refs, being_deleted=is_being_deleted(obj),
                        deleting_dependents=is_being_deleted(obj) and FOREGROUND_FINALIZER in _finalizers(obj))
            self.nodes[node.uid] = node
            self._add_dependent_to_owners(node, refs)
            self._process_transitions(old, obj, node)
            return
        if existing.virtual:
            self._mark_observed(existing, identity)
        added, removed, changed = _reference_diffs(existing.owners, refs)
        if added or removed or changed:
            self._enqueue_unblocked_owners(removed, changed)
            existing.owners = refs
            self._add_dependent_to_owners(existing, added)
            self._remove_dependent_from_owners(existing, removed)
        if is_being_deleted(obj):
            existing.being_deleted = True
        self._process_transitions(old, obj, existing)

    def observe_delete(self, obj: Obj, resource: Resource | None = None) -> None:
        """A delete event: the object is gone, its dependents are looked at."""
        identity = ObjectReference.of_object(obj, resource)
        node = self.nodes.get(identity.uid)
        if node is not None:
            self._remove_and_notify(node, identity)

    def virtual_delete(self, identity: ObjectReference) -> None:
        """The collector verified that ``identity`` does not exist (404, or the name has another uid)."""
        node = self.nodes.get(identity.uid)
        if node is None:
            return
        if node.virtual:
            matching, nonmatching = _partition_dependents(node.dependents, identity)
            if not nonmatching:
                self._remove_and_notify(node, identity)
                return
            # dependents disagree about this owner's coordinates: only those naming the absent one are dangling
            self._enqueue_absent(identity, matching)
            if node.identity == identity:
                replacement = _alternate_identity(nonmatching, identity)
                if replacement is not None:
                    node.identity = replacement
                    self.attempt_to_delete.add_rate_limited(node.uid)
        elif node.identity == identity:
            self._remove_and_notify(node, identity)
        else:
            # an observed object disagrees with the coordinates found absent: keep it, fix its dependents
            matching, _ = _partition_dependents(node.dependents, identity)
            self._enqueue_absent(identity, matching)

    # --- internals ----------------------------------------------------------------------------------------

    def _mark_observed(self, node: Node, observed: ObjectReference) -> None:
        """A virtual node's object showed up in an informer: check who referenced it by the wrong coordinates."""
        if observed != node.identity:
            _, suspicious = _partition_dependents(node.dependents, observed)
            for dep in suspicious:
                self.attempt_to_delete.add(dep.uid)
            node.identity = observed
        node.virtual = False

    def _add_dependent_to_owners(self, node: Node, refs: Iterable[OwnerRef]) -> None:
        """Link ``node`` under each owner, creating virtual owners (verified later) for unknown uids."""
        suspicious = False
        for ref in refs:
            uid = ref.get("uid") or ""
            owner = self.nodes.get(uid)
            if owner is None:
                owner = Node(ObjectReference.of_owner(ref, node.identity.namespace), virtual=True)
                self.nodes[uid] = owner
                owner.dependents.add(node)
                self.attempt_to_delete.add(uid)
                continue
            owner.dependents.add(node)
            if suspicious:
                continue
            owner_namespaced = bool(owner.identity.namespace)
            if owner_namespaced and owner.identity.namespace != node.identity.namespace:
                suspicious = True  # a namespaced owner in another namespace cannot be an owner
            elif not owner.identity.matches(ref):
                suspicious = True
            elif not owner_namespaced and node.identity.namespace and owner.virtual:
                suspicious = True  # maybe a namespaced kind wrongly referenced by a cluster-scoped object
        if suspicious:
            self.attempt_to_delete.add(node.uid)

    def _remove_dependent_from_owners(self, node: Node, refs: Iterable[OwnerRef]) -> None:
        for ref in refs:
            owner = self.nodes.get(ref.get("uid") or "")
            if owner is not None:
                owner.dependents.discard(node)

    def _enqueue_unblocked_owners(self, removed: list[OwnerRef], changed: list[tuple[OwnerRef, OwnerRef]]) -> None:
        """Owners waiting in the foreground for this dependent may proceed once it stops blocking them."""
        unblocked = [ref for ref in removed if ref.get("blockOwnerDeletion") is True]
        unblocked += [new for old, new in changed
                      if old.get("blockOwnerDeletion") is True and new.get("blockOwnerDeletion") is not True]
        for ref in unblocked:
            if (ref.get("uid") or "") in self.nodes:
                self.attempt_to_delete.add(ref["uid"])

    def _process_transitions(self, old: Obj | None, new: Obj, node: Node) -> None:
        if _starts_deletion_with(old, new, ORPHAN_FINALIZER):
            log.debug("%s: orphaning its dependents", node.identity)
            self.attempt_to_orphan.add(node.uid)
            return
        if _starts_deletion_with(old, new, FOREGROUND_FINALIZER):
            log.debug("%s: deleting its dependents in the foreground", node.identity)
            node.deleting_dependents = True
            for dep in node.dependents:
                self.attempt_to_delete.add(dep.uid)
            self.attempt_to_delete.add(node.uid)

    def _remove_and_notify(self, node: Node, identity: ObjectReference) -> None:
        """Drop ``node``; its dependents lost an owner, and owners waiting on it may be done."""
        self.nodes.pop(node.uid, None)
        self._remove_dependent_from_owners(node, node.owners)
        self._enqueue_absent(identity, node.dependents)
        for ref in node.owners:
            owner = self.nodes.get(ref.get("uid") or "")
            if owner is not None and owner.deleting_dependents:
                self.attempt_to_delete.add(owner.uid)

    def _enqueue_absent(self, identity: ObjectReference, dependents: Iterable[Node]) -> None:
        dependents = list(dependents)
        if dependents:
            self.absent_owners.add(identity)
        for dep in dependents:
            self.attempt_to_delete.add(dep.uid)


# --- helpers ----------------------------------------------------------------------------------------------


def _finalizers(obj: Obj) -> list[str]:
    return list((obj.get("metadata") or {}).get("finalizers") or ())



def _starts_deletion_with(old: Obj | None, new: Obj, finalizer: str) -> bool:
    """``new`` is being deleted with ``finalizer`` and ``old`` (if any) was not."""
    if not is_being_deleted(new) or finalizer not in _finalizers(new):
        return False
    return old is None or not is_being_deleted(old) or finalizer not in _finalizers(old)


def _reference_diffs(old: list[OwnerRef], new: list[OwnerRef]
                     ) -> tuple[list[OwnerRef], list[OwnerRef], list[tuple[OwnerRef, OwnerRef]]]:
    """(added, removed, changed as (old, new)) ownerReferences, matched by uid."""
    old_by_uid = {ref.get("uid"): ref for ref in old}
    new_by_uid = {ref.get("uid"): ref for ref in new}
    added = [ref for uid, ref in new_by_uid.items() if uid not in old_by_uid]
    removed = [ref for uid, ref in old_by_uid.items() if uid not in new_by_uid]
    changed = [(old_by_uid[uid], ref) for uid, ref in new_by_uid.items()
               if uid in old_by_uid and old_by_uid[uid] != ref]
    return added, removed, changed


def _partition_dependents(dependents: Iterable[Node], owner: ObjectReference) -> tuple[list[Node], list[Node]]:
    """Dependents whose reference to ``owner.uid`` matches its coordinates, and those whose does not."""
    matching: list[Node] = []
    nonmatching: list[Node] = []
    for dep in dependents:
        if owner.namespace and dep.identity.namespace != owner.namespace:
            nonmatching.append(dep)
            continue
        refs = [ref for ref in dep.owners if ref.get("uid") == owner.uid]
        if any(owner.matches(ref) for ref in refs):
            matching.append(dep)
        if any(not owner.matches(ref) for ref in refs):
            nonmatching.append(dep)
    return matching, nonmatching


def _alternate_identity(dependents: list[Node], absent: ObjectReference) -> ObjectReference | None:
    """Another set of coordinates some dependent uses for ``absent.uid`` (the first in a stable order)."""
    candidates = sorted(
        (ObjectReference.of_owner(ref, dep.identity.namespace) for dep in dependents for ref in dep.owners
         if ref.get("uid") == absent.uid),
        key=lambda r: (r.namespace, r.api_version, r.kind, r.name))
    for candidate in candidates:
        if candidate != absent:
            return candidate
    return None
