"""The generic REST store: everything a resource does that is not specific to its kind.

One :class:`ResourceStore` per resource runs create / get / list / watch / update / delete over
:class:`apiserver.storage.store.Store` and its :class:`apiserver.storage.cacher.WatchCache`, and
calls the resource's :class:`~apiserver.registry.strategy.Strategy` hooks in a fixed order.
Requests arrive here already decoded; the HTTP layer only parses and renders.

Semantics kept from kube-apiserver:

- system fields: uid, creationTimestamp, generation, generateName (retried on a name clash);
- updates and patches are computed inside ``guaranteed_update`` so a concurrent write is retried
  unless the client pinned a resourceVersion (then it gets 409 Conflict);
- deletion (in :mod:`apiserver.registry.deletion`): finalizers, graceful deletion, propagation
  policies; an update that empties the finalizers of an object marked for deletion deletes it;
- namespaced objects need an existing namespace that is not terminating.
"""

from __future__ import annotations

import copy
import logging
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from apiserver.registry import errors as registry_errors
from apiserver.registry.deletion import DeletionMixin
from apiserver.registry.options import ListOptions, WriteOptions
from apiserver.registry.strategy import StatusStrategy, Strategy
from apiserver.resources import ResourceInfo
from apiserver.schema import validate as schema
from apiserver.storage import errors as storage_errors
from apiserver.storage.cacher import Delivery, WatchCache, watch_from_storage
from apiserver.storage.store import ListResult, Store
from machinery import errors as api
from machinery import validation
from machinery.fields import FieldSelector
from machinery.meta import now_rfc3339

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Transform = Callable[[Obj | None], "Obj | Awaitable[Obj]"]

GENERATE_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
GENERATE_NAME_ATTEMPTS = 8

class NamespaceLookup:
    """Answers "does this namespace exist, and is it terminating?" from the namespaces cache or etcd."""

    def __init__(self, storage: Store, cache: WatchCache | None, prefix: str) -> None:
        self.storage = storage
        self.cache = cache
        self.prefix = prefix

    async def get(self, name: str) -> Obj | None:
        key = self.prefix + name
        if self.cache is not None and self.cache.ready:
            obj = self.cache.get(key)
            if obj is not None:
                return obj
        try:
            return await self.storage.get(key)
        except storage_errors.NotFound:
            return None


