"""Informers and list-then-watch against a scripted fake API: relist after 410, resume after a disconnect,
handlers see exactly what changed, indexes follow updates."""

from __future__ import annotations

import asyncio

import pytest

from machinery.cache import LABEL_INDEX, NAMESPACE_INDEX, NODE_NAME_INDEX, OWNER_UID_INDEX, Indexer
from machinery.client import PODS
from machinery.client.watch import Relisted, list_and_watch
from machinery.clock import FakeClock
from machinery.errors import resource_expired, service_unavailable
from machinery.informer import SharedInformer, SharedInformerFactory


def pod(name, rv, ns="default", **extra):
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv), **extra.pop("meta", {})},
            **extra}


class ScriptedApi:
    """list_all returns the next scripted list; watch plays the next scripted stream (events, then an error)."""

    def __init__(self, lists, watches):
        self.clock = FakeClock()
        self.lists = list(lists)
        self.watches = list(watches)
        self.watch_calls: list[str] = []
        self.list_calls = 0

    async def list_all(self, resource, namespace=None, **_):
        self.list_calls += 1
        items, rv = self.lists.pop(0)
        return {"metadata": {"resourceVersion": str(rv)}, "items": items}

    async def watch(self, resource, namespace=None, *, resource_version=None, **_):
        self.watch_calls.append(resource_version)
        if not self.watches:
            await asyncio.Event().wait()  # an idle watch: block until cancelled
        events, error = self.watches.pop(0)
        for event in events:
            yield event
        if error is not None:
            raise error


async def take(stream, n):
    out = []
    async for item in stream:
        out.append(item)
        if len(out) == n:
            break
    return out


async def test_list_then_watch_resumes_from_last_seen_version_after_disconnect():
    api = ScriptedApi(
        lists=[([pod("a", 5)], 10)],
        watches=[([{"type": "ADDED", "object": pod("b", 11)},
                   {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}}],
                  service_unavailable("connection reset")),
                 ([{"type": "MODIFIED", "object": pod("b", 16)}], None)])
    stream = list_and_watch(api, PODS)
    task = asyncio.create_task(take(stream, 4))
    while not task.done():
        api.clock.advance(1)  # the backoff after the disconnect
        await asyncio.sleep(0)
    items = task.result()
    assert isinstance(items[0], Relisted) and items[0].resource_version == "10"
    assert [i["type"] for i in items[1:]] == ["ADDED", "BOOKMARK", "MODIFIED"]
    assert api.watch_calls == ["10", "15"]  # resumed at the bookmark, not relisted
    assert api.list_calls == 1


async def test_gone_relists():
    api = ScriptedApi(lists=[([pod("a", 5)], 10), ([pod("b", 30)], 30)],
                      watches=[([], resource_expired(10, 20))])
    items = await take(list_and_watch(api, PODS), 2)
    assert [type(i) for i in items] == [Relisted, Relisted]
    assert items[1].items == [pod("b", 30)]
    assert api.watch_calls == ["10"]


async def test_unexpected_errors_are_retried_with_backoff_not_fatal():
    """Not every failure is an API Status (an unreadable token file, a body that is not JSON): the
    reflector must back off and carry on, not end and leave its informer's cache stale forever."""
    api = ScriptedApi(lists=[([pod("a", 5)], 10)],
                      watches=[([{"type": "ADDED", "object": pod("b", 11)}], ValueError("bad JSON line")),
                               ([{"type": "ADDED", "object": pod("c", 12)}], None)])
    failing_list = api.list_all
    calls = 0

    async def list_all(*args, **kw):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("token file missing for a moment")
        return await failing_list(*args, **kw)

    api.list_all = list_all
    task = asyncio.create_task(take(list_and_watch(api, PODS), 3))
    for _ in range(50):
        if task.done():
            break
        api.clock.advance(1)  # the backoffs
        await asyncio.sleep(0)
    items = task.result()
    assert isinstance(items[0], Relisted) and items[0].resource_version == "10"
    assert [i["object"]["metadata"]["name"] for i in items[1:]] == ["b", "c"]
    assert api.watch_calls == ["10", "11"]  # resumed where the broken watch stopped


async def test_informer_after_410_tells_handlers_what_changed_while_it_was_away():
    api = ScriptedApi(
        lists=[([pod("keep", 1), pod("change", 2), pod("vanish", 3)], 10),
               ([pod("keep", 1), pod("change", 25), pod("new", 26)], 30)],
        watches=[([], resource_expired(10))])
    informer = SharedInformer(api, PODS)
    seen: list[tuple] = []
    informer.add_event_handler(lambda o: seen.append(("add", o["metadata"]["name"])),
                               lambda old, new: seen.append(("update", new["metadata"]["name"],
                                                             old["metadata"]["resourceVersion"],
                                                             new["metadata"]["resourceVersion"])),
                               lambda o: seen.append(("delete", o["metadata"]["name"])))
    task = asyncio.create_task(informer.run())
    await informer.wait_for_sync()
    for _ in range(20):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen[:3] == [("add", "keep"), ("add", "change"), ("add", "vanish")]
    assert sorted(seen[3:]) == [("add", "new"), ("delete", "vanish"), ("update", "change", "2", "25")]
    assert sorted(informer.store.keys()) == ["default/change", "default/keep", "default/new"]
    assert informer.relists == 2
    assert informer.last_sync_resource_version == "30"


