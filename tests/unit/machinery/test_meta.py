"""Object helpers: metadata accessors, keys, owner references, copying, field paths and timestamps."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from machinery.meta import (
    annotations_of,
    controller_ref,
    deep_copy,
    field_value,
    format_rfc3339,
    is_controlled_by,
    key_of,
    labels_of,
    make_key,
    micro_time_now,
    name_of,
    namespace_of,
    new_controller_ref,
    now_rfc3339,
    parse_rfc3339,
    resource_version_of,
    split_key,
    uid_of,
)

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web-1",
        "namespace": "default",
        "uid": "pod-uid",
        "resourceVersion": "42",
        "labels": {"app": "web"},
        "annotations": {"note": "x"},
        "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "cfg", "uid": "cm-uid"},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs-uid",
             "controller": True},
        ],
    },
    "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "nginx"}]},
    "status": {"phase": "Running"},
}
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}}


def test_accessors() -> None:
    assert name_of(POD) == "web-1" and namespace_of(POD) == "default"
    assert uid_of(POD) == "pod-uid" and resource_version_of(POD) == "42"
    assert labels_of(POD) == {"app": "web"} and annotations_of(POD) == {"note": "x"}
    bare: dict = {}
    assert name_of(bare) == namespace_of(bare) == uid_of(bare) == resource_version_of(bare) == ""
    assert labels_of(bare) == {} and annotations_of({"metadata": {"labels": None}}) == {}
    assert labels_of({"metadata": None}) == {}


def test_keys() -> None:
    assert key_of(POD) == "default/web-1"
    assert key_of(NODE) == "node-1"
    assert make_key("ns", "a") == "ns/a" and make_key(None, "a") == "a" and make_key("", "a") == "a"
    assert split_key("default/web-1") == ("default", "web-1")
    assert split_key("node-1") == ("", "node-1")
    assert split_key("/x") == ("", "x")
    with pytest.raises(ValueError, match="unexpected key format"):
        split_key("a/b/c")


@given(st.text(alphabet="abc-.", max_size=5), st.text(alphabet="abc-.", min_size=1, max_size=5))
def test_key_round_trip(namespace: str, name: str) -> None:
    obj = {"metadata": {"name": name, "namespace": namespace}}
    assert split_key(key_of(obj)) == (namespace, name)


def test_controller_ref() -> None:
    ref = controller_ref(POD)
    assert ref is not None and ref["kind"] == "ReplicaSet"
    assert controller_ref(NODE) is None
    assert controller_ref({"metadata": {"ownerReferences": [{"uid": "x", "controller": False}]}}) is None
    replica_set = {"metadata": {"name": "web", "uid": "rs-uid"}}
    assert is_controlled_by(POD, replica_set)
    assert not is_controlled_by(POD, {"metadata": {"uid": "cm-uid"}})  # an owner, not the controller
    assert not is_controlled_by(POD, {"metadata": {}})
    assert not is_controlled_by(NODE, replica_set)


def test_new_controller_ref() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "uid": "d1"}}
    assert new_controller_ref(owner) == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d1",
        "controller": True, "blockOwnerDeletion": True,
    }
    ref = new_controller_ref({"metadata": {"name": "x", "uid": "u"}}, api_version="v1", kind="K")
    assert ref["kind"] == "K" and ref["apiVersion"] == "v1"


def test_deep_copy_is_independent() -> None:
    copied = deep_copy(POD)
    assert copied == POD and copied is not POD
    copied["metadata"]["labels"]["app"] = "changed"
    copied["spec"]["containers"].append({"name": "d"})
    assert POD["metadata"]["labels"]["app"] == "web"
    assert len(POD["spec"]["containers"]) == 1


def test_deep_copy_falls_back_for_values_json_cannot_hold() -> None:
    big = {"n": 2**70, "t": (1, 2)}
    copied = deep_copy(big)
    assert copied == big and copied["t"] == (1, 2)
    assert deep_copy({1: "a"}) == {1: "a"}
    assert deep_copy([1, "a", None, True, 1.5]) == [1, "a", None, True, 1.5]


def test_deep_copy_is_faster_than_copy_deepcopy() -> None:
    """The reason deep_copy uses orjson: measured side by side (typically ~7x faster)."""

    def best(fn: object, rounds: int = 5, number: int = 200) -> float:
        timings = []
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(number):
                fn(POD)  # type: ignore[operator]
            timings.append(time.perf_counter() - start)
        return min(timings)

    assert best(deep_copy) < best(copy.deepcopy)


def test_field_value() -> None:
    assert field_value(POD, "spec.nodeName") == "node-1"
    assert field_value(POD, "metadata.name") == "web-1"
    assert field_value(POD, "status.phase") == "Running"
    assert field_value(POD, "status.podIP") is None
    assert field_value(POD, "spec.nodeName.deeper") is None
    assert field_value(POD, "spec.containers") == [{"name": "c", "image": "nginx"}]
    assert field_value({"spec": {"replicas": 0}}, "spec.replicas") == 0
    assert field_value({}, "spec.nodeName") is None


def test_time_formats() -> None:
    moment = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)
    assert now_rfc3339(moment) == "2026-11-22T10:00:00Z"
    assert micro_time_now(moment) == "2026-11-22T10:00:00.123456Z"
    plus_two = datetime(2026, 11, 22, 12, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert format_rfc3339(plus_two) == "2026-11-22T10:00:00Z"
    assert now_rfc3339(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05Z"  # naive means UTC
    assert now_rfc3339().endswith("Z") and len(now_rfc3339()) == 20
    assert len(micro_time_now()) == 27


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T10:00:00Z", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        ("2026-11-22T10:00:00.5Z", datetime(2026, 11, 22, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-22T10:00:00.123456789Z", datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-22T12:30:00+02:30", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        ("2026-11-22t10:00:00z", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        ("2026-11-22T05:00:00-05:00", datetime(2026, 11, 22, 10, tzinfo=UTC)),
    ],
)
def test_parse_rfc3339(text: str, expected: datetime) -> None:
    parsed = parse_rfc3339(text)
    assert parsed == expected and parsed.tzinfo == UTC


@pytest.mark.parametrize("text", ["", "2026-11-22", "2026-11-22T10:00:00", "2026-11-22 10:00:00Z",
                                  "2026-13-01T00:00:00Z", "2026-11-22T10:00:00.Z", "yesterday"])
def test_parse_rfc3339_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)))
@example(datetime(3059, 1, 1, 0, 0, 0, 999999, tzinfo=UTC))  # a float timestamp rounded this up a second
def test_time_round_trips(moment: datetime) -> None:
    assert parse_rfc3339(micro_time_now(moment)) == moment
    assert parse_rfc3339(now_rfc3339(moment)) == moment.replace(microsecond=0)
