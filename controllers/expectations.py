"""Controller expectations: never act twice on a cache that has not caught up with our own writes.

After a ReplicaSet controller creates 5 pods, its pod cache shows them only when the watch
delivers them. Reconciling in between would count too few pods and create 5 more. So before
acting, a controller records how many creations and deletions it expects to *observe*; informer
handlers count them down; ``satisfied(key)`` is true once all were observed — or after a timeout
(5 minutes, as in Kubernetes) in case an event was missed, so a controller is never stuck forever.
Deletions are tracked by pod key, so a pod deleted by someone else is not counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from machinery.clock import REAL_CLOCK, Clock

EXPECTATIONS_TIMEOUT = 300.0


@dataclass
class _Expectation:
    adds: int = 0
    deletes: set[str] = field(default_factory=set)
    recorded_at: float = 0.0


class Expectations:
    def __init__(self, clock: Clock = REAL_CLOCK, timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self.clock = clock
        self.timeout = timeout
        self._items: dict[str, _Expectation] = {}

    def satisfied(self, key: str) -> bool:
        """True when nothing is outstanding for ``key`` (or the record is stale: act, rather than wait forever)."""
        exp = self._items.get(key)
        if exp is None:
            return True
        if exp.adds <= 0 and not exp.deletes:
            return True
        return self.clock.monotonic() - exp.recorded_at > self.timeout

    def expect_creations(self, key: str, count: int) -> None:
        self._items[key] = _Expectation(adds=count, recorded_at=self.clock.monotonic())

    def expect_deletions(self, key: str, dependent_keys: list[str]) -> None:
        self._items[key] = _Expectation(deletes=set(dependent_keys), recorded_at=self.clock.monotonic())

    def creation_observed(self, key: str) -> None:
        exp = self._items.get(key)
        if exp is not None:
            exp.adds -= 1

    def deletion_observed(self, key: str, dependent_key: str) -> None:
        exp = self._items.get(key)
        if exp is not None:
            exp.deletes.discard(dependent_key)

    def forget(self, key: str) -> None:
        self._items.pop(key, None)
