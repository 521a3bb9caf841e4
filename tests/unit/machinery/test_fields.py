"""Field selectors: the fieldSelector grammar, escaping, Kubernetes' error texts and matching."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from machinery.fields import (
    EQUALS,
    NOT_EQUALS,
    FieldSelector,
    escape_value,
    parse_field_selector,
    unescape_value,
)
from machinery.labels import SelectorError


@pytest.mark.parametrize(
    ("text", "requirements", "canonical"),
    [
        ("", [], ""),
        ("metadata.name=web", [("metadata.name", EQUALS, "web")], "metadata.name=web"),
        ("metadata.name==web", [("metadata.name", EQUALS, "web")], "metadata.name=web"),
        ("status.phase!=Running", [("status.phase", NOT_EQUALS, "Running")], "status.phase!=Running"),
        ("spec.nodeName=", [("spec.nodeName", EQUALS, "")], "spec.nodeName="),
        (
            "spec.nodeName=n1,metadata.namespace!=kube-system",
            [("metadata.namespace", NOT_EQUALS, "kube-system"), ("spec.nodeName", EQUALS, "n1")],
            "metadata.namespace!=kube-system,spec.nodeName=n1",
        ),
        ("a=b,,c=d", [("a", EQUALS, "b"), ("c", EQUALS, "d")], "a=b,c=d"),
        ("a=x\\,y", [("a", EQUALS, "x,y")], "a=x\\,y"),
        ("a=x\\=y", [("a", EQUALS, "x=y")], "a=x\\=y"),
        ("a=x\\\\y", [("a", EQUALS, "x\\y")], "a=x\\\\y"),
        ("a=x!y", [("a", EQUALS, "x!y")], "a=x!y"),
        ("a=!b", [("a", EQUALS, "!b")], "a=!b"),
        ("a!=\\=b", [("a", NOT_EQUALS, "=b")], "a!=\\=b"),
        ("=b", [("", EQUALS, "b")], "=b"),
        ("a = b", [("a ", EQUALS, " b")], "a = b"),
    ],
)
def test_parse(text: str, requirements: list[tuple[str, str, str]], canonical: str) -> None:
    selector = parse_field_selector(text)
    assert selector.requirements == requirements
    assert str(selector) == canonical
    assert selector.empty is (not requirements)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a", "invalid selector: 'a'; can't understand 'a'"),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        ("a<b", "invalid selector: 'a<b'; can't understand 'a<b'"),
        ("a=b=c", "invalid field selector: unescaped character in value: 61"),
        ("a!==b", "invalid field selector: unescaped character in value: 61"),
        ("a=b\\x", "invalid field selector: invalid escape sequence: \\x"),
        ("a=b\\!", "invalid field selector: invalid escape sequence: \\!"),
        ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_field_selector(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "fields", "expected"),
    [
        ("", {}, True),
        ("metadata.name=web", {"metadata.name": "web"}, True),
        ("metadata.name=web", {"metadata.name": "api"}, False),
        ("metadata.name=web", {}, False),
        ("spec.nodeName=", {}, True),  # a missing field reads as ""
        ("spec.nodeName!=", {}, False),
        ("spec.nodeName!=", {"spec.nodeName": "n1"}, True),
        ("status.phase!=Running", {}, True),
        ("status.phase!=Running", {"status.phase": "Running"}, False),
        ("a=1,b=2", {"a": "1", "b": "2"}, True),
        ("a=1,b=2", {"a": "1", "b": "3"}, False),
        ("a=x\\,y", {"a": "x,y"}, True),
    ],
)
def test_matching(text: str, fields: dict[str, str], expected: bool) -> None:
    assert parse_field_selector(text).matches(fields) is expected


def test_only_exact_narrows_watches() -> None:
    selector = parse_field_selector("spec.nodeName=n1,metadata.name!=x,status.phase==Running")
    assert selector.only_exact("spec.nodeName") == "n1"
    assert selector.only_exact("status.phase") == "Running"
    assert selector.only_exact("metadata.name") is None
    assert selector.only_exact("metadata.namespace") is None
    assert parse_field_selector("spec.nodeName=").only_exact("spec.nodeName") == ""
    assert FieldSelector.everything().only_exact("spec.nodeName") is None


def test_constructors_and_equality() -> None:
    one = FieldSelector.one_term_equal("metadata.name", "a,b")
    assert str(one) == "metadata.name=a\\,b"
    assert parse_field_selector(str(one)) == one
    assert hash(parse_field_selector("b=1,a=2")) == hash(parse_field_selector("a=2,b=1"))
    assert FieldSelector.everything().empty and parse_field_selector("") == FieldSelector()


def test_escape_and_unescape() -> None:
    assert escape_value("a\\b,c=d!") == "a\\\\b\\,c\\=d!"
    assert unescape_value("plain") == "plain"
    assert unescape_value("a\\\\b\\,c\\=d") == "a\\b,c=d"


field_names = st.from_regex(r"[a-zA-Z][a-zA-Z.]{0,12}", fullmatch=True)


@given(field_names, st.text(max_size=20), st.booleans())
def test_escaped_values_round_trip(field: str, value: str, negate: bool) -> None:
    op = "!=" if negate else "="
    selector = parse_field_selector(f"{field}{op}{escape_value(value)}")
    assert selector.requirements == [(field, NOT_EQUALS if negate else EQUALS, value)]
    assert parse_field_selector(str(selector)) == selector
    assert selector.matches({field: value}) is not negate


@given(st.lists(st.tuples(field_names, st.text(max_size=8), st.booleans()), max_size=4),
       st.dictionaries(field_names, st.text(max_size=8), max_size=4))
def test_matching_is_an_and_of_terms(terms: list[tuple[str, str, bool]], fields: dict[str, str]) -> None:
    text = ",".join(f"{f}{'!=' if neg else '='}{escape_value(v)}" for f, v, neg in terms)
    selector = parse_field_selector(text)
    expected = all((fields.get(f, "") == v) != neg for f, v, neg in terms)
    assert selector.matches(fields) is expected
    assert parse_field_selector(str(selector)).matches(fields) is expected


@given(st.text(max_size=30))
def test_arbitrary_text_parses_or_raises_selector_error(text: str) -> None:
    try:
        selector = parse_field_selector(text)
    except SelectorError:
        return
    assert parse_field_selector(str(selector)) == selector
