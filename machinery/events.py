"""Recording core/v1 Events, what ``kubectl describe`` lists under "Events:" (client-go's record.EventRecorder).

Why it exists: controllers, the scheduler and the kubelet explain what they did or failed to do to an
object ("Scheduled", "FailedCreate", "BackOff") by writing Events about it. Users read them to find out why
a pod is Pending without reading component logs.

Recording must never slow down or break the component that records, so :meth:`EventRecorder.event` only
puts the event on a bounded in-memory queue and returns; when the queue is full (the API server is slow or
down) the event is dropped with a log line, as client-go's broadcaster does. :meth:`EventRecorder.run`,
which the owner runs in its TaskGroup, writes the queued events; a write that fails is logged and dropped
(the REST client has already retried what is safe to retry).

Repeats are aggregated, a simplified form of client-go's EventCorrelator: an event with the same involved
object (kind, namespace, name, uid, apiVersion), type, reason and message as one this recorder wrote less
than ten minutes before is not created again; the existing Event is patched instead (merge patch of
``count`` + 1 and a new ``lastTimestamp``), so a crash loop shows as one line with "(x12 over 5m)". If that
Event is gone (404, e.g. expired by the server's event TTL), a new one is created.

Two more client-go behaviours keep a busy controller from flooding the API server (a ReplicaSet scaled
from 1,000 to 0 would otherwise write 1,000 "Deleted pod" Events):

* similar events — same object, type and reason, different messages — are combined once more than 10
  distinct messages were seen within ten minutes: the message becomes ``(combined from similar events):
  <latest message>`` and, being identical from then on, further ones only bump that Event's count;
* a spam filter per (component, object): a token bucket of 25 events refilled at one per five minutes;
  events beyond it are dropped (counted in ``filtered``).

The memory of written events, similar messages and buckets is per recorder and bounded (least recently
used entries are forgotten).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from machinery.client.resources import EVENTS, Resource
from machinery.clock import REAL_CLOCK, Clock
from machinery.errors import StatusError, is_already_exists, is_not_found
from machinery.meta import format_rfc3339
from machinery.ratelimit import TokenBucket

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"
EVENT_TYPES = frozenset({NORMAL, WARNING})

QUEUE_SIZE = 1000  # client-go's broadcaster queue length
AGGREGATION_WINDOW = 600.0  # seconds: a repeat within this long of the last one patches the existing Event
REMEMBERED_EVENTS = 4096  # client-go's maxLruCacheEntries
SIMILAR_EVENTS_LIMIT = 10  # distinct messages per (object, type, reason) before they are combined
COMBINED_PREFIX = "(combined from similar events): "
SPAM_BURST = 25  # events per (component, object) before the spam filter drops them
SPAM_REFILL_QPS = 1 / 300  # one more event allowed every five minutes
WRITERS = 4  # events written concurrently (a busy scheduler records hundreds a second)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_Key = tuple[str, ...]


class EventClient(Protocol):
    """The part of :class:`machinery.client.ApiClient` the recorder uses."""

    async def create(self, resource: Resource, obj: Mapping[str, Any],
                     namespace: str | None = None) -> dict[str, Any]: ...

    async def patch(self, resource: Resource, name: str, patch: Any, namespace: str | None = None, *,
                    patch_type: str = "merge") -> dict[str, Any]: ...


@dataclass(frozen=True)
class _Pending:
    """An event as recorded by the caller, waiting to be written."""

    involved: dict[str, str]
    type: str
    reason: str
    message: str
    at: datetime
    monotonic: float

    @property
    def key(self) -> _Key:
        """What makes two events the same Event: a combined event is one, whatever its latest message."""
        combined = self.message.startswith(COMBINED_PREFIX)
        return (*_object_key(self.involved), self.type, self.reason, COMBINED_PREFIX if combined else self.message)


@dataclass
class _Written:
    """An Event this recorder wrote, remembered so that repeats patch it."""

    name: str
    namespace: str
    count: int
    last_seen: float  # monotonic


def _object_key(ref: Mapping[str, str]) -> _Key:
    return (ref.get("kind", ""), ref.get("namespace", ""), ref.get("name", ""), ref.get("uid", ""),
            ref.get("apiVersion", ""))


def _trim(memory: OrderedDict) -> None:
    while len(memory) > REMEMBERED_EVENTS:
        memory.popitem(last=False)


def object_reference(obj: Mapping[str, Any]) -> dict[str, str]:
    """The ``involvedObject`` reference to an API object (empty fields left out)."""
    meta = obj.get("metadata") or {}
    ref = {"kind": obj.get("kind"), "namespace": meta.get("namespace"), "name": meta.get("name"),
           "uid": meta.get("uid"), "apiVersion": obj.get("apiVersion"),
           "resourceVersion": meta.get("resourceVersion")}
    return {k: v for k, v in ref.items() if v}


class EventRecorder:
    """Records Events about API objects on behalf of one component (e.g. ``deployment-controller``).

    Call :meth:`event` from the event loop's thread; run :meth:`run` for the events to be written.
    ``dropped`` counts the events lost to a full queue, ``filtered`` those dropped by the spam filter.
    """

    def __init__(self, client: EventClient, component: str, host: str = "", clock: Clock = REAL_CLOCK, *,
                 queue_size: int = QUEUE_SIZE) -> None:
        self.client = client
        self.component = component
        self.host = host
        self.clock = clock
        self.dropped = 0
        self.filtered = 0
        self._last_drop_log = float("-inf")
        self._writing: dict[_Key, tuple[asyncio.Lock, int]] = {}  # events being written, so repeats wait
        self._similar: OrderedDict[_Key, tuple[set[str], float]] = OrderedDict()  # messages, first seen
        self._spam: OrderedDict[_Key, TokenBucket] = OrderedDict()
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=queue_size)
        self._written: OrderedDict[_Key, _Written] = OrderedDict()
        self._last_name_ns = 0

    def event(self, obj: Mapping[str, Any], type: str, reason: str, message: str) -> None:
        """Record that ``reason``/``message`` happened to ``obj``; ``type`` is ``Normal`` or ``Warning``.

        Never blocks and never raises for a full queue: the event is dropped (and logged) instead.
        """
        if type not in EVENT_TYPES:
            log.error("dropping event %s with unsupported type %r (want Normal or Warning)", reason, type)
            return
        ref = object_reference(obj)
        if not ref.get("name"):
            log.error("dropping event %s about an object without a name", reason)
            return
        now = self.clock.monotonic()
        if not self._spam_allows(ref):
            self.filtered += 1
            log.debug("spam filter: dropping %s event %s about %s %s", type, reason, ref.get("kind", ""), ref["name"])
            return
        message = self._combine_similar(ref, type, reason, message, now)
        pending = _Pending(ref, type, reason, message, self.clock.now(), now)
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            self.dropped += 1
            if now - self._last_drop_log >= 60.0 or self.dropped == 1:  # one line a minute, not one per event
                self._last_drop_log = now
                log.warning("event queue full (%d): dropping events (%d so far), e.g. %s %s about %s %s",
                            self._queue.maxsize, self.dropped, type, reason, ref.get("kind", ""), ref["name"])

    def _spam_allows(self, ref: Mapping[str, str]) -> bool:
        key = _object_key(ref)
        bucket = self._spam.get(key)
        if bucket is None:
            bucket = self._spam[key] = TokenBucket(SPAM_REFILL_QPS, SPAM_BURST, self.clock)
        self._spam.move_to_end(key)
        _trim(self._spam)
        return bucket.try_accept()

    def _combine_similar(self, ref: Mapping[str, str], type: str, reason: str, message: str, now: float) -> str:
        """The message to record: the original, or the combined one once similar messages pile up."""
        key = (*_object_key(ref), type, reason)
        messages, since = self._similar.get(key, (set(), now))
        if now - since > AGGREGATION_WINDOW:
            messages, since = set(), now
        messages.add(message)
        self._similar[key] = (messages, since)
        self._similar.move_to_end(key)
        _trim(self._similar)
        return COMBINED_PREFIX + message if len(messages) > SIMILAR_EVENTS_LIMIT else message

    async def run(self, writers: int = WRITERS) -> None:
        """Write queued events until cancelled, ``writers`` at a time (repeats of one event one at a time)."""
        async with asyncio.TaskGroup() as tasks:
            for _ in range(writers):
                tasks.create_task(self._drain())

    async def _drain(self) -> None:
        while True:
            pending = await self._queue.get()
            key = pending.key
            lock, users = self._writing.get(key, (None, 0))
            if lock is None:
                lock = asyncio.Lock()
            self._writing[key] = (lock, users + 1)
            try:
                async with lock:
                    await self._write(pending)
            except Exception as exc:  # one event that cannot be written must not stop the others
                log.warning("could not write event %s about %s %s: %s", pending.reason,
                            pending.involved.get("kind", ""), pending.involved.get("name", ""), exc)
            finally:
                lock, users = self._writing[key]
                if users == 1:
                    del self._writing[key]
                else:
                    self._writing[key] = (lock, users - 1)
                self._queue.task_done()

    async def flush(self) -> None:
        """Wait until every event recorded so far has been written (or dropped); needs :meth:`run` running."""
        await self._queue.join()

    # --- writing -------------------------------------------------------------------------------------------

    async def _write(self, pending: _Pending) -> None:
        key = pending.key
        written = self._written.get(key)
        if written is not None and pending.monotonic - written.last_seen <= AGGREGATION_WINDOW:
            count = written.count + 1
            patch = {"count": count, "lastTimestamp": format_rfc3339(pending.at), "message": pending.message}
            try:
                await self.client.patch(EVENTS, written.name, patch, written.namespace, patch_type="merge")
            except StatusError as exc:
                if not is_not_found(exc):
                    raise
                log.debug("event %s/%s is gone; creating a new one", written.namespace, written.name)
            else:
                written.count, written.last_seen = count, pending.monotonic
                self._written.move_to_end(key)
                return
        body = self._new_event(pending)
        namespace = body["metadata"]["namespace"]
        try:
            await self.client.create(EVENTS, body, namespace)
        except StatusError as exc:
            if not is_already_exists(exc):
                raise
            log.debug("event %s/%s already exists", namespace, body["metadata"]["name"])
            return
        self._written[key] = _Written(body["metadata"]["name"], namespace, 1, pending.monotonic)
        self._written.move_to_end(key)
        _trim(self._written)

    def _new_event(self, pending: _Pending) -> dict[str, Any]:
        ref = pending.involved
        timestamp = format_rfc3339(pending.at)
        source = {"component": self.component, "host": self.host} if self.host else {"component": self.component}
        event: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{ref['name']}.{self._name_suffix(pending.at):x}",
                         "namespace": ref.get("namespace") or "default"},
            "involvedObject": dict(ref),
            "reason": pending.reason,
            "message": pending.message,
            "type": pending.type,
            "source": source,
            "firstTimestamp": timestamp,
            "lastTimestamp": timestamp,
            "count": 1,
            "reportingComponent": self.component,
            "reportingInstance": self.host,
        }
        return event

    def _name_suffix(self, at: datetime) -> int:
        """Nanoseconds since the epoch (client-go's ``%x`` of UnixNano), kept unique within this recorder."""
        delta = at - _EPOCH
        nanos = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
        self._last_name_ns = max(nanos, self._last_name_ns + 1)
        return self._last_name_ns
