"""Watch streams: chunked JSON lines, one ``{"type": ..., "object": ...}`` per event.

Events queued for a watcher are written together in one chunk, so a busy resource costs one
socket write per watcher per wake-up rather than one per event. A watch stays open until
``timeoutSeconds`` (default: a random 30-60 minutes, like kube-apiserver) or until the client
goes away; a watcher that falls too far behind is closed and the client re-watches.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from apiserver.metrics import WATCHERS
from apiserver.registry.errors import interpret
from apiserver.registry.generic import ResourceStore
from apiserver.server import codec, tables
from apiserver.server.params import int_param, list_options, optional_bool, truthy
from apiserver.storage.cacher import CacheWatcher, Delivery
from apiserver.storage.errors import StorageError
from machinery import errors as api

MIN_REQUEST_TIMEOUT = 1800
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


async def watch_response(request: Request, store: ResourceStore, namespace: str | None) -> Response:
    params = request.query_params
    opts = list_options(params)
    allow_bookmarks = truthy(params, "allowWatchBookmarks")
    timeout = int_param(params, "timeoutSeconds")
    if timeout is None or timeout <= 0:
        timeout = random.randint(MIN_REQUEST_TIMEOUT, 2 * MIN_REQUEST_TIMEOUT)
    if codec.wants_table(request):
        tables.include_object(request)  # a bad includeObject is a 400 now, not an error mid-stream
    encoder = _Encoder(request, store)
    try:
        source = await store.watch(
            namespace, opts, allow_bookmarks=allow_bookmarks,
            send_initial_events=optional_bool(params, "sendInitialEvents"),
        )
    except api.StatusError as err:
        if err.code != 410:
            raise
        return StreamingResponse(_single(encoder.error(err)), media_type=codec.JSON)
    closing = request.app.state.registry.closing
    return StreamingResponse(_stream(source, encoder, timeout, store.info.qualified, closing), media_type=codec.JSON)


async def _single(line: bytes) -> AsyncIterator[bytes]:
    yield line


async def _stream(source, encoder: _Encoder, timeout: int, resource: str,
                  closing: asyncio.Event) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    WATCHERS.labels(resource).inc()
    try:
        if isinstance(source, CacheWatcher):
            timer = loop.call_at(deadline, source.close)
            try:
                while True:
                    batch = await source.next_batch()
                    if not batch:
                        return
                    yield b"".join(encoder.event(item) for item in batch)
            finally:
                timer.cancel()
                source.close()
        else:
            async for chunk in _stream_direct(source, encoder, deadline, closing):
                yield chunk
    except StorageError as exc:  # storage errors mid-stream end the watch with an ERROR event
        yield encoder.error(interpret(exc, encoder.store.info))
    finally:
        WATCHERS.labels(resource).dec()


async def _stream_direct(source, encoder: _Encoder, deadline: float, closing: asyncio.Event):
    """A watch read straight from etcd; ends at the deadline or when the server shuts down."""
    loop = asyncio.get_running_loop()
    iterator = source.__aiter__()
    shutdown = asyncio.ensure_future(closing.wait())
    try:
        while True:
            following = asyncio.ensure_future(iterator.__anext__())
            done, _ = await asyncio.wait({following, shutdown}, timeout=max(0.0, deadline - loop.time()),
                                         return_when=asyncio.FIRST_COMPLETED)
            if following not in done:
                following.cancel()
                return
            try:
                item = following.result()
            except StopAsyncIteration:
                return
            except api.StatusError as err:
                yield encoder.error(err)
                return
            yield encoder.event(item)
    finally:
        shutdown.cancel()
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


class _Encoder:
    """Renders deliveries as watch lines: plain objects, or one-row Tables for kubectl get -w."""

    def __init__(self, request: Request, store: ResourceStore) -> None:
        self.request = request
        self.store = store
        self.table = codec.wants_table(request)
        self.first = True
        info = store.info
        self.kind = info.kind.encode()
        self.api_version = info.api_version.encode()

    def event(self, item: Delivery) -> bytes:
        if item.type == "BOOKMARK":
            return self._bookmark(item)
        if self.table:
            table = tables.table_for(self.request, self.store, [item.obj], revision=item.revision,
                                     with_columns=self.first)
            self.first = False
            body = orjson.dumps(table)
        else:
            body = item.object_json()
        return b'{"type":"' + item.type.encode() + b'","object":' + body + b"}\n"

    def _bookmark(self, item: Delivery) -> bytes:
        meta: dict = {"resourceVersion": str(item.revision)}
        if item.obj and item.obj.get("initialEventsEnd"):
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        obj = {"kind": self.store.info.kind, "apiVersion": self.store.info.api_version, "metadata": meta}
        return b'{"type":"BOOKMARK","object":' + orjson.dumps(obj) + b"}\n"

    def error(self, err: api.StatusError) -> bytes:
        return b'{"type":"ERROR","object":' + orjson.dumps(err.status()) + b"}\n"
