"""Name, label and object-metadata validation with the exact messages Kubernetes prints.

Clients (kubectl, operators, tests written against real clusters) match on these texts, so every
check here reproduces apimachinery's wording: ``util/validation`` for the string formats (DNS names,
label keys and values, ports, IPs, env var names) and ``api/validation`` for ``ObjectMeta`` on create
and update. The ``is_*`` helpers return a list of messages (empty when valid); the ``validate_*``
helpers return :class:`~machinery.errors.FieldError` lists ready for a 422 ``Invalid`` Status.
Nothing here mutates its input.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from machinery.errors import FieldError, forbidden, invalid_value, required, too_long

NameValidator = Callable[[str], list[str]]

# --- message builders (apimachinery util/validation) -----------------------------------------------

EMPTY_ERROR = "must be non-empty"
FIELD_IMMUTABLE = "field is immutable"
IS_NEGATIVE = "must be greater than or equal to 0"


def max_len_error(length: int, unit: str = "characters") -> str:
    """``must be no more than N characters`` (the label-key/value checks say ``bytes``)."""
    return f"must be no more than {length} {unit}"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """apimachinery's RegexError, including its ``'a',  or 'b'`` double space between examples."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    text = msg + " (e.g. "
    for i, example in enumerate(examples):
        if i > 0:
            text += " or "
        text += f"'{example}', "
    return text + f"regex used for validation is '{fmt}')"


def inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


def _byte_len(value: str) -> int:
    return len(value) if value.isascii() else len(value.encode())


def _length_and_format(value: str, max_len: int, pattern: re.Pattern[str], message: str,
                       examples: tuple[str, ...], unit: str = "characters") -> list[str]:
    """The two checks most string formats consist of, in apimachinery's order: at most ``max_len``
    (counted in bytes), then a full match of ``pattern`` (its source is the regex the message names)."""
    errs = []
    if _byte_len(value) > max_len:
        errs.append(max_len_error(max_len, unit))
    if not pattern.fullmatch(value):
        errs.append(regex_error(message, pattern.pattern, *examples))
    return errs


# --- DNS names ---------------------------------------------------------------------------------

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL_ERR = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + r"(\." + DNS1123_LABEL_FMT + ")*"
DNS1123_SUBDOMAIN_ERR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)
DNS1123_SUBDOMAIN_MAX = 253
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
DNS1035_LABEL_ERR = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
    "start with an alphabetic character, and end with an alphanumeric character"
)
DNS1035_LABEL_MAX = 63

