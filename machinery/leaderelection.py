"""Leader election on coordination.k8s.io/v1 Leases, the protocol of client-go's leaderelection with a LeaseLock.

Why it exists: the controller manager and the scheduler run several replicas so that losing a node does not
stop reconciliation, but two replicas acting on the same objects at once would fight (pods created twice,
status flapping). Exactly one replica, the holder of a Lease, does the work; the others stand by and take
over when the holder stops renewing. Using the same Lease fields and rules as client-go means kubectl shows
our leases as it shows Kubernetes' own (``kubectl -n kube-system get lease``).

The protocol:

* A candidate reads the Lease. Absent: it creates it, naming itself holder. Held by another candidate and
  not expired: it waits and tries again every ``retry_period`` (with jitter). Otherwise it writes itself as
  holder with a PUT carrying the resourceVersion it read, a compare-and-swap: a 409 means another
  candidate won the race.
* Expiry is judged by the *local* monotonic clock: a lease counts as valid until ``leaseDurationSeconds``
  after the moment this process last saw the record change. Comparing the holder's ``renewTime`` (another
  machine's wall clock) with ours would let clock skew make two leaders.
* The leader renews every ``retry_period``. If it has not renewed for ``renew_deadline`` (shorter than
  the lease duration) it steps down: it cancels the leading work and :meth:`LeaderElector.run` returns
  :class:`LeadershipLost`, before any other candidate can consider the lease expired. Callers then exit, as
  kube-controller-manager does, and start again as a candidate.
* On graceful shutdown (``run`` cancelled) the leader releases the lease: empty holder and a one-second
  duration, so a successor need not wait out the lease.

One deliberate difference from client-go: the renew deadline counts from the start of the last
*successful* renewal, not from the start of the current round, so stepping down always happens within
``renew_deadline`` of the last write other candidates can have seen (client-go allows up to
``retry_period + renew_deadline``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from machinery.client.resources import LEASES, Resource
from machinery.clock import REAL_CLOCK, Clock
from machinery.errors import StatusError, is_conflict, is_not_found
from machinery.meta import deep_copy, format_rfc3339_micro

log = logging.getLogger(__name__)

RELEASE_ATTEMPTS = 3  # a release that conflicts (our own in-flight renewal landed first) reads again
JITTER_FACTOR = 1.2  # client-go's leaderelection.JitterFactor: acquire retries wait retry_period * [1, 2.2)

T = TypeVar("T")


class LeaseClient(Protocol):
    """The part of :class:`machinery.client.ApiClient` leader election uses."""

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any]: ...

    async def create(self, resource: Resource, obj: Mapping[str, Any],
                     namespace: str | None = None) -> dict[str, Any]: ...

    async def replace(self, resource: Resource, obj: Mapping[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class LeaderElectionConfig:
    """Which Lease to contend for, under which name, and the timing (seconds) of the protocol.

    ``lease_duration``: how long others wait, after last seeing the lease change, before taking it over.
    ``renew_deadline``: how long the leader keeps trying to renew before it steps down.
    ``retry_period``: the pause between attempts to acquire or renew.
    ``release_on_cancel``: release the lease when :meth:`LeaderElector.run` is cancelled or the leading
    work ends, so that a successor takes over at once. The leading work must have stopped by then.
    """

    lease_namespace: str
    lease_name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    release_on_cancel: bool = True

    def __post_init__(self) -> None:
        for field_name in ("lease_namespace", "lease_name", "identity"):
            if not getattr(self, field_name):
                raise ValueError(f"leader election needs a non-empty {field_name}")
        for field_name in ("lease_duration", "renew_deadline", "retry_period"):
            if getattr(self, field_name) <= 0:
                raise ValueError(f"{field_name} must be positive, got {getattr(self, field_name)}")
        if self.renew_deadline >= self.lease_duration:
            raise ValueError(f"renew_deadline ({self.renew_deadline}s) must be less than lease_duration "
                             f"({self.lease_duration}s): a leader must step down before others may take over")
        if self.retry_period * JITTER_FACTOR >= self.renew_deadline:
            raise ValueError(f"retry_period ({self.retry_period}s) * {JITTER_FACTOR} must be less than "
                             f"renew_deadline ({self.renew_deadline}s): a leader needs time for more than one "
                             "renewal attempt before it steps down")

    @property
    def lease_duration_seconds(self) -> int:
        """The lease's integer ``leaseDurationSeconds``, rounded up so that others never wait less than we assume."""
        return max(1, math.ceil(self.lease_duration))


