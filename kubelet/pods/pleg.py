"""The pod lifecycle event generator: notice runtime changes (a container exited) without polling per pod.

Every second it relists the node's sandboxes and containers (two CRI calls for the whole node, through
:class:`~kubelet.pods.runtimestate.RuntimeCache`) and wakes the worker of each pod whose runtime state
changed, as the kubelet's generic PLEG does. It is also the kubelet's runtime health signal: a relist
that has not succeeded for three minutes makes the node NotReady ("PLEG is not healthy").
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from kubelet import metrics
from kubelet.pods.runtimestate import RuntimeCache
from machinery.clock import REAL_CLOCK, Clock

log = logging.getLogger(__name__)

RELIST_PERIOD = 1.0
HEALTHY_WITHIN = 180.0


class Pleg:
    def __init__(self, cache: RuntimeCache, on_change: Callable[[str], None], *, period: float = RELIST_PERIOD,
                 clock: Clock = REAL_CLOCK) -> None:
        self.cache = cache
        self.on_change = on_change
        self.period = period
        self.clock = clock
        self.last_relist: float | None = None
        self._seen: dict[str, tuple] = {}

    def healthy(self) -> bool:
        return self.last_relist is not None and self.clock.monotonic() - self.last_relist < HEALTHY_WITHIN

    async def relist(self) -> set[str]:
        """Relist once; returns (and reports) the pod uids whose runtime state changed."""
        with metrics.RELIST_DURATION.time():
            current = await self.cache.relist()
        self.last_relist = self.clock.monotonic()
        changed = {uid for uid in current.keys() | self._seen.keys() if current.get(uid) != self._seen.get(uid)}
        self._seen = current
        for uid in changed:
            self.on_change(uid)
        return changed

    async def run(self) -> None:
        while True:
            try:
                await self.relist()
            except Exception as err:  # the runtime is down or slow: keep trying, health says so
                log.warning("relisting the runtime failed: %s", err)
            await self.clock.sleep(self.period)
