"""The vocabulary of the prober: probe kinds, probe results and a probe's settings with Kubernetes' defaults.

Kept apart from the workers so that the handlers (shared with lifecycle hooks) and the kubelet's sync loop can
name results without importing the machinery that produces them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass


class Result(enum.Enum):
    """The outcome of one probe, and the published state of a probe worker."""

    SUCCESS = "Success"
    FAILURE = "Failure"
    UNKNOWN = "Unknown"  # the probe could not be run (runtime error, bad settings); the worker keeps its result


class ProbeKind(enum.Enum):
    LIVENESS = "Liveness"
    READINESS = "Readiness"
    STARTUP = "Startup"

    @property
    def field(self) -> str:
        """The container spec field holding this kind's probe (``livenessProbe`` ...)."""
        return self.value[0].lower() + self.value[1:] + "Probe"

    @property
    def initial(self) -> Result:
        """What a worker reports for a fresh container before any probe has counted.

        Readiness starts failed (a pod is not ready until proven), liveness starts healthy, startup starts
        UNKNOWN: "not started yet", distinct from FAILURE, which means "failed past its threshold: restart".
        """
        return {ProbeKind.READINESS: Result.FAILURE, ProbeKind.LIVENESS: Result.SUCCESS,
                ProbeKind.STARTUP: Result.UNKNOWN}[self]


HANDLER_FIELDS = ("exec", "httpGet", "tcpSocket", "grpc")


@dataclass(frozen=True)
class ProbeSpec:
    """A probe's settings (seconds and counts) with the API's defaults filled in; ``action`` is the probe dict."""

    action: Mapping
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def from_probe(cls, probe: Mapping, kind: ProbeKind) -> ProbeSpec:
        """Read ``probe`` (a container's ``*Probe`` dict). Values the API would reject are clamped to their
        minimum rather than raised: the API server validates pods, this only must never crash a worker."""
        if not isinstance(probe, Mapping):
            raise ValueError(f"{kind.field} must be an object, not {type(probe).__name__}")
        success = _count(probe, "successThreshold", 1)
        if kind is not ProbeKind.READINESS:
            success = 1  # the API requires 1 for liveness and startup probes
        return cls(action=probe, initial_delay=float(_count(probe, "initialDelaySeconds", 0, minimum=0)),
                   period=float(_count(probe, "periodSeconds", 10)), timeout=float(_count(probe, "timeoutSeconds", 1)),
                   success_threshold=success, failure_threshold=_count(probe, "failureThreshold", 3))


def _count(probe: Mapping, name: str, default: int, *, minimum: int = 1) -> int:
    value = probe.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"probe field {name} must be an integer, not {value!r}")
    return max(minimum, int(value))
