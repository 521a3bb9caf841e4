"""API semantics over plain HTTP, as kube-apiserver defines them: optimistic concurrency, consistent
pagination, watch guarantees, bad input answered with the right Status (and nothing stored),
finalizers, bookmarks, Tables, discovery and the non-resource endpoints.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from kubemini.apiserverproc import ApiServerProcess

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
DISCOVERY_V2_ACCEPT = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                       "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


def cm_path(ns: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/configmaps" + (f"/{name}" if name else "")


def create_cm(api: httpx.Client, ns: str, name: str, data: dict | None = None, **meta) -> dict:
    resp = api.post(cm_path(ns), json={"metadata": {"name": name, **meta}, "data": data or {}})
    assert resp.status_code == 201, resp.text
    return resp.json()


def cm_names(api: httpx.Client, ns: str) -> list[str]:
    resp = api.get(cm_path(ns))
    assert resp.status_code == 200, resp.text
    return [item["metadata"]["name"] for item in resp.json()["items"]]


def rv(obj: dict) -> int:
    return int(obj["metadata"]["resourceVersion"])


def assert_status(resp: httpx.Response, code: int, reason: str, message: str | None = None) -> dict:
    assert resp.status_code == code, f"expected {code} {reason}, got {resp.status_code}: {resp.text[:500]}"
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    status = resp.json()
    assert status["kind"] == "Status" and status["apiVersion"] == "v1", status
    assert status["status"] == "Failure" and status["code"] == code, status
    assert status["reason"] == reason, status
    if message is not None:
        assert message in status["message"], status
    return status


def watch_lines(api: httpx.Client, path: str, params: dict, until, timeout: float = 10.0) -> list[dict]:
    """Open a watch and collect events until ``until(events)`` is true; fail after ``timeout``."""
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    with api.stream("GET", path, params={"watch": "true", **params},
                    timeout=httpx.Timeout(timeout, read=timeout)) as resp:
        assert resp.status_code == 200, resp.read()
        for line in resp.iter_lines():
            if line:
                events.append(json.loads(line))
            if until(events):
                return events
            if time.monotonic() > deadline:
                break
    raise AssertionError(f"watch ended or timed out before the expected events; got {events}")


# --- optimistic concurrency --------------------------------------------------------------------------


def test_concurrent_updates_exactly_one_conflicts(api, apiserver, namespace):
    create_cm(api, namespace, "race", {"v": "0"})
    clients = [httpx.Client(base_url=apiserver.url, timeout=30) for _ in range(2)]
    try:
        reads = [c.get(cm_path(namespace, "race")).json() for c in clients]
        assert reads[0]["metadata"]["resourceVersion"] == reads[1]["metadata"]["resourceVersion"]
        barrier = threading.Barrier(2)

        def update(i: int) -> httpx.Response:
            body = {**reads[i], "data": {"v": f"writer-{i}"}}
            barrier.wait()
            return clients[i].put(cm_path(namespace, "race"), json=body)

        with ThreadPoolExecutor(2) as pool:
            responses = list(pool.map(update, range(2)))
        codes = sorted(r.status_code for r in responses)
        assert codes == [200, 409], [r.text for r in responses]
        winner = next(i for i, r in enumerate(responses) if r.status_code == 200)
        loser = responses[1 - winner]
        assert_status(loser, 409, "Conflict",
                      'Operation cannot be fulfilled on configmaps "race": the object has been modified; '
                      "please apply your changes to the latest version and try again")
        current = clients[0].get(cm_path(namespace, "race")).json()
        assert current["data"] == {"v": f"writer-{winner}"}
        assert current["metadata"]["resourceVersion"] == responses[winner].json()["metadata"]["resourceVersion"]
    finally:
        for c in clients:
            c.close()


# --- pagination --------------------------------------------------------------------------------------


def test_paginated_list_is_a_consistent_snapshot(api, namespace):
    originals = [f"p-{i:02d}" for i in range(30)]
    for name in originals:
        create_cm(api, namespace, name, {"k": name})

    pages = []
    first = api.get(cm_path(namespace), params={"limit": 7})
    assert first.status_code == 200, first.text
    pages.append(first.json())
    snapshot_rv = pages[0]["metadata"]["resourceVersion"]
    writes = 0
    while pages[-1]["metadata"].get("continue"):
        # between pages, others change the collection: a name inside the not-yet-listed range
        # appears, a not-yet-listed object disappears, another is modified
        create_cm(api, namespace, f"p-{10 + writes:02d}-new")
        victim = originals[29 - writes]
        assert api.delete(cm_path(namespace, victim)).status_code == 200
        resp = api.patch(cm_path(namespace, originals[20]), json={"data": {"k": f"changed-{writes}"}},
                         headers=MERGE)
        assert resp.status_code == 200, resp.text
        writes += 1
        resp = api.get(cm_path(namespace), params={"limit": 7, "continue": pages[-1]["metadata"]["continue"]})
        assert resp.status_code == 200, resp.text
        pages.append(resp.json())

    assert [len(p["items"]) for p in pages] == [7, 7, 7, 7, 2]
    listed = [item["metadata"]["name"] for p in pages for item in p["items"]]
    assert listed == originals
    assert {p["metadata"]["resourceVersion"] for p in pages} == {snapshot_rv}
    assert all(rv(item) <= int(snapshot_rv) for p in pages for item in p["items"])
    assert next(i for p in pages for i in p["items"] if i["metadata"]["name"] == "p-20")["data"] == {"k": "p-20"}
    # the live collection did change meanwhile
    live = cm_names(api, namespace)
    assert "p-10-new" in live and "p-29" not in live


def test_remaining_item_count_on_partial_pages(api, namespace):
    for i in range(30):
        create_cm(api, namespace, f"r-{i:02d}")
    remaining, token = [], None
    while True:
        params = {"limit": 7, **({"continue": token} if token else {})}
        page = api.get(cm_path(namespace), params=params).json()
        token = page["metadata"].get("continue")
        remaining.append(page["metadata"].get("remainingItemCount"))
        if not token:
            break
    assert remaining == [23, 16, 9, 2, None]
    # an unpaginated list has neither continue nor remainingItemCount
    meta = api.get(cm_path(namespace)).json()["metadata"]
    assert "continue" not in meta and "remainingItemCount" not in meta and meta["resourceVersion"]


def test_continue_token_garbage_is_bad_request(api, namespace):
    resp = api.get(cm_path(namespace), params={"limit": 2, "continue": "not-a-token"})
    assert_status(resp, 400, "BadRequest")


# --- watch -------------------------------------------------------------------------------------------


def test_watch_from_compacted_revision_is_expired(etcd, api, namespace, tmp_path):
    old = create_cm(api, namespace, "old", {"v": "0"})
    for i in range(5):
        resp = api.patch(cm_path(namespace, "old"), json={"data": {"v": str(i + 1)}}, headers=MERGE)
        assert resp.status_code == 200, resp.text
    current = rv(resp.json())
    subprocess.run(["etcdctl", "--endpoints", etcd.endpoint, "compact", str(current)],
                   check=True, capture_output=True, env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"})

    # a freshly started API server has none of that history in its watch cache, so it must go to
    # etcd, where the revision is gone: the watch answers with one ERROR event (410 Expired)
    with ApiServerProcess([etcd.endpoint], tmp_path) as fresh, httpx.Client(base_url=fresh.url) as client:
        events = watch_lines(client, cm_path(namespace), {"resourceVersion": str(rv(old))},
                             until=lambda evs: bool(evs))
        assert events[0]["type"] == "ERROR", events
        status = events[0]["object"]
        assert status["kind"] == "Status" and status["code"] == 410 and status["reason"] == "Expired", status
        # "too old resource version: X (Y)" (watch cache) or "The resourceVersion for the provided
        # watch is too old." (etcd), as kube-apiserver words it
        assert "too old" in status["message"], status
        # from the current revision the same server watches fine
        resp = api.patch(cm_path(namespace, "old"), json={"data": {"v": "last"}}, headers=MERGE)
        events = watch_lines(client, cm_path(namespace), {"resourceVersion": str(current)},
                             until=lambda evs: bool(evs))
        assert events[0]["type"] == "MODIFIED" and events[0]["object"]["data"] == {"v": "last"}, events


async def _open_watch(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\r\n".encode())
    await writer.drain()
    status = await reader.readline()
    assert status.startswith(b"HTTP/1.1 200"), status
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    return reader, writer


async def _read_events(reader: asyncio.StreamReader, count: int) -> list[dict]:
    """Decode a chunked watch body until ``count`` events arrived."""
    events: list[dict] = []
    buffer = b""
    while len(events) < count:
        size = int((await reader.readline()).strip(), 16)
        if size == 0:
            break
        buffer += await reader.readexactly(size)
        await reader.readexactly(2)
        *lines, buffer = buffer.split(b"\n")
        events.extend(json.loads(line) for line in lines if line)
    return events


async def test_thousand_watchers_each_see_every_event_in_order(apiserver, namespace):
    port = int(apiserver.url.rsplit(":", 1)[1])
    async with httpx.AsyncClient(base_url=apiserver.url, timeout=30) as client:
        start_rv = (await client.get(cm_path(namespace))).json()["metadata"]["resourceVersion"]
        path = f"{cm_path(namespace)}?watch=true&resourceVersion={start_rv}"
        sem = asyncio.Semaphore(200)

        async def open_one():
            async with sem:
                return await _open_watch(port, path)

        watches = await asyncio.wait_for(asyncio.gather(*(open_one() for _ in range(1000))), 60)
        try:
            readers = [asyncio.create_task(_read_events(r, 20)) for r, _ in watches]
            expected = []
            for i in range(10):
                resp = await client.post(cm_path(namespace), json={"metadata": {"name": f"w-{i:02d}"}})
                assert resp.status_code == 201, resp.text
                expected.append(("ADDED", f"w-{i:02d}", resp.json()["metadata"]["resourceVersion"]))
            for i in range(10):
                resp = await client.patch(cm_path(namespace, f"w-{i:02d}"), json={"data": {"i": str(i)}},
                                          headers=MERGE)
                assert resp.status_code == 200, resp.text
                expected.append(("MODIFIED", f"w-{i:02d}", resp.json()["metadata"]["resourceVersion"]))
            results = await asyncio.wait_for(asyncio.gather(*readers), 90)
        finally:
            for _, writer in watches:
                writer.close()
    revisions = [int(e[2]) for e in expected]
    assert revisions == sorted(set(revisions))
    bad = 0
    for events in results:
        got = [(e["type"], e["object"]["metadata"]["name"], e["object"]["metadata"]["resourceVersion"])
               for e in events]
        if got != expected:
            bad += 1
            first_bad = got
    assert bad == 0, f"{bad} of 1000 watchers saw a different stream, e.g. {first_bad}"


def test_watch_bookmarks(api, namespace):
    create_cm(api, namespace, "b")
    list_rv = api.get(cm_path(namespace)).json()["metadata"]["resourceVersion"]
    started = time.monotonic()
    events = watch_lines(api, cm_path(namespace), {"resourceVersion": list_rv, "allowWatchBookmarks": "true"},
                         until=lambda evs: any(e["type"] == "BOOKMARK" for e in evs), timeout=5)
    assert time.monotonic() - started < 5
    bookmark = next(e for e in events if e["type"] == "BOOKMARK")["object"]
    assert bookmark["kind"] == "ConfigMap" and bookmark["apiVersion"] == "v1", bookmark
    assert int(bookmark["metadata"]["resourceVersion"]) >= int(list_rv)

    # without allowWatchBookmarks, none are sent (the watch just ends at timeoutSeconds)
    with api.stream("GET", cm_path(namespace), params={"watch": "true", "resourceVersion": list_rv,
                                                      "timeoutSeconds": "2"}) as resp:
        lines = [json.loads(line) for line in resp.iter_lines() if line]
    assert lines == []


def test_watch_send_initial_events(api, namespace):
    objs = [create_cm(api, namespace, name) for name in ("i-a", "i-b", "i-c")]
    params = {"sendInitialEvents": "true", "allowWatchBookmarks": "true", "resourceVersionMatch": "NotOlderThan"}
    events = watch_lines(api, cm_path(namespace), params, until=lambda evs: any(
        e["type"] == "BOOKMARK" and e["object"]["metadata"].get("annotations") for e in evs))
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events[:3]] == [
        ("ADDED", "i-a"), ("ADDED", "i-b"), ("ADDED", "i-c")]
    end = events[-1]
    assert end["type"] == "BOOKMARK" and len(events) == 4, events
    assert end["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert int(end["object"]["metadata"]["resourceVersion"]) >= max(rv(o) for o in objs)


# --- bad input: the right Status, and nothing stored ----------------------------------------------------


def _post_raw(api, ns, content: bytes | str, content_type: str, params: dict | None = None):
    return api.post(cm_path(ns), content=content, headers={"Content-Type": content_type}, params=params)


BAD_REQUESTS = {
    "invalid-json": (lambda api, ns: _post_raw(api, ns, b'{"metadata": {"name": "x"', "application/json"),
                     400, "BadRequest", None),
    "invalid-yaml": (lambda api, ns: _post_raw(api, ns, "metadata:\n  name: [x\n  : -]\n", "application/yaml"),
                     400, "BadRequest", None),
    "wrong-kind": (lambda api, ns: api.post(cm_path(ns), json={
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "data": {}}), 400, "BadRequest", None),
    "unknown-field-strict": (lambda api, ns: api.post(cm_path(ns), params={"fieldValidation": "Strict"}, json={
        "metadata": {"name": "x"}, "bogus": 1}), 400, "BadRequest", 'unknown field "bogus"'),
    "invalid-name": (lambda api, ns: api.post(cm_path(ns), json={"metadata": {"name": "Bad_Name"}}),
                     422, "Invalid", 'ConfigMap "Bad_Name" is invalid'),
    "too-large": (lambda api, ns: api.post(cm_path(ns), json={
        "metadata": {"name": "x"}, "data": {"big": "x" * (4 << 20)}}), 413, "RequestEntityTooLarge", None),
    "json-patch-test-fails": (lambda api, ns: api.patch(cm_path(ns, "base"), headers=JSON_PATCH, json=[
        {"op": "test", "path": "/data/a", "value": "wrong"},
        {"op": "replace", "path": "/data/a", "value": "changed"}]), 422, "Invalid", None),
    "merge-patch-missing": (lambda api, ns: api.patch(cm_path(ns, "missing"), headers=MERGE, json={
        "data": {"a": "b"}}), 404, "NotFound", 'configmaps "missing" not found'),
    # a ConfigMap whose metadata carries ownerReferences (field 13), which the protobuf decoder refuses
    "protobuf": (lambda api, ns: _post_raw(
        api, ns, b"k8s\x00\x0a\x0f\x0a\x02v1\x12\x09ConfigMap\x12\x0a\x0a\x08\x0a\x01x\x6a\x03ref",
        "application/vnd.kubernetes.protobuf"), 415, "UnsupportedMediaType", "field number 13"),
    "protobuf-wrong-kind": (lambda api, ns: _post_raw(api, ns, b"k8s\x00\x0a\x0c\x0a\x02v1\x12\x06Secret",
                                                      "application/vnd.kubernetes.protobuf"),
                            400, "BadRequest", "does not match the expected kind"),
    "bad-label-selector": (lambda api, ns: api.get(cm_path(ns), params={"labelSelector": "app in (a"}),
                           400, "BadRequest", None),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_gets_status_and_stores_nothing(api, namespace, case):
    base = create_cm(api, namespace, "base", {"a": "1"})
    send, code, reason, message = BAD_REQUESTS[case]
    resp = send(api, namespace)
    status = assert_status(resp, code, reason, message)
    if case == "invalid-name":
        assert any(c.get("field") == "metadata.name" for c in status["details"]["causes"]), status
    assert cm_names(api, namespace) == ["base"]
    after = api.get(cm_path(namespace, "base")).json()
    assert after["data"] == {"a": "1"} and after["metadata"]["resourceVersion"] == base["metadata"]["resourceVersion"]


def test_unknown_field_warn_creates_with_warning(api, namespace):
    resp = api.post(cm_path(namespace), params={"fieldValidation": "Warn"},
                    json={"metadata": {"name": "warned"}, "data": {"a": "1"}, "bogus": 1})
    assert resp.status_code == 201, resp.text
    warning = resp.headers.get("warning", "")
    assert warning.startswith("299 - "), resp.headers
    assert 'unknown field \\"bogus\\"' in warning or 'unknown field "bogus"' in warning, warning
    assert "bogus" not in resp.json()
    assert cm_names(api, namespace) == ["warned"]

    resp = api.post(cm_path(namespace), params={"fieldValidation": "Ignore"},
                    json={"metadata": {"name": "ignored"}, "bogus": 1})
    assert resp.status_code == 201 and "warning" not in resp.headers, resp.headers


# --- writes: generateName, dryRun, preconditions, finalizers -------------------------------------------


def test_generate_name(api, namespace):
    names = set()
    for _ in range(3):
        resp = api.post(cm_path(namespace), json={"metadata": {"generateName": "gen-"}})
        assert resp.status_code == 201, resp.text
        obj = resp.json()
        assert obj["metadata"]["generateName"] == "gen-"
        name = obj["metadata"]["name"]
        assert name.startswith("gen-") and len(name) == len("gen-") + 5, name
        names.add(name)
    assert len(names) == 3
    assert sorted(cm_names(api, namespace)) == sorted(names)


def test_dry_run_creates_nothing(api, namespace):
    resp = api.post(cm_path(namespace), params={"dryRun": "All"}, json={"metadata": {"name": "dry"}})
    assert resp.status_code == 201, resp.text
    assert resp.json()["metadata"]["name"] == "dry"
    assert api.get(cm_path(namespace, "dry")).status_code == 404
    assert cm_names(api, namespace) == []

    # dry-run update and delete change nothing either
    base = create_cm(api, namespace, "real", {"a": "1"})
    resp = api.patch(cm_path(namespace, "real"), params={"dryRun": "All"}, json={"data": {"a": "2"}}, headers=MERGE)
    assert resp.status_code == 200 and resp.json()["data"] == {"a": "2"}, resp.text
    resp = api.delete(cm_path(namespace, "real"), params={"dryRun": "All"})
    assert resp.status_code == 200, resp.text
    after = api.get(cm_path(namespace, "real")).json()
    assert after["data"] == {"a": "1"} and after["metadata"]["resourceVersion"] == base["metadata"]["resourceVersion"]


def test_delete_preconditions(api, namespace):
    obj = create_cm(api, namespace, "guarded")
    resp = api.request("DELETE", cm_path(namespace, "guarded"),
                       json={"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}})
    assert_status(resp, 409, "Conflict", "Precondition failed: UID in precondition")
    resp = api.request("DELETE", cm_path(namespace, "guarded"),
                       json={"preconditions": {"resourceVersion": str(rv(obj) - 1)}})
    assert_status(resp, 409, "Conflict", "Precondition failed")
    assert api.get(cm_path(namespace, "guarded")).status_code == 200

    resp = api.request("DELETE", cm_path(namespace, "guarded"),
                       json={"preconditions": {"uid": obj["metadata"]["uid"],
                                               "resourceVersion": obj["metadata"]["resourceVersion"]}})
    assert resp.status_code == 200, resp.text
    assert api.get(cm_path(namespace, "guarded")).status_code == 404


def test_finalizers_delay_deletion(api, namespace):
    create_cm(api, namespace, "fin", finalizers=["example.com/hold"])
    # kube-apiserver (endpoints/handlers/delete.go) answers 200 with the object, now carrying a
    # deletionTimestamp; 202 only when the client asked orphanDependents=false (see below)
    resp = api.delete(cm_path(namespace, "fin"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["metadata"]["deletionTimestamp"]

    pending = api.get(cm_path(namespace, "fin"))
    assert pending.status_code == 200
    meta = pending.json()["metadata"]
    assert meta["deletionTimestamp"] and meta["finalizers"] == ["example.com/hold"]
    assert meta["deletionGracePeriodSeconds"] == 0

    resp = api.patch(cm_path(namespace, "fin"), json={"metadata": {"finalizers": None}}, headers=MERGE)
    assert resp.status_code == 200, resp.text
    assert_status(api.get(cm_path(namespace, "fin")), 404, "NotFound", 'configmaps "fin" not found')
    assert cm_names(api, namespace) == []

    create_cm(api, namespace, "fin2", finalizers=["example.com/hold"])
    resp = api.request("DELETE", cm_path(namespace, "fin2"), json={"orphanDependents": False})
    assert resp.status_code == 202, resp.text
    assert resp.json()["metadata"]["deletionTimestamp"]
    assert resp.json()["metadata"]["finalizers"] == ["example.com/hold"]


# --- output formats and discovery ----------------------------------------------------------------------


def test_table_for_pods(api, namespace):
    pod = {"metadata": {"name": "tabled", "labels": {"app": "t"}},
           "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}
    assert api.post(f"/api/v1/namespaces/{namespace}/pods", json=pod).status_code == 201
    resp = api.get(f"/api/v1/namespaces/{namespace}/pods", headers={"Accept": TABLE_ACCEPT})
    assert resp.status_code == 200, resp.text
    table = resp.json()
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1", table
    columns = [(c["name"], c["priority"]) for c in table["columnDefinitions"]]
    assert columns[:5] == [("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0), ("Age", 0)], columns
    assert [name for name, prio in columns if prio == 1] == ["IP", "Node", "Nominated Node", "Readiness Gates"]
    assert len(table["rows"]) == 1
    row = table["rows"][0]
    assert row["cells"][:4] == ["tabled", "0/1", "Pending", "0"], row
    assert row["object"]["kind"] == "PartialObjectMetadata" and row["object"]["metadata"]["name"] == "tabled"
    assert table["metadata"]["resourceVersion"]


def test_aggregated_discovery(api):
    resp = api.get("/apis", headers={"Accept": DISCOVERY_V2_ACCEPT})
    assert resp.status_code == 200
    media, *params = [p.strip() for p in resp.headers["content-type"].split(";")]
    assert media == "application/json"
    assert {"g=apidiscovery.k8s.io", "v=v2", "as=APIGroupDiscoveryList"} <= set(params), resp.headers
    body = resp.json()
    assert body["kind"] == "APIGroupDiscoveryList" and body["apiVersion"] == "apidiscovery.k8s.io/v2"
    groups = {g["metadata"]["name"]: g for g in body["items"]}
    apps_v1 = next(v for v in groups["apps"]["versions"] if v["version"] == "v1")
    deployments = next(r for r in apps_v1["resources"] if r["resource"] == "deployments")
    assert deployments["responseKind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert deployments["scope"] == "Namespaced" and deployments["shortNames"] == ["deploy"]
    assert {s["subresource"] for s in deployments["subresources"]} >= {"scale", "status"}

    core = api.get("/api", headers={"Accept": DISCOVERY_V2_ACCEPT})
    assert "as=APIGroupDiscoveryList" in core.headers["content-type"]
    versions = core.json()["items"][0]["versions"]
    assert versions[0]["version"] == "v1"
    assert any(r["resource"] == "pods" for r in versions[0]["resources"])

    # without the v2 Accept, the legacy documents
    legacy = api.get("/apis").json()
    assert legacy["kind"] == "APIGroupList"
    assert any(g["name"] == "apps" for g in legacy["groups"])


def test_core_resource_list_has_eviction(api):
    body = api.get("/api/v1").json()
    assert body["kind"] == "APIResourceList" and body["groupVersion"] == "v1"
    by_name = {r["name"]: r for r in body["resources"]}
    eviction = by_name["pods/eviction"]
    assert (eviction["group"], eviction["version"], eviction["kind"]) == ("policy", "v1", "Eviction")
    assert "create" in eviction["verbs"]
    assert by_name["pods"]["namespaced"] is True and by_name["pods"]["shortNames"] == ["po"]


def test_openapi(api):
    index = api.get("/openapi/v3").json()
    assert "apis/apps/v1" in index["paths"] and "api/v1" in index["paths"]
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    doc = api.get(url)
    assert doc.status_code == 200
    patch = doc.json()["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert any(p["name"] == "fieldValidation" for p in patch["parameters"])

    v2 = api.get("/openapi/v2", headers={"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
    assert v2.status_code == 404


def test_version_health_and_metrics(api):
    version = api.get("/version").json()
    assert version["major"] == "1" and version["minor"] == "35", version
    assert version["gitVersion"].startswith("v1.35"), version
    for path in ("/healthz", "/readyz", "/livez"):
        resp = api.get(path)
        assert resp.status_code == 200 and resp.text == "ok", (path, resp.text)
    metrics = api.get("/metrics")
    assert metrics.status_code == 200
    samples = [line for line in metrics.text.splitlines() if line.startswith("apiserver_request_total{")]
    assert samples, metrics.text[:2000]
    assert any('verb="LIST"' in s or 'verb="GET"' in s for s in samples), samples[:5]

