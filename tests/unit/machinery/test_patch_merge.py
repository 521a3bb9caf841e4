"""JSON merge patch (RFC 7386): what ``kubectl label/annotate/scale`` and kopf rely on."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from machinery.patch.merge import apply_merge_patch

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
keys = st.text(max_size=4)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)
json_objects = st.dictionaries(keys, json_values, max_size=5)


# The examples of RFC 7386 appendix A: (original, patch, result).
RFC_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("original", "patch", "expected"), RFC_EXAMPLES)
def test_rfc_7386_examples(original, patch, expected):
    assert apply_merge_patch(original, patch) == expected


def test_kubectl_label_patch_adds_changes_and_removes_labels():
    pod = {"metadata": {"name": "web", "labels": {"app": "web", "tier": "front", "old": "x"}}}
    patch = {"metadata": {"labels": {"tier": "back", "new": "y", "old": None}}}

    assert apply_merge_patch(pod, patch) == {
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "back", "new": "y"}}
    }


def test_lists_are_replaced_not_merged():
    pod = {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}}

    result = apply_merge_patch(pod, {"spec": {"containers": [{"name": "a", "image": "y"}]}})

    assert result == {"spec": {"containers": [{"name": "a", "image": "y"}]}}


def test_inputs_are_not_mutated_and_result_shares_nothing_with_them():
    original = {"spec": {"replicas": 1, "template": {"labels": {"a": "b"}}}, "keep": [1, {"x": 1}]}
    patch = {"spec": {"replicas": 3, "extra": {"list": [1, 2]}}}
    original_before, patch_before = copy.deepcopy(original), copy.deepcopy(patch)

    result = apply_merge_patch(original, patch)
    result["keep"][1]["x"] = 99
    result["spec"]["template"]["labels"]["a"] = "changed"
    result["spec"]["extra"]["list"].append(3)

    assert original == original_before
    assert patch == patch_before


@given(json_objects)
def test_empty_patch_is_identity(document):
    assert apply_merge_patch(document, {}) == document


@given(json_values, json_objects)
def test_applying_a_merge_patch_twice_changes_nothing_more(document, patch):
    once = apply_merge_patch(document, patch)
    assert apply_merge_patch(once, patch) == once


@given(json_values, json_values.filter(lambda v: not isinstance(v, dict)))
def test_a_patch_that_is_not_an_object_replaces_the_document(document, patch):
    assert apply_merge_patch(document, patch) == patch


@given(json_values, json_values)
def test_never_mutates_its_inputs(document, patch):
    document_before, patch_before = copy.deepcopy(document), copy.deepcopy(patch)
    apply_merge_patch(document, patch)
    assert document == document_before
    assert patch == patch_before
