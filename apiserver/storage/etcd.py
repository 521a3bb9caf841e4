"""The only module that talks to etcd: a thin asyncio client over etcd's v3 gRPC API.

Why our own client (measured in shared/reference/etcd.md): the Python libraries ignore range
limit/revision, drop progress notifications, lose events when they resume a watch by themselves, or
retry non-idempotent transactions. This wrapper does what the storage layer needs and nothing
automatic that could hide a lost write or a lost event:

- reads (range, get, status) are retried once on the next endpoint after UNAVAILABLE; writes never
  are, since a lost reply may have committed;
- a watch never resumes itself: the caller resumes at the last event's mod_revision + 1;
- gRPC errors are translated once, in :func:`translate`, into the typed errors below.

Protobuf messages are returned as they are (no per-item conversion: lists are the hot path).
Channels bind to the running event loop, so they are made in :meth:`EtcdClient.connect`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Self

import grpc
from grpc import aio

from proto.etcd import kv_pb2 as mvccpb
from proto.etcd import rpc_pb2 as pb
from proto.etcd import rpc_pb2_grpc as pb_grpc

KeyValue = mvccpb.KeyValue
Event = mvccpb.Event
RangeResponse = pb.RangeResponse
StatusResponse = pb.StatusResponse


class EtcdError(Exception):
    """Base of every error raised by this client."""


class EtcdUnavailable(EtcdError):
    """No answer from the endpoint (down, timed out, no leader, stream broken). A write may have applied."""


class EtcdCompacted(EtcdError):
    """The requested revision was compacted away (0 when etcd did not say which revision it kept)."""

    def __init__(self, compact_revision: int = 0, message: str = "required revision has been compacted"):
        super().__init__(message)
        self.compact_revision = compact_revision


class EtcdFutureRevision(EtcdError):
    """The requested revision is newer than the store's."""


class EtcdRequestTooLarge(EtcdError):
    """The request exceeds etcd's --max-request-bytes (1.5 MiB by default) or a gRPC message limit."""


class EtcdNoSpace(EtcdError):
    """etcd's backend quota is exhausted (NOSPACE alarm): no writes until compacted and defragmented."""


_Code = grpc.StatusCode
# The one translation table: the first row whose code (None = any) matches and whose text occurs in
# the details decides the error. etcd puts the precise reason only in the message text.
_ERRORS: tuple[tuple[grpc.StatusCode | None, str, Callable[[str], EtcdError]], ...] = (
    (_Code.OUT_OF_RANGE, "required revision has been compacted", lambda m: EtcdCompacted(0, m)),
    (_Code.OUT_OF_RANGE, "future revision", EtcdFutureRevision),
    (None, "request is too large", EtcdRequestTooLarge),
    (_Code.RESOURCE_EXHAUSTED, "larger than max", EtcdRequestTooLarge),
    (None, "database space exceeded", EtcdNoSpace),
    (_Code.RESOURCE_EXHAUSTED, "too many requests", EtcdUnavailable),
    (_Code.RESOURCE_EXHAUSTED, "", EtcdNoSpace),
    (_Code.UNAVAILABLE, "", EtcdUnavailable),
    (_Code.DEADLINE_EXCEEDED, "", EtcdUnavailable),
    (_Code.CANCELLED, "", EtcdUnavailable),
)


def translate(err: grpc.RpcError) -> EtcdError:
    """Map a gRPC error from etcd to this module's typed error."""
    code: grpc.StatusCode = err.code()  # type: ignore[attr-defined]
    details: str = err.details() or ""  # type: ignore[attr-defined]
    message = f"{code.name}: {details}"
    for want, text, make in _ERRORS:
        if (want is None or want == code) and text in details:
            return make(message)
    return EtcdError(message)


def prefix_range_end(prefix: bytes) -> bytes:
    """The range_end that selects every key starting with ``prefix``."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"  # every key


@dataclass(slots=True, frozen=True)
class TxnResult:
    """Outcome of a guarded write. ``revision`` is the header revision: after a successful put it is the
    new mod_revision. ``kv`` is the current kv when the compare failed (None if the key is absent), and
    the deleted kv after a successful delete."""

    succeeded: bool
    revision: int
    kv: KeyValue | None


@dataclass(slots=True)
class WatchBatch:
    """Events of one watch response (empty for a progress notification) and its header revision.
    Resume after a break at the last event's ``kv.mod_revision + 1``, never at ``revision + 1``."""

    events: list[Event]
    revision: int