async def test_informer_applies_watch_events_and_late_handlers_get_adds():
    api = ScriptedApi(lists=[([pod("a", 1)], 10)],
                      watches=[([{"type": "ADDED", "object": pod("b", 11)},
                                 {"type": "MODIFIED", "object": pod("a", 12)},
                                 {"type": "DELETED", "object": pod("b", 13)}], None)])
    informer = SharedInformer(api, PODS)
    events: list[str] = []
    informer.add_event_handler(lambda o: events.append("add " + o["metadata"]["name"]),
                               lambda old, new: events.append("update " + new["metadata"]["name"]),
                               lambda o: events.append("delete " + o["metadata"]["name"]))
    task = asyncio.create_task(informer.run())
    await informer.wait_for_sync()
    for _ in range(20):
        await asyncio.sleep(0)
    assert events == ["add a", "add b", "update a", "delete b"]
    late: list[str] = []
    informer.add_event_handler(on_add=lambda o: late.append(o["metadata"]["name"]))
    assert late == ["a"]
    assert informer.last_sync_resource_version == "13"
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_failing_handler_does_not_stop_the_others():
    api = ScriptedApi(lists=[([pod("a", 1)], 10)], watches=[])
    informer = SharedInformer(api, PODS)
    got: list[str] = []
    informer.add_event_handler(on_add=lambda o: 1 / 0)
    informer.add_event_handler(on_add=lambda o: got.append(o["metadata"]["name"]))
    task = asyncio.create_task(informer.run())
    await informer.wait_for_sync()
    assert got == ["a"]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_resync_replays_every_object_as_an_update():
    api = ScriptedApi(lists=[([pod("a", 1), pod("b", 2)], 10)], watches=[])
    informer = SharedInformer(api, PODS, resync_period=30, clock=api.clock)
    updates: list[str] = []
    informer.add_event_handler(on_update=lambda old, new: updates.append(new["metadata"]["name"]))
    task = asyncio.create_task(informer.run())
    await informer.wait_for_sync()
    for _ in range(5):  # let the resync loop go to sleep on the fake clock
        await asyncio.sleep(0)
    assert api.clock.sleepers == 1
    api.clock.advance(30)
    for _ in range(5):
        await asyncio.sleep(0)
    assert sorted(updates) == ["a", "b"]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_factory_shares_one_informer_per_resource_and_selector():
    factory = SharedInformerFactory(ScriptedApi([], []))
    assert factory.informer(PODS) is factory.informer(PODS)
    assert factory.informer(PODS) is not factory.informer(PODS, field_selector="spec.nodeName=n1")


def test_indexer_indexes_follow_updates_and_deletes():
    store = Indexer()
    store.upsert(pod("a", 1, spec={"nodeName": "n1"}, meta={"labels": {"app": "web"},
                                                              "ownerReferences": [{"uid": "u1"}]}))
    store.upsert(pod("b", 2, ns="other", spec={"nodeName": "n1"}))
    assert [p["metadata"]["name"] for p in store.by_index(NAMESPACE_INDEX, "default")] == ["a"]
    assert sorted(p["metadata"]["name"] for p in store.by_index(NODE_NAME_INDEX, "n1")) == ["a", "b"]
    assert [p["metadata"]["name"] for p in store.by_index(OWNER_UID_INDEX, "u1")] == ["a"]
    assert [p["metadata"]["name"] for p in store.by_index(LABEL_INDEX, "app=web")] == ["a"]
    store.upsert(pod("a", 3, spec={"nodeName": "n2"}))  # moved, labels and owner gone
    assert store.by_index(NODE_NAME_INDEX, "n2")[0]["metadata"]["resourceVersion"] == "3"
    assert [p["metadata"]["name"] for p in store.by_index(NODE_NAME_INDEX, "n1")] == ["b"]
    assert store.by_index(LABEL_INDEX, "app=web") == []
    assert store.by_index(OWNER_UID_INDEX, "u1") == []
    store.delete("other/b")
    assert store.by_index(NODE_NAME_INDEX, "n1") == []
    assert "n1" not in store.index_values(NODE_NAME_INDEX)
    store.add_indexers({"phase": lambda o: [o.get("status", {}).get("phase", "")]})
    assert len(store.by_index("phase", "")) == 1