class ResourceStore(DeletionMixin):
    """REST semantics for one resource over etcd and its watch cache."""

    def __init__(
        self,
        info: ResourceInfo,
        strategy: Strategy,
        storage: Store,
        cache: WatchCache | None,
        namespaces: NamespaceLookup | None,
    ) -> None:
        self.info = info
        self.strategy = strategy
        self.status_strategy = StatusStrategy(strategy)
        self.storage = storage
        self.cache = cache
        self.namespaces = namespaces
        #: strategic merge patch needs schema merge metadata, which only built-in kinds have
        self.supports_strategic_merge = True
        #: hands out and releases cluster-wide unique values (Service IPs and node ports)
        self.allocator = None
        self.admission = None  # an async admission step needing other objects (pods: PriorityAdmission)

    # --- helpers ----------------------------------------------------------------------------------

    def key(self, namespace: str | None, name: str) -> str:
        return self.info.key(namespace, name)

    def _error(self, err: storage_errors.StorageError, name: str = "") -> api.StatusError:
        return registry_errors.interpret(err, self.info, name)

    def predicate(self, opts: ListOptions) -> Callable[[Obj], bool] | None:
        labels = opts.label_selector if opts.label_selector and not opts.label_selector.empty else None
        fields = opts.field_selector if opts.field_selector and not opts.field_selector.empty else None
        if fields is not None:
            self._check_field_selector(fields)
        if labels is None and fields is None:
            return None
        field_values = self.strategy.field_values

        def matches(obj: Obj) -> bool:
            if labels is not None and not labels.matches((obj.get("metadata") or {}).get("labels")):
                return False
            return fields is None or fields.matches(field_values(obj))

        return matches

    def _check_field_selector(self, fields: FieldSelector) -> None:
        known = {"metadata.name", *self.strategy.selectable_fields}
        if self.info.namespaced:
            known.add("metadata.namespace")
        for name, _op, _value in fields.requirements:
            if name in known:
                continue
            if self.strategy.selectable_fields:  # kinds with their own field conversion say it this way
                raise api.bad_request(f"field label not supported: {name}")
            raise api.bad_request(f'"{name}" is not a known field selector: only '
                                  + ", ".join(f'"{k}"' for k in sorted(known)))

    # --- reads ------------------------------------------------------------------------------------

    async def get(self, namespace: str | None, name: str, resource_version: str = "") -> Obj:
        """A read from etcd, or from the cache when the client accepts any state not older than
        ``resource_version`` and the cache has it."""
        key = self.key(namespace, name)
        revision = parse_resource_version(resource_version)
        if resource_version and self.cache is not None and self.cache.ready and self.cache.revision >= revision:
            obj = self.cache.get(key)
            if obj is None:
                raise api.not_found(self.info.resource, name, self.info.group)
            return obj
        try:
            return await self.storage.get(key)
        except storage_errors.StorageError as err:
            raise self._error(err, name) from None

    async def list(self, namespace: str | None, opts: ListOptions) -> ListResult:
        """Lists with resourceVersion "0" (or an older one than the cache has) come from the cache;
        consistent lists, exact revisions and continuations read etcd at one revision."""
        predicate = self.predicate(opts)
        rv, match = opts.resource_version, opts.resource_version_match
        if match and match not in ("NotOlderThan", "Exact"):
            raise api.bad_request(f'resourceVersionMatch: Unsupported value: "{match}": supported values: '
                                  '"Exact", "NotOlderThan"')
        if match and not rv:
            raise api.bad_request("resourceVersionMatch is forbidden unless resourceVersion is provided")
        if opts.continue_token and rv and rv != "0":
            raise api.bad_request("specifying resource version is not allowed when using continue")
        revision = parse_resource_version(rv)
        cache = self.cache
        try:
            if cache is not None and rv and match != "Exact" and not opts.continue_token:
                await cache.wait_until_fresh(0)
                if cache.revision >= revision:
                    return cache.list(namespace, predicate, limit=opts.limit)
                if revision > await self.storage.current_revision():
                    raise storage_errors.TooLargeResourceVersion(revision, cache.revision)
            return await self.storage.list(
                self.info.list_prefix(namespace), revision=revision if match == "Exact" else 0,
                limit=opts.limit, continue_token=opts.continue_token, predicate=predicate,
            )
        except storage_errors.StorageError as err:
            raise self._error(err) from None

    async def watch(
        self,
        namespace: str | None,
        opts: ListOptions,
        *,
        allow_bookmarks: bool = False,
        send_initial_events: bool | None = None,
    ) -> AsyncIterator[Delivery]:
        """Events after ``opts.resource_version`` (with the current state first when it is "" or
        "0", or when ``send_initial_events`` asks for it)."""
        predicate = self.predicate(opts)
        rv = opts.resource_version
        if send_initial_events is not None:
            problems = []
            if opts.resource_version_match != "NotOlderThan":
                problems.append(api.forbidden(
                    "resourceVersionMatch", "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"))
            if not allow_bookmarks:
                problems.append(api.forbidden(
                    "allowWatchBookmarks", "sendInitialEvents requires setting allowWatchBookmarks to true"))
            if problems:
                raise api.invalid("ListOptions", "", problems, "meta.k8s.io")
        revision = parse_resource_version(rv)
        prefix = self.info.list_prefix(namespace)
        cache = self.cache
        try:
            if send_initial_events is False and rv == "":
                revision = await self.storage.current_revision()  # "from the most recent state on"
            if revision > (cache.revision if cache is not None else 0) and \
                    revision > await self.storage.current_revision():
                raise storage_errors.TooLargeResourceVersion(revision, cache.revision if cache else 0)
            if cache is None:
                return self._watch_storage(prefix, revision, predicate, initial=bool(
                    send_initial_events if send_initial_events is not None else revision == 0))
            await cache.wait_until_fresh(0)
            initial_items = None
            if send_initial_events and (rv == "" or revision > cache.revision):
                # a state at least as new as asked for: a consistent snapshot from etcd, then events
                snapshot = await self.storage.list(prefix, predicate=predicate)
                initial_items, revision = snapshot.items, snapshot.revision
            elif send_initial_events:
                revision = 0  # the cache's current state is new enough
            if revision and revision < cache.oldest:
                return self._watch_storage(prefix, revision, predicate, initial=False)
            return cache.watch(
                revision, namespace=namespace, predicate=predicate, allow_bookmarks=allow_bookmarks,
                send_initial_events=send_initial_events, initial_items=initial_items,
            )
        except storage_errors.StorageError as err:
            raise self._error(err) from None

    async def _watch_storage(self, prefix: str, revision: int, predicate, *, initial: bool):
        """A watch served by etcd directly; from revision 0 it starts with the current state."""
        if initial or revision == 0:
            snapshot = await self.storage.list(prefix, predicate=predicate)
            for obj in snapshot.items if initial else ():
                yield Delivery("ADDED", obj, int(obj["metadata"]["resourceVersion"]))
            revision = snapshot.revision
        async for delivery in watch_from_storage(self.storage, prefix, revision, predicate):
            yield delivery

    # --- create -----------------------------------------------------------------------------------

    async def create(self, namespace: str | None, obj: Obj, opts: WriteOptions) -> Obj:
        self._check_kind(obj)
        self._check_namespace_field(obj, namespace)
        self._apply_schema(obj, opts)
        meta = obj.setdefault("metadata", {})
        meta.pop("resourceVersion", None)
        if namespace:
            await self._check_namespace_usable(namespace)
        if self.admission is not None:
            await self.admission.admit(obj)
        generated = not meta.get("name") and bool(meta.get("generateName"))
        for attempt in range(GENERATE_NAME_ATTEMPTS):
            candidate = copy.deepcopy(obj) if generated else obj
            if generated:
                candidate["metadata"]["name"] = meta["generateName"] + "".join(
                    secrets.choice(GENERATE_NAME_CHARS) for _ in range(5))
            self._prepare_new(candidate)
            name = candidate["metadata"].get("name", "")
            reserved: list[str] = []
            try:
                reserved = await self._allocate(candidate, None, opts.dry_run)
                self._validate_create(candidate)
                if opts.dry_run:
                    await self._check_absent(namespace, name)
                    return candidate
                return await self.storage.create(self.key(namespace, name), candidate, lease=await self._lease())
            except BaseException as exc:
                clash = isinstance(exc, storage_errors.AlreadyExists)
                error = await self._abandon(reserved, exc, name)
                if not (clash and generated and attempt < GENERATE_NAME_ATTEMPTS - 1):
                    raise error from None
        raise AssertionError("unreachable")

    async def _check_absent(self, namespace: str | None, name: str) -> None:
        """A dry-run create must fail like the real one when the name is taken."""
        try:
            await self.storage.get(self.key(namespace, name))
        except storage_errors.NotFound:
            return
        raise storage_errors.AlreadyExists(self.key(namespace, name))

    def _prepare_new(self, obj: Obj) -> None:
        """default → system fields → prepare_for_create (validation follows allocation)."""
        self.strategy.default(obj)
        self._fill_system_fields(obj)
        self.strategy.prepare_for_create(obj)

    async def _allocate(self, new: Obj, old: Obj | None, dry_run: bool) -> list[str]:
        if self.allocator is None:
            return []
        return await self.allocator.allocate(new, dry_run=dry_run, old=old)

    async def _lease(self) -> int:
        """The etcd lease new writes attach to, for kinds whose objects expire (Events)."""
        if not self.strategy.ttl_seconds:
            return 0
        try:
            return await self.storage.lease_for(self.strategy.ttl_seconds)
        except storage_errors.StorageError as err:
            raise self._error(err) from None

    async def _release(self, reserved: list[str]) -> None:
        if reserved and self.allocator is not None:
            await self.allocator.release_keys(reserved)

    async def _release_quietly(self, keys: list[str]) -> None:
        """After a successful write, a failed release only leaks a reservation: log, don't fail."""
        try:
            await self._release(keys)
        except storage_errors.StorageError as err:
            log.warning("could not release %s for %s: %s", keys, self.info.resource, err)

    async def _abandon(self, reserved: list[str], exc: BaseException, name: str) -> BaseException:
        """A write failed: give back what was reserved for it; the exception to raise (storage
        errors become Status errors)."""
        await self._release_quietly(reserved)
        return self._error(exc, name) if isinstance(exc, storage_errors.StorageError) else exc

    def _validate_create(self, obj: Obj) -> None:
        errs = validation.validate_object_meta(
            obj.get("metadata") or {}, namespaced=self.info.namespaced,
            name_validator=_NAME_VALIDATORS[self.strategy.name_rule],
        )
        errs += self.strategy.validate(obj)
        if errs:
            raise api.invalid(self.info.kind, _name_of(obj), errs, self.info.group)

    def _fill_system_fields(self, obj: Obj) -> None:
        meta = obj["metadata"]
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = now_rfc3339()
        for system_field in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields"):
            meta.pop(system_field, None)
        if self.strategy.tracks_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)

    async def _check_namespace_usable(self, namespace: str) -> None:
        if self.namespaces is None:
            return
        try:
            ns = await self.namespaces.get(namespace)
        except storage_errors.StorageError as err:
            raise self._error(err) from None
        if ns is None:
            raise api.not_found("namespaces", namespace)
        terminating = (ns.get("status") or {}).get("phase") == "Terminating"
        if (ns.get("metadata") or {}).get("deletionTimestamp") or terminating:
            message = f"unable to create new content in namespace {namespace} because it is being terminated"
            error = api.forbidden_error(self.info.resource, "", message, self.info.group)
            error.details["causes"] = [{"reason": "NamespaceTerminating", "message": message,
                                        "field": "metadata.namespace"}]
            raise error

    def _check_kind(self, obj: Obj) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind is None and api_version is None:
            rest = dict(obj)
            obj.clear()
            obj.update(apiVersion=self.info.api_version, kind=self.info.kind, **rest)
            return
        if kind != self.info.kind or api_version != self.info.api_version:
            raise api.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({self.info.api_version})" if api_version != self.info.api_version else
                f"the kind in the data ({kind}) does not match the expected kind ({self.info.kind})"
            )

    def _check_namespace_field(self, obj: Obj, namespace: str | None) -> None:
        meta = obj.get("metadata")
        if meta is None or not isinstance(meta, dict):
            if meta is not None:
                raise api.bad_request("metadata must be an object")
            meta = obj["metadata"] = {}
        if not self.info.namespaced:
            meta.pop("namespace", None)  # cleared, as kube-apiserver does for cluster-scoped kinds
            return
        given = meta.get("namespace")
        if given and given != namespace:
            raise api.bad_request("the namespace of the provided object does not match the namespace "
                                  "sent on the request")
        meta["namespace"] = namespace

    def _apply_schema(self, obj: Obj, opts: WriteOptions) -> None:
        """Type errors → 400, unknown fields per fieldValidation, unknown fields always pruned."""
        gvk = (self.info.group, self.info.version, self.info.kind)
        unknown = schema.unknown_fields(obj, gvk)
        if unknown:
            schema.report_field_problems(schema.strict_problems(unknown, []), opts.field_validation, opts.warnings)
            schema.prune_unknown(obj, gvk)
        errs = schema.validate_object(obj, gvk)
        if not errs:
            return
        required = [e for e in errs if e.type == api.REQUIRED]
        if len(required) == len(errs):
            raise api.invalid(self.info.kind, _name_of(obj), required, self.info.group)
        first = next(e for e in errs if e.type != api.REQUIRED)
        raise api.bad_request(
            f'{self.info.kind} in version "{self.info.version}" cannot be handled as a {self.info.kind}: {first}')

    # --- update -----------------------------------------------------------------------------------

    async def update(
        self,
        namespace: str | None,
        name: str,
        transform: Transform,
        opts: WriteOptions,
        *,
        subresource: str = "",
        allow_create: bool = False,
    ) -> tuple[Obj, bool]:
        """Apply ``transform(current)`` → desired object, as an update (or a create when allowed).

        ``transform`` is called again after a conflict; it receives a private copy. The desired
        object's ``metadata.resourceVersion``, when set, must equal the current one (409 otherwise).
        Returns the stored object and whether it was created.
        """
        key = self.key(namespace, name)
        created = False
        dry_run_result: list[Obj] = []
        reserved: list[str] = []
        previous: list[Obj] = []
        warnings_before = len(opts.warnings)

        async def try_update(current: Obj | None) -> Obj:
            nonlocal created
            # a retry after a conflict starts afresh: nothing kept from the attempt that lost
            created = False
            del opts.warnings[warnings_before:]
            await self._release(reserved)
            reserved.clear()
            desired = transform(copy.deepcopy(current) if current is not None else None)
            if hasattr(desired, "__await__"):
                desired = await desired
            self._check_kind(desired)
            self._check_namespace_field(desired, namespace)
            meta = desired["metadata"]
            if meta.get("name", name) != name:
                raise api.bad_request(
                    f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
            meta["name"] = name
            if current is None:
                if subresource or not (self.strategy.allow_create_on_update or allow_create):
                    raise api.not_found(self.info.resource, name, self.info.group)
                created = True
                if meta.get("resourceVersion"):
                    raise api.conflict(self.info.resource, name, api.OBJECT_MODIFIED, self.info.group)
                self._apply_schema(desired, opts)
                if namespace:
                    await self._check_namespace_usable(namespace)
                self._prepare_new(desired)
                reserved.extend(await self._allocate(desired, None, opts.dry_run))
                self._validate_create(desired)
            else:
                previous[:] = [current]
                self._prepare_update(desired, current, opts, subresource)
                if not subresource:
                    reserved.extend(await self._allocate(desired, current, opts.dry_run))
            if opts.dry_run:
                dry_run_result.append(desired)
                raise _DryRunDone
            return desired

        try:
            stored = await self.storage.guaranteed_update(key, try_update, ignore_not_found=True,
                                                          lease=await self._lease())
        except _DryRunDone:
            return dry_run_result[0], created
        except BaseException as exc:
            raise await self._abandon(reserved, exc, name) from None
        if previous and self.allocator is not None:
            await self._release_quietly(self.allocator.keys_unused(stored, previous[0]))
        if not created and self._should_delete_now(stored):
            await self._finish_deletion(namespace, name, stored)
        return stored, created

    def _prepare_update(self, desired: Obj, current: Obj, opts: WriteOptions, subresource: str) -> None:
        meta, old_meta = desired["metadata"], current["metadata"]
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv and wanted_rv != old_meta.get("resourceVersion"):
            raise api.conflict(self.info.resource, meta["name"], api.OBJECT_MODIFIED, self.info.group)
        wanted_uid = meta.get("uid")
        if wanted_uid and wanted_uid != old_meta.get("uid"):  # a uid in the body is a precondition
            raise api.conflict(self.info.resource, meta["name"], f"Precondition failed: UID in precondition: "
                               f"{wanted_uid}, UID in object meta: {old_meta.get('uid', '')}", self.info.group)
        self._apply_schema(desired, opts)
        if subresource == "status":
            self.status_strategy.prepare_for_update(desired, current)
            strategy_errors = self.status_strategy.validate_update(desired, current)
        elif subresource:
            getattr(self.strategy, f"prepare_for_{subresource}")(desired, current)
            strategy_errors = getattr(self.strategy, f"validate_{subresource}")(desired, current)
        else:
            self.strategy.default(desired)
            self.strategy.prepare_for_update(desired, current)
            strategy_errors = []
        # system fields never change through an update
        for system_field in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
            if system_field in old_meta:
                meta[system_field] = old_meta[system_field]
            else:
                meta.pop(system_field, None)
        meta.pop("selfLink", None)
        meta["resourceVersion"] = old_meta.get("resourceVersion")
        if self.strategy.tracks_generation:
            generation = old_meta.get("generation", 1)
            counted = not subresource or subresource in getattr(self.strategy, "generation_subresources", ())
            if counted and self.strategy.spec_changed(desired, current):
                generation += 1
            meta["generation"] = generation
        errs = validation.validate_object_meta_update(meta, old_meta)
        if not subresource:
            errs += validation.validate_object_meta(
                meta, namespaced=self.info.namespaced, name_validator=_NAME_VALIDATORS[self.strategy.name_rule])
            errs += self.strategy.validate_update(desired, current)
        errs += strategy_errors
        if errs:
            raise api.invalid(self.info.kind, meta["name"], _dedupe(errs), self.info.group)

class _DryRunDone(Exception):
    """Raised inside a dry-run update to stop before the write."""


def _name_of(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return meta.get("name") or meta.get("generateName") or ""


def _dedupe(errs: list[api.FieldError]) -> list[api.FieldError]:
    seen: set[str] = set()
    out = []
    for err in errs:
        text = str(err)
        if text not in seen:
            seen.add(text)
            out.append(err)
    return out


def new_uid() -> str:
    """A random (version 4) UUID; from the process PRNG, seeded from the OS, which is much cheaper
    than a system call per object and unique enough for object identity."""
    bits = random.getrandbits(128)
    bits = (bits & ~(0xF000 << 64)) | (0x4000 << 64)  # version 4
    bits = (bits & ~(0xC000 << 48)) | (0x8000 << 48)  # RFC 4122 variant
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def parse_resource_version(value: str) -> int:
    if not value:
        return 0
    try:
        revision = int(value)
    except ValueError:
        raise api.bad_request(f'invalid resource version "{value}"') from None
    if revision < 0:
        raise api.bad_request(f'invalid resource version "{value}"')
    return revision


_NAME_VALIDATORS = {
    "subdomain": validation.is_dns1123_subdomain,
    "label": validation.is_dns1123_label,
    "dns1035": validation.is_dns1035_label,
    "path": validation.is_valid_path_segment_name,
}