@dataclass(frozen=True)
class LeaderElectionRecord:
    """The Lease spec fields leader election reads and writes (client-go's LeaderElectionRecord)."""

    holder_identity: str = ""
    lease_duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    leader_transitions: int = 0

    @classmethod
    def from_lease(cls, lease: Mapping[str, Any]) -> LeaderElectionRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder_identity=spec.get("holderIdentity") or "",
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            leader_transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self, spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``spec`` with this record's fields written over it (other fields, e.g. strategy, are kept)."""
        merged = dict(spec or {})
        merged.update(holderIdentity=self.holder_identity, leaseDurationSeconds=self.lease_duration_seconds,
                      acquireTime=self.acquire_time, renewTime=self.renew_time,
                      leaseTransitions=self.leader_transitions)
        return {k: v for k, v in merged.items() if v is not None}


@dataclass(frozen=True)
class LeadershipLost:
    """What :meth:`LeaderElector.run` returns after stepping down: the caller should exit (or start over)."""

    identity: str
    lease: str  # "namespace/name"
    reason: str


class LeaderElector:
    """One candidate for one Lease. ``await run(work)`` waits to lead, then runs ``work`` while leading.

    ``on_new_leader(identity)`` is called (synchronously, in the event loop) whenever the observed holder
    changes to a new non-empty identity, this candidate's included; a hook for metrics or logs.
    """

    def __init__(self, client: LeaseClient, config: LeaderElectionConfig, clock: Clock = REAL_CLOCK, *,
                 on_new_leader: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.config = config
        self.clock = clock
        self.on_new_leader = on_new_leader
        self._lease: dict[str, Any] | None = None  # the last Lease read or written: its resourceVersion is our CAS
        self._observed: LeaderElectionRecord | None = None
        self._observed_at = 0.0  # local monotonic time at which _observed last changed
        self._reported_leader = ""
        self._leading = False
        self._last_renew = 0.0  # monotonic start of the last successful acquire/renew attempt

    @property
    def lease_key(self) -> str:
        return f"{self.config.lease_namespace}/{self.config.lease_name}"

    def is_leader(self) -> bool:
        """Whether this candidate currently holds the lease and is running its leading work."""
        return self._leading

    @property
    def leader_identity(self) -> str:
        """The holder last observed in the lease ("" when unknown or released)."""
        return self._observed.holder_identity if self._observed else ""

    # --- the public loop -------------------------------------------------------------------------------

    async def run(self, on_started_leading: Callable[[], Awaitable[None]]) -> LeadershipLost | None:
        """Acquire the lease, then run ``on_started_leading()`` as a task while renewing the lease.

        Returns :class:`LeadershipLost` (after cancelling the leading task) when renewal failed for
        ``renew_deadline``; returns None when the leading work returned by itself (the lease is then
        released, as is done when it raises, whose exception propagates). Cancelling ``run`` cancels
        the leading work, releases the lease (if ``release_on_cancel``) and re-raises.
        """
        await self._acquire()
        leading = asyncio.create_task(on_started_leading(), name=f"leading {self.lease_key}")
        renewing = asyncio.create_task(self._renew(), name=f"renewing {self.lease_key}")
        try:
            await asyncio.wait({leading, renewing}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await _stop(renewing)
            await _stop(leading)
            self._leading = False
            log.info("lease %s: %s stopped leading (shutting down)", self.lease_key, self.config.identity)
            if self.config.release_on_cancel:
                await self._release()
            raise
        if renewing.done():
            reason = renewing.result()  # an unexpected exception (a bug) propagates after the cleanup below
            await _stop(leading)
            self._leading = False
            log.info("lease %s: %s lost leadership: %s", self.lease_key, self.config.identity, reason)
            return LeadershipLost(self.config.identity, self.lease_key, reason)
        await _stop(renewing)
        self._leading = False
        log.info("lease %s: %s stopped leading (its work ended)", self.lease_key, self.config.identity)
        if self.config.release_on_cancel:
            await self._release()
        leading.result()  # re-raise the leading work's exception, if any
        return None

    # --- phases ----------------------------------------------------------------------------------------

    async def _acquire(self) -> None:
        log.info("lease %s: %s attempting to acquire leadership", self.lease_key, self.config.identity)
        while True:
            if await self._attempt(self.config.renew_deadline):
                self._leading = True
                log.info("lease %s: %s became leader", self.lease_key, self.config.identity)
                return
            period = self.config.retry_period
            await self.clock.sleep(period + random.random() * JITTER_FACTOR * period)

    async def _renew(self) -> str:
        """Renew every retry_period until renewal has failed for renew_deadline; return why it stopped."""
        cfg = self.config
        while True:
            await self.clock.sleep(cfg.retry_period)
            while True:
                remaining = self._last_renew + cfg.renew_deadline - self.clock.monotonic()
                if remaining <= 0:
                    return f"could not renew the lease within the renew deadline of {cfg.renew_deadline}s"
                if await self._attempt(remaining):
                    break
                holder = self.leader_identity
                if holder and holder != cfg.identity:
                    return f"the lease is now held by {holder}"
                remaining = self._last_renew + cfg.renew_deadline - self.clock.monotonic()
                await self.clock.sleep(min(cfg.retry_period, max(0.0, remaining)))

    async def _attempt(self, timeout: float) -> bool:
        """One try to acquire or renew, abandoned after ``timeout`` seconds; failures are logged."""
        started = self.clock.monotonic()
        try:
            ok = await _within(self.clock, timeout, self._try_acquire_or_renew())
        except TimeoutError:
            log.warning("lease %s: acquire/renew took longer than %.1fs; abandoned", self.lease_key, timeout)
            return False
        except Exception as exc:  # a failed attempt must not end the election; the next one may succeed
            log.warning("lease %s: acquire/renew failed: %s: %s", self.lease_key, type(exc).__name__, exc)
            return False
        if ok:
            self._last_renew = started
        return ok

    async def _try_acquire_or_renew(self) -> bool:
        cfg = self.config
        stamp = format_rfc3339_micro(self.clock.now())
        desired = LeaderElectionRecord(cfg.identity, cfg.lease_duration_seconds, stamp, stamp)

        # 1. The leader's fast path: update the lease we last wrote, assuming nobody changed it since.
        if self._observed_self() and self._lease_valid() and self._lease is not None:
            observed = self._observed
            assert observed is not None
            try:
                await self._update(replace(desired, acquire_time=observed.acquire_time,
                                           leader_transitions=observed.leader_transitions))
                return True
            except StatusError as exc:
                log.info("lease %s: optimistic renewal failed (%s); re-reading the lease", self.lease_key, exc)

        # 2. Read the lease, or create it.
        try:
            lease = await self.client.get(LEASES, cfg.lease_name, cfg.lease_namespace)
        except StatusError as exc:
            if not is_not_found(exc):
                log.warning("lease %s: cannot read: %s", self.lease_key, exc)
                return False
            body = {"metadata": {"name": cfg.lease_name, "namespace": cfg.lease_namespace},
                    "spec": desired.to_spec()}
            try:
                self._lease = await self.client.create(LEASES, body, cfg.lease_namespace)
            except StatusError as exc:
                log.info("lease %s: cannot create: %s", self.lease_key, exc)
                return False
            self._observe(desired)
            return True

        # 3. Held by someone else and not expired (by our clock): not ours to take.
        self._lease = lease
        current = LeaderElectionRecord.from_lease(lease)
        if current != self._observed:
            self._observe(current)
        if current.holder_identity and self._lease_valid() and not self._observed_self():
            return False

        # 4. Ours to renew, or free to take over: compare-and-swap on the resourceVersion we just read.
        if self._observed_self():
            record = replace(desired, acquire_time=current.acquire_time,
                             leader_transitions=current.leader_transitions)
        else:
            record = replace(desired, leader_transitions=current.leader_transitions + 1)
        try:
            await self._update(record)
        except StatusError as exc:
            log.info("lease %s: cannot update: %s", self.lease_key, exc)
            return False
        return True

    async def _release(self) -> None:
        """Give the lease up (empty holder, 1 s duration) unless someone else holds it by now. A conflict is
        retried with a fresh read: a renewal of ours still in flight when the leader stopped can land between
        the read and the write."""
        try:
            await _within(self.clock, self.config.renew_deadline, self._release_retrying())
        except Exception as exc:
            log.warning("lease %s: could not release: %s: %s", self.lease_key, type(exc).__name__, exc)

    async def _release_retrying(self, attempts: int = RELEASE_ATTEMPTS) -> None:
        for attempt in range(attempts):
            try:
                await self._release_once()
                return
            except StatusError as err:
                if not is_conflict(err) or attempt == attempts - 1:
                    raise

    async def _release_once(self) -> None:
        lease = await self.client.get(LEASES, self.config.lease_name, self.config.lease_namespace)
        self._lease = lease
        current = LeaderElectionRecord.from_lease(lease)
        if current != self._observed:
            self._observe(current)
        if not self._observed_self():
            return
        stamp = format_rfc3339_micro(self.clock.now())
        await self._update(LeaderElectionRecord("", 1, stamp, stamp, current.leader_transitions))
        log.info("lease %s: %s released the lease", self.lease_key, self.config.identity)

    # --- helpers ---------------------------------------------------------------------------------------

    async def _update(self, record: LeaderElectionRecord) -> None:
        assert self._lease is not None
        lease = deep_copy(self._lease)
        lease["spec"] = record.to_spec(lease.get("spec"))
        self._lease = await self.client.replace(LEASES, lease)
        self._observe(record)

    def _observe(self, record: LeaderElectionRecord) -> None:
        self._observed = record
        self._observed_at = self.clock.monotonic()
        holder = record.holder_identity
        if holder == self._reported_leader:
            return
        self._reported_leader = holder
        if not holder:
            return
        if holder != self.config.identity:
            log.info("lease %s: new leader is %s", self.lease_key, holder)
        if self.on_new_leader is not None:
            try:
                self.on_new_leader(holder)
            except Exception:
                log.exception("lease %s: on_new_leader callback failed", self.lease_key)

    def _observed_self(self) -> bool:
        return self._observed is not None and self._observed.holder_identity == self.config.identity

    def _lease_valid(self) -> bool:
        """Whether the observed record is unexpired, counting from when *we* saw it change."""
        if self._observed is None:
            return False
        return self._observed_at + self._observed.lease_duration_seconds > self.clock.monotonic()


async def _within(clock: Clock, seconds: float, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` for at most ``seconds`` of ``clock`` time, else raise TimeoutError.

    (``asyncio.timeout`` follows the event loop's clock, which a FakeClock cannot move.)
    """
    work = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
        if not work.done():
            work.cancel()
            await asyncio.wait({work})
    if work.cancelled():
        raise TimeoutError(f"gave up after {seconds:.1f}s")
    return work.result()


async def _stop(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait for it to finish, logging (not raising) any error it ends with."""
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled() and task.exception() is not None:
        log.error("%s ended with an error", task.get_name(), exc_info=task.exception())
