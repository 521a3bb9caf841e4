"""Label selectors: the labelSelector grammar, Kubernetes' error texts, matching and LabelSelector objects."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machinery.labels import (
    DOES_NOT_EXIST,
    DOUBLE_EQUALS,
    EQUALS,
    EXISTS,
    GREATER_THAN,
    IN,
    LESS_THAN,
    NOT_EQUALS,
    NOT_IN,
    Requirement,
    Selector,
    SelectorError,
    format_label_selector,
    new_requirement,
    parse_selector,
    selector_from_label_selector,
    selector_from_set,
    validate_label_selector,
)

KEY_NAME_RULE = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
    "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
VALUE_RULE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
OPERATORS_EXPECTED = "expected: in, notin, =, ==, !=, gt, lt"


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("", ""),
        ("a=b", "a=b"),
        ("a==b", "a==b"),
        ("a!=b", "a!=b"),
        ("a in (x,y)", "a in (x,y)"),
        ("a in (y,x)", "a in (x,y)"),
        ("a notin (x)", "a notin (x)"),
        ("a", "a"),
        ("!a", "!a"),
        ("a=", "a="),
        ("a!=", "a!="),
        ("a in ()", "a in ()"),
        ("a in (,)", "a in ()"),
        ("a in (x,)", "a in (,x)"),
        ("a in (,x)", "a in (,x)"),
        ("a in (x,,y)", "a in (,x,y)"),
        ("a in (x,y,x)", "a in (x,y)"),
        ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
        ("app.kubernetes.io/name=web, tier in (a,b)", "app.kubernetes.io/name=web,tier in (a,b)"),
        ("  a  =  b  ,\tc\n", "a=b,c"),
        ("b=1,a=2", "a=2,b=1"),
        ("a>1", "a>1"),
        ("a<10", "a<10"),
        ("in=in", "in=in"),
        ("a notin (in,notin)", "a notin (in,notin)"),
        ("notin in (in)", "notin in (in)"),
        ("A_B-c.D=Value_1", "A_B-c.D=Value_1"),
        ("example.com/Key", "example.com/Key"),
        ("a=b \0garbage here", "a=b"),  # a NUL where a token starts ends the input
    ],
)
def test_parse_renders_canonical_form(text: str, canonical: str) -> None:
    assert str(parse_selector(text)) == canonical


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a b", f"unable to parse requirement: found 'b', {OPERATORS_EXPECTED}"),
        ("a (", f"unable to parse requirement: found '(', {OPERATORS_EXPECTED}"),
        ("a !x", f"unable to parse requirement: found '!', {OPERATORS_EXPECTED}"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("x=a=b", "found '=', expected: ',' or 'end of string'"),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        ("=b", "found '=', expected: !, identifier, or 'end of string'"),
        (",a", "found ',', expected: !, identifier, or 'end of string'"),
        ("a,", "found '', expected: identifier after ','"),
        ("a,,b", "found ',', expected: identifier after ','"),
        ("a in x", "unable to parse requirement: found 'x' expected: '('"),
        ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("a in (x y)", "unable to parse requirement: found 'y', expected: ',' or ')'"),
        ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
        ("a in (x,=)", "unable to parse requirement: found '=', expected: ',', or identifier"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        ("!!a", "unable to parse requirement: found '!', expected: identifier"),
        ("a===b", "unable to parse requirement: found '=', expected: identifier"),
        ("a=!b", "unable to parse requirement: found '!', expected: identifier"),
        (
            "a/b/c",
            "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a valid label key "
            + KEY_NAME_RULE
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
        ),
        (
            "-a=b",
            'unable to parse requirement: <nil>: Invalid value: "-a": name part ' + KEY_NAME_RULE,
        ),
        (
            "a.b/",
            'unable to parse requirement: <nil>: Invalid value: "a.b/": name part must be non-empty; '
            "name part " + KEY_NAME_RULE,
        ),
        (
            "a=b@c",
            'unable to parse requirement: values[0][a]: Invalid value: "b@c": ' + VALUE_RULE,
        ),
        (
            "a in (ok,-bad)",
            'unable to parse requirement: values[0][a]: Invalid value: "-bad": ' + VALUE_RULE,
        ),
        (
            "a>b",
            'unable to parse requirement: values[0]: Invalid value: "b": '
            "for 'Gt', 'Lt' operators, the value must be an integer",
        ),
        (
            "a=" + "x" * 64,
            f'unable to parse requirement: values[0][a]: Invalid value: "{"x" * 64}": '
            "must be no more than 63 bytes",
        ),
    ],
)
def test_parse_errors_carry_kubernetes_messages(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_selector(text)
    assert str(caught.value) == message


def test_selector_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_selector("a b")


LABELS = {"app": "web", "tier": "frontend", "version": "10", "empty": ""}


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("", LABELS, True),
        ("", None, True),
        ("app=web", LABELS, True),
        ("app==web", LABELS, True),
        ("app=api", LABELS, False),
        ("missing=x", LABELS, False),
        ("app!=api", LABELS, True),
        ("app!=web", LABELS, False),
        ("missing!=x", LABELS, True),
        ("app in (api,web)", LABELS, True),
        ("app in (api,db)", LABELS, False),
        ("missing in (a)", LABELS, False),
        ("app notin (api,db)", LABELS, True),
        ("app notin (web)", LABELS, False),
        ("missing notin (a)", LABELS, True),
        ("app", LABELS, True),
        ("missing", LABELS, False),
        ("!missing", LABELS, True),
        ("!app", LABELS, False),
        ("empty=", LABELS, True),
        ("missing=", LABELS, False),
        ("empty", LABELS, True),
        ("empty in ()", LABELS, True),
        ("version>9", LABELS, True),
        ("version>10", LABELS, False),
        ("version<11", LABELS, True),
        ("app>1", LABELS, False),  # not an integer label value
        ("missing<1", LABELS, False),
        ("app=web,tier=frontend", LABELS, True),
        ("app=web,tier=backend", LABELS, False),
        ("app=web,!canary,tier in (frontend)", LABELS, True),
        ("app=web", None, False),
        ("app=web", {}, False),
        ("!app", None, True),
        ("app!=web", None, True),
        ("app=web,tier!=x", None, False),
        ("app notin (a),!b", None, True),
    ],
)
def test_matching(text: str, labels: dict[str, str] | None, expected: bool) -> None:
    assert parse_selector(text).matches(labels) is expected


def test_everything_nothing_and_empty() -> None:
    everything = Selector.everything()
    assert everything.empty and everything.matches(None) and everything.matches({"a": "b"})
    assert parse_selector("") == everything
    nothing = Selector.nothing()
    assert not nothing.empty and nothing.matches_nothing
    assert not nothing.matches({}) and not nothing.matches({"a": "b"})
    assert str(nothing) == "" and nothing != everything
    assert nothing.add(new_requirement("a", EXISTS)) is nothing
    assert not parse_selector("a").empty


def test_requires_exact_match() -> None:
    selector = parse_selector("app=web,tier in (a),x in (a,b),y!=z,w==v")
    assert selector.requires_exact_match("app") == "web"
    assert selector.requires_exact_match("tier") == "a"
    assert selector.requires_exact_match("w") == "v"
    assert selector.requires_exact_match("x") is None
    assert selector.requires_exact_match("y") is None
    assert selector.requires_exact_match("nope") is None


def test_add_keeps_requirements_sorted_by_key() -> None:
    selector = parse_selector("b=1").add(new_requirement("a", EQUALS, ["2"]))
    assert str(selector) == "a=2,b=1"
    assert [r.key for r in selector.requirements] == ["a", "b"]


def test_selector_is_hashable_and_compares_by_requirements() -> None:
    assert parse_selector("a=1, b in (y,x)") == parse_selector("b in (x,y),a=1")
    assert len({parse_selector("a=1,b"), parse_selector("b,a=1")}) == 1
    assert parse_selector("a=1") != parse_selector("a==1")


@pytest.mark.parametrize(
    ("key", "operator", "values", "message"),
    [
        ("a", IN, [], "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"),
        ("a", EQUALS, ["x", "y"],
         'values: Invalid value: ["x","y"]: exact-match compatibility requires one single value'),
        ("a", EXISTS, ["x"],
         'values: Invalid value: ["x"]: values set must be empty for exists and does not exist'),
        ("a", GREATER_THAN, [],
         "values: Invalid value: []: for 'Gt', 'Lt' operators, exactly one value is required"),
        ("a", "~", [],
         'operator: Unsupported value: "~": supported values: "in", "notin", "=", "==", "!=", "gt", "lt", '
         '"exists", "!"'),
        ("bad key", EXISTS, [], 'key: Invalid value: "bad key": name part ' + KEY_NAME_RULE),
    ],
)
def test_new_requirement_errors(key: str, operator: str, values: list[str], message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        new_requirement(key, operator, values)
    assert str(caught.value) == message


def test_new_requirement_aggregates_several_errors() -> None:
    with pytest.raises(SelectorError) as caught:
        new_requirement("a", LESS_THAN, ["x", "y"])
    assert str(caught.value) == (
        "[values: Invalid value: [\"x\",\"y\"]: for 'Gt', 'Lt' operators, exactly one value is required, "
        "values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer, "
        "values[1]: Invalid value: \"y\": for 'Gt', 'Lt' operators, the value must be an integer]"
    )


def test_requirement_renders_and_matches_alone() -> None:
    requirement = new_requirement("tier", NOT_IN, ["b", "a", "b"])
    assert requirement == Requirement("tier", NOT_IN, ("a", "b"))
    assert str(requirement) == "tier notin (a,b)"
    assert requirement.matches(None) and not requirement.matches({"tier": "a"})
    assert str(new_requirement("a", DOES_NOT_EXIST)) == "!a"
    assert str(new_requirement("a", DOUBLE_EQUALS, ["b"])) == "a==b"
    assert str(new_requirement("a", NOT_EQUALS, [""])) == "a!="


def test_selector_from_set() -> None:
    selector = selector_from_set({"b": "2", "a": "1"})
    assert str(selector) == "a=1,b=2"
    assert selector.matches({"a": "1", "b": "2", "c": "3"}) and not selector.matches({"a": "1"})
    assert selector_from_set(None).empty and selector_from_set({}).empty
    with pytest.raises(SelectorError):
        selector_from_set({"a": "b c"})


# --- metav1.LabelSelector -------------------------------------------------------------------------


def test_label_selector_none_selects_nothing_and_empty_selects_everything() -> None:
    assert selector_from_label_selector(None).matches_nothing
    assert not selector_from_label_selector(None).matches({"a": "b"})
    for empty in ({}, {"matchLabels": {}}, {"matchLabels": None, "matchExpressions": []}):
        selector = selector_from_label_selector(empty)
        assert selector.empty and selector.matches({"anything": "x"}) and selector.matches(None)


def test_label_selector_to_selector_and_scale_string() -> None:
    obj = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["b", "a"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "team", "operator": "Exists"},
        ],
    }
    assert format_label_selector(obj) == "app=web,!canary,env notin (dev),team,tier in (a,b)"
    selector = selector_from_label_selector(obj)
    assert selector.matches({"app": "web", "tier": "a", "team": "x"})
    assert not selector.matches({"app": "web", "tier": "a", "team": "x", "canary": "1"})
    assert not selector.matches({"app": "web", "tier": "c", "team": "x"})
    assert not selector.matches({"app": "web", "tier": "a", "team": "x", "env": "dev"})
    assert format_label_selector({"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["a", "b"]}]}) == "app=web,tier in (a,b)"
    assert format_label_selector(None) == ""
    assert format_label_selector({}) == ""


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
         '"Gt" is not a valid label selector operator'),
        ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
         'values: Invalid value: ["x"]: values set must be empty for exists and does not exist'),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
         "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"),
        ({"matchLabels": {"a": "b c"}}, 'values[0][a]: Invalid value: "b c": ' + VALUE_RULE),
        ({"matchLabels": {"a": 1}}, "label selector keys and values must be strings: 'a' [1]"),
    ],
)
def test_label_selector_conversion_errors(obj: dict, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        selector_from_label_selector(obj)
    assert str(caught.value) == message


def test_validate_label_selector() -> None:
    obj = {
        "matchLabels": {"good": "ok", "bad key": "-bad"},
        "matchExpressions": [
            {"key": "a", "operator": "In"},
            {"key": "b", "operator": "Exists", "values": ["x"]},
            {"key": "c", "operator": "Gt", "values": ["1"]},
            {"key": "d", "operator": "NotIn", "values": ["ok", "b@d"]},
        ],
    }
    messages = [str(e) for e in validate_label_selector(obj, "spec.selector")]
    assert messages == [
        'spec.selector.matchLabels: Invalid value: "bad key": name part ' + KEY_NAME_RULE,
        'spec.selector.matchLabels: Invalid value: "-bad": ' + VALUE_RULE,
        "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is "
        "'In' or 'NotIn'",
        "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is "
        "'Exists' or 'DoesNotExist'",
        'spec.selector.matchExpressions[2].operator: Invalid value: "Gt": not a valid selector operator',
        'spec.selector.matchExpressions[3].values[1]: Invalid value: "b@d": ' + VALUE_RULE,
    ]
    assert validate_label_selector(None, "spec.selector") == []
    assert validate_label_selector({}, "spec.selector") == []
    relaxed = validate_label_selector(
        {"matchExpressions": [{"key": "d", "operator": "In", "values": ["b@d"]}]}, "s",
        allow_invalid_label_value=True)
    assert relaxed == []


# --- properties ---------------------------------------------------------------------------------

KEYS = ["app", "tier", "in", "example.com/role", "k8s.io/Name_x", "v"]
VALUES = ["", "a", "b", "web", "1", "10", "-5", "x.y_z"]
INT_VALUES = ["0", "1", "10", "-5"]

label_sets = st.dictionaries(st.sampled_from(KEYS), st.sampled_from([*VALUES, "abc"]), max_size=5)
valid_values = st.sampled_from([v for v in VALUES if v != "-5"])


@st.composite
def requirements(draw: st.DrawFn) -> Requirement:
    key = draw(st.sampled_from(KEYS))
    op = draw(st.sampled_from([EQUALS, DOUBLE_EQUALS, NOT_EQUALS, IN, NOT_IN, EXISTS, DOES_NOT_EXIST,
                               GREATER_THAN, LESS_THAN]))
    if op in (EXISTS, DOES_NOT_EXIST):
        values: list[str] = []
    elif op in (IN, NOT_IN):
        values = draw(st.lists(valid_values, min_size=1, max_size=4))
    elif op in (GREATER_THAN, LESS_THAN):
        values = [draw(st.sampled_from(["0", "1", "10", "99"]))]
    else:
        values = [draw(valid_values)]
    return new_requirement(key, op, values)


def model_matches(requirement: Requirement, labels: dict[str, str]) -> bool:
    """The documented semantics, written plainly."""
    present = requirement.key in labels
    value = labels.get(requirement.key)
    op = requirement.operator
    if op in (EQUALS, DOUBLE_EQUALS, IN):
        return present and value in requirement.values
    if op in (NOT_EQUALS, NOT_IN):
        return not present or value not in requirement.values
    if op == EXISTS:
        return present
    if op == DOES_NOT_EXIST:
        return not present
    try:
        number = int(value) if present else None
    except ValueError:
        number = None
    if number is None:
        return False
    bound = int(requirement.values[0])
    return number > bound if op == GREATER_THAN else number < bound


@given(st.lists(requirements(), max_size=5))
def test_render_parse_round_trip(reqs: list[Requirement]) -> None:
    selector = Selector(reqs)
    text = str(selector)
    parsed = parse_selector(text)
    assert parsed == selector
    assert str(parsed) == text


@given(st.lists(requirements(), max_size=5), label_sets)
def test_matching_agrees_with_the_model(reqs: list[Requirement], labels: dict[str, str]) -> None:
    selector = Selector(reqs)
    expected = all(model_matches(r, labels) for r in reqs)
    assert selector.matches(labels) is expected
    assert parse_selector(str(selector)).matches(labels) is expected
    assert all(r.matches(labels) == model_matches(r, labels) for r in reqs)


@given(st.sampled_from(KEYS), valid_values, label_sets)
def test_equivalent_spellings_match_alike(key: str, value: str, labels: dict[str, str]) -> None:
    equal = {parse_selector(f"{key}{op}{value}").matches(labels) for op in ("=", "==")}
    equal.add(parse_selector(f"{key} in ({value})").matches(labels))
    assert len(equal) == 1
    not_equal = parse_selector(f"{key}!={value}").matches(labels)
    assert not_equal == parse_selector(f"{key} notin ({value})").matches(labels)
    assert not_equal is not equal.pop()
    assert parse_selector(f"!{key}").matches(labels) is not parse_selector(key).matches(labels)


@given(st.lists(requirements(), max_size=4), st.lists(requirements(), max_size=4), label_sets)
def test_comma_is_and(left: list[Requirement], right: list[Requirement], labels: dict[str, str]) -> None:
    a, b = Selector(left), Selector(right)
    both = parse_selector(",".join(t for t in (str(a), str(b)) if t))
    assert both.matches(labels) == (a.matches(labels) and b.matches(labels))


@settings(max_examples=50)
@given(
    st.dictionaries(st.sampled_from(KEYS), valid_values, max_size=3),
    st.lists(
        st.fixed_dictionaries({
            "key": st.sampled_from(KEYS),
            "operator": st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
        }).flatmap(lambda e: st.just(e) if e["operator"] in ("Exists", "DoesNotExist") else st.lists(
            valid_values, min_size=1, max_size=3).map(lambda vs, e=e: {**e, "values": vs})),
        max_size=3,
    ),
    label_sets,
)
def test_label_selector_and_its_string_form_select_alike(
    match_labels: dict[str, str], expressions: list[dict], labels: dict[str, str]
) -> None:
    obj = {"matchLabels": match_labels, "matchExpressions": expressions}
    selector = selector_from_label_selector(obj)
    assert parse_selector(format_label_selector(obj)).matches(labels) == selector.matches(labels)
    assert validate_label_selector(obj, "spec.selector") == []


@given(st.text(max_size=30))
def test_arbitrary_text_parses_or_raises_selector_error(text: str) -> None:
    try:
        selector = parse_selector(text)
    except SelectorError:
        return
    assert parse_selector(str(selector)) == selector
