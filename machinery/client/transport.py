"""A lean HTTP/1.1 transport for httpx over asyncio streams: what :class:`ApiClient` sends its requests with.

Why it exists: httpx's default transport (httpcore over anyio) was most of the client's CPU. Against our
API server a sequential GET cost ~670 µs of client CPU, of which httpx's client layer (measured over a
MockTransport) was ~104 µs — so ~560 µs went to httpcore/anyio, and the controllers and the scheduler
(its binding POSTs) were bottlenecked on it. This transport speaks just the HTTP/1.1 the API server
needs — one ``write`` per request, the response head read with one ``readuntil`` and a small body with
one ``readexactly`` — and costs ~20 µs of Python per request of its own (plus ~18 µs building the
httpx.Response). Measured on one machine, same run, 2,000 sequential GETs through ApiClient under uvloop:
~840-900 µs of client CPU per GET with httpx's transport, ~360-380 µs with this one. What is left is
httpx's client layer (URL merging, cookies, auth flow, response decoding: ~120-200 µs) and the kernel
and event loop (a bare asyncio-streams loop doing the same GETs costs ~110 µs).

What it does:

* a keep-alive pool per (scheme, host, port) of at most ``max_connections`` connections, idle plus
  active (more requests wait for one; ``None`` is unbounded — the watch client's pool). Idle connections
  the server closed are discarded before reuse; if a *reused* connection fails before a single response
  byte was read (the server closed it as we sent), the request is retried once on a fresh connection —
  only then, since otherwise the server may have applied it;
* bodies framed by Content-Length, ``Transfer-Encoding: chunked`` or the end of the connection, streamed
  to httpx as they arrive (a watch is a chunked response that stays open for minutes). A connection goes
  back to the pool once its response has been read to the end, and is closed if the response is closed
  early;
* httpx's timeouts (``request.extensions["timeout"]``) and exception types, so the client's retry policy
  can tell "could not connect" (ConnectError, ConnectTimeout, PoolTimeout: nothing was sent) from "broke
  after sending" (ReadError, WriteError, RemoteProtocolError, ReadTimeout).

Not supported, because the API server does not need them: HTTP/2, proxies (httpx still routes to its own
transport for proxies from the environment), ``Expect: 100-continue``, upgrades.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import httpx

__all__ = ["StreamTransport"]

T = TypeVar("T")
PoolKey = tuple[str, str, int]

DEFAULT_PORTS = {"http": 80, "https": 443}
READ_SIZE = 65536
STREAM_LIMIT = 1 << 20  # the longest response head or chunk-size line we accept
EAGER_BODY_LIMIT = 1 << 20  # Content-Length bodies up to this size are read with the head
CRLF = b"\r\n"
HEAD_END = b"\r\n\r\n"
NO_BODY_STATUS = frozenset({204, 304})
# errors that, on a reused connection before any response byte, mean "the server had closed it"
STALE_ERRORS = (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError)


class StreamTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over asyncio streams with a keep-alive connection pool; see the module docstring.

    ``ssl_context`` is what :meth:`ClientConfig.ssl_context` returns: an SSLContext for https, or
    True/None (a default context is made if an https URL is requested anyway).
    """

    def __init__(self, *, ssl_context: ssl.SSLContext | bool | None = None, max_connections: int | None = 64,
                 keepalive_expiry: float | None = 5.0) -> None:
        self._ssl = ssl_context if isinstance(ssl_context, ssl.SSLContext) else None
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._pools: dict[PoolKey, _Pool] = {}
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise httpx.ConnectError("the transport is closed", request=request)
        url = request.url
        key = (url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme, 80))
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(self._max_connections, self._keepalive_expiry)
        timeouts: dict[str, float | None] = request.extensions.get("timeout") or {}
        payload, close = await _encode_request(request)
        conn = pool.take_idle()
        if conn is None and not pool.claim_slot():
            conn = await _with_timeout(pool.wait(), timeouts.get("pool"), httpx.PoolTimeout, request)
        # from here on we hold a slot: `conn`, or a free one (conn is None) to open a connection in
        try:
            if conn is None:
                conn = await self._connect(pool, key, request, timeouts.get("connect"))
            try:
                return await _exchange(pool, conn, request, payload, close, timeouts)
            except _Stale:
                pool.forget(conn)
                conn = await self._connect(pool, key, request, timeouts.get("connect"))
                return await _exchange(pool, conn, request, payload, close, timeouts)
        except BaseException:
            pool.discard(conn)
            raise

    async def _connect(self, pool: _Pool, key: PoolKey, request: httpx.Request, timeout: float | None) -> _Conn:
        """Open a connection in the slot the caller holds (the caller frees the slot if this fails)."""
        scheme, host, port = key
        tls = None
        if scheme == "https":
            tls = self._ssl = self._ssl or ssl.create_default_context()
        try:
            opening = asyncio.open_connection(host, port, ssl=tls, server_hostname=host if tls else None,
                                              limit=STREAM_LIMIT)
            reader, writer = await _with_timeout(opening, timeout, httpx.ConnectTimeout, request)
        except OSError as exc:  # refused, unreachable, DNS, TLS handshake (ssl.SSLError is an OSError)
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}", request=request) from exc
        if self._closed:
            writer.close()
            raise httpx.ConnectError("the transport is closed", request=request)
        return pool.add(_Conn(reader, writer))

    async def aclose(self) -> None:
        self._closed = True
        pools, self._pools = list(self._pools.values()), {}
        writers = [writer for pool in pools for writer in pool.close_all()]
        if writers:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)


