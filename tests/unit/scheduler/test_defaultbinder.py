"""DefaultBinder: one POST of a Binding to pods/NAME/binding; any failure is an ERROR status."""

from __future__ import annotations

from typing import Any

import pytest

from machinery.client import PODS
from machinery.errors import StatusError
from scheduler.framework import Code, CycleState, Handle, PodInfo
from scheduler.plugins.defaultbinder import DefaultBinder


class RecordingClient:
    """Just enough of ApiClient: ``create`` records its arguments, or raises ``fail`` when set."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail = fail

    async def create(self, resource, obj, namespace=None, *, subresource=None, name=None) -> dict:
        self.calls.append((resource, obj, namespace, subresource, name))
        if self.fail is not None:
            raise self.fail
        return obj


def binder(client: RecordingClient) -> DefaultBinder:
    return DefaultBinder({}, Handle(client=client, informers=None, clock=None))


POD = PodInfo({"metadata": {"name": "web-1", "namespace": "demo", "uid": "1234"},
               "spec": {"containers": [{"name": "c", "image": "nginx"}]}})


async def test_bind_posts_a_binding():
    client = RecordingClient()
    assert await binder(client).bind(CycleState(), POD, "node-a") is None
    assert client.calls == [(PODS, {
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": "web-1", "namespace": "demo", "uid": "1234"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-a"},
    }, "demo", "binding", "web-1")]


@pytest.mark.parametrize("failure", [
    StatusError(409, "Conflict", 'Operation cannot be fulfilled on pods/binding "web-1": pod web-1 is already '
                "assigned to node \"node-b\""),
    StatusError(404, "NotFound", 'pods "web-1" not found'),
    ConnectionError("connection refused"),
])
async def test_bind_failure_is_an_error_status(failure):
    status = await binder(RecordingClient(fail=failure)).bind(CycleState(), POD, "node-a")
    assert status is not None
    assert status.code == Code.ERROR
    assert status.error is failure


def test_needs_a_handle():
    with pytest.raises(ValueError):
        DefaultBinder({}, None)
