"""The REST client's retry policy, error decoding, paths and watch stream, against httpx.MockTransport."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest

from machinery.client import PODS, ApiClient, ClientConfig, Resource
from machinery.clock import FakeClock
from machinery.errors import StatusError, is_conflict, is_gone, is_not_found


def status(code, reason, message="m"):
    return httpx.Response(code, json={"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                      "reason": reason, "message": message, "code": code})


class Script:
    """Answers requests from a list of responses (or exceptions), recording each request."""

    def __init__(self, *responses):
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.responses.pop(0)
        if isinstance(response, Exception):
            raise response
        return response


def client_for(script: Script) -> ApiClient:
    clock = FakeClock()

    async def instant_sleep(seconds):  # retries should not wait for real time in unit tests
        clock.advance(seconds)
    clock.sleep = instant_sleep  # type: ignore[method-assign]
    return ApiClient(ClientConfig(server="http://api", qps=0), clock=clock, transport=httpx.MockTransport(script))


async def test_get_decodes_object_and_paths_follow_scope():
    script = Script(httpx.Response(200, json={"metadata": {"name": "p"}}))
    async with client_for(script) as client:
        assert (await client.get(PODS, "p", "ns"))["metadata"]["name"] == "p"
    assert script.requests[0].url.path == "/api/v1/namespaces/ns/pods/p"
    nodes = Resource("", "v1", "nodes", "Node", namespaced=False)
    assert nodes.path(None, "n1", "status") == "/api/v1/nodes/n1/status"
    deployments = Resource("apps", "v1", "deployments", "Deployment")
    assert deployments.collection_path("x") == "/apis/apps/v1/namespaces/x/deployments"
    assert deployments.collection_path() == "/apis/apps/v1/deployments"
    with pytest.raises(ValueError, match="namespaced"):
        deployments.path(None, "d")


async def test_status_errors_become_typed_errors():
    script = Script(status(404, "NotFound", 'pods "p" not found'), status(409, "Conflict"), status(410, "Expired"))
    async with client_for(script) as client:
        with pytest.raises(StatusError) as err:
            await client.get(PODS, "p", "ns")
        assert is_not_found(err.value) and err.value.message == 'pods "p" not found'
        with pytest.raises(StatusError) as err:
            await client.replace(PODS, {"metadata": {"name": "p", "namespace": "ns", "resourceVersion": "1"}})
        assert is_conflict(err.value)
        with pytest.raises(StatusError) as err:
            await client.list(PODS, "ns", resource_version="1")
        assert is_gone(err.value)


async def test_non_status_error_body_still_gives_a_typed_error():
    script = Script(httpx.Response(404, text="404 page not found"))
    async with client_for(script) as client:
        with pytest.raises(StatusError) as err:
            await client.get(PODS, "p", "ns")
    assert is_not_found(err.value) and "404 page not found" in err.value.message


async def test_429_is_retried_for_every_verb_honouring_retry_after():
    throttled = status(429, "TooManyRequests")
    throttled.headers["Retry-After"] = "3"
    script = Script(throttled, httpx.Response(201, json={"metadata": {"name": "p"}}))
    client = client_for(script)
    before = client.clock.monotonic()
    await client.create(PODS, {"metadata": {"name": "p"}}, "ns")
    assert len(script.requests) == 2
    assert client.clock.monotonic() - before == 3
    await client.close()


async def test_503_is_retried_for_reads_but_not_for_writes():
    script = Script(status(503, "ServiceUnavailable"), httpx.Response(200, json={"items": []}),
                    status(503, "ServiceUnavailable"))
    async with client_for(script) as client:
        await client.list(PODS, "ns")
        with pytest.raises(StatusError) as err:
            await client.create(PODS, {"metadata": {"name": "p"}}, "ns")
    assert err.value.code == 503
    assert [r.method for r in script.requests] == ["GET", "GET", "POST"]


async def test_connection_refused_is_retried_for_writes_but_a_reset_after_sending_is_not():
    refused = httpx.ConnectError("connection refused")
    reset = httpx.ReadError("connection reset")
    script = Script(refused, httpx.Response(201, json={}), reset)
    async with client_for(script) as client:
        await client.create(PODS, {"metadata": {"name": "p"}}, "ns")
        with pytest.raises(StatusError) as err:
            await client.create(PODS, {"metadata": {"name": "q"}}, "ns")
    assert err.value.code == 503
    assert len(script.requests) == 3


async def test_retries_give_up_after_max_retries():
    script = Script(*[status(503, "ServiceUnavailable") for _ in range(3)])
    client = client_for(script)
    client.max_retries = 2
    with pytest.raises(StatusError):
        await client.get(PODS, "p", "ns")
    assert len(script.requests) == 3
    await client.close()


async def test_writes_fill_in_type_and_send_patch_content_types():
    script = Script(*[httpx.Response(200, json={}) for _ in range(4)])
    async with client_for(script) as client:
        await client.create(PODS, {"metadata": {"name": "p"}}, "ns")
        await client.patch(PODS, "p", {"metadata": {"labels": {"a": "b"}}}, "ns", patch_type="strategic")
        await client.apply(PODS, {"metadata": {"name": "p", "namespace": "ns"}}, field_manager="me", force=True)
        await client.delete(PODS, "p", "ns", propagation_policy="Foreground", preconditions={"uid": "u"})
        with pytest.raises(ValueError, match="unknown patch type"):
            await client.patch(PODS, "p", {}, "ns", patch_type="yaml")
    create, patch, apply, delete = script.requests
    assert orjson.loads(create.content)["kind"] == "Pod"
    assert patch.headers["content-type"] == "application/strategic-merge-patch+json"
    assert apply.headers["content-type"] == "application/apply-patch+yaml"
    assert apply.url.params["fieldManager"] == "me" and apply.url.params["force"] == "true"
    assert orjson.loads(delete.content) == {"kind": "DeleteOptions", "apiVersion": "v1",
                                            "propagationPolicy": "Foreground", "preconditions": {"uid": "u"}}


async def test_list_all_follows_continue_tokens():
    script = Script(
        httpx.Response(200, json={"metadata": {"resourceVersion": "7", "continue": "t1"}, "items": [{"n": 1}]}),
        httpx.Response(200, json={"metadata": {"resourceVersion": "7"}, "items": [{"n": 2}]}))
    async with client_for(script) as client:
        listed = await client.list_all(PODS, "ns", page_size=1)
    assert listed["items"] == [{"n": 1}, {"n": 2}]
    assert listed["metadata"] == {"resourceVersion": "7"}
    assert script.requests[1].url.params["continue"] == "t1"


async def test_watch_streams_events_and_raises_error_events():
    lines = [{"type": "ADDED", "object": {"metadata": {"name": "a"}}},
             {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}}]
    body = b"\n".join(orjson.dumps(x) for x in lines) + b"\n"
    script = Script(httpx.Response(200, content=body))
    got = []
    async with client_for(script) as client:
        with pytest.raises(StatusError) as err:
            async for event in client.watch(PODS, "ns", resource_version="5"):
                got.append(event["type"])
    assert got == ["ADDED"]
    assert is_gone(err.value)
    params = script.requests[0].url.params
    assert params["watch"] == "true" and params["resourceVersion"] == "5" and params["allowWatchBookmarks"] == "true"


async def test_rate_limit_spaces_requests():
    clock = FakeClock()
    script = Script(*[httpx.Response(200, json={}) for _ in range(3)])
    client = ApiClient(ClientConfig(server="http://api", qps=1, burst=1), clock=clock,
                       transport=httpx.MockTransport(script))
    await client.get(PODS, "a", "ns")
    second = asyncio.create_task(client.get(PODS, "b", "ns"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(script.requests) == 1  # waits for a token
    clock.advance(1)
    await second
    assert len(script.requests) == 2
    await client.close()


async def test_rotated_token_file_is_picked_up_within_a_minute(tmp_path):
    token = tmp_path / "token"
    token.write_text("first")
    clock = FakeClock()
    script = Script(*[httpx.Response(200, json={}) for _ in range(3)])
    client = ApiClient(ClientConfig(server="http://api", qps=0, token_file=str(token)), clock=clock,
                       transport=httpx.MockTransport(script))
    await client.get(PODS, "a", "ns")
    token.write_text("second")
    await client.get(PODS, "a", "ns")
    clock.advance(61)
    await client.get(PODS, "a", "ns")
    assert [r.headers["authorization"] for r in script.requests] == ["Bearer first", "Bearer first", "Bearer second"]
    await client.close()
