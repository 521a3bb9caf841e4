"""Event strategies: the lenient core/v1 Event and the strict events.k8s.io/v1 Event.

Kubernetes validates v1 Events only loosely ("legacy" validation, kept for old clients): the
involved object's namespace must match the event's, and events that carry an ``eventTime`` (new
style) need reportingComponent/reportingInstance/action/reason within length limits. The
events.k8s.io/v1 API adds strict rules on create (eventTime required, type Normal/Warning, the
deprecated fields unset) and immutability on update. Both allow create-on-update, as Kubernetes'
event strategy does (recorders PUT/PATCH series updates).

Field selectors match Kubernetes' event fields; events.k8s.io names map onto them (``regarding.*``
for ``involvedObject.*``, ``reportingController`` for ``reportingComponent``).
"""

from __future__ import annotations

from typing import Any

from apiserver.registry.builtin import register
from apiserver.registry.core.common import as_dict, as_str, is_int, meta_of
from apiserver.registry.strategy import Obj, Strategy
from machinery.errors import FieldError, invalid_value, required
from machinery.validation import is_dns1123_subdomain, is_qualified_name

REASON_LIMIT = 128
ACTION_LIMIT = 128
INSTANCE_LIMIT = 128
NOTE_LIMIT = 1024
EVENT_TYPES = ("Normal", "Warning")
OBJECT_REF_FIELDS = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")


def _legacy_errors(namespace: str, ref: dict[str, Any], event_time: Any, fields: dict[str, Any],
                   controller_field: str) -> list[FieldError]:
    """legacyValidateEvent over a neutral view: reason, action, message, controller, instance."""
    errs: list[FieldError] = []
    ref_ns = as_str(ref.get("namespace"))
    if not event_time:
        mismatch = namespace not in ("", "default") if not ref_ns else namespace != ref_ns
    else:
        mismatch = not ref_ns and namespace not in ("default", "kube-system")
    if mismatch:
        errs.append(invalid_value("involvedObject.namespace", ref_ns, "does not match event.namespace"))
    if event_time:
        controller = as_str(fields["controller"])
        if not controller:
            errs.append(required(controller_field))
        errs += [invalid_value(controller_field, controller, m) for m in is_qualified_name(controller)]
        for name, limit in (("reportingInstance", INSTANCE_LIMIT), ("action", ACTION_LIMIT),
                            ("reason", REASON_LIMIT)):
            value = as_str(fields[name])
            if not value:
                errs.append(required(name))
            if len(value) > limit:
                errs.append(invalid_value(name, "", f"can have at most {limit} characters"))
        if len(as_str(fields["message"])) > NOTE_LIMIT:
            errs.append(invalid_value("message", "", f"can have at most {NOTE_LIMIT} characters"))
    errs += [invalid_value("namespace", namespace, m) for m in is_dns1123_subdomain(namespace)]
    return errs


def _object_ref_fields(prefix: str, ref: dict[str, Any]) -> dict[str, str]:
    return {f"{prefix}.{name}": as_str(ref.get(name)) for name in OBJECT_REF_FIELDS}


#: kube-apiserver's default --event-ttl
EVENT_TTL_SECONDS = 3600


@register("", "events")
class EventStrategy(Strategy):
    """core/v1 Event: legacy validation only; names need only be valid path segments."""

    ttl_seconds = EVENT_TTL_SECONDS
    name_rule = "path"
    allow_create_on_update = True
    selectable_fields = (
        *(f"involvedObject.{name}" for name in OBJECT_REF_FIELDS),
        "reason", "reportingComponent", "source", "type",
    )

    def validate(self, obj: Obj) -> list[FieldError]:
        fields = {"controller": obj.get("reportingComponent"), "reportingInstance": obj.get("reportingInstance"),
                  "action": obj.get("action"), "reason": obj.get("reason"), "message": obj.get("message")}
        return _legacy_errors(as_str(meta_of(obj).get("namespace")), as_dict(obj.get("involvedObject")),
                              obj.get("eventTime"), fields, "reportingComponent")

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new)

    def field_values(self, obj: Obj) -> dict[str, str]:
        meta = meta_of(obj)
        fields = {"metadata.name": as_str(meta.get("name")), "metadata.namespace": as_str(meta.get("namespace"))}
        fields.update(_object_ref_fields("involvedObject", as_dict(obj.get("involvedObject"))))
        source = as_str(as_dict(obj.get("source")).get("component")) or as_str(obj.get("reportingComponent"))
        fields.update({"reason": as_str(obj.get("reason")), "reportingComponent": as_str(obj.get("reportingComponent")),
                       "source": source, "type": as_str(obj.get("type"))})
        return fields


