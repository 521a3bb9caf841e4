"""Decoding kubectl's protobuf request bodies for the kinds kubemini understands."""

from __future__ import annotations

import pytest

from apiserver.server.protobuf import MAGIC, decode
from machinery import errors


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return varint(number << 3) + varint(payload)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def entry(key: str, value: bytes) -> bytes:
    return field(1, key.encode()) + field(2, value)


def envelope(kind: str, raw: bytes) -> bytes:
    type_meta = field(1, b"v1") + field(2, kind.encode())
    return MAGIC + field(1, type_meta) + field(2, raw)


def test_configmap_with_data_labels_and_go_zero_values():
    meta = field(1, b"cm") + field(2, b"") + field(7, 0) + field(8, field(1, 0)) + field(11, entry("app", b"x"))
    raw = field(1, meta) + field(2, entry("a", b"1")) + field(3, entry("bin", b"\x00\x01")) + field(4, 1)
    assert decode(envelope("ConfigMap", raw), "ConfigMap", "v1") == {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm", "labels": {"app": "x"}},
        "data": {"a": "1"}, "binaryData": {"bin": "AAE="}, "immutable": True,
    }


def test_secret_data_is_base64_and_string_data_is_text():
    raw = field(1, field(1, b"s")) + field(2, entry("k", b"v")) + field(3, b"Opaque") + field(4, entry("t", b"x"))
    out = decode(envelope("Secret", raw), "Secret", "v1")
    assert out["data"] == {"k": "dg=="} and out["stringData"] == {"t": "x"} and out["type"] == "Opaque"


def test_namespace_with_finalizers():
    raw = field(1, field(1, b"ns") + field(14, b"a") + field(14, b"b")) + field(2, field(1, b"kubernetes"))
    out = decode(envelope("Namespace", raw), "Namespace", "v1")
    assert out["metadata"] == {"name": "ns", "finalizers": ["a", "b"]}
    assert out["spec"] == {"finalizers": ["kubernetes"]}


def test_unknown_fields_are_refused_not_dropped():
    raw = field(1, field(1, b"cm") + field(13, b"owner-ref"))
    with pytest.raises(errors.StatusError) as err:
        decode(envelope("ConfigMap", raw), "ConfigMap", "v1")
    assert err.value.code == 415 and "field number 13" in err.value.message


def test_other_kinds_and_bad_bodies():
    with pytest.raises(errors.StatusError) as err:
        decode(envelope("ResourceQuota", b""), "ResourceQuota", "v1")
    assert err.value.code == 415 and "kubectl create -f" in err.value.message
    with pytest.raises(errors.StatusError) as err:
        decode(b"not protobuf", "ConfigMap", "v1")
    assert err.value.code == 400
    with pytest.raises(errors.StatusError) as err:
        decode(MAGIC + b"\x0a\xff", "ConfigMap", "v1")
    assert err.value.code == 400
    with pytest.raises(errors.StatusError) as err:
        decode(envelope("Secret", b""), "ConfigMap", "v1")
    assert err.value.code == 400


def test_deployment_with_a_container_and_zero_replicas():
    container = field(1, b"c") + field(2, b"nginx") + field(6, field(3, 80)) + field(16, 0)
    template = field(1, field(11, entry("app", b"web"))) + field(2, field(2, container) + field(8, b""))
    spec = field(1, 0) + field(2, field(1, entry("app", b"web"))) + field(3, template) + field(5, 0)
    out = decode(envelope("Deployment", field(1, field(1, b"web")) + field(2, spec) + field(3, field(1, 0))),
                 "Deployment", "apps/v1")
    assert out["spec"] == {
        "replicas": 0,  # a pointer field: zero is a value
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}]}},
    }
    assert "status" not in out


def test_a_refused_field_is_named_with_its_path():
    container = field(1, b"c") + field(99, b"x")
    spec = field(3, field(2, field(2, container)))
    with pytest.raises(errors.StatusError) as err:
        decode(envelope("Deployment", field(2, spec)), "Deployment", "apps/v1")
    assert "field number 99 in containers in spec in template in spec" in err.value.message
