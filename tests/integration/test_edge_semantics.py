"""Edge cases of list, watch, delete and allocation semantics, each checked against what
kube-apiserver does."""

from __future__ import annotations

import json

import httpx

MERGE = {"Content-Type": "application/merge-patch+json"}


def create_cm(api, namespace: str, name: str, **extra) -> dict:
    resp = api.post(f"/api/v1/namespaces/{namespace}/configmaps", json={"metadata": {"name": name, **extra}})
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_paginated_list_from_the_cache_returns_every_item(api, namespace):
    names = [f"cm-{i}" for i in range(7)]
    for name in names:
        create_cm(api, namespace, name)
    seen, token = [], None
    while True:
        params = {"limit": "2", "resourceVersion": "0"} if token is None else {"limit": "2", "continue": token}
        page = api.get(f"/api/v1/namespaces/{namespace}/configmaps", params=params).json()
        seen += [item["metadata"]["name"] for item in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
    assert seen == names


def read_watch(api, path: str, params: dict, until) -> list[dict]:
    events = []
    with api.stream("GET", path, params={"watch": "true", "timeoutSeconds": "5", **params}) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines():
            events.append(json.loads(line))
            if until(events):
                break
    return events


def test_watch_list_ends_initial_events_with_a_bookmark_even_right_after_a_write(api, namespace):
    create_cm(api, namespace, "fresh")
    events = read_watch(api, f"/api/v1/namespaces/{namespace}/configmaps",
                        {"sendInitialEvents": "true", "allowWatchBookmarks": "true",
                         "resourceVersionMatch": "NotOlderThan"},
                        lambda evs: evs[-1]["type"] == "BOOKMARK")
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    annotations = events[-1]["object"]["metadata"]["annotations"]
    assert annotations == {"k8s.io/initial-events-end": "true"}


def test_send_initial_events_requires_not_older_than(api, namespace):
    resp = api.get(f"/api/v1/namespaces/{namespace}/configmaps",
                   params={"watch": "true", "sendInitialEvents": "true", "allowWatchBookmarks": "true"})
    assert resp.status_code == 422
    assert "resourceVersionMatch" in resp.text


def test_watch_without_initial_events_starts_now(api, namespace):
    create_cm(api, namespace, "old")
    api.delete(f"/api/v1/namespaces/{namespace}/configmaps/old")

    with api.stream("GET", f"/api/v1/namespaces/{namespace}/configmaps",
                    params={"watch": "true", "timeoutSeconds": "5", "sendInitialEvents": "false",
                            "allowWatchBookmarks": "true", "resourceVersionMatch": "NotOlderThan"}) as stream:
        create_cm(api, namespace, "new")
        lines = stream.iter_lines()
        first = json.loads(next(lines))
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "new")


def test_yaml_alias_bombs_are_refused(api, namespace):
    levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefg", "bcdefgh", strict=False):
        levels.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    body = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\nx:\n" + "\n".join(
        "  " + line for line in levels)
    resp = api.post(f"/api/v1/namespaces/{namespace}/configmaps", content=body,
                    headers={"Content-Type": "application/yaml"})
    assert resp.status_code == 400
    assert "aliases" in resp.json()["message"]


def test_malformed_option_bodies_are_bad_requests(api, namespace):
    create_cm(api, namespace, "c")
    resp = api.request("DELETE", f"/api/v1/namespaces/{namespace}/configmaps/c", json={"preconditions": "x"})
    assert resp.status_code == 400
    resp = api.request("DELETE", f"/api/v1/namespaces/{namespace}/configmaps/c", json={"dryRun": 5})
    assert resp.status_code == 400
    assert api.get(f"/api/v1/namespaces/{namespace}/configmaps/c").status_code == 200
    table = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    resp = api.get(f"/api/v1/namespaces/{namespace}/configmaps",
                   params={"watch": "true", "includeObject": "bogus"}, headers=table)
    assert resp.status_code == 400


def test_namespaces_cannot_be_deleted_as_a_collection(api):
    resp = api.request("DELETE", "/api/v1/namespaces", params={"dryRun": "All"})
    assert resp.status_code == 405
    assert api.patch("/api/v1/namespaces", json={}, headers=MERGE).status_code == 405


