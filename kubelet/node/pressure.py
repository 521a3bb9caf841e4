"""Eviction signals → the node's MemoryPressure, DiskPressure and PIDPressure conditions.

The kubelet's eviction manager compares signals (memory.available, nodefs.available, imagefs.available,
nodefs/imagefs.inodesFree, pid.available) with its hard thresholds and reports the matching node
condition True while any of them is crossed — and, so the scheduler does not flap, for the
``pressure_transition_period`` (5 minutes) after the last time it was. Here only the reporting half
exists: kubemini does not evict pods (a simplification; the thresholds are the kubelet's defaults, with
pid.available < 10% as our own default — the kubelet has none for PIDs).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kubelet.node.host import FsStats, MemoryStats, PidStats
from machinery.clock import Clock

MEMORY_PRESSURE = "MemoryPressure"
DISK_PRESSURE = "DiskPressure"
PID_PRESSURE = "PIDPressure"

MEMORY_AVAILABLE_MIN = 100 * 1024 * 1024  # memory.available < 100Mi
NODEFS_AVAILABLE_MIN = 0.10  # nodefs.available < 10%
NODEFS_INODES_FREE_MIN = 0.05  # nodefs.inodesFree < 5%
IMAGEFS_AVAILABLE_MIN = 0.15  # imagefs.available < 15%
IMAGEFS_INODES_FREE_MIN = 0.05  # imagefs.inodesFree < 5%
PID_AVAILABLE_MIN = 0.10  # pid.available < 10% of pid_max


@dataclass(frozen=True)
class Signals:
    """One observation of the machine; ``None`` means the signal could not be measured (never pressure)."""

    memory: MemoryStats | None = None
    nodefs: FsStats | None = None  # the filesystem holding the kubelet's root dir
    imagefs: FsStats | None = None  # the runtime's image filesystem (CRI ImageFsInfo)
    pids: PidStats | None = None


def crossed_thresholds(signals: Signals) -> dict[str, list[str]]:
    """Condition type → the signals past their threshold (e.g. ``{"DiskPressure": ["imagefs.available"]}``)."""
    crossed: dict[str, list[str]] = {}
    if signals.memory is not None and signals.memory.available_bytes < MEMORY_AVAILABLE_MIN:
        crossed.setdefault(MEMORY_PRESSURE, []).append("memory.available")
    for name, fs, space_min, inodes_min in (("nodefs", signals.nodefs, NODEFS_AVAILABLE_MIN, NODEFS_INODES_FREE_MIN),
                                            ("imagefs", signals.imagefs, IMAGEFS_AVAILABLE_MIN,
                                             IMAGEFS_INODES_FREE_MIN)):
        if fs is None:
            continue
        if _below(fs.available_bytes, fs.capacity_bytes, space_min):
            crossed.setdefault(DISK_PRESSURE, []).append(f"{name}.available")
        if _below(fs.inodes_free, fs.inodes, inodes_min):
            crossed.setdefault(DISK_PRESSURE, []).append(f"{name}.inodesFree")
    if signals.pids is not None and _below(signals.pids.max - signals.pids.in_use, signals.pids.max,
                                           PID_AVAILABLE_MIN):
        crossed.setdefault(PID_PRESSURE, []).append("pid.available")
    return crossed


def _below(available: int, total: int, fraction: float) -> bool:
    """Whether ``available`` is under ``fraction`` of ``total`` (an unknown total — 0 — is never pressure)."""
    return total > 0 and available < total * fraction


class PressureTracker:
    """Reports a pressure condition from when its signal is first crossed until ``transition_period`` after
    it was last seen crossed (the kubelet's eviction-pressure-transition-period)."""

    def __init__(self, clock: Clock, transition_period: float) -> None:
        self.clock = clock
        self.transition_period = transition_period
        self._last_seen: dict[str, float] = {}

    def observe(self, under_pressure: Iterable[str]) -> frozenset[str]:
        """Record the condition types crossed now; return those to report True."""
        now = self.clock.monotonic()
        for condition in under_pressure:
            self._last_seen[condition] = now
        return frozenset(c for c, seen in self._last_seen.items() if now - seen < self.transition_period
                         or seen == now)