async def _exchange(pool: _Pool, conn: _Conn, request: httpx.Request, payload: bytes, close: bool,
                    timeouts: dict[str, float | None]) -> httpx.Response:
    """Send ``payload`` on ``conn`` and read the response head, and the body when it is small and framed by a
    Content-Length (it comes right behind the head: the connection returns to the pool at once, and httpx
    gets it as content, without streaming machinery). Other bodies stream from the returned response.

    Raises _Stale when a reused connection failed before any response byte arrived.
    """
    reused, conn.reused = conn.reused, True
    try:
        _write(conn, payload, request)
        if conn.writer.transport.get_write_buffer_size():  # usually all sent at once: no drain, no timer
            await _with_timeout(_drain(conn, request), timeouts.get("write"), httpx.WriteTimeout, request)
    except httpx.WriteError as exc:
        if reused:
            raise _Stale from exc
        raise
    head = body = None
    try:
        async with asyncio.timeout(timeouts.get("read")):
            head = await _read_head(conn.reader)
            framing, length, keep_alive = _framing(request.method, head, close)
            if framing == _LENGTH and length <= EAGER_BODY_LIMIT:
                body = await conn.reader.readexactly(length)
    except TimeoutError as exc:
        raise httpx.ReadTimeout(f"no response within {timeouts.get('read')}s", request=request) from exc
    except STALE_ERRORS as exc:
        if reused and head is None and not getattr(exc, "partial", b""):
            raise _Stale from exc
        raise _read_error(exc, request) from exc
    except (OSError, asyncio.LimitOverrunError, _Malformed) as exc:
        raise _read_error(exc, request) from exc
    status, reason, headers, http10 = head
    extensions = {"http_version": b"HTTP/1.0" if http10 else b"HTTP/1.1", "reason_phrase": reason}
    if body is not None or framing == _NONE:
        response = httpx.Response(status, headers=headers, content=body, extensions=extensions)
        if keep_alive:
            pool.release(conn)
        else:
            pool.discard(conn)
        return response
    stream = _ResponseStream(pool, conn, request, framing, length, keep_alive, timeouts.get("read"))
    return httpx.Response(status, headers=headers, stream=stream, extensions=extensions)


# --- connections and the pool ---------------------------------------------------------------------


