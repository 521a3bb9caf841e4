"""Name, label and ObjectMeta validation with the messages Kubernetes prints."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from machinery.errors import FORBIDDEN, INVALID, REQUIRED, TOO_LONG
from machinery.validation import (
    is_c_identifier,
    is_config_map_key,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_env_var_name,
    is_qualified_name,
    is_valid_cidr,
    is_valid_ip,
    is_valid_label_value,
    is_valid_path_segment_name,
    is_valid_port_name,
    is_valid_port_num,
    mask_trailing_dash,
    validate_annotations,
    validate_finalizers,
    validate_labels,
    validate_object_meta,
    validate_object_meta_update,
    validate_owner_references,
)

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
NAME_PART_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


@pytest.mark.parametrize(
    ("value", "errors"),
    [
        ("example.com", []),
        ("a", []),
        ("0-a.b-9", []),
        ("a" * 253, []),
        ("a" * 254, ["must be no more than 253 characters"]),
        ("Web", [SUBDOMAIN_MSG]),
        ("web_1", [SUBDOMAIN_MSG]),
        ("-web", [SUBDOMAIN_MSG]),
        ("web.", [SUBDOMAIN_MSG]),
        ("a..b", [SUBDOMAIN_MSG]),
        ("", [SUBDOMAIN_MSG]),
        ("web\n", [SUBDOMAIN_MSG]),
        ("A" * 254, ["must be no more than 253 characters", SUBDOMAIN_MSG]),
    ],
)
def test_dns1123_subdomain(value: str, errors: list[str]) -> None:
    assert is_dns1123_subdomain(value) == errors


@pytest.mark.parametrize(
    ("value", "errors"),
    [
        ("kube-system", []),
        ("1abc", []),
        ("a" * 63, []),
        ("a" * 64, ["must be no more than 63 characters"]),
        ("a.b", ["must not contain dots"]),
        ("A", [LABEL_MSG]),
        ("a-", [LABEL_MSG]),
        ("", [LABEL_MSG]),
    ],
)
def test_dns1123_label(value: str, errors: list[str]) -> None:
    assert is_dns1123_label(value) == errors


@pytest.mark.parametrize(
    ("value", "errors"),
    [("my-svc", []), ("a1", []), ("1abc", [DNS1035_MSG]), ("a.b", [DNS1035_MSG]),
     ("a" * 64, ["must be no more than 63 characters"])],
)
def test_dns1035_label(value: str, errors: list[str]) -> None:
    assert is_dns1035_label(value) == errors


@pytest.mark.parametrize(
    ("value", "errors"),
    [
        ("app", []),
        ("App_Name-1.x", []),
        ("app.kubernetes.io/name", []),
        ("example.com/MyName", []),
        ("a" * 63, []),
        ("a" * 64, ["name part must be no more than 63 bytes"]),
        ("", ["name part must be non-empty", NAME_PART_MSG]),
        ("-app", [NAME_PART_MSG]),
        ("app/", ["name part must be non-empty", NAME_PART_MSG]),
        ("/app", ["prefix part must be non-empty"]),
        ("Example.com/app", ["prefix part " + SUBDOMAIN_MSG]),
        ("a/b/c", [
            "a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and "
            "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
            "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix "
            "and '/' (e.g. 'example.com/MyName')"]),
    ],
)
def test_qualified_name(value: str, errors: list[str]) -> None:
    assert is_qualified_name(value) == errors


@pytest.mark.parametrize(
    ("value", "errors"),
    [("", []), ("v1.2_3-x", []), ("a" * 63, []), ("a" * 64, ["must be no more than 63 bytes"]),
     ("-x", [LABEL_VALUE_MSG]), ("a b", [LABEL_VALUE_MSG]), ("é", [LABEL_VALUE_MSG])],
)
def test_label_value(value: str, errors: list[str]) -> None:
    assert is_valid_label_value(value) == errors


def test_c_identifier_and_env_var_names() -> None:
    c_msg = ("a valid C identifier must start with alphabetic character or '_', followed by a string of "
             "alphanumeric characters or '_' (e.g. 'my_name',  or 'MY_NAME',  or 'MyName', regex used for "
             "validation is '[A-Za-z_][A-Za-z0-9_]*')")
    assert is_c_identifier("MY_VAR_1") == [] and is_c_identifier("_x") == []
    assert is_c_identifier("1x") == [c_msg] and is_c_identifier("my-var") == [c_msg]
    env_msg = ("a valid environment variable name must consist only of printable ASCII characters other "
               "than '='")
    for ok in ("PATH", "my.var-name", "1st", "with space", "!@#$%^&*()~"):
        assert is_env_var_name(ok) == [], ok
    assert is_env_var_name("A=B") == [env_msg]
    assert is_env_var_name("tab\there") == [env_msg]
    assert is_env_var_name("café") == [env_msg]
    assert is_env_var_name("") == ["environment variable name must be non-empty"]


def test_config_map_key() -> None:
    assert is_config_map_key("app.properties") == []
    assert is_config_map_key("a b") == [
        "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
        "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"]
    assert is_config_map_key("..") == ["must not be '..'"]
    assert is_config_map_key("..x") == ["must not start with '..'"]


def test_ports() -> None:
    assert is_valid_port_num(1) == [] and is_valid_port_num(65535) == []
    for bad in (0, 65536, -1, True, "80"):
        assert is_valid_port_num(bad) == ["must be between 1 and 65535, inclusive"]  # type: ignore[arg-type]
    assert is_valid_port_name("http") == [] and is_valid_port_name("h2c-1") == []
    assert is_valid_port_name("a" * 16) == ["must be no more than 15 characters"]
    assert is_valid_port_name("HTTP") == [
        "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        "must contain at least one letter (a-z)",
    ]
    assert is_valid_port_name("8080") == ["must contain at least one letter (a-z)"]
    assert is_valid_port_name("a--b") == ["must not contain consecutive hyphens"]
    assert is_valid_port_name("-ab") == ["must not begin or end with a hyphen"]
    assert is_valid_port_name("") == [
        "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        "must contain at least one letter (a-z)",
    ]


@pytest.mark.parametrize(
    ("value", "valid"),
    [("10.9.8.7", True), ("0.0.0.0", True), ("010.001.0.1", True), ("2001:db8::ffff", True), ("::1", True),
     ("::ffff:1.2.3.4", True), ("256.1.1.1", False), ("1.2.3", False), ("fe80::1%eth0", False), ("", False),
     ("example.com", False), (" 1.2.3.4", False), ("1.2.3.4/32", False), ("\u0661.2.3.4", False)],
)
def test_ip(value: str, valid: bool) -> None:
    message = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
    assert is_valid_ip(value) == ([] if valid else [message])


def test_cidr() -> None:
    assert is_valid_cidr("10.0.0.0/8") == [] and is_valid_cidr("2001:db8::/64") == []
    assert is_valid_cidr("10.0.0.1/24") == []
    message = ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    for bad in ("10.0.0.0", "10.0.0.0/33", "::/129", "10.0.0.0/x", "x/8"):
        assert is_valid_cidr(bad) == message, bad


def test_path_segment_names_and_generate_name_mask() -> None:
    assert is_valid_path_segment_name("ok") == []
    assert is_valid_path_segment_name("..") == ["may not be '..'"]
    assert is_valid_path_segment_name("a/b%c") == ["may not contain '/'", "may not contain '%'"]
    assert mask_trailing_dash("web-") == "weba"
    assert mask_trailing_dash("-") == "-"


# --- ObjectMeta ---------------------------------------------------------------------------------


def messages(errors: list) -> list[str]:
    return [str(e) for e in errors]


def test_valid_meta_has_no_errors() -> None:
    meta = {
        "name": "web-1", "namespace": "default", "generation": 1,
        "labels": {"app": "web", "app.kubernetes.io/name": "web", "empty": ""},
        "annotations": {"Example.COM/Note": "any text at all: \u00e9"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "u1",
                             "controller": True}],
        "finalizers": ["example.com/cleanup", "kubernetes"],
    }
    assert validate_object_meta(meta, namespaced=True) == []


def test_name_or_generate_name_required() -> None:
    errors = validate_object_meta({"namespace": "default"}, namespaced=True)
    assert messages(errors) == ["metadata.name: Required value: name or generateName is required"]
    assert errors[0].type == REQUIRED
    # the store generates the name from generateName before validating, so a name is still required here
    assert messages(validate_object_meta({"generateName": "web-", "namespace": "ns"}, namespaced=True)) == [
        "metadata.name: Required value: name or generateName is required"]


def test_name_rules() -> None:
    assert messages(validate_object_meta({"name": "Web"}, namespaced=False)) == [
        f'metadata.name: Invalid value: "Web": {SUBDOMAIN_MSG}']
    as_label = validate_object_meta({"name": "a.b"}, namespaced=False, name_validator=is_dns1123_label)
    assert messages(as_label) == [
        'metadata.name: Invalid value: "a.b": must not contain dots']
    assert messages(validate_object_meta({"generateName": "Web-", "name": "ok"}, namespaced=False)) == [
        f'metadata.generateName: Invalid value: "Web-": {SUBDOMAIN_MSG}']
    assert validate_object_meta({"generateName": "web-", "name": "web-x7k2p"}, namespaced=False) == []
    assert messages(validate_object_meta({"name": "a/b"}, namespaced=False,
                                         name_validator=is_valid_path_segment_name)) == [
        "metadata.name: Invalid value: \"a/b\": may not contain '/'"]


def test_namespace_rules() -> None:
    assert messages(validate_object_meta({"name": "a"}, namespaced=True)) == [
        "metadata.namespace: Required value"]
    assert messages(validate_object_meta({"name": "a", "namespace": "Kube"}, namespaced=True)) == [
        f'metadata.namespace: Invalid value: "Kube": {LABEL_MSG}']
    errors = validate_object_meta({"name": "a", "namespace": "default"}, namespaced=False)
    assert messages(errors) == ["metadata.namespace: Forbidden: not allowed on this type"]
    assert errors[0].type == FORBIDDEN


def test_generation_must_not_be_negative() -> None:
    assert messages(validate_object_meta({"name": "a", "generation": -1}, namespaced=False)) == [
        "metadata.generation: Invalid value: -1: must be greater than or equal to 0"]


def test_labels_and_annotations() -> None:
    assert messages(validate_labels({"bad key": "-v", "ok": "fine"}, "metadata.labels")) == [
        f'metadata.labels: Invalid value: "bad key": {NAME_PART_MSG}',
        f'metadata.labels: Invalid value: "-v": {LABEL_VALUE_MSG}',
    ]
    assert messages(validate_labels({"a": 1}, "metadata.labels")) == [
        "metadata.labels: Invalid value: 1: must be a string"]
    assert messages(validate_annotations({"a b": "x"}, "metadata.annotations")) == [
        f'metadata.annotations: Invalid value: "a b": {NAME_PART_MSG}']
    big = {"a": "x" * (256 * 1024 - 1)}
    assert validate_annotations(big, "metadata.annotations") == []
    big["b"] = ""
    errors = validate_annotations(big, "metadata.annotations")
    assert messages(errors) == ["metadata.annotations: Too long: may not be more than 262144 bytes"]
    assert errors[0].type == TOO_LONG
    assert validate_annotations({"a": "é" * (128 * 1024)}, "m") != []  # bytes, not characters


def test_owner_references() -> None:
    path = "metadata.ownerReferences"
    assert messages(validate_owner_references([{}], path)) == [
        'metadata.ownerReferences.apiVersion: Invalid value: "": version must not be empty',
        'metadata.ownerReferences.kind: Invalid value: "": kind must not be empty',
        'metadata.ownerReferences.name: Invalid value: "": name must not be empty',
        'metadata.ownerReferences.uid: Invalid value: "": uid must not be empty',
    ]
    assert messages(validate_owner_references(
        [{"apiVersion": "apps/", "kind": "K", "name": "n", "uid": "u"}], path)) == [
        'metadata.ownerReferences.apiVersion: Invalid value: "apps/": version must not be empty']
    assert messages(validate_owner_references(
        [{"apiVersion": "a/b/c", "kind": "K", "name": "n", "uid": "u"}], path)) == [
        'metadata.ownerReferences.apiVersion: Invalid value: "a/b/c": version must not be empty']
    assert messages(validate_owner_references(
        [{"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "u"}], path)) == [
        'metadata.ownerReferences: Invalid value: {"apiVersion":"v1","kind":"Event","name":"e","uid":"u"}: '
        "/v1, Kind=Event is disallowed from being an owner"]
    refs = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": True},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "b", "uid": "2", "controller": False},
        {"uid": "3", "name": "c", "kind": "DaemonSet", "apiVersion": "apps/v1", "controller": True,
         "blockOwnerDeletion": True},
    ]
    assert messages(validate_owner_references(refs, path)) == [
        'metadata.ownerReferences: Invalid value: [{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"a",'
        '"uid":"1","controller":true},{"apiVersion":"apps/v1","kind":"StatefulSet","name":"b","uid":"2",'
        '"controller":false},{"apiVersion":"apps/v1","kind":"DaemonSet","name":"c","uid":"3","controller":true,'
        '"blockOwnerDeletion":true}]: Only one reference can have Controller set to true. Found "true" in '
        "references for ReplicaSet/a and DaemonSet/c"
    ]


def test_finalizers() -> None:
    path = "metadata.finalizers"
    assert validate_finalizers(["kubernetes", "example.com/x", "example.com/x"], path) == []
    assert messages(validate_finalizers(["bad name"], path)) == [
        f'metadata.finalizers: Invalid value: "bad name": {NAME_PART_MSG}']
    assert messages(validate_finalizers(["orphan", "foregroundDeletion"], path)) == [
        'metadata.finalizers: Invalid value: ["orphan","foregroundDeletion"]: '
        "finalizer orphan and foregroundDeletion cannot be both set"]


def test_meta_validation_does_not_mutate() -> None:
    meta = {"name": "Bad", "labels": {"a": "-"}, "finalizers": ["orphan", "foregroundDeletion"]}
    snapshot = repr(meta)
    validate_object_meta(meta, namespaced=True)
    validate_object_meta_update(meta, {"name": "x"})
    assert repr(meta) == snapshot


# --- ObjectMeta updates ---------------------------------------------------------------------------

OLD = {
    "name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "5", "generation": 2,
    "creationTimestamp": "2026-01-01T00:00:00Z", "generateName": "w-",
}


def test_unchanged_update_is_valid() -> None:
    assert validate_object_meta_update(dict(OLD), OLD) == []
    assert validate_object_meta_update({**OLD, "generateName": "other-", "labels": {"a": "b"}}, OLD) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "api"}, 'metadata.name: Invalid value: "api": field is immutable'),
        ({"namespace": "other"}, 'metadata.namespace: Invalid value: "other": field is immutable'),
        ({"uid": "u2"}, 'metadata.uid: Invalid value: "u2": field is immutable'),
        ({"creationTimestamp": "2027-01-01T00:00:00Z"},
         'metadata.creationTimestamp: Invalid value: "2027-01-01T00:00:00Z": field is immutable'),
        ({"deletionTimestamp": "2027-01-01T00:00:00Z"},
         'metadata.deletionTimestamp: Invalid value: "2027-01-01T00:00:00Z": field is immutable'),
        ({"deletionGracePeriodSeconds": 0},
         "metadata.deletionGracePeriodSeconds: Invalid value: 0: field is immutable"),
        ({"resourceVersion": ""},
         'metadata.resourceVersion: Invalid value: "": must be specified for an update'),
        ({"generation": 1}, "metadata.generation: Invalid value: 1: must not be decremented"),
        ({"labels": {"a": "b c"}}, f'metadata.labels: Invalid value: "b c": {LABEL_VALUE_MSG}'),
    ],
)
def test_update_errors(change: dict, message: str) -> None:
    errors = validate_object_meta_update({**OLD, **change}, OLD)
    assert messages(errors) == [message]
    assert errors[0].type == INVALID


def test_missing_and_empty_compare_equal() -> None:
    assert validate_object_meta_update({**OLD, "uid": ""}, {**OLD, "uid": None}) == []
    old = {k: v for k, v in OLD.items() if k != "uid"}
    assert validate_object_meta_update({**old, "uid": ""}, old) == []


def test_no_new_finalizers_while_deleting() -> None:
    old = {**OLD, "deletionTimestamp": "2026-02-01T00:00:00Z", "finalizers": ["a.io/x"]}
    assert validate_object_meta_update({**old, "finalizers": []}, old) == []
    errors = validate_object_meta_update({**old, "finalizers": ["a.io/x", "c.io/z", "b.io/y"]}, old)
    assert messages(errors) == [
        "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, "
        'found new finalizers []string{"b.io/y", "c.io/z"}'
    ]


# --- properties ---------------------------------------------------------------------------------

subdomains = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?){0,3}",
                           fullmatch=True)


@given(subdomains)
def test_generated_subdomains_are_valid(name: str) -> None:
    assert is_dns1123_subdomain(name) == []
    assert is_qualified_name(f"{name}/x") == []
    assert (is_dns1123_label(name) == []) is ("." not in name)


@given(st.text(max_size=20))
def test_validators_never_raise_and_agree_on_the_alphabet(value: str) -> None:
    for check in (is_dns1123_subdomain, is_dns1123_label, is_dns1035_label, is_qualified_name,
                  is_valid_label_value, is_c_identifier, is_env_var_name, is_valid_port_name, is_valid_ip):
        assert isinstance(check(value), list)
    if is_dns1123_label(value) == []:
        assert is_dns1123_subdomain(value) == [] and is_valid_label_value(value) == []
    if is_dns1035_label(value) == []:
        assert is_dns1123_label(value) == []
    if is_c_identifier(value) == []:
        assert is_env_var_name(value) == []
