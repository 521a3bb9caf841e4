"""JSON patch (RFC 6902): what the Python client sends for list bodies and ``kubectl patch --type=json``."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from machinery.patch import PatchError
from machinery.patch.json_patch import apply_json_patch


def deployment() -> dict:
    return {
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}},
        },
    }


def test_operations_apply_in_order():
    operations = [
        {"op": "test", "path": "/spec/replicas", "value": 1},
        {"op": "replace", "path": "/spec/replicas", "value": 3},
        {"op": "add", "path": "/metadata/labels/tier", "value": "front"},
        {
            "op": "add",
            "path": "/spec/template/spec/containers/-",
            "value": {"name": "log", "image": "busybox"},
        },
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.28"},
        {"op": "remove", "path": "/metadata/labels/app"},
        {"op": "copy", "from": "/metadata/name", "path": "/metadata/generateName"},
        {"op": "move", "from": "/metadata/labels/tier", "path": "/metadata/labels/role"},
    ]

    result = apply_json_patch(deployment(), operations)

    assert result == {
        "metadata": {"name": "web", "generateName": "web", "labels": {"role": "front"}},
        "spec": {
            "replicas": 3,
            "template": {
                "spec": {
                    "containers": [
                        {"name": "nginx", "image": "nginx:1.28"},
                        {"name": "log", "image": "busybox"},
                    ]
                }
            },
        },
    }


def test_empty_operation_list_returns_an_equal_copy():
    original = deployment()
    result = apply_json_patch(original, [])
    assert result == original
    assert result is not original


def test_inputs_are_not_mutated():
    original = deployment()
    operations = [{"op": "add", "path": "/metadata/labels/x", "value": {"nested": [1]}}]
    original_before, operations_before = copy.deepcopy(original), copy.deepcopy(operations)

    result = apply_json_patch(original, operations)
    result["metadata"]["labels"]["x"]["nested"].append(2)

    assert original == original_before
    assert operations == operations_before


def test_failed_test_operation_is_422_and_names_the_failure():
    with pytest.raises(PatchError) as caught:
        apply_json_patch(deployment(), [{"op": "test", "path": "/spec/replicas", "value": 5}])
    assert caught.value.code == 422
    assert "test" in caught.value.message


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "remove", "path": "/metadata/annotations"},
        {"op": "replace", "path": "/spec/paused", "value": True},
        {"op": "add", "path": "/spec/missing/child", "value": 1},
        {"op": "remove", "path": "/spec/template/spec/containers/5"},
        {"op": "move", "from": "/nope", "path": "/spec/x"},
        {"op": "add", "path": "/spec/template/spec/containers/x", "value": {}},
        {"op": "add", "path": "/metadata/labels"},
    ],
    ids=[
        "remove-missing",
        "replace-missing",
        "add-under-missing-parent",
        "index-out-of-range",
        "move-from-missing",
        "bad-array-index",
        "add-without-value",
    ],
)
def test_operations_that_cannot_apply_raise_patch_error(operation):
    original = deployment()
    with pytest.raises(PatchError) as caught:
        apply_json_patch(original, [operation])
    assert caught.value.message
    assert original == deployment()


def test_a_failing_operation_leaves_no_partial_result():
    original = deployment()
    operations = [
        {"op": "replace", "path": "/spec/replicas", "value": 9},
        {"op": "remove", "path": "/does/not/exist"},
    ]
    with pytest.raises(PatchError):
        apply_json_patch(original, operations)
    assert original["spec"]["replicas"] == 1


@pytest.mark.parametrize(
    "operations",
    [
        {"op": "add", "path": "/a", "value": 1},
        "not a patch",
        None,
        [1],
        [["op", "add"]],
        [{"path": "/a", "value": 1}],
        [{"op": 5, "path": "/a"}],
        [{"op": "frobnicate", "path": "/a"}],
        [{"op": "add", "value": 1}],
        [{"op": "add", "path": 7, "value": 1}],
        [{"op": "add", "path": "no-leading-slash", "value": 1}],
    ],
    ids=[
        "object-not-array",
        "string",
        "null",
        "number-op",
        "array-op",
        "no-op",
        "op-not-string",
        "unknown-op",
        "no-path",
        "path-not-string",
        "path-not-pointer",
    ],
)
def test_malformed_patches_are_400(operations):
    with pytest.raises(PatchError) as caught:
        apply_json_patch(deployment(), operations)
    assert caught.value.code == 400
    assert isinstance(caught.value, ValueError)


paths = st.lists(st.sampled_from(["metadata", "spec", "labels", "0", "-", "x", "~1", "replicas"]), max_size=4)
operations = st.lists(
    st.fixed_dictionaries(
        {
            "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bogus"]),
            "path": paths.map(lambda parts: "".join("/" + p for p in parts)),
        },
        optional={
            "value": st.none() | st.integers() | st.text(max_size=3) | st.just({"a": [1]}),
            "from": paths.map(lambda parts: "".join("/" + p for p in parts)),
        },
    ),
    max_size=4,
)


@given(operations)
def test_only_patch_error_ever_escapes(ops):
    original = deployment()
    try:
        apply_json_patch(original, ops)
    except PatchError as err:
        assert err.code in (400, 422)
    assert original == deployment()
