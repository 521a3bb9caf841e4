"""The storage layer and the watch cache against a real etcd (no API server involved)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from apiserver.storage import errors
from apiserver.storage.cacher import WatchCache
from apiserver.storage.store import Preconditions, Store


@pytest.fixture
async def store(etcd):
    s = await Store.connect([etcd.endpoint])
    yield s
    await s.close()


@pytest.fixture
def prefix() -> str:
    return f"/registry/tests/{uuid.uuid4().hex[:8]}/"


def obj(name: str, **data) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


async def test_create_get_and_resource_version_from_etcd(store, prefix):
    created = await store.create(prefix + "a", obj("a", x="1"))
    rv = created["metadata"]["resourceVersion"]
    assert int(rv) > 0
    got = await store.get(prefix + "a")
    assert got == created
    raw, _ = await store.client.get((prefix + "a").encode())
    assert b"resourceVersion" not in raw.value  # never stored in the value


async def test_create_existing_fails(store, prefix):
    await store.create(prefix + "a", obj("a"))
    with pytest.raises(errors.AlreadyExists):
        await store.create(prefix + "a", obj("a"))


async def test_get_missing(store, prefix):
    with pytest.raises(errors.NotFound):
        await store.get(prefix + "missing")


async def test_guaranteed_update_retries_on_conflict(store, prefix):
    key = prefix + "counter"
    await store.create(key, obj("counter", n="0"))
    calls = 0

    def bump(current):
        nonlocal calls
        calls += 1
        current["data"]["n"] = str(int(current["data"]["n"]) + 1)
        return current

    await asyncio.gather(*(store.guaranteed_update(key, bump) for _ in range(10)))
    final = await store.get(key)
    assert final["data"]["n"] == "10"
    assert calls >= 10


async def test_guaranteed_update_skips_noop_write(store, prefix):
    key = prefix + "same"
    created = await store.create(key, obj("same", a="b"))
    result = await store.guaranteed_update(key, lambda current: current)
    assert result["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_delete_preconditions(store, prefix):
    key = prefix + "d"
    created = await store.create(key, {**obj("d"), "metadata": {"name": "d", "uid": "u1"}})
    with pytest.raises(errors.PreconditionFailed):
        await store.delete(key, preconditions=Preconditions(uid="other"))
    with pytest.raises(errors.PreconditionFailed):
        await store.delete(key, preconditions=Preconditions(resource_version="1"))
    deleted = await store.delete(key, preconditions=Preconditions(uid="u1"))
    assert deleted["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    with pytest.raises(errors.NotFound):
        await store.get(key)


async def test_prefix_does_not_match_longer_names(store, prefix):
    await store.create(prefix + "a/x", obj("x"))
    await store.create(prefix + "ab/y", obj("y"))
    listed = await store.list(prefix + "a")
    assert [o["metadata"]["name"] for o in listed.items] == ["x"]
    assert await store.count(prefix + "a") == 1


async def test_paginated_list_is_consistent_while_writing(store, prefix):
    for i in range(25):
        await store.create(f"{prefix}{i:03d}", obj(f"{i:03d}"))
    first = await store.list(prefix, limit=10)
    assert len(first.items) == 10 and first.continue_token and first.remaining == 15
    # writes after the first page must not show up in later pages
    await store.create(f"{prefix}999", obj("999"))
    await store.delete(f"{prefix}024")
    second = await store.list(prefix, limit=10, continue_token=first.continue_token)
    third = await store.list(prefix, limit=10, continue_token=second.continue_token)
    names = [o["metadata"]["name"] for o in first.items + second.items + third.items]
    assert names == [f"{i:03d}" for i in range(25)]
    assert not third.continue_token
    assert first.revision == second.revision == third.revision


async def test_list_with_predicate_and_limit(store, prefix):
    for i in range(20):
        await store.create(f"{prefix}{i:02d}", obj(f"{i:02d}", even=str(i % 2 == 0)))
    page = await store.list(prefix, limit=3, predicate=lambda o: o["data"]["even"] == "True")
    assert [o["metadata"]["name"] for o in page.items] == ["00", "02", "04"]
    rest = await store.list(prefix, limit=100, continue_token=page.continue_token,
                            predicate=lambda o: o["data"]["even"] == "True")
    assert len(rest.items) == 7


async def test_expired_continue_token(store, prefix):
    for i in range(5):
        await store.create(f"{prefix}{i}", obj(str(i)))
    page = await store.list(prefix, limit=2)
    for i in range(5):
        await store.create(f"{prefix}x{i}", obj(f"x{i}"))
    await store.compact(await store.current_revision())
    with pytest.raises(errors.Expired):
        await store.list(prefix, limit=2, continue_token=page.continue_token)


async def test_invalid_continue_token(store, prefix):
    with pytest.raises(errors.InvalidContinue):
        await store.list(prefix, limit=2, continue_token="not-a-token")


async def test_watch_resumes_exactly_after_revision(store, prefix):
    a = await store.create(prefix + "a", obj("a"))
    start = int(a["metadata"]["resourceVersion"])
    await store.guaranteed_update(prefix + "a", lambda cur: {**cur, "data": {"v": "2"}})
    await store.create(prefix + "b", obj("b"))
    await store.delete(prefix + "a")
    seen = []
    async with store.watch(prefix, revision=start) as stream:
        async for event in stream:
            if event.type == "PROGRESS":
                continue
            seen.append((event.type, event.obj["metadata"]["name"], event.revision))
            if len(seen) == 3:
                break
    assert [(t, n) for t, n, _ in seen] == [("MODIFIED", "a"), ("ADDED", "b"), ("DELETED", "a")]
    revisions = [r for _, _, r in seen]
    assert revisions == sorted(revisions) and revisions[0] > start


async def test_watch_from_compacted_revision_is_expired(store, prefix):
    first = await store.create(prefix + "a", obj("a"))
    for i in range(3):
        await store.create(f"{prefix}n{i}", obj(f"n{i}"))
    await store.compact(await store.current_revision())
    with pytest.raises(errors.Expired):
        async with store.watch(prefix, revision=int(first["metadata"]["resourceVersion"]) - 1) as stream:
            async for _ in stream:
                pass


# --- watch cache ------------------------------------------------------------------------------------


@pytest.fixture
async def cache(store, prefix):
    c = WatchCache(store, prefix, namespaced=True, capacity=50, queue_limit=20)
    await c.start()
    yield c
    await c.stop()


async def wait_for_revision(cache: WatchCache, revision: int) -> None:
    await cache.wait_until_fresh(revision, timeout=5)


async def test_cache_follows_etcd(store, cache, prefix):
    created = await store.create(prefix + "ns1/a", obj("a"))
    await wait_for_revision(cache, int(created["metadata"]["resourceVersion"]))
    assert cache.get(prefix + "ns1/a") == created
    listed = cache.list("ns1", None)
    assert [o["metadata"]["name"] for o in listed.items] == ["a"]
    assert cache.list("ns2", None).items == []


async def test_cache_watch_from_zero_sends_current_state_then_changes(store, cache, prefix):
    a = await store.create(prefix + "ns/a", obj("a"))
    await wait_for_revision(cache, int(a["metadata"]["resourceVersion"]))
    watcher = cache.watch(0, namespace="ns", predicate=None)
    b = await store.create(prefix + "ns/b", obj("b"))
    first = await watcher.__anext__()
    second = await watcher.__anext__()
    assert (first.type, first.obj["metadata"]["name"]) == ("ADDED", "a")
    assert (second.type, second.obj["metadata"]["name"], second.revision) == (
        "ADDED", "b", int(b["metadata"]["resourceVersion"]))
    watcher.close()


async def test_cache_watch_from_revision_replays_buffer(store, cache, prefix):
    a = await store.create(prefix + "ns/a", obj("a"))
    start = int(a["metadata"]["resourceVersion"])
    await store.create(prefix + "ns/b", obj("b"))
    c = await store.create(prefix + "ns/c", obj("c"))
    await wait_for_revision(cache, int(c["metadata"]["resourceVersion"]))
    watcher = cache.watch(start, namespace=None, predicate=None)
    got = [await watcher.__anext__(), await watcher.__anext__()]
    assert [d.obj["metadata"]["name"] for d in got] == ["b", "c"]
    watcher.close()


async def test_cache_selector_transitions(store, cache, prefix):
    key = prefix + "ns/x"
    created = await store.create(key, {**obj("x"), "metadata": {"name": "x", "labels": {"app": "a"}}})
    await wait_for_revision(cache, int(created["metadata"]["resourceVersion"]))
    watcher = cache.watch(cache.revision, namespace="ns",
                          predicate=lambda o: (o["metadata"].get("labels") or {}).get("app") == "b")

    def relabel(app):
        def update(cur):
            cur["metadata"]["labels"] = {"app": app}
            return cur
        return update

    await store.guaranteed_update(key, relabel("b"))  # enters the selector
    await store.guaranteed_update(key, relabel("c"))  # leaves it
    entered = await watcher.__anext__()
    left = await watcher.__anext__()
    assert entered.type == "ADDED" and left.type == "DELETED"
    assert left.obj["metadata"]["labels"] == {"app": "b"}  # the last state it was seen matching
    assert int(left.obj["metadata"]["resourceVersion"]) == left.revision
    watcher.close()


async def test_cache_watch_older_than_buffer_is_expired(store, cache, prefix):
    first = await store.create(prefix + "ns/first", obj("first"))
    last = first
    for i in range(60):  # more than the capacity of 50
        last = await store.create(f"{prefix}ns/n{i}", obj(f"n{i}"))
    await wait_for_revision(cache, int(last["metadata"]["resourceVersion"]))
    with pytest.raises(errors.Expired):
        cache.watch(int(first["metadata"]["resourceVersion"]), namespace=None, predicate=None)


async def test_slow_watcher_is_closed_without_blocking_others(store, cache, prefix):
    slow = cache.watch(cache.revision, namespace=None, predicate=None)
    fast = cache.watch(cache.revision, namespace=None, predicate=None)
    received = []

    async def consume():
        async for item in fast:
            received.append(item)
            if len(received) == 30:
                return

    consumer = asyncio.create_task(consume())
    for batch in range(3):  # the fast watcher keeps up: it never has more than 10 queued
        for i in range(10):
            await store.create(f"{prefix}ns/s{batch}-{i}", obj(f"s{batch}-{i}"))
        while len(received) < 10 * (batch + 1) and not consumer.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    await asyncio.wait_for(consumer, 10)
    assert slow.closed and slow.overflowed  # queue limit is 20 and nobody read it
    assert len(received) == 30
    fast.close()


async def test_cache_watch_newer_revision_skips_seen_events(store, cache, prefix):
    a = await store.create(prefix + "ns/a", obj("a"))
    b = await store.create(prefix + "ns/b", obj("b"))
    # a client that listed at b's revision watches from there: it must get only later events
    rv_b = int(b["metadata"]["resourceVersion"])
    watcher = cache.watch(rv_b, namespace=None, predicate=None)
    c = await store.create(prefix + "ns/c", obj("c"))
    item = await asyncio.wait_for(watcher.__anext__(), 5)
    assert item.obj["metadata"]["name"] == "c"
    assert item.revision == int(c["metadata"]["resourceVersion"])
    assert int(a["metadata"]["resourceVersion"]) < rv_b
    watcher.close()


async def test_objects_written_with_a_shared_lease_expire(store, prefix):
    store.leases._window = 0.0  # a fresh lease for this test
    lease = await store.lease_for(1)
    await store.create(prefix + "ev", obj("ev"), lease=lease)
    assert await store.lease_for(1) != lease  # window 0: no reuse
    store.leases._window = 60.0
    again = await store.lease_for(2)
    assert await store.lease_for(2) == again  # reused within the window
    async with store.watch(prefix, revision=await store.current_revision()) as stream:
        async for event in stream:
            if event.type == "DELETED":
                break
    with pytest.raises(errors.NotFound):
        await store.get(prefix + "ev")
