"""The etcd client against a real etcd: the guarantees the storage layer and watch cache build on.

Guarded writes return the current object on conflict, paginated lists are consistent snapshots,
watches replay exactly the history after a revision and report compaction, and a member loss
fails reads over while breaking (not silently resuming) a watch.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from apiserver.storage.etcd import (
    EtcdClient,
    EtcdCompacted,
    EtcdRequestTooLarge,
    EtcdUnavailable,
    Event,
    Watch,
    prefix_range_end,
)
from kubemini.etcdserver import EtcdCluster, EtcdServer

PUT, DELETE = Event.PUT, Event.DELETE


@pytest.fixture(scope="module")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path_factory.mktemp("etcd")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def client(etcd_server: EtcdServer) -> AsyncIterator[EtcdClient]:
    async with EtcdClient([etcd_server.endpoint]) as c:
        yield c


async def next_events(watch: Watch, count: int) -> list[Event]:
    """Read batches until ``count`` events arrived (skipping progress notifications)."""
    events: list[Event] = []
    async with asyncio.timeout(10):
        async for batch in watch:
            events.extend(batch.events)
            if len(events) >= count:
                return events
    raise AssertionError("watch ended")


def test_prefix_range_end() -> None:
    assert prefix_range_end(b"/registry/pods/") == b"/registry/pods0"
    assert prefix_range_end(b"a\xff\xff") == b"b"
    assert prefix_range_end(b"\xff") == b"\0"


async def test_create_twice_returns_existing_kv(client: EtcdClient) -> None:
    first = await client.create(b"/create/a", b"one")
    assert first.succeeded and first.kv is None

    second = await client.create(b"/create/a", b"two")

    assert not second.succeeded
    assert second.kv is not None and second.kv.value == b"one"
    assert second.kv.mod_revision == first.revision


async def test_update_with_stale_revision_returns_current_kv(client: EtcdClient) -> None:
    created = await client.create(b"/update/a", b"v1")
    updated = await client.update(b"/update/a", b"v2", created.revision)
    assert updated.succeeded and updated.revision > created.revision

    stale = await client.update(b"/update/a", b"v3", created.revision)

    assert not stale.succeeded
    assert stale.kv is not None and stale.kv.value == b"v2" and stale.kv.mod_revision == updated.revision
    kv, _ = await client.get(b"/update/a")
    assert kv is not None and kv.value == b"v2"


async def test_delete_with_precondition(client: EtcdClient) -> None:
    created = await client.create(b"/delete/a", b"v1")
    updated = await client.update(b"/delete/a", b"v2", created.revision)

    stale = await client.delete(b"/delete/a", created.revision)
    assert not stale.succeeded and stale.kv is not None and stale.kv.value == b"v2"

    deleted = await client.delete(b"/delete/a", updated.revision)
    assert deleted.succeeded and deleted.kv is not None and deleted.kv.value == b"v2"
    assert (await client.get(b"/delete/a"))[0] is None

    gone = await client.delete(b"/delete/a", updated.revision)
    assert not gone.succeeded and gone.kv is None


async def test_put_delete_range_and_status(client: EtcdClient) -> None:
    rev1 = await client.put(b"/plain/a", b"1")
    rev2 = await client.put(b"/plain/b", b"2")
    assert rev2 == rev1 + 1

    deleted, rev3 = await client.delete_range(b"/plain/", prefix_range_end(b"/plain/"))

    assert (deleted, rev3) == (2, rev2 + 1)
    status = await client.status()
    assert status.version.startswith("3.") and status.header.revision == rev3


async def test_paginated_range_is_a_consistent_snapshot_under_writes(client: EtcdClient) -> None:
    prefix, end = b"/page/", prefix_range_end(b"/page/")
    for i in range(30):
        await client.put(prefix + b"%02d" % i, b"orig")

    first = await client.range(prefix, end, limit=7)
    snapshot, pages, kvs = first.header.revision, 1, list(first.kvs)
    assert first.count == 30 and first.more
    more = first.more
    while more:
        # Writes between pages: changed values, new and deleted keys must not show up.
        await client.put(prefix + b"%02d" % (pages * 3), b"changed")
        await client.put(prefix + b"new%02d" % pages, b"new")
        await client.delete_range(prefix + b"%02d" % (29 - pages))
        page = await client.range(kvs[-1].key + b"\0", end, limit=7, revision=snapshot)
        assert page.header.revision > snapshot
        kvs.extend(page.kvs)
        more, pages = page.more, pages + 1

    assert pages == 5
    assert [kv.key for kv in kvs] == [prefix + b"%02d" % i for i in range(30)]
    assert {kv.value for kv in kvs} == {b"orig"}


async def test_watch_replays_exactly_the_events_after_a_revision(client: EtcdClient) -> None:
    _, before = await client.get(b"/watch/a")
    await client.put(b"/watch/a", b"v1")
    await client.put(b"/watch/a", b"v2")
    await client.delete_range(b"/watch/a")
    await client.put(b"/watch/b", b"b1")
    await client.put(b"/other/x", b"not watched")

    async with client.watch(b"/watch/", prefix_range_end(b"/watch/"), start_revision=before + 1) as w:
        events = await next_events(w, 4)
        await w.request_progress()
        async with asyncio.timeout(10):
            progress = await anext(w)

    assert [(e.type, e.kv.key, e.kv.mod_revision) for e in events] == [
        (PUT, b"/watch/a", before + 1),
        (PUT, b"/watch/a", before + 2),
        (DELETE, b"/watch/a", before + 3),
        (PUT, b"/watch/b", before + 4),
    ]
    assert not events[0].HasField("prev_kv")
    assert events[1].prev_kv.value == b"v1"
    assert events[2].prev_kv.value == b"v2"
    assert progress.events == [] and progress.revision == before + 5


async def test_progress_request_yields_an_empty_batch(client: EtcdClient) -> None:
    rev = await client.put(b"/idle-marker", b"x")
    async with client.watch(b"/idle/", prefix_range_end(b"/idle/"), start_revision=rev + 1) as w:
        await w.request_progress()
        async with asyncio.timeout(5):
            batch = await anext(w)

    assert batch.events == [] and batch.revision >= rev


async def test_compacted_revision_raises_for_range_and_watch(client: EtcdClient) -> None:
    old = await client.put(b"/compact/a", b"1")
    kept = await client.put(b"/compact/a", b"2")
    await client.compact(kept)

    with pytest.raises(EtcdCompacted):
        await client.range(b"/compact/a", revision=old)
    with pytest.raises(EtcdCompacted) as info:
        async with client.watch(b"/compact/", prefix_range_end(b"/compact/"), start_revision=old) as w:
            async with asyncio.timeout(5):
                await anext(w)
    assert info.value.compact_revision == kept


async def test_lease_keepalive_then_expiry_deletes_the_key(client: EtcdClient) -> None:
    lease = await client.lease_grant(2)
    rev = await client.put(b"/lease/a", b"held", lease=lease)
    assert await client.lease_keepalive_once(lease) > 0

    async with client.watch(b"/lease/a", b"", start_revision=rev + 1) as w:
        (expired,) = await next_events(w, 1)

    assert expired.type == DELETE and expired.prev_kv.lease == lease
    assert (await client.get(b"/lease/a"))[0] is None
    assert await client.lease_keepalive_once(lease) <= 0


async def test_lease_revoke_deletes_the_key(client: EtcdClient) -> None:
    lease = await client.lease_grant(60)
    await client.put(b"/lease/b", b"held", lease=lease)

    await client.lease_revoke(lease)

    assert (await client.get(b"/lease/b"))[0] is None


async def test_request_over_the_size_limit_raises(client: EtcdClient) -> None:
    with pytest.raises(EtcdRequestTooLarge):
        await client.put(b"/big", b"x" * (1536 * 1024 + 1))
    assert (await client.get(b"/big"))[0] is None


async def test_failover_to_another_member(tmp_path: Path) -> None:
    cluster = EtcdCluster(tmp_path).start()
    try:
        # Start on a follower: losing it leaves a leader, so the very next read must succeed.
        leader = cluster.leader_index()
        order = sorted(range(3), key=lambda i: i == leader)
        async with EtcdClient([cluster.endpoints[i] for i in order], timeout=3) as c:
            start = await c.put(b"/fo/0", b"0")
            await c.put(b"/fo/1", b"1")
            async with c.watch(b"/fo/", prefix_range_end(b"/fo/"), start_revision=start) as w:
                seen = await next_events(w, 2)
                cluster.kill(order[0])

                kv, _ = await c.get(b"/fo/1")
                assert kv is not None and kv.value == b"1"
                assert c.endpoint != cluster.endpoints[order[0]].removeprefix("http://")
                with pytest.raises(EtcdUnavailable):
                    await next_events(w, 1)

            await c.put(b"/fo/2", b"2")
            await c.put(b"/fo/3", b"3")
            async with c.watch(
                b"/fo/", prefix_range_end(b"/fo/"), start_revision=seen[-1].kv.mod_revision + 1
            ) as w:
                resumed = await next_events(w, 2)
            assert [e.kv.key for e in seen + resumed] == [b"/fo/0", b"/fo/1", b"/fo/2", b"/fo/3"]
    finally:
        cluster.stop(kill=True)