_DNS1123_LABEL_RE = re.compile(DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = re.compile(DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL_RE = re.compile(DNS1035_LABEL_FMT)


def _dns1123_label(value: str, unit: str) -> list[str]:
    errs = []
    if _byte_len(value) > DNS1123_LABEL_MAX:
        errs.append(max_len_error(DNS1123_LABEL_MAX, unit))
    if not _DNS1123_LABEL_RE.fullmatch(value):
        if _DNS1123_SUBDOMAIN_RE.fullmatch(value):
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(DNS1123_LABEL_ERR, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def _dns1123_subdomain(value: str, unit: str) -> list[str]:
    return _length_and_format(value, DNS1123_SUBDOMAIN_MAX, _DNS1123_SUBDOMAIN_RE, DNS1123_SUBDOMAIN_ERR,
                              ("example.com",), unit)


def is_dns1123_label(value: str) -> list[str]:
    """A lowercase RFC 1123 label (namespaces, most names that become hostnames): at most 63."""
    return _dns1123_label(value, "characters")


def is_dns1123_subdomain(value: str) -> list[str]:
    """A lowercase RFC 1123 subdomain (most object names): at most 253."""
    return _dns1123_subdomain(value, "characters")


def is_dns1035_label(value: str) -> list[str]:
    """An RFC 1035 label (Service names): starts with a letter, at most 63."""
    return _length_and_format(value, DNS1035_LABEL_MAX, _DNS1035_LABEL_RE, DNS1035_LABEL_ERR,
                              ("my-name", "abc-123"))


def mask_trailing_dash(name: str) -> str:
    """generateName may end in '-' (a suffix follows): validate it as if it ended in 'a'."""
    if len(name) > 1 and name.endswith("-"):
        return name[:-1] + "a"
    return name


def is_valid_path_segment_name(name: str) -> list[str]:
    """Every object name must be usable as one URL path segment."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


# --- label keys and values (qualified names) ------------------------------------------------------

QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
QUALIFIED_NAME_ERR = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character"
)
QUALIFIED_NAME_MAX = 63
LABEL_VALUE_FMT = "(" + QUALIFIED_NAME_FMT + ")?"
LABEL_VALUE_ERR = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
LABEL_VALUE_MAX = 63

_QUALIFIED_NAME_RE = re.compile(QUALIFIED_NAME_FMT)
_LABEL_VALUE_RE = re.compile(LABEL_VALUE_FMT)
# apimachinery's newer content package (label keys and values) counts in bytes
_CONTENT_UNIT = "bytes"


def is_qualified_name(value: str) -> list[str]:
    """A label key, annotation key or finalizer: ``[prefix/]name`` (prefix a DNS subdomain)."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + EMPTY_ERROR)
        else:
            errs.extend("prefix part " + m for m in _dns1123_subdomain(prefix, _CONTENT_UNIT))
    else:
        return [
            "a valid label key "
            + regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part " + EMPTY_ERROR)
    elif _byte_len(name) > QUALIFIED_NAME_MAX:
        errs.append("name part " + max_len_error(QUALIFIED_NAME_MAX, _CONTENT_UNIT))
    if not _QUALIFIED_NAME_RE.fullmatch(name):
        errs.append(
            "name part " + regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def is_valid_label_value(value: str) -> list[str]:
    """A label value: empty, or at most 63 alphanumerics/'-'/'_'/'.' with alphanumeric ends."""
    return _length_and_format(value, LABEL_VALUE_MAX, _LABEL_VALUE_RE, LABEL_VALUE_ERR,
                              ("MyValue", "my_value", "12345"), _CONTENT_UNIT)


# --- identifiers, ports, addresses -----------------------------------------------------------------

C_IDENTIFIER_FMT = "[A-Za-z_][A-Za-z0-9_]*"
C_IDENTIFIER_ERR = (
    "a valid C identifier must start with alphabetic character or '_', followed by a string of "
    "alphanumeric characters or '_'"
)
_C_IDENTIFIER_RE = re.compile(C_IDENTIFIER_FMT)
ENV_VAR_NAME_ERR = (
    "a valid environment variable name must consist only of printable ASCII characters other than '='"
)
CONFIG_MAP_KEY_FMT = "[-._a-zA-Z0-9]+"
CONFIG_MAP_KEY_ERR = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_CONFIG_MAP_KEY_RE = re.compile(CONFIG_MAP_KEY_FMT)


def is_c_identifier(value: str) -> list[str]:
    """A C identifier (e.g. a condition reason)."""
    if _C_IDENTIFIER_RE.fullmatch(value):
        return []
    return [regex_error(C_IDENTIFIER_ERR, C_IDENTIFIER_FMT, "my_name", "MY_NAME", "MyName")]


_ENV_VAR_NAME_RE = re.compile(r"[ -<>-~]*")  # printable ASCII (space to ~) without '='


def is_env_var_name(value: str) -> list[str]:
    """An env var name under RelaxedEnvironmentVariableValidation (GA): printable ASCII except '='."""
    errs = []
    if not value:
        errs.append("environment variable name " + EMPTY_ERROR)
    if not _ENV_VAR_NAME_RE.fullmatch(value):
        errs.append(ENV_VAR_NAME_ERR)
    return errs


def is_config_map_key(value: str) -> list[str]:
    """A key in a ConfigMap's or Secret's data."""
    errs = _length_and_format(value, DNS1123_SUBDOMAIN_MAX, _CONFIG_MAP_KEY_RE, CONFIG_MAP_KEY_ERR,
                              ("key.name", "KEY_NAME", "key-name"))
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def is_valid_port_num(port: int) -> list[str]:
    """A non-zero TCP/UDP port."""
    if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
        return []
    return [inclusive_range_error(1, 65535)]


_PORT_NAME_CHARSET_RE = re.compile("[-a-z0-9]+")
_PORT_NAME_LETTER_RE = re.compile("[a-z]")


def is_valid_port_name(port: str) -> list[str]:
    """An IANA_SVC_NAME (RFC 6335), lower case only: at most 15, one letter, no '--', no edge '-'."""
    errs = []
    if len(port) > 15:
        errs.append(max_len_error(15))
    if not _PORT_NAME_CHARSET_RE.fullmatch(port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _PORT_NAME_LETTER_RE.search(port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


_DOTTED_QUAD_RE = re.compile(r"([0-9]+)\.([0-9]+)\.([0-9]+)\.([0-9]+)", re.ASCII)


def _sloppy_ipv4(text: str) -> str | None:
    """Go's ParseIPSloppy accepts leading zeros in IPv4 octets (read as decimal)."""
    match = _DOTTED_QUAD_RE.fullmatch(text)
    if not match:
        return None
    octets = [int(part) for part in match.groups()]
    if any(o > 255 for o in octets):
        return None
    return ".".join(str(o) for o in octets)


def parse_ip_sloppy(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parse an IP address as Kubernetes does (legacy leading zeros allowed, no zones)."""
    if not value or "%" in value:
        return None
    if ":" not in value:
        quad = _sloppy_ipv4(value)
        return ipaddress.IPv4Address(quad) if quad else None
    head, _, tail = value.rpartition(":")
    if "." in tail:
        quad = _sloppy_ipv4(tail)
        if quad is None:
            return None
        value = f"{head}:{quad}"
    try:
        return ipaddress.IPv6Address(value)
    except ValueError:
        return None


def is_valid_ip(value: str) -> list[str]:
    """An IPv4 or IPv6 address."""
    if parse_ip_sloppy(value) is None:
        return ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    return []


def is_valid_cidr(value: str) -> list[str]:
    """A CIDR such as ``10.9.8.0/24`` (host bits may be set, as Kubernetes' sloppy parser allows)."""
    address, sep, bits = value.partition("/")
    ip = parse_ip_sloppy(address) if sep else None
    limit = 32 if isinstance(ip, ipaddress.IPv4Address) else 128
    if ip is None or not bits.isascii() or not bits.isdigit() or int(bits) > limit:
        return ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    return []


# --- field-error builders over ObjectMeta --------------------------------------------------------


class _JSONList(list):
    """A list that renders as compact JSON in a field error (as the API server shows such values)."""

    def __str__(self) -> str:
        return orjson.dumps(list(self)).decode()


class _JSONDict(dict):
    def __str__(self) -> str:
        return orjson.dumps(dict(self)).decode()


def _go_string_slice(values: list[str]) -> str:
    return "[]string{" + ", ".join(orjson.dumps(v).decode() for v in values) + "}"


def validate_label_name(name: str, path: str) -> list[FieldError]:
    return [invalid_value(path, name, msg) for msg in is_qualified_name(name)]


def validate_labels(labels: Mapping[str, Any] | None, path: str) -> list[FieldError]:
    """Every key is a qualified name and every value a label value; errors name the map's path."""
    errs: list[FieldError] = []
    for key, value in (labels or {}).items():
        errs.extend(validate_label_name(key, path))
        if not isinstance(value, str):
            errs.append(invalid_value(path, value, "must be a string"))
            continue
        errs.extend(invalid_value(path, value, msg) for msg in is_valid_label_value(value))
    return errs


TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024


def validate_annotations(annotations: Mapping[str, Any] | None, path: str) -> list[FieldError]:
    """Keys are qualified names (case-insensitively); keys plus values total at most 256 KiB."""
    errs: list[FieldError] = []
    total = 0
    for key, value in (annotations or {}).items():
        errs.extend(invalid_value(path, key, msg) for msg in is_qualified_name(key.lower()))
        total += _byte_len(key) + (_byte_len(value) if isinstance(value, str) else 0)
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return errs


_OWNER_FIELDS = ("apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion")
_BANNED_OWNERS = {("", "v1", "Event")}


def _split_api_version(api_version: str) -> tuple[str, str] | None:
    """(group, version) as schema.ParseGroupVersion reads it; None when it has two or more '/'."""
    if not api_version or api_version == "/":
        return "", ""
    if api_version.count("/") > 1:
        return None
    group, _, version = api_version.rpartition("/")
    return group, version


def _render_owner_ref(ref: Mapping[str, Any]) -> dict[str, Any]:
    return _JSONDict((k, ref[k]) for k in _OWNER_FIELDS if ref.get(k) not in (None, ""))


def _validate_owner_reference(ref: Mapping[str, Any], path: str) -> list[FieldError]:
    errs = []
    api_version = ref.get("apiVersion") or ""
    kind = ref.get("kind") or ""
    group_version = _split_api_version(api_version)
    group, version = group_version or ("", "")
    if not version:
        errs.append(invalid_value(f"{path}.apiVersion", api_version, "version must not be empty"))
    if not kind:
        errs.append(invalid_value(f"{path}.kind", kind, "kind must not be empty"))
    if not ref.get("name"):
        errs.append(invalid_value(f"{path}.name", ref.get("name") or "", "name must not be empty"))
    if not ref.get("uid"):
        errs.append(invalid_value(f"{path}.uid", ref.get("uid") or "", "uid must not be empty"))
    if (group, version, kind) in _BANNED_OWNERS:
        errs.append(invalid_value(path, _render_owner_ref(ref),
                                  f"{group}/{version}, Kind={kind} is disallowed from being an owner"))
    return errs


def validate_owner_references(refs: list[Mapping[str, Any]] | None, path: str) -> list[FieldError]:
    """Each reference names apiVersion, kind, name and uid; at most one has ``controller: true``.

    Like Kubernetes, the per-reference errors use the list's path without an index.
    """
    errs: list[FieldError] = []
    first_controller = ""
    for ref in refs or []:
        if not isinstance(ref, Mapping):
            continue
        errs.extend(_validate_owner_reference(ref, path))
        if ref.get("controller") is True:
            current = f"{ref.get('kind') or ''}/{ref.get('name') or ''}"
            if first_controller:
                rendered = _JSONList(_render_owner_ref(r) for r in refs if isinstance(r, Mapping))
                errs.append(invalid_value(
                    path, rendered,
                    "Only one reference can have Controller set to true. "
                    f'Found "true" in references for {first_controller} and {current}',
                ))
            else:
                first_controller = current
    return errs


FINALIZER_ORPHAN = "orphan"
FINALIZER_FOREGROUND = "foregroundDeletion"


def validate_finalizers(finalizers: list[str] | None, path: str) -> list[FieldError]:
    """Finalizers are qualified names; ``orphan`` and ``foregroundDeletion`` exclude each other.

    Duplicates are accepted, as in Kubernetes (maintainers declined to tighten this).
    """
    errs: list[FieldError] = []
    names = finalizers or []
    for name in names:
        errs.extend(invalid_value(path, name, msg) for msg in is_qualified_name(name))
    if FINALIZER_ORPHAN in names and FINALIZER_FOREGROUND in names:
        errs.append(invalid_value(
            path, _JSONList(names),
            f"finalizer {FINALIZER_ORPHAN} and {FINALIZER_FOREGROUND} cannot be both set",
        ))
    return errs


def validate_nonnegative_field(value: Any, path: str) -> list[FieldError]:
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        return [invalid_value(path, value, IS_NEGATIVE)]
    return []


def validate_object_meta(
    meta: Mapping[str, Any],
    *,
    namespaced: bool,
    name_validator: NameValidator = is_dns1123_subdomain,
    path: str = "metadata",
) -> list[FieldError]:
    """ObjectMeta on create (and again on update), as ValidateObjectMetaAccessor does.

    ``name_validator`` takes a name and returns messages; ``generateName`` is checked with its
    trailing '-' masked, since a random suffix will follow it.
    """
    errs: list[FieldError] = []
    generate_name = meta.get("generateName") or ""
    if generate_name:
        masked = mask_trailing_dash(generate_name)
        errs.extend(invalid_value(f"{path}.generateName", generate_name, m) for m in name_validator(masked))
    name = meta.get("name") or ""
    if not name:
        errs.append(required(f"{path}.name", "name or generateName is required"))
    else:
        errs.extend(invalid_value(f"{path}.name", name, m) for m in name_validator(name))
    namespace = meta.get("namespace") or ""
    if namespaced:
        if not namespace:
            errs.append(required(f"{path}.namespace"))
        else:
            errs.extend(invalid_value(f"{path}.namespace", namespace, m) for m in is_dns1123_label(namespace))
    elif namespace:
        errs.append(forbidden(f"{path}.namespace", "not allowed on this type"))
    errs.extend(validate_nonnegative_field(meta.get("generation"), f"{path}.generation"))
    errs.extend(validate_labels(meta.get("labels"), f"{path}.labels"))
    errs.extend(validate_annotations(meta.get("annotations"), f"{path}.annotations"))
    errs.extend(validate_owner_references(meta.get("ownerReferences"), f"{path}.ownerReferences"))
    errs.extend(validate_finalizers(meta.get("finalizers"), f"{path}.finalizers"))
    return errs


def _absent_as_none(value: Any) -> Any:
    return None if value is None or value == "" else value


def validate_immutable_field(new: Any, old: Any, path: str) -> list[FieldError]:
    """``field is immutable`` unless new equals old (a missing value equals an empty string)."""
    if _absent_as_none(new) != _absent_as_none(old):
        return [invalid_value(path, new, FIELD_IMMUTABLE)]
    return []


_IMMUTABLE_META = (
    "name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
)


def validate_object_meta_update(
    new_meta: Mapping[str, Any], old_meta: Mapping[str, Any], path: str = "metadata"
) -> list[FieldError]:
    """ObjectMeta on update, as ValidateObjectMetaAccessorUpdate does.

    The caller fills ``resourceVersion`` for unconditional updates before calling this (the
    generic store does), so a missing one here is the client's fault. ``generateName`` may change.
    """
    errs: list[FieldError] = []
    if old_meta.get("deletionTimestamp"):
        added = sorted(set(new_meta.get("finalizers") or []) - set(old_meta.get("finalizers") or []))
        if added:
            errs.append(forbidden(
                f"{path}.finalizers",
                "no new finalizers can be added if the object is being deleted, "
                f"found new finalizers {_go_string_slice(added)}",
            ))
    if not new_meta.get("resourceVersion"):
        errs.append(invalid_value(f"{path}.resourceVersion", new_meta.get("resourceVersion") or "",
                                  "must be specified for an update"))
    new_generation = new_meta.get("generation") or 0
    if isinstance(new_generation, int) and new_generation < (old_meta.get("generation") or 0):
        errs.append(invalid_value(f"{path}.generation", new_generation, "must not be decremented"))
    for key in _IMMUTABLE_META:
        errs.extend(validate_immutable_field(new_meta.get(key), old_meta.get(key), f"{path}.{key}"))
    errs.extend(validate_labels(new_meta.get("labels"), f"{path}.labels"))
    errs.extend(validate_annotations(new_meta.get("annotations"), f"{path}.annotations"))
    errs.extend(validate_owner_references(new_meta.get("ownerReferences"), f"{path}.ownerReferences"))
    return errs