def test_background_delete_drops_a_pending_foreground_finalizer(api, namespace):
    # an Event, because the garbage collector (when this session runs a controller-manager) ignores
    # events, and would otherwise race this test by removing the foregroundDeletion finalizer itself
    event = {"metadata": {"name": "fg", "finalizers": ["example.com/hold"]},
             "involvedObject": {"kind": "Pod", "name": "x", "namespace": namespace}, "reason": "Test"}
    assert api.post(f"/api/v1/namespaces/{namespace}/events", json=event).status_code == 201
    path = f"/api/v1/namespaces/{namespace}/events/fg"
    api.request("DELETE", path, json={"propagationPolicy": "Foreground"})
    assert "foregroundDeletion" in api.get(path).json()["metadata"]["finalizers"]
    api.patch(path, json={"metadata": {"finalizers": ["foregroundDeletion"]}}, headers=MERGE)
    resp = api.request("DELETE", path, json={"propagationPolicy": "Background"})
    assert resp.status_code == 200
    assert api.get(path).status_code == 404


def test_cluster_scoped_objects_ignore_a_namespace(api):
    pc = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
          "metadata": {"name": "edge-test-pc", "namespace": "default"}, "value": 1000}
    resp = api.post("/apis/scheduling.k8s.io/v1/priorityclasses", json=pc)
    assert resp.status_code == 201, resp.text
    assert "namespace" not in resp.json()["metadata"]
    api.delete("/apis/scheduling.k8s.io/v1/priorityclasses/edge-test-pc")


def test_dry_run_create_of_an_existing_name_conflicts(api, namespace):
    create_cm(api, namespace, "taken")
    resp = api.post(f"/api/v1/namespaces/{namespace}/configmaps", params={"dryRun": "All"},
                    json={"metadata": {"name": "taken"}})
    assert resp.status_code == 409 and resp.json()["reason"] == "AlreadyExists"


def service(name: str, **spec) -> dict:
    return {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}], "selector": {"app": name}, **spec}}


def test_service_type_change_and_node_port_reservations(api, namespace):
    base = f"/api/v1/namespaces/{namespace}/services"
    first = api.post(base, json=service("s1"))
    assert first.status_code == 201, first.text
    ip = first.json()["spec"]["clusterIP"]
    to_node_port = api.patch(f"{base}/s1", json={"spec": {"type": "NodePort"}}, headers=MERGE)
    assert to_node_port.status_code == 200, to_node_port.text
    assert to_node_port.json()["spec"]["clusterIP"] == ip
    port = to_node_port.json()["spec"]["ports"][0]["nodePort"]
    assert 30000 <= port <= 32767

    clash = api.post(base, json=service("s2", type="NodePort", ports=[{"port": 80, "nodePort": port}]))
    assert clash.status_code == 422
    assert "already allocated" in clash.json()["message"]
    out_of_range = api.post(base, json=service("s3", type="NodePort", ports=[{"port": 80, "nodePort": 80}]))
    assert out_of_range.status_code == 422

    assert api.delete(f"{base}/s1").status_code == 200
    reuse = api.post(base, json=service("s4", type="NodePort", ports=[{"port": 80, "nodePort": port}]))
    assert reuse.status_code == 201, reuse.text


def test_explicit_cluster_ip_cannot_be_taken_twice(api, namespace):
    base = f"/api/v1/namespaces/{namespace}/services"
    first = api.post(base, json=service("a")).json()
    resp = api.post(base, json=service("b", clusterIP=first["spec"]["clusterIP"]))
    assert resp.status_code == 422
    dry = api.post(base, params={"dryRun": "All"}, json=service("c", clusterIP=first["spec"]["clusterIP"]))
    assert dry.status_code == 422


def test_etcd_unreachable_is_503_not_500(etcd, tmp_path):
    from kubemini.apiserverproc import ApiServerProcess

    server = ApiServerProcess([etcd.endpoint], tmp_path).start()
    try:
        import os
        import signal

        os.kill(etcd.pid, signal.SIGSTOP)
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                resp = client.post("/api/v1/namespaces/default/services", json=service("down"))
                assert resp.status_code in (503, 504), resp.text
                resp = client.get("/api/v1/namespaces/default/configmaps/x")
                assert resp.status_code in (503, 504), resp.text
        finally:
            os.kill(etcd.pid, signal.SIGCONT)
    finally:
        server.stop()
