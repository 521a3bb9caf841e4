"""Request decoding and content negotiation of the HTTP layer."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from apiserver.server import codec
from machinery import errors


def request_with(accept: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/apis", "headers": [(b"accept", accept.encode())]})


@pytest.mark.parametrize("accept, expected", [
    ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json", "v2"),
    ("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json", "v2beta1"),
    ("application/json; g=apidiscovery.k8s.io; v=v2; as=APIGroupDiscoveryList", "v2"),
    ("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList,application/json", None),
    ("application/json", None),
    ("", None),
])
def test_aggregated_discovery_version(accept, expected):
    assert codec.aggregated_discovery_version(request_with(accept)) == expected


def test_wants_table():
    table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    assert codec.wants_table(request_with(table))
    assert not codec.wants_table(request_with("application/json"))


def test_objects_decode_from_json_without_content_type_and_from_yaml():
    assert codec.decode_object(b'{"a": 1}', "") == {"a": 1}
    assert codec.decode_object(b"a: 1\nb: [x]\n", codec.YAML) == {"a": 1, "b": ["x"]}


@pytest.mark.parametrize("body, content_type, code", [
    (b"{not json", codec.JSON, 400),
    (b"[1, 2]", codec.JSON, 400),
    (b"a: [1", codec.YAML, 400),
    (b"a: 1\n---\nb: 2\n", codec.YAML, 400),
    (b"\x00\x01", "application/vnd.kubernetes.protobuf", 415),
])
def test_bad_bodies_get_clear_errors(body, content_type, code):
    with pytest.raises(errors.StatusError) as err:
        codec.decode_object(body, content_type)
    assert err.value.code == code


def test_yaml_aliases_are_fine_until_they_explode():
    assert codec.decode_object(b"x: &a {k: v}\ny: *a\n", codec.YAML) == {"x": {"k": "v"}, "y": {"k": "v"}}
    levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefg", "bcdefgh", strict=False):
        levels.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    with pytest.raises(errors.StatusError) as err:
        codec.decode_object("\n".join(levels).encode(), codec.YAML)
    assert err.value.code == 400 and "aliases" in err.value.message


def test_require_objects():
    assert codec.require_objects({"spec": {}, "metadata": None}, "Scale", "spec", "metadata")
    with pytest.raises(errors.StatusError) as err:
        codec.require_objects({"spec": "x"}, "Scale", "spec")
    assert err.value.code == 400 and '"spec" must be an object' in err.value.message


def test_warning_headers_quote_the_text():
    assert codec.warning_headers(['unknown field "spec.x"']) == [("Warning", '299 - "unknown field \\"spec.x\\""')]
