"""The per-resource behaviour hooks the generic store calls, in a fixed order.

A resource's strategy says how to default, prepare, validate and print its objects; everything
else (storage, watch, deletion, preconditions) is generic. The order, fixed in
:mod:`apiserver.registry.generic`:

create:  default → prepare_for_create → system fields → validate (+ object meta) → store
update:  default → prepare_for_update(new, old) → system fields kept → validate_update → store
status:  the status strategy keeps everything but ``status`` (and metadata labels/annotations)

other subresources (e.g. pods/binding, namespaces/finalize) call ``prepare_for_<name>(new, old)``
and ``validate_<name>(new, old)`` on the strategy instead of the main update hooks.

Deletion: ``deletion_grace_period(obj, requested)`` makes deletion graceful (pods);
``on_delete_mark(obj)`` runs when ``deletionTimestamp`` is set; ``blocks_deletion(obj)`` keeps a
marked object until it returns False (namespaces keep ``spec.finalizers``).

Hooks may mutate the object they are given (a private copy); ``validate*`` must not.
"""

from __future__ import annotations

from typing import Any

from apiserver.resources import ResourceInfo
from machinery.errors import FieldError

Obj = dict[str, Any]


class Strategy:
    """Defaults for any resource; built-in kinds subclass it in their own module."""

    #: metadata.generation is set to 1 on create and bumped when anything but metadata/status changes
    tracks_generation: bool = False
    #: extra field selectors besides metadata.name and metadata.namespace
    selectable_fields: tuple[str, ...] = ()
    #: PUT on a missing object creates it
    allow_create_on_update: bool = False
    #: objects expire this many seconds after their last write (0: never); Events use one hour
    ttl_seconds: int = 0
    #: name rule: "subdomain" (DNS-1123 subdomain), "label" (DNS-1123 label), "dns1035", "path" (any
    #: name that is a valid path segment)
    name_rule: str = "subdomain"

    def __init__(self, info: ResourceInfo) -> None:
        self.info = info
        self.has_status = info.subresource("status") is not None

    @property
    def namespaced(self) -> bool:
        return self.info.namespaced

    # --- hooks ------------------------------------------------------------------------------------

    def default(self, obj: Obj) -> None:
        """Fill in defaults Kubernetes sets in code (the schema has no defaults)."""

    def prepare_for_create(self, obj: Obj) -> None:
        if self.has_status:
            obj.pop("status", None)
            self.initial_status(obj)

    def initial_status(self, obj: Obj) -> None:
        """Status a new object starts with (e.g. a Pod starts Pending)."""

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        if self.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)

    def validate(self, obj: Obj) -> list[FieldError]:
        """Semantic checks the schema cannot express. Must not mutate ``obj``."""
        return []

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        """Checks on an update, e.g. immutable fields. Must not mutate either object."""
        return self.validate(new)

    def field_values(self, obj: Obj) -> dict[str, str]:
        """The values field selectors compare against."""
        meta = obj.get("metadata") or {}
        fields = {"metadata.name": meta.get("name", "")}
        if self.namespaced:
            fields["metadata.namespace"] = meta.get("namespace", "")
        for path in self.selectable_fields:
            fields[path] = _field_string(obj, path)
        return fields

    def blocks_deletion(self, obj: Obj) -> bool:
        """Whether an object marked for deletion must stay (beyond metadata.finalizers)."""
        return False

    def on_delete_mark(self, obj: Obj) -> None:
        """Called on the private copy when ``deletionTimestamp`` is being set."""

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        """Whether the update changes what metadata.generation counts (all but metadata and status)."""
        keys = (set(new) | set(old)) - {"metadata", "status", "apiVersion", "kind"}
        return any(new.get(k) != old.get(k) for k in keys)


class StatusStrategy:
    """The /status subresource: only ``status`` (and labels/annotations) may change."""

    def __init__(self, main: Strategy) -> None:
        self.main = main

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        status = new.get("status")
        meta = new.get("metadata") or {}
        kept_meta = dict(old.get("metadata") or {})
        for field in ("labels", "annotations"):
            if field in meta:
                kept_meta[field] = meta[field]
            else:
                kept_meta.pop(field, None)
        new.clear()
        new.update(old)
        new["metadata"] = kept_meta
        if status is None:
            new.pop("status", None)
        else:
            new["status"] = status
        hook = getattr(self.main, "prepare_for_status_update", None)
        if hook is not None:
            hook(new, old)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        validate_status = getattr(self.main, "validate_status_update", None)
        return validate_status(new, old) if validate_status else []


def _field_string(obj: Obj, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return ""
        value = value.get(part)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