@register("events.k8s.io", "events")
class EventsV1Strategy(Strategy):
    """events.k8s.io/v1 Event: legacy rules plus strict create and immutable update."""

    ttl_seconds = EVENT_TTL_SECONDS
    allow_create_on_update = True
    selectable_fields = (
        *(f"regarding.{name}" for name in OBJECT_REF_FIELDS),
        "reason", "reportingController", "type",
    )

    def _legacy(self, obj: Obj) -> list[FieldError]:
        fields = {"controller": obj.get("reportingController"), "reportingInstance": obj.get("reportingInstance"),
                  "action": obj.get("action"), "reason": obj.get("reason"), "message": obj.get("note")}
        return _legacy_errors(as_str(meta_of(obj).get("namespace")), as_dict(obj.get("regarding")),
                              obj.get("eventTime"), fields, "reportingController")

    def validate(self, obj: Obj) -> list[FieldError]:
        errs = self._legacy(obj) + _series_errors(obj)
        if not obj.get("eventTime"):
            errs.append(required("eventTime"))
        if obj.get("type") not in EVENT_TYPES:
            errs.append(invalid_value("type", "", f"has invalid value: {as_str(obj.get('type'))}"))
        for name, path in (("deprecatedFirstTimestamp", "firstTimestamp"), ("deprecatedLastTimestamp", "lastTimestamp"),
                           ("deprecatedCount", "count")):
            if obj.get(name):
                errs.append(invalid_value(path, "", "needs to be unset"))
        source = as_dict(obj.get("deprecatedSource"))
        if source.get("component") or source.get("host"):
            errs.append(invalid_value("source", "", "needs to be unset"))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self._legacy(new)
        if new.get("series") != old.get("series"):
            errs += _series_errors(new)
        for name, path in (("regarding", "involvedObject"), ("reason", "reason"), ("note", "message"),
                           ("deprecatedSource", "source"), ("deprecatedFirstTimestamp", "firstTimestamp"),
                           ("deprecatedLastTimestamp", "lastTimestamp"), ("deprecatedCount", "count"),
                           ("type", "type"), ("action", "action"), ("reportingController", "reportingController"),
                           ("reportingInstance", "reportingInstance"), ("related", "related"),
                           ("eventTime", "eventTime")):
            if (new.get(name) or None) != (old.get(name) or None):
                errs.append(invalid_value(path, _shown(new.get(name)), "field is immutable"))
        return errs

    def field_values(self, obj: Obj) -> dict[str, str]:
        meta = meta_of(obj)
        fields = {"metadata.name": as_str(meta.get("name")), "metadata.namespace": as_str(meta.get("namespace"))}
        fields.update(_object_ref_fields("regarding", as_dict(obj.get("regarding"))))
        fields.update({"reason": as_str(obj.get("reason")), "type": as_str(obj.get("type")),
                       "reportingController": as_str(obj.get("reportingController"))})
        return fields


def _shown(value: Any) -> Any:
    return value if isinstance(value, str | int) or value is None else str(value)


def _series_errors(obj: Obj) -> list[FieldError]:
    series = obj.get("series")
    if not isinstance(series, dict):
        return []
    errs: list[FieldError] = []
    count = series.get("count")
    if not is_int(count) or count < 2:
        errs.append(invalid_value("series.count", "", "should be at least 2"))
    if not series.get("lastObservedTime"):
        errs.append(required("series.lastObservedTime"))
    return errs