class _Conn:
    __slots__ = ("idle_since", "reader", "reused", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reused = False
        self.idle_since = 0.0

    def usable(self, now: float, expiry: float | None) -> bool:
        """Still open on both sides (the server closes idle keep-alive connections) and not idle too long."""
        if self.reader.at_eof() or self.writer.is_closing():
            return False
        return expiry is None or now - self.idle_since < expiry

    def close(self) -> None:
        self.writer.close()


class _Pool:
    """The connections to one origin, at most ``limit`` (None: any number) idle and active together.

    A request holds a *slot* from the moment it claims one (to open a connection in) or takes an idle
    connection, until its connection is discarded. Released connections and freed slots are handed to
    waiters directly, first come first served.
    """

    def __init__(self, limit: int | None, expiry: float | None) -> None:
        self.limit = limit
        self.expiry = expiry
        self.slots = 0
        self.idle: list[_Conn] = []
        self.conns: set[_Conn] = set()
        self.waiters: deque[asyncio.Future[_Conn | None]] = deque()
        self.closed = False

    def take_idle(self) -> _Conn | None:
        """The most recently used idle connection still open (the least likely to have been closed)."""
        if not self.idle:
            return None
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if conn.usable(now, self.expiry):
                return conn
            self.forget(conn)
            self.slots -= 1  # no waiters while there are idle connections: the slot is simply free
        return None

    def claim_slot(self) -> bool:
        if self.limit is not None and self.slots >= self.limit:
            return False
        self.slots += 1
        return True

    async def wait(self) -> _Conn | None:
        """Wait for a released connection, or (None) a freed slot to open one in."""
        waiter: asyncio.Future[_Conn | None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:  # includes a pool timeout
            if waiter.done() and not waiter.cancelled():  # handed one just as we gave up: pass it on
                conn = waiter.result()
                if conn is None:
                    self._free_slot()
                else:
                    self.release(conn)
            else:
                with contextlib.suppress(ValueError):
                    self.waiters.remove(waiter)
            raise

    def add(self, conn: _Conn) -> _Conn:
        self.conns.add(conn)
        return conn

    def release(self, conn: _Conn) -> None:
        """A connection whose response was read to the end: to a waiter, or to the idle list."""
        if self.closed:
            self.discard(conn)
            return
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    def forget(self, conn: _Conn) -> None:
        """Close ``conn`` but keep its slot (the caller opens another connection in it)."""
        conn.close()
        self.conns.discard(conn)

    def discard(self, conn: _Conn | None) -> None:
        """Close ``conn`` (None: a slot that has no connection) and free its slot."""
        if conn is not None:
            self.forget(conn)
        self._free_slot()

    def _free_slot(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to the waiter
                return
        self.slots -= 1

    def close_all(self) -> list[asyncio.StreamWriter]:
        self.closed = True
        conns, self.conns, self.idle = list(self.conns), set(), []
        for conn in conns:
            conn.close()
        return [conn.writer for conn in conns]


# --- the request ------------------------------------------------------------------------------------


async def _encode_request(request: httpx.Request) -> tuple[bytes, bool]:
    """Request line, headers and body as one buffer (bodies here are small JSON documents), and whether the
    request asks to close the connection afterwards."""
    try:
        body = request.content
    except httpx.RequestNotRead:
        body = await request.aread()
    raw = request.headers.raw
    host = length = streamed = close = False
    for name, value in raw:
        lname = name.lower()
        if lname == b"host":
            host = True
        elif lname == b"content-length":
            length = True
        elif lname == b"transfer-encoding":
            streamed = True
        elif lname == b"connection":
            close = close or value.lower() == b"close"
    if streamed or (body and not length):  # a streamed body was read whole above: send it with a length instead
        raw = [(k, v) for k, v in raw if k.lower() not in (b"transfer-encoding", b"content-length")]
        raw.append((b"Content-Length", str(len(body)).encode()))
    if not host:
        raw.insert(0, (b"Host", request.url.netloc))
    parts = [request.method.encode(), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    for name, value in raw:
        parts += (name, b": ", value, CRLF)
    parts += (CRLF, body)
    return b"".join(parts), close


def _write(conn: _Conn, payload: bytes, request: httpx.Request) -> None:
    try:
        conn.writer.write(payload)
    except (OSError, RuntimeError) as exc:  # RuntimeError: the transport was closed under us
        raise httpx.WriteError(f"{type(exc).__name__}: {exc}", request=request) from exc


async def _drain(conn: _Conn, request: httpx.Request) -> None:
    try:
        await conn.writer.drain()
    except (OSError, RuntimeError) as exc:
        raise httpx.WriteError(f"{type(exc).__name__}: {exc}", request=request) from exc


# --- the response -----------------------------------------------------------------------------------

_NONE, _LENGTH, _CHUNKED, _CLOSE = range(4)


class _Stale(Exception):
    """A reused connection failed before any response byte: the server had closed it; retry once."""


class _Malformed(Exception):
    """The response is not HTTP/1.x as we understand it."""


_Head = tuple[int, bytes, list[tuple[bytes, bytes]], bool]


async def _read_head(reader: asyncio.StreamReader) -> _Head:
    """Status code, reason phrase, raw headers (duplicates kept) and whether the server speaks HTTP/1.0.

    Interim (1xx) responses other than 101 are skipped.
    """
    while True:
        lines = (await reader.readuntil(HEAD_END))[:-4].split(CRLF)
        status, reason, http10 = _status_line(lines[0])
        if status >= 200 or status == 101:
            return status, reason, [_header(line) for line in lines[1:]], http10


def _status_line(line: bytes) -> tuple[int, bytes, bool]:
    parts = line.split(b" ", 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0") or len(parts[1]) != 3 or not parts[1].isdigit():
        raise _Malformed(f"bad status line {line[:100]!r}")
    return int(parts[1]), parts[2] if len(parts) > 2 else b"", parts[0] == b"HTTP/1.0"


def _header(line: bytes) -> tuple[bytes, bytes]:
    name, sep, value = line.partition(b":")
    if not sep or not name or name[:1] in (b" ", b"\t") or name[-1:] in (b" ", b"\t"):
        raise _Malformed(f"bad header line {line[:100]!r}")
    return name, value.strip(b" \t")


def _framing(method: str, head: _Head, close: bool) -> tuple[int, int, bool]:
    """How the body is delimited, its length (for Content-Length) and whether the connection stays open.

    ``close``: the request asked for the connection to be closed.
    """
    status, _, headers, http10 = head
    length: int | None = None
    chunked = False
    connection: set[bytes] = set()
    for name, value in headers:
        lname = name.lower()
        if lname == b"content-length":
            if not value.isdigit() or (length is not None and length != int(value)):
                raise _Malformed(f"bad Content-Length {value!r}")
            length = int(value)
        elif lname == b"transfer-encoding":
            chunked = value.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
        elif lname == b"connection":
            connection.update(token.strip() for token in value.lower().split(b","))
    keep_alive = not close and (b"keep-alive" in connection if http10 else b"close" not in connection)
    if method == "HEAD" or status in NO_BODY_STATUS or status < 200:
        return _NONE, 0, keep_alive and status != 101
    if chunked:
        return _CHUNKED, 0, keep_alive
    if length is not None:
        return (_LENGTH, length, keep_alive) if length else (_NONE, 0, keep_alive)
    return _CLOSE, 0, False  # also a Transfer-Encoding that is not chunked: the body ends with the connection


class _ResponseStream(httpx.AsyncByteStream):
    """The body as it arrives. Read to the end, the connection returns to the pool; closed early, it is closed."""

    def __init__(self, pool: _Pool, conn: _Conn, request: httpx.Request, framing: int, length: int,
                 keep_alive: bool, read_timeout: float | None) -> None:
        self._pool = pool
        self._conn: _Conn | None = conn
        self._request = request
        self._framing = framing
        self._length = length
        self._keep_alive = keep_alive
        self._timeout = read_timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            return
        reader, framing = conn.reader, self._framing
        try:
            if framing == _LENGTH:
                remaining = self._length
                while remaining:
                    part = await self._read(reader.read(min(remaining, READ_SIZE)))
                    if not part:
                        raise httpx.RemoteProtocolError(
                            f"the server closed the connection {remaining} bytes before the end of the body",
                            request=self._request)
                    remaining -= len(part)
                    yield part
            elif framing == _CHUNKED:
                while size := _chunk_size(await self._read(reader.readuntil(CRLF)), self._request):
                    part = await self._read(reader.readexactly(size + 2))
                    if part[-2:] != CRLF:
                        raise httpx.RemoteProtocolError("a chunk does not end with CRLF", request=self._request)
                    yield part[:-2]
                while await self._read(reader.readuntil(CRLF)) != CRLF:  # trailers, ignored
                    pass
            else:
                while part := await self._read(reader.read(READ_SIZE)):
                    yield part
        except BaseException:  # an error, cancellation or an early aclose(): the connection is in mid-response
            self._abandon()
            raise
        self.finish()

    async def _read(self, op: Awaitable[T]) -> T:
        try:
            return await _with_timeout(op, self._timeout, httpx.ReadTimeout, self._request)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise _read_error(exc, self._request) from exc

    def finish(self) -> None:
        """The body has been read: the connection may serve the next request."""
        conn, self._conn = self._conn, None
        if conn is not None:
            if self._keep_alive:
                self._pool.release(conn)
            else:
                self._pool.discard(conn)

    def _abandon(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.discard(conn)

    async def aclose(self) -> None:
        self._abandon()


def _chunk_size(line: bytes, request: httpx.Request) -> int:
    try:
        return int(line.split(b";", 1)[0].strip(), 16)
    except ValueError:
        raise httpx.RemoteProtocolError(f"bad chunk size line {line[:100]!r}", request=request) from None


def _read_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    if isinstance(exc, asyncio.IncompleteReadError):
        return httpx.RemoteProtocolError("the server closed the connection mid-response", request=request)
    if isinstance(exc, asyncio.LimitOverrunError | _Malformed):
        return httpx.RemoteProtocolError(f"malformed response: {exc}", request=request)
    return httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request)


async def _with_timeout(op: Awaitable[T], seconds: float | None, error: type[httpx.TimeoutException],
                        request: httpx.Request) -> T:
    """``await op``, raising ``error`` after ``seconds`` (None: no limit, and no timer to set up)."""
    if seconds is None:
        return await op
    try:
        async with asyncio.timeout(seconds):
            return await op
    except TimeoutError as exc:
        raise error(f"timed out after {seconds}s", request=request) from exc
