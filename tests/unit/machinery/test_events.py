"""The event recorder on a fake client with a FakeClock: creation, aggregation of repeats, a full queue."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from machinery.client.resources import EVENTS, Resource
from machinery.clock import FakeClock
from machinery.errors import already_exists, not_found
from machinery.events import EventRecorder
from machinery.meta import deep_copy

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web-1", "namespace": "shop", "uid": "uid-1", "resourceVersion": "42"}}
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a", "uid": "uid-n"}}


class FakeEventClient:
    """Stores Events by namespace/name and records every call."""

    def __init__(self) -> None:
        self.events: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str, Any]] = []

    async def create(self, resource: Resource, obj: Mapping[str, Any],
                     namespace: str | None = None) -> dict[str, Any]:
        assert resource == EVENTS
        key = (namespace or "", obj["metadata"]["name"])
        self.calls.append(("create", key[1], deep_copy(dict(obj))))
        if key in self.events:
            raise already_exists("events", key[1])
        self.events[key] = deep_copy(dict(obj))
        return deep_copy(self.events[key])

    async def patch(self, resource: Resource, name: str, patch: Any, namespace: str | None = None, *,
                    patch_type: str = "merge") -> dict[str, Any]:
        assert resource == EVENTS and patch_type == "merge"
        self.calls.append(("patch", name, patch))
        key = (namespace or "", name)
        if key not in self.events:
            raise not_found("events", name)
        self.events[key].update(patch)
        return deep_copy(self.events[key])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client() -> FakeEventClient:
    return FakeEventClient()


@pytest.fixture
async def recorder(client: FakeEventClient, clock: FakeClock) -> AsyncIterator[EventRecorder]:
    rec = EventRecorder(client, "deployment-controller", "node-a", clock)
    writer = asyncio.create_task(rec.run())
    yield rec
    writer.cancel()
    await asyncio.wait({writer})


async def test_first_event_creates_an_event_with_count_one(recorder: EventRecorder, client: FakeEventClient,
                                                           clock: FakeClock) -> None:
    recorder.event(POD, "Warning", "FailedCreate", "quota exceeded")
    await recorder.flush()

    [(verb, name, body)] = client.calls
    assert verb == "create"
    assert re.fullmatch(r"web-1\.[0-9a-f]{16}", name)
    assert int(name.split(".")[1], 16) == int(clock.now().timestamp()) * 10**9
    assert body["metadata"] == {"name": name, "namespace": "shop"}
    assert body["involvedObject"] == {"kind": "Pod", "namespace": "shop", "name": "web-1", "uid": "uid-1",
                                      "apiVersion": "v1", "resourceVersion": "42"}
    assert (body["type"], body["reason"], body["message"]) == ("Warning", "FailedCreate", "quota exceeded")
    assert body["source"] == {"component": "deployment-controller", "host": "node-a"}
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2026-01-01T00:00:00Z"
    assert body["count"] == 1
    assert body["reportingComponent"] == "deployment-controller" and body["reportingInstance"] == "node-a"


async def test_a_repeat_patches_the_same_event(recorder: EventRecorder, client: FakeEventClient,
                                               clock: FakeClock) -> None:
    recorder.event(POD, "Warning", "FailedCreate", "quota exceeded")
    await recorder.flush()
    clock.advance(30)
    changed_rv = {**POD, "metadata": {**POD["metadata"], "resourceVersion": "43"}}
    recorder.event(changed_rv, "Warning", "FailedCreate", "quota exceeded")
    recorder.event(POD, "Warning", "FailedCreate", "quota exceeded")
    await recorder.flush()

    name = client.calls[0][1]
    assert client.calls[1:] == [
        ("patch", name, {"count": 2, "lastTimestamp": "2026-01-01T00:00:30Z", "message": "quota exceeded"}),
        ("patch", name, {"count": 3, "lastTimestamp": "2026-01-01T00:00:30Z", "message": "quota exceeded"}),
    ]
    [stored] = client.events.values()
    assert stored["count"] == 3 and stored["firstTimestamp"] == "2026-01-01T00:00:00Z"


async def test_a_different_message_or_type_creates_a_new_event(recorder: EventRecorder,
                                                               client: FakeEventClient) -> None:
    recorder.event(POD, "Warning", "FailedCreate", "quota exceeded")
    recorder.event(POD, "Warning", "FailedCreate", "quota exceeded again")
    recorder.event(POD, "Normal", "FailedCreate", "quota exceeded")
    await recorder.flush()

    assert [verb for verb, *_ in client.calls] == ["create", "create", "create"]
    assert len({name for _, name, _ in client.calls}) == 3  # unique names even at the same instant


async def test_a_repeat_after_the_aggregation_window_creates_a_new_event(recorder: EventRecorder,
                                                                         client: FakeEventClient,
                                                                         clock: FakeClock) -> None:
    recorder.event(POD, "Normal", "Scheduled", "assigned to node-a")
    await recorder.flush()
    clock.advance(601)
    recorder.event(POD, "Normal", "Scheduled", "assigned to node-a")
    await recorder.flush()
    assert [verb for verb, *_ in client.calls] == ["create", "create"]


async def test_a_repeat_of_a_deleted_event_creates_a_new_one(recorder: EventRecorder,
                                                             client: FakeEventClient) -> None:
    recorder.event(POD, "Warning", "BackOff", "restarting")
    await recorder.flush()
    client.events.clear()  # expired on the server
    recorder.event(POD, "Warning", "BackOff", "restarting")
    await recorder.flush()

    assert [verb for verb, *_ in client.calls] == ["create", "patch", "create"]
    [stored] = client.events.values()
    assert stored["count"] == 1
    recorder.event(POD, "Warning", "BackOff", "restarting")
    await recorder.flush()
    assert client.calls[-1][0] == "patch" and stored["count"] == 2  # later repeats patch the new Event


async def test_cluster_scoped_objects_get_events_in_default(recorder: EventRecorder,
                                                            client: FakeEventClient) -> None:
    recorder.event(NODE, "Normal", "NodeReady", "node-a is ready")
    await recorder.flush()
    body = client.calls[0][2]
    assert body["metadata"]["namespace"] == "default"
    assert "namespace" not in body["involvedObject"]


async def test_invalid_type_is_dropped(recorder: EventRecorder, client: FakeEventClient) -> None:
    recorder.event(POD, "Error", "Oops", "not a type")
    await recorder.flush()
    assert client.calls == []


async def test_event_never_blocks_when_the_queue_is_full(client: FakeEventClient, clock: FakeClock) -> None:
    recorder = EventRecorder(client, "kubelet", clock=clock, queue_size=2)
    for i in range(5):  # nothing writes yet: the queue fills, then events are dropped, synchronously
        recorder.event(POD, "Normal", "Pulled", f"image {i}")
    assert recorder.dropped == 3

    writer = asyncio.create_task(recorder.run())
    await recorder.flush()
    writer.cancel()
    await asyncio.wait({writer})
    assert [body["message"] for _, _, body in client.calls] == ["image 0", "image 1"]
    assert client.calls[0][2]["source"] == {"component": "kubelet"}


async def test_a_failing_write_does_not_stop_the_writer(client: FakeEventClient, clock: FakeClock) -> None:
    calls = 0
    original = client.create

    async def failing_once(*args: Any, **kwargs: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return await original(*args, **kwargs)

    client.create = failing_once  # type: ignore[method-assign]
    recorder = EventRecorder(client, "kubelet", clock=clock)
    writer = asyncio.create_task(recorder.run())
    recorder.event(POD, "Normal", "Pulled", "first")
    recorder.event(POD, "Normal", "Pulled", "second")
    await recorder.flush()
    writer.cancel()
    await asyncio.wait({writer})
    assert [e["message"] for e in client.events.values()] == ["second"]


async def test_similar_events_are_combined_after_ten_messages(recorder: EventRecorder,
                                                              client: FakeEventClient) -> None:
    for i in range(14):
        recorder.event(POD, "Normal", "SuccessfulDelete", f"Deleted pod: p{i}")
    await recorder.flush()
    creates = [c for c in client.calls if c[0] == "create"]
    patches = [c for c in client.calls if c[0] == "patch"]
    assert len(creates) == 11  # ten distinct messages, then one combined Event
    assert creates[-1][2]["message"] == "(combined from similar events): Deleted pod: p10"
    assert [p[2]["count"] for p in patches] == [2, 3, 4]
    assert patches[-1][2]["message"] == "(combined from similar events): Deleted pod: p13"
    assert {p[1] for p in patches} == {creates[-1][2]["metadata"]["name"]}


async def test_spam_filter_allows_a_burst_of_25_per_object_then_one_per_five_minutes(
        recorder: EventRecorder, client: FakeEventClient, clock: FakeClock) -> None:
    other = {**POD, "metadata": {**POD["metadata"], "name": "other", "uid": "u-other"}}
    for _ in range(30):
        recorder.event(POD, "Warning", "BackOff", "Back-off restarting failed container")
    recorder.event(other, "Warning", "BackOff", "Back-off restarting failed container")
    await recorder.flush()
    assert len(client.calls) == 26 and recorder.filtered == 5
    recorder.event(POD, "Warning", "BackOff", "Back-off restarting failed container")
    assert recorder.filtered == 6
    clock.advance(300)
    recorder.event(POD, "Warning", "BackOff", "Back-off restarting failed container")
    await recorder.flush()
    assert len(client.calls) == 27 and recorder.filtered == 6


async def test_concurrent_writers_never_duplicate_a_repeated_event(client: FakeEventClient, clock: FakeClock) -> None:
    class SlowClient(FakeEventClient):
        async def create(self, resource, obj, namespace=None):
            for _ in range(5):
                await asyncio.sleep(0)  # let the other writers run meanwhile
            return await super().create(resource, obj, namespace)

    slow = SlowClient()
    recorder = EventRecorder(slow, "scheduler", clock=clock)
    task = asyncio.create_task(recorder.run(writers=4))
    for _ in range(3):
        recorder.event(POD, "Warning", "FailedScheduling", "0/3 nodes are available")
    recorder.event({**POD, "metadata": {**POD["metadata"], "name": "other", "uid": "u2"}}, "Normal", "Scheduled", "ok")
    await recorder.flush()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert [c[0] for c in slow.calls].count("create") == 2
    assert [c[2]["count"] for c in slow.calls if c[0] == "patch"] == [2, 3]
