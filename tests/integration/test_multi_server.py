"""Two API server processes on one etcd serve the same data, and each one's writes reach the
other's watchers."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from kubemini.apiserverproc import ApiServerProcess
from tests.support import wait_for


@pytest.fixture
def second_server(etcd, tmp_path):
    server = ApiServerProcess([etcd.endpoint], tmp_path).start()
    yield server
    server.stop()


def test_writes_through_one_server_reach_watchers_of_the_other(api, namespace, second_server):
    events: list[dict] = []
    ready = threading.Event()

    def watch() -> None:
        with httpx.Client(base_url=second_server.url, timeout=30) as other, other.stream(
            "GET", f"/api/v1/namespaces/{namespace}/configmaps",
            params={"watch": "true", "timeoutSeconds": "20"},
        ) as stream:
            ready.set()
            for line in stream.iter_lines():
                events.append(json.loads(line))
                if len(events) == 2:
                    return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    assert ready.wait(10)
    created = api.post(f"/api/v1/namespaces/{namespace}/configmaps",
                       json={"metadata": {"name": "shared"}, "data": {"a": "1"}})
    assert created.status_code == 201
    patched = api.patch(f"/api/v1/namespaces/{namespace}/configmaps/shared", json={"data": {"a": "2"}},
                        headers={"Content-Type": "application/merge-patch+json"})
    assert patched.status_code == 200
    wait_for(lambda: len(events) == 2, 10, message="both events on the other server")
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED"]
    assert events[1]["object"]["metadata"]["resourceVersion"] == patched.json()["metadata"]["resourceVersion"]

    with httpx.Client(base_url=second_server.url, timeout=30) as other:
        seen = other.get(f"/api/v1/namespaces/{namespace}/configmaps/shared").json()
        assert seen["data"] == {"a": "2"}
        stale = dict(created.json(), data={"a": "3"})  # carries the first resourceVersion
        conflict = other.put(f"/api/v1/namespaces/{namespace}/configmaps/shared", json=stale)
        assert conflict.status_code == 409 and conflict.json()["reason"] == "Conflict"
    thread.join(5)