_RANGE = attrgetter("kv.Range")
_PUT = attrgetter("kv.Put")
_DELETE = attrgetter("kv.DeleteRange")
_TXN = attrgetter("kv.Txn")
_COMPACT = attrgetter("kv.Compact")
_STATUS = attrgetter("maintenance.Status")
_GRANT = attrgetter("lease.LeaseGrant")
_REVOKE = attrgetter("lease.LeaseRevoke")


class _Endpoint:
    """One channel per member, so plain host names work and failover is ours to decide."""

    __slots__ = ("channel", "kv", "lease", "maintenance", "target", "watch")

    def __init__(self, target: str, options: list[tuple[str, Any]]) -> None:
        self.target = target
        self.channel = aio.insecure_channel(target, options=options)
        self.kv = pb_grpc.KVStub(self.channel)
        self.watch = pb_grpc.WatchStub(self.channel)
        self.lease = pb_grpc.LeaseStub(self.channel)
        self.maintenance = pb_grpc.MaintenanceStub(self.channel)


def _target(endpoint: str) -> str:
    if endpoint.startswith("https://"):
        raise ValueError(f"TLS etcd endpoints are not supported: {endpoint}")
    return endpoint.removeprefix("http://").rstrip("/")


class EtcdClient:
    """asyncio client for one etcd cluster. Keys and values are bytes; one instance per event loop."""

    def __init__(self, endpoints: list[str], *, timeout: float = 5.0, max_message_bytes: int = 64 << 20):
        if not endpoints:
            raise ValueError("at least one etcd endpoint is required")
        self.targets = [_target(e) for e in endpoints]
        self.timeout = timeout
        self._options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.keepalive_time_ms", 30_000),  # etcd refuses pings more often than every 5 s
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 0),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 2_000),
            ("grpc.enable_http_proxy", 0),
        ]
        self._endpoints: list[_Endpoint] = []
        self._current = 0

    @property
    def endpoint(self) -> str:
        """The target (host:port) that calls go to now."""
        return self.targets[self._current]

    async def connect(self) -> None:
        if not self._endpoints:
            self._endpoints = [_Endpoint(t, self._options) for t in self.targets]

    async def close(self) -> None:
        endpoints, self._endpoints = self._endpoints, []
        for ep in endpoints:
            await ep.channel.close()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- plumbing ---------------------------------------------------------------------------

    def _pick(self) -> tuple[int, _Endpoint]:
        if not self._endpoints:
            raise EtcdUnavailable("EtcdClient is not connected (call connect() first) or closed")
        return self._current, self._endpoints[self._current]

    def _failed(self, index: int) -> None:
        """Endpoint ``index`` is unavailable: later calls go to the next one."""
        if index == self._current:
            self._current = (index + 1) % len(self.targets)

    def _error(self, err: grpc.RpcError, index: int) -> EtcdError:
        """Translate ``err`` from endpoint ``index``, failing over when it is unavailable."""
        etcd_err = translate(err)
        if isinstance(etcd_err, EtcdUnavailable):
            self._failed(index)
        return etcd_err

    async def _unary(self, method: Callable[[_Endpoint], Any], request: Any, *, idempotent: bool) -> Any:
        attempts = 2 if idempotent and len(self.targets) > 1 else 1
        for attempt in range(attempts):
            index, ep = self._pick()
            try:
                return await method(ep)(request, timeout=self.timeout)
            except grpc.RpcError as e:
                err = self._error(e, index)
                if not isinstance(err, EtcdUnavailable) or attempt + 1 == attempts:
                    raise err from e
            except aio.UsageError as e:  # channel closed under us
                raise EtcdUnavailable(f"etcd client closed: {e}") from e
        raise AssertionError("unreachable")

    async def _txn(self, key: bytes, mod_revision: int, then: pb.RequestOp) -> pb.TxnResponse:
        request = pb.TxnRequest(
            compare=[
                pb.Compare(key=key, target=pb.Compare.MOD, result=pb.Compare.EQUAL, mod_revision=mod_revision)
            ],
            success=[then],
            failure=[pb.RequestOp(request_range=pb.RangeRequest(key=key))],
        )
        return await self._unary(_TXN, request, idempotent=False)  # type: ignore[no-any-return]

    @staticmethod
    def _result(resp: pb.TxnResponse) -> TxnResult:
        if resp.succeeded:
            return TxnResult(True, resp.header.revision, None)
        kvs = resp.responses[0].response_range.kvs
        return TxnResult(False, resp.header.revision, kvs[0] if kvs else None)

    # --- key-value ----------------------------------------------------------------------------

    async def range(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        limit: int = 0,
        revision: int = 0,
        keys_only: bool = False,
        count_only: bool = False,
    ) -> pb.RangeResponse:
        """Keys in [key, range_end) in key order, at ``revision`` (0 = newest); ``.more`` after a limit."""
        request = pb.RangeRequest(
            key=key,
            range_end=range_end,
            limit=limit,
            revision=revision,
            keys_only=keys_only,
            count_only=count_only,
        )
        return await self._unary(_RANGE, request, idempotent=True)  # type: ignore[no-any-return]

    async def get(self, key: bytes, *, revision: int = 0) -> tuple[KeyValue | None, int]:
        """The kv of ``key`` (None if absent) and the header revision."""
        resp = await self.range(key, revision=revision)
        return (resp.kvs[0] if resp.kvs else None), resp.header.revision

    async def create(self, key: bytes, value: bytes, *, lease: int = 0) -> TxnResult:
        """Put ``key`` only if it does not exist (an absent key's mod_revision is 0)."""
        return await self.update(key, value, 0, lease=lease)

    async def update(
        self, key: bytes, value: bytes, expected_mod_revision: int, *, lease: int = 0
    ) -> TxnResult:
        """Put ``key`` only if its mod_revision is still ``expected_mod_revision``."""
        put = pb.RequestOp(request_put=pb.PutRequest(key=key, value=value, lease=lease))
        return self._result(await self._txn(key, expected_mod_revision, put))

    async def delete(self, key: bytes, expected_mod_revision: int) -> TxnResult:
        """Delete ``key`` only if its mod_revision is ``expected_mod_revision``; ``kv`` is the deleted kv."""
        op = pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=key, prev_kv=True))
        resp = await self._txn(key, expected_mod_revision, op)
        if not resp.succeeded:
            return self._result(resp)
        prev = resp.responses[0].response_delete_range.prev_kvs
        return TxnResult(True, resp.header.revision, prev[0] if prev else None)

    async def put(self, key: bytes, value: bytes, *, lease: int = 0) -> int:
        """Unconditional put; returns the new revision."""
        resp = await self._unary(_PUT, pb.PutRequest(key=key, value=value, lease=lease), idempotent=False)
        return int(resp.header.revision)

    async def delete_range(self, key: bytes, range_end: bytes = b"") -> tuple[int, int]:
        """Unconditional delete of [key, range_end); returns (deleted count, revision)."""
        request = pb.DeleteRangeRequest(key=key, range_end=range_end)
        resp = await self._unary(_DELETE, request, idempotent=False)
        return int(resp.deleted), int(resp.header.revision)

    async def compact(self, revision: int, *, physical: bool = False) -> None:
        """Drop history before ``revision``; ``physical`` waits until the backend has freed it."""
        await self._unary(
            _COMPACT, pb.CompactionRequest(revision=revision, physical=physical), idempotent=False
        )

    async def status(self) -> pb.StatusResponse:
        """Status of the member in use (version, db size, leader, raft indexes)."""
        return await self._unary(_STATUS, pb.StatusRequest(), idempotent=True)  # type: ignore[no-any-return]

    # --- leases ---------------------------------------------------------------------------------

    async def lease_grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds (etcd may raise it to its minimum); returns its id."""
        resp = await self._unary(_GRANT, pb.LeaseGrantRequest(TTL=ttl), idempotent=False)
        if resp.error:
            raise EtcdError(resp.error)
        return int(resp.ID)

    async def lease_keepalive_once(self, lease_id: int) -> int:
        """Refresh a lease once; returns its remaining TTL (<= 0: the lease is gone)."""
        index, ep = self._pick()
        call = ep.lease.LeaseKeepAlive(timeout=self.timeout)
        try:
            await call.write(pb.LeaseKeepAliveRequest(ID=lease_id))
            resp = await call.read()
        except grpc.RpcError as e:
            raise self._error(e, index) from e
        finally:
            call.cancel()
        if resp is aio.EOF:
            raise EtcdUnavailable("etcd closed the lease keep-alive stream")
        return int(resp.TTL)

    async def lease_revoke(self, lease_id: int) -> None:
        """Revoke a lease; its keys are deleted."""
        await self._unary(_REVOKE, pb.LeaseRevokeRequest(ID=lease_id), idempotent=False)

    # --- watch ------------------------------------------------------------------------------------

    def watch(
        self,
        key: bytes,
        range_end: bytes,
        *,
        start_revision: int,
        prev_kv: bool = True,
        progress_notify: bool = True,
    ) -> Watch:
        """A watch on [key, range_end) from ``start_revision`` (inclusive); use with ``async with``."""
        request = pb.WatchCreateRequest(
            key=key,
            range_end=range_end,
            start_revision=start_revision,
            prev_kv=prev_kv,
            progress_notify=progress_notify,
            fragment=True,
        )
        return Watch(self, request)


class Watch:
    """One etcd watcher on its own gRPC stream. ``async with`` establishes it (the ``created``
    response has arrived when it returns); ``async for`` yields :class:`WatchBatch` until an error:
    :class:`EtcdCompacted` when etcd cancels it, :class:`EtcdUnavailable` when the stream breaks."""

    def __init__(self, client: EtcdClient, request: pb.WatchCreateRequest) -> None:
        self._client = client
        self._request = request
        self._call: Any = None
        self._index = 0
        self.watch_id = 0

    async def __aenter__(self) -> Self:
        self._index, ep = self._client._pick()
        self._call = ep.watch.Watch()  # no deadline: the stream lives as long as the caller reads it
        try:
            async with asyncio.timeout(self._client.timeout):
                await self._write(pb.WatchRequest(create_request=self._request))
                resp = await self._read()
                while not resp.created:
                    resp = await self._read()
        except TimeoutError as e:
            self._call.cancel()
            self._client._failed(self._index)
            raise EtcdUnavailable(f"etcd did not create the watch within {self._client.timeout}s") from e
        except BaseException:
            self._call.cancel()
            raise
        self.watch_id = resp.watch_id
        if resp.canceled or resp.compact_revision:
            self._call.cancel()
            raise _canceled(resp)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._call is not None:
            self._call.cancel()
            self._call = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> WatchBatch:
        events: list[Event] = []
        while True:
            resp = await self._read()
            if resp.canceled or resp.compact_revision:
                raise _canceled(resp)
            events.extend(resp.events)
            if not resp.fragment:
                return WatchBatch(events, resp.header.revision)

    async def request_progress(self) -> None:
        """Ask etcd for a progress notification: an empty batch carrying the current revision.

        Caution (measured on etcd 3.4.23): etcd answers at once with the store's revision even while
        this watcher is still replaying history, i.e. before events older than that revision arrive.
        Trust it as "caught up" only once the watch is known to be synced (periodic notifications
        from ``progress_notify`` are sent to synced watchers only)."""
        await self._write(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))

    async def _write(self, request: pb.WatchRequest) -> None:
        if self._call is None:
            raise EtcdUnavailable("watch is not established")
        try:
            await self._call.write(request)
        except grpc.RpcError as e:
            raise self._client._error(e, self._index) from e
        except asyncio.InvalidStateError as e:
            raise EtcdUnavailable("watch stream already finished") from e

    async def _read(self) -> pb.WatchResponse:
        if self._call is None:
            raise EtcdUnavailable("watch is not established")
        try:
            resp = await self._call.read()
        except grpc.RpcError as e:
            raise self._client._error(e, self._index) from e
        if resp is aio.EOF:
            self._client._failed(self._index)
            raise EtcdUnavailable("etcd closed the watch stream")
        return resp  # type: ignore[no-any-return]


def _canceled(resp: pb.WatchResponse) -> EtcdCompacted:
    reason = resp.cancel_reason or "watch canceled by etcd"
    if resp.compact_revision:
        reason = f"required revision has been compacted (compact revision {resp.compact_revision})"
    return EtcdCompacted(resp.compact_revision, reason)
