"""``kubectl get events`` columns for both Event APIs (core/v1 and events.k8s.io/v1).

The two APIs store the same facts under different field names (``involvedObject``/``regarding``,
``message``/``note``, ``firstTimestamp``/``deprecatedFirstTimestamp``); both print the same columns
through one cell function, with series counts and ages worked out as kube-apiserver does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from apiserver.registry.humanize import since
from apiserver.registry.printers.base import (
    NAME_DOC,
    Column,
    Printer,
    col,
    int_or_zero,
    name_cell,
    wide,
)

EVENT_COLUMNS = [
    col("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
    col("Type", "Type of this event (Normal, Warning), new types could be added in the future"),
    col("Reason", "This should be a short, machine understandable string that gives the reason for "
                  "the transition into the object's current status."),
    col("Object", "The object that this event is about."),
    wide("Subobject", "The field of the object the event is about, e.g. spec.containers{name}."),
    wide("Source", "The component reporting this event."),
    col("Message", "A human-readable description of the status of this operation."),
    wide("First Seen", "The time at which the event was first recorded."),
    wide("Count", "The number of times this event has occurred."),
    Column("Name", "string", "name", NAME_DOC, 1),
]


def _event_cells(ev: dict, now: datetime, *, regarding: dict, source: dict, first: Any, last: Any,
                 count: Any, reporting_controller: str, message: str) -> list:
    first_seen = since(first, now) if first else since(ev.get("eventTime"), now)
    last_seen = since(last, now) if last else first_seen
    series = ev.get("series")
    if series:
        last_seen = since(series.get("lastObservedTime"), now)
        count = int_or_zero(series.get("count"))
    else:
        count = int_or_zero(count) or 1  # singleton events carry no count in the new API
    kind = (regarding.get("kind") or "").lower()
    obj_name = regarding.get("name") or ""
    target = f"{kind}/{obj_name}" if obj_name else kind
    component = source.get("component") or reporting_controller or ""
    instance = source.get("host") or ev.get("reportingInstance") or ""
    source_cell = f"{component}, {instance}" if instance else component
    return [
        last_seen, ev.get("type", ""), ev.get("reason", ""), target, regarding.get("fieldPath", ""),
        source_cell, message.strip(), first_seen, count, name_cell(ev),
    ]


def _event_row(ev: dict, now: datetime) -> list:
    return _event_cells(
        ev, now, regarding=ev.get("involvedObject") or {}, source=ev.get("source") or {},
        first=ev.get("firstTimestamp"), last=ev.get("lastTimestamp"), count=ev.get("count"),
        reporting_controller=ev.get("reportingComponent") or "", message=ev.get("message") or "",
    )


def _events_v1_row(ev: dict, now: datetime) -> list:
    """events.k8s.io/v1 names the same fields differently (``regarding``, ``note``, ``deprecated*``)."""
    return _event_cells(
        ev, now, regarding=ev.get("regarding") or {}, source=ev.get("deprecatedSource") or {},
        first=ev.get("deprecatedFirstTimestamp"), last=ev.get("deprecatedLastTimestamp"),
        count=ev.get("deprecatedCount"), reporting_controller=ev.get("reportingController") or "",
        message=ev.get("note") or "",
    )


PRINTERS = {
    ("", "Event"): Printer(EVENT_COLUMNS, _event_row),
    ("events.k8s.io", "Event"): Printer(EVENT_COLUMNS, _events_v1_row),
}
