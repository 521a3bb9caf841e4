"""Garbage collection with the controller-manager running: ConfigMaps owning ConfigMaps and Secrets.

No workload controller is involved: ownerReferences are written by hand, so every deletion seen
here is the garbage collector's (background, orphan and foreground cascades as kubectl asks for them).
"""

from __future__ import annotations

import pytest

from tests.support import wait_for

pytestmark = pytest.mark.usefixtures("controller_manager")

MERGE = {"Content-Type": "application/merge-patch+json"}
TIMEOUT = 15


def path(kind: str, ns: str, name: str = "") -> str:
    base = f"/api/v1/namespaces/{ns}/{kind}"
    return f"{base}/{name}" if name else base


def owner_ref(owner: dict, block: bool = False) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "blockOwnerDeletion": block}


def create(api, ns: str, kind: str, name: str, *owners: dict, block: bool = False, **meta) -> dict:
    body = {"metadata": {"name": name, **meta}}
    if owners:
        body["metadata"]["ownerReferences"] = [owner_ref(o, block) for o in owners]
    resp = api.post(path(kind, ns), json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


def get(api, kind: str, ns: str, name: str) -> dict | None:
    resp = api.get(path(kind, ns, name))
    if resp.status_code == 404:
        return None
    assert resp.status_code == 200, resp.text
    return resp.json()


def gone(api, kind: str, ns: str, name: str):
    return lambda: get(api, kind, ns, name) is None


def test_background_delete_removes_dependents(api, namespace, kubectl):
    owner = create(api, namespace, "configmaps", "owner")
    create(api, namespace, "configmaps", "cm-dep", owner)
    create(api, namespace, "secrets", "secret-dep", owner)
    create(api, namespace, "configmaps", "bystander")

    kubectl("delete", "configmap", "owner", "-n", namespace)
    wait_for(gone(api, "configmaps", namespace, "cm-dep"), timeout=TIMEOUT, message="cm-dep collected")
    wait_for(gone(api, "secrets", namespace, "secret-dep"), timeout=TIMEOUT, message="secret-dep collected")
    assert get(api, "configmaps", namespace, "bystander") is not None


def test_orphan_cascade_keeps_dependents_without_the_reference(api, namespace, kubectl):
    owner = create(api, namespace, "configmaps", "owner")
    other = create(api, namespace, "configmaps", "other")
    create(api, namespace, "configmaps", "only-child", owner, block=True)
    create(api, namespace, "secrets", "shared-child", owner, other)

    kubectl("delete", "configmap", "owner", "-n", namespace, "--cascade=orphan")
    wait_for(gone(api, "configmaps", namespace, "owner"), timeout=TIMEOUT, message="owner gone")
    only = get(api, "configmaps", namespace, "only-child")
    shared = get(api, "secrets", namespace, "shared-child")
    assert only is not None and "ownerReferences" not in only["metadata"]
    assert shared is not None and shared["metadata"]["ownerReferences"] == [owner_ref(other)]


def test_foreground_cascade_keeps_the_owner_until_dependents_are_gone(api, namespace, kubectl):
    owner = create(api, namespace, "configmaps", "owner")
    create(api, namespace, "secrets", "held", owner, block=True, finalizers=["example.com/hold"])
    create(api, namespace, "configmaps", "free", owner)

    kubectl("delete", "configmap", "owner", "-n", namespace, "--cascade=foreground", "--wait=false")
    wait_for(gone(api, "configmaps", namespace, "free"), timeout=TIMEOUT, message="free dependent collected")
    held = wait_for(lambda: (get(api, "secrets", namespace, "held") or {}).get("metadata", {}).get(
        "deletionTimestamp"), timeout=TIMEOUT, message="held dependent marked for deletion")
    assert held
    waiting = get(api, "configmaps", namespace, "owner")
    assert waiting is not None and waiting["metadata"]["deletionTimestamp"]
    assert waiting["metadata"]["finalizers"] == ["foregroundDeletion"]

    resp = api.patch(path("secrets", namespace, "held"), json={"metadata": {"finalizers": None}}, headers=MERGE)
    assert resp.status_code == 200, resp.text
    wait_for(gone(api, "secrets", namespace, "held"), timeout=TIMEOUT, message="held dependent gone")
    wait_for(gone(api, "configmaps", namespace, "owner"), timeout=TIMEOUT, message="owner gone after its dependents")


def test_dependent_of_an_already_deleted_owner_is_collected(api, namespace, kubectl):
    owner = create(api, namespace, "configmaps", "owner")
    kubectl("delete", "configmap", "owner", "-n", namespace)
    create(api, namespace, "secrets", "late", owner)
    wait_for(gone(api, "secrets", namespace, "late"), timeout=TIMEOUT, message="late dependent collected")

    # an owner recreated under the same name is another object: the old uid still counts as absent
    create(api, namespace, "configmaps", "owner")
    create(api, namespace, "configmaps", "stale", owner)
    wait_for(gone(api, "configmaps", namespace, "stale"), timeout=TIMEOUT, message="stale dependent collected")
    assert get(api, "configmaps", namespace, "owner") is not None


def test_chain_is_collected_fully(api, namespace, kubectl):
    a = create(api, namespace, "configmaps", "a")
    b = create(api, namespace, "configmaps", "b", a)
    create(api, namespace, "secrets", "c", b)

    kubectl("delete", "configmap", "a", "-n", namespace)
    wait_for(gone(api, "configmaps", namespace, "b"), timeout=TIMEOUT, message="b collected")
    wait_for(gone(api, "secrets", namespace, "c"), timeout=TIMEOUT, message="c collected")


def test_dependent_with_a_remaining_owner_only_loses_the_dangling_reference(api, namespace, kubectl):
    first = create(api, namespace, "configmaps", "first")
    second = create(api, namespace, "configmaps", "second")
    create(api, namespace, "secrets", "dep", first, second)

    kubectl("delete", "configmap", "first", "-n", namespace)
    wait_for(lambda: (get(api, "secrets", namespace, "dep") or {}).get("metadata", {}).get("ownerReferences")
             == [owner_ref(second)], timeout=TIMEOUT, message="dangling reference removed")
