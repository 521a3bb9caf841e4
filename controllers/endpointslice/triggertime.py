"""The ``endpoints.kubernetes.io/last-change-trigger-time`` annotation: when the change happened that
an Endpoints or EndpointSlice write reflects.

Kubernetes' TriggerTimeTracker remembers, per Service, the trigger time of each pod (its Ready
condition's lastTransitionTime) and of the Service (its creationTimestamp) as of the last sync. A
sync reports the earliest trigger time that moved since then — the oldest change not yet
published — so the network programming latency SLI can be measured from it. The first sync of a
Service reports nothing (there is no "since"). Not safe for two concurrent syncs of one Service,
which the work queue rules out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controllers.podutil import ready_condition
from machinery.meta import name_of, parse_rfc3339


@dataclass
class _ServiceState:
    pods: dict[str, datetime] = field(default_factory=dict)  # pod name -> trigger time at the last sync
    service: datetime | None = None


class TriggerTimeTracker:
    def __init__(self) -> None:
        self._states: dict[str, _ServiceState] = {}

    def compute(self, key: str, service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> datetime | None:
        """The earliest trigger time that changed since the last call for ``key`` (None: nothing, or first call)."""
        previous = self._states.get(key)
        last = previous or _ServiceState()
        state = _ServiceState()
        earliest: datetime | None = None
        for pod in pods:
            moment = pod_trigger_time(pod)
            if moment is None:
                continue
            state.pods[name_of(pod)] = moment
            before = last.pods.get(name_of(pod))
            if before is None or moment > before:
                earliest = moment if earliest is None else min(earliest, moment)
        state.service = service_trigger_time(service)
        if state.service is not None and (last.service is None or state.service > last.service):
            earliest = state.service if earliest is None else min(earliest, state.service)
        self._states[key] = state
        return earliest if previous is not None else None

    def forget(self, key: str) -> None:
        self._states.pop(key, None)


def pod_trigger_time(pod: Mapping[str, Any]) -> datetime | None:
    cond = ready_condition(pod)
    return _parse((cond or {}).get("lastTransitionTime"))


def service_trigger_time(service: Mapping[str, Any]) -> datetime | None:
    return _parse((service.get("metadata") or {}).get("creationTimestamp"))


def _parse(stamp: Any) -> datetime | None:
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return parse_rfc3339(stamp)
    except ValueError:
        return None


def format_trigger_time(moment: datetime) -> str:
    """Go's time.RFC3339Nano in UTC: fractional seconds only when present, trailing zeros trimmed."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + "Z"
