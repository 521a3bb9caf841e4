"""In-memory fakes for unit-testing controllers: a client that records actions, informers without a server.

:class:`FakeClient` implements the subset of :class:`machinery.client.ApiClient` controllers call,
keeps objects in a dict with resourceVersions, uids, generateName, finalizers and deletionTimestamp,
and records every call as an :class:`Action` for tests to assert on. Strategic merge patches are
applied as JSON merge patches (enough for the patches controllers send). :class:`FakeInformers`
stands in for the shared informer factory: tests fill stores with ``add`` and call ``reconcile`` directly.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any

from machinery import errors
from machinery.cache import Indexer
from machinery.client import Resource
from machinery.clock import FakeClock
from machinery.labels import parse_selector
from machinery.meta import deep_copy, format_rfc3339, labels_of, name_of, namespace_of
from machinery.patch.json_patch import apply_json_patch
from machinery.patch.merge import apply_merge_patch


@dataclass
class Action:
    verb: str
    resource: str  # plural, e.g. "pods"
    namespace: str
    name: str
    subresource: str = ""
    body: Any = None

    def __repr__(self) -> str:
        target = f"{self.namespace}/{self.name}" if self.namespace else self.name
        sub = f"/{self.subresource}" if self.subresource else ""
        return f"<{self.verb} {self.resource}{sub} {target}>"


@dataclass
class FakeClient:
    clock: FakeClock = field(default_factory=FakeClock)
    objects: dict[tuple[str, str, str], dict] = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)
    failures: list[tuple[str, str, errors.StatusError]] = field(default_factory=list)
    _rv: itertools.count = field(default_factory=lambda: itertools.count(100))
    _names: itertools.count = field(default_factory=lambda: itertools.count(1))

    # --- test helpers -------------------------------------------------------------------------------

    def seed(self, resource: Resource, obj: dict) -> dict:
        """Put an object in place without recording an action (the cluster's state before the test)."""
        stored = self._stamp(resource, deep_copy(obj), new=True)
        self.objects[self._key(resource, namespace_of(stored), name_of(stored))] = stored
        return deep_copy(stored)

    def fail(self, verb: str, plural: str, error: errors.StatusError) -> None:
        """Make the next ``verb`` on ``plural`` fail with ``error``."""
        self.failures.append((verb, plural, error))

    def actions_of(self, verb: str | None = None, plural: str | None = None) -> list[Action]:
        return [a for a in self.actions
                if (verb is None or a.verb == verb) and (plural is None or a.resource == plural)]

    def stored(self, resource: Resource, namespace: str | None, name: str) -> dict | None:
        return self.objects.get(self._key(resource, namespace or "", name))

    def all(self, resource: Resource, namespace: str | None = None) -> list[dict]:
        return [o for (r, ns, _), o in self.objects.items()
                if r == resource.qualified and (namespace is None or ns == namespace)]

    # --- ApiClient surface ----------------------------------------------------------------------------

    async def get(self, resource: Resource, name: str, namespace: str | None = None, *, subresource=None) -> dict:
        self._record("get", resource, namespace, name, subresource)
        return deep_copy(self._existing(resource, namespace, name))

    async def list(self, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None,
                   **_: Any) -> dict:
        self._record("list", resource, namespace, "")
        selector = parse_selector(label_selector or "")
        items = [deep_copy(o) for o in self.all(resource, namespace) if selector.matches(labels_of(o))]
        return {"kind": resource.kind + "List", "metadata": {"resourceVersion": str(next(self._rv))}, "items": items}

    list_all = list

    async def create(self, resource: Resource, obj: dict, namespace: str | None = None, *,
                     subresource: str | None = None, name: str | None = None, **_: Any) -> dict:
        namespace = namespace or namespace_of(obj)
        self._record("create", resource, namespace, name or name_of(obj), subresource, obj)
        if subresource:
            return deep_copy(obj)
        obj = deep_copy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{next(self._names):05x}"
        if namespace and resource.namespaced:
            meta["namespace"] = namespace
        key = self._key(resource, namespace, meta.get("name") or "")
        if key in self.objects:
            raise errors.already_exists(resource.plural, meta["name"], resource.group)
        stored = self._stamp(resource, obj, new=True)
        self.objects[key] = stored
        return deep_copy(stored)

    async def replace(self, resource: Resource, obj: dict, *, subresource: str | None = None, **_: Any) -> dict:
        meta = obj.get("metadata") or {}
        self._record("update", resource, meta.get("namespace"), meta.get("name") or "", subresource, obj)
        current = self._existing(resource, meta.get("namespace"), meta.get("name") or "")
        if meta.get("resourceVersion") and meta["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise errors.conflict(resource.plural, meta["name"], errors.OBJECT_MODIFIED, resource.group)
        new = deep_copy(obj)
        if subresource == "status":
            new = {**deep_copy(current), "status": new.get("status")}
        else:
            new["status"] = deep_copy(current.get("status"))
        return self._store_update(resource, current, new)

    async def replace_status(self, resource: Resource, obj: dict) -> dict:
        return await self.replace(resource, obj, subresource="status")

    async def patch(self, resource: Resource, name: str, patch: Any, namespace: str | None = None, *,
                    patch_type: str = "merge", subresource: str | None = None, **_: Any) -> dict:
        self._record("patch", resource, namespace, name, subresource, patch)
        current = self._existing(resource, namespace, name)
        if patch_type == "json":
            new = apply_json_patch(deep_copy(current), patch)
        else:
            new = apply_merge_patch(deep_copy(current), patch)
        precondition = (patch.get("metadata") or {}).get("resourceVersion") if isinstance(patch, dict) else None
        if precondition and precondition != current["metadata"]["resourceVersion"]:
            raise errors.conflict(resource.plural, name, errors.OBJECT_MODIFIED, resource.group)
        return self._store_update(resource, current, new)

    async def delete(self, resource: Resource, name: str, namespace: str | None = None, *,
                     propagation_policy: str | None = None, preconditions: dict | None = None, **_: Any) -> dict:
        self._record("delete", resource, namespace, name, body={"propagationPolicy": propagation_policy,
                                                                  "preconditions": preconditions})
        current = self._existing(resource, namespace, name)
        if preconditions and preconditions.get("uid") and preconditions["uid"] != current["metadata"]["uid"]:
            raise errors.conflict(resource.plural, name, "Precondition failed: UID in precondition: "
                                  f"{preconditions['uid']}, UID in object meta: {current['metadata']['uid']}")
        finalizers = list(current["metadata"].get("finalizers") or [])
        if propagation_policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        elif propagation_policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        if finalizers:
            new = deep_copy(current)
            new["metadata"]["finalizers"] = finalizers
            new["metadata"].setdefault("deletionTimestamp", format_rfc3339(self.clock.now()))
            return self._store_update(resource, current, new)
        del self.objects[self._key(resource, namespace or "", name)]
        return deep_copy(current)

    async def delete_collection(self, resource: Resource, namespace: str | None = None, **_: Any) -> dict:
        self._record("deletecollection", resource, namespace, "")
        for obj in self.all(resource, namespace):
            del self.objects[self._key(resource, namespace_of(obj), name_of(obj))]
        return {"kind": "Status", "status": "Success"}

    # --- internals ------------------------------------------------------------------------------------

    def _record(self, verb: str, resource: Resource, namespace: str | None, name: str,
                subresource: str | None = None, body: Any = None) -> None:
        self.actions.append(Action(verb, resource.plural, namespace or "", name, subresource or "", deep_copy(body)))
        for i, (fverb, plural, error) in enumerate(self.failures):
            if fverb == verb and plural == resource.plural:
                del self.failures[i]
                raise error

    @staticmethod
    def _key(resource: Resource, namespace: str | None, name: str) -> tuple[str, str, str]:
        return resource.qualified, (namespace or "") if resource.namespaced else "", name

    def _existing(self, resource: Resource, namespace: str | None, name: str) -> dict:
        obj = self.objects.get(self._key(resource, namespace, name))
        if obj is None:
            raise errors.not_found(resource.plural, name, resource.group)
        return obj

    def _stamp(self, resource: Resource, obj: dict, *, new: bool) -> dict:
        obj.setdefault("apiVersion", resource.api_version)
        obj.setdefault("kind", resource.kind)
        meta = obj.setdefault("metadata", {})
        if new:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", format_rfc3339(self.clock.now()))
            meta.setdefault("generation", 1)
        meta["resourceVersion"] = str(next(self._rv))
        return obj

    def _store_update(self, resource: Resource, current: dict, new: dict) -> dict:
        meta = new.setdefault("metadata", {})
        for kept in ("uid", "creationTimestamp", "name", "namespace"):
            if kept in current["metadata"]:
                meta[kept] = current["metadata"][kept]
        if new.get("spec") != current.get("spec"):
            meta["generation"] = int(current["metadata"].get("generation") or 1) + 1
        else:
            meta["generation"] = current["metadata"].get("generation", 1)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            del self.objects[self._key(resource, namespace_of(current), name_of(current))]
            return deep_copy(new)
        stored = self._stamp(resource, new, new=False)
        self.objects[self._key(resource, namespace_of(current), name_of(current))] = stored
        return deep_copy(stored)


class FakeInformer:
    """An informer whose store the test fills; handlers are recorded, never called by a server."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.store = Indexer()
        self.handlers: list[tuple] = []

    def add_event_handler(self, on_add=None, on_update=None, on_delete=None):
        self.handlers.append((on_add, on_update, on_delete))

    def has_synced(self) -> bool:
        return True

    async def wait_for_sync(self) -> None:
        return None


class FakeInformers:
    """Stands in for SharedInformerFactory: one FakeInformer per resource."""

    def __init__(self) -> None:
        self._informers: dict[Resource, FakeInformer] = {}

    def informer(self, resource: Resource, **_: Any) -> FakeInformer:
        return self._informers.setdefault(resource, FakeInformer(resource))

    def add(self, resource: Resource, *objs: dict) -> None:
        for obj in objs:
            self.informer(resource).store.upsert(obj)

    def sync_from(self, client: FakeClient, *resources: Resource) -> None:
        """Make each resource's store mirror the fake client's objects (what a watch would do)."""
        for resource in resources:
            self.informer(resource).store.replace(deep_copy(o) for o in client.all(resource))


class FakeRecorder:
    """Records events as (type, reason, message) tuples."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def event(self, obj: dict, type: str, reason: str, message: str) -> None:
        self.events.append((name_of(obj), type, reason, message))

    def reasons(self) -> list[str]:
        return [reason for _, _, reason, _ in self.events]
