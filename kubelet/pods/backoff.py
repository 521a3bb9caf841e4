"""Per-key exponential backoff for restarting crashed containers and retrying image pulls.

The kubelet's rule: the first restart waits 10 s, each further one twice as long up to 5 minutes; a key
that has not needed a backoff for twice the maximum (10 minutes of good running) starts again at 10 s.
Whether a container is "in backoff" is judged from when it last finished, so a container that ran for a
long time before crashing restarts at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from machinery.clock import REAL_CLOCK, Clock

INITIAL = 10.0
MAXIMUM = 300.0


@dataclass
class _Entry:
    delay: float
    updated: float  # monotonic time of the last next()


class Backoff:
    def __init__(self, *, initial: float = INITIAL, maximum: float = MAXIMUM, clock: Clock = REAL_CLOCK) -> None:
        self.initial = initial
        self.maximum = maximum
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def delay(self, key: str) -> float:
        """The current backoff for ``key`` (0 when it has none)."""
        entry = self._live(key)
        return entry.delay if entry else 0.0

    def next(self, key: str) -> float:
        """Record one more failure-driven retry of ``key``; returns the delay now in force."""
        now = self.clock.monotonic()
        entry = self._live(key)
        if entry is None:
            entry = self._entries[key] = _Entry(self.initial, now)
        else:
            entry.delay = min(entry.delay * 2, self.maximum)
            entry.updated = now
        return entry.delay

    def remaining(self, key: str, since: float) -> float:
        """Seconds ``key`` must still wait when its backoff window began at ``since`` (wall-clock epoch
        seconds, e.g. when the container finished). 0 when it may go now."""
        entry = self._live(key)
        if entry is None:
            return 0.0
        return max(0.0, since + entry.delay - self.clock.now().timestamp())

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget_prefix(self, prefix: str) -> None:
        """Drop every key starting with ``prefix`` (a removed pod's containers)."""
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]

    def _live(self, key: str) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and self.clock.monotonic() - entry.updated > 2 * self.maximum:
            del self._entries[key]
            return None
        return entry
