"""Label selectors exactly as Kubernetes reads them from ``?labelSelector=`` and ``metav1.LabelSelector``.

Every list and watch filters through here, and every controller finds its pods with one, so two
things matter: the grammar and error messages must be apimachinery's (clients see them in 400s),
and matching must be cheap — a watch event is tested against every open watcher's selector. A
:class:`Selector` is therefore immutable and compiles its requirements once into plain closures.

Grammar (``labels.Parse``): requirements joined by ``,`` (AND); each is ``key``, ``!key``,
``key=value``, ``key==value``, ``key!=value``, ``key in (v1,v2)``, ``key notin (v1)``, ``key>N`` or
``key<N``. Whitespace separates tokens; values may be empty (``a=``, ``a in ()``); keys are
qualified names (``app.kubernetes.io/name``) and values valid label values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from machinery.errors import FieldError, forbidden, invalid_value, not_supported, required
from machinery.validation import _JSONList, is_qualified_name, is_valid_label_value, validate_labels


class SelectorError(ValueError):
    """A label or field selector that does not parse or names an invalid key or value."""


# selection.Operator values
EQUALS = "="
DOUBLE_EQUALS = "=="
NOT_EQUALS = "!="
IN = "in"
NOT_IN = "notin"
EXISTS = "exists"
DOES_NOT_EXIST = "!"
GREATER_THAN = "gt"
LESS_THAN = "lt"

_BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
_ALL_OPERATORS = (*_BINARY_OPERATORS, EXISTS, DOES_NOT_EXIST)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_MISSING = object()

Labels = Mapping[str, str]
_Predicate = Callable[[Labels], bool]


def _parse_int64(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64): optional sign, ASCII digits, in range."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    value = int(text)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def _aggregate(errors: list[FieldError]) -> str:
    """utilerrors.Aggregate's text: one message, or ``[a, b]`` without repeats."""
    messages = list(dict.fromkeys(str(e) for e in errors))
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``key <operator> values`` clause; build it with :func:`new_requirement` to validate."""

    key: str
    operator: str
    values: tuple[str, ...] = ()  # sorted, without repeats

    def matches(self, labels: Labels | None) -> bool:
        return _compile(self)(labels or {})

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        joined = ",".join(self.values)
        if op in (IN, NOT_IN):
            return f"{self.key} {op} ({joined})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(op, op)
        return f"{self.key}{symbol}{joined}"


def new_requirement(key: str, operator: str, values: Iterable[str] = (), *, path: str = "") -> Requirement:
    """labels.NewRequirement: validate the key, the operator's arity and every value.

    Raises :class:`SelectorError` whose text is the aggregate of apimachinery's field errors.
    """
    vals = list(values)
    if not isinstance(key, str) or not all(isinstance(v, str) for v in vals):
        raise SelectorError(f"label selector keys and values must be strings: {key!r} {vals!r}")
    prefix = f"{path}." if path else ""
    errs: list[FieldError] = []
    key_msgs = is_qualified_name(key)
    if key_msgs:
        errs.append(invalid_value(f"{prefix}key", key, "; ".join(key_msgs)))
    values_path = f"{prefix}values"
    if operator in (IN, NOT_IN):
        if not vals:
            errs.append(invalid_value(values_path, _JSONList(vals),
                                      "for 'in', 'notin' operators, values set can't be empty"))
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(vals) != 1:
            errs.append(invalid_value(values_path, _JSONList(vals),
                                      "exact-match compatibility requires one single value"))
    elif operator in (EXISTS, DOES_NOT_EXIST):
        if vals:
            errs.append(invalid_value(values_path, _JSONList(vals),
                                      "values set must be empty for exists and does not exist"))
    elif operator in (GREATER_THAN, LESS_THAN):
        if len(vals) != 1:
            errs.append(invalid_value(values_path, _JSONList(vals),
                                      "for 'Gt', 'Lt' operators, exactly one value is required"))
        for i, value in enumerate(vals):
            if _parse_int64(value) is None:
                errs.append(invalid_value(f"{values_path}[{i}]", value,
                                          "for 'Gt', 'Lt' operators, the value must be an integer"))
    else:
        errs.append(not_supported(f"{prefix}operator", operator, list(_ALL_OPERATORS)))
    for i, value in enumerate(vals):
        value_msgs = is_valid_label_value(value)
        if value_msgs:
            errs.append(invalid_value(f"{values_path}[{i}][{key}]", value, "; ".join(value_msgs)))
    if errs:
        raise SelectorError(_aggregate(errs))
    return Requirement(key, operator, tuple(sorted(set(vals))))


# --- compiled matching ---------------------------------------------------------------------------


def _compile(req: Requirement) -> _Predicate:
    key, op, values = req.key, req.operator, req.values
    if op in (EQUALS, DOUBLE_EQUALS, IN):
        if len(values) == 1:
            value = values[0]
            return lambda labels: labels.get(key) == value
        allowed = frozenset(values)
        return lambda labels: labels.get(key, _MISSING) in allowed
    if op in (NOT_EQUALS, NOT_IN):
        if len(values) == 1:
            value = values[0]
            return lambda labels: labels.get(key) != value
        denied = frozenset(values)
        return lambda labels: labels.get(key, _MISSING) not in denied
    if op == EXISTS:
        return lambda labels: key in labels
    if op == DOES_NOT_EXIST:
        return lambda labels: key not in labels
    if op in (GREATER_THAN, LESS_THAN) and len(values) == 1 and _parse_int64(values[0]) is not None:
        bound = int(values[0])
        greater = op == GREATER_THAN

        def compare(labels: Labels) -> bool:
            raw = labels.get(key)
            number = _parse_int64(raw) if raw is not None else None
            if number is None:
                return False
            return number > bound if greater else number < bound

        return compare
    return lambda labels: False


def _match_all(labels: Labels | None) -> bool:
    return True


def _match_none(labels: Labels | None) -> bool:
    return False


def _build_matcher(requirements: tuple[Requirement, ...]) -> Callable[[Labels | None], bool]:
    if not requirements:
        return _match_all
    if all(r.operator in (EQUALS, DOUBLE_EQUALS, IN) and len(r.values) == 1 for r in requirements):
        pairs = tuple((r.key, r.values[0]) for r in requirements)
        if len(pairs) == 1:
            ((only_key, only_value),) = pairs

            def match_one(labels: Labels | None) -> bool:
                return labels is not None and labels.get(only_key) == only_value

            return match_one

        def match_pairs(labels: Labels | None) -> bool:
            if not labels:
                return False
            get = labels.get
            for key, value in pairs:  # noqa: SIM110 - a plain loop is faster than all()
                if get(key) != value:
                    return False
            return True

        return match_pairs
    predicates = tuple(_compile(r) for r in requirements)

    def match_predicates(labels: Labels | None) -> bool:
        if labels is None:
            labels = {}
        for predicate in predicates:  # noqa: SIM110 - a plain loop is faster than all()
            if not predicate(labels):
                return False
        return True

    return match_predicates


class Selector:
    """An immutable, precompiled label selector.

    ``Selector()`` (or :meth:`everything`) matches every object; :meth:`nothing` matches none (what
    a nil ``metav1.LabelSelector`` means). ``str()`` gives the canonical form Kubernetes prints.
    """

    __slots__ = ("_nothing", "_requirements", "_text", "matches")

    #: ``matches(labels)``: whether an object with these labels (None: no labels) is selected. It is
    #: the compiled matcher itself, stored per instance so the hot path is a single call.
    matches: Callable[[Labels | None], bool]

    def __init__(self, requirements: Iterable[Requirement] = (), *, _nothing: bool = False) -> None:
        reqs = tuple(sorted(requirements, key=lambda r: r.key))  # stable, like sort.Sort(ByKey)
        self._requirements = reqs
        self._nothing = _nothing
        self.matches = _match_none if _nothing else _build_matcher(reqs)
        self._text = "" if _nothing else ",".join(str(r) for r in reqs)

    @classmethod
    def everything(cls) -> Selector:
        return _EVERYTHING

    @classmethod
    def nothing(cls) -> Selector:
        return _NOTHING

    @property
    def requirements(self) -> tuple[Requirement, ...]:
        return self._requirements

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (``nothing()`` is not empty)."""
        return not self._requirements and not self._nothing

    @property
    def matches_nothing(self) -> bool:
        return self._nothing

    def requires_exact_match(self, key: str) -> str | None:
        """The single value ``key`` must have (``key=v``, ``key==v``, ``key in (v)``), else None."""
        for req in self._requirements:
            if req.key == key:
                if req.operator in (EQUALS, DOUBLE_EQUALS, IN) and len(req.values) == 1:
                    return req.values[0]
                return None
        return None

    def add(self, *requirements: Requirement) -> Selector:
        if self._nothing:
            return self
        return Selector((*self._requirements, *requirements))

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return "Selector.nothing()" if self._nothing else f"Selector({self._text!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Selector):
            return NotImplemented
        return self._nothing == other._nothing and self._requirements == other._requirements

    def __hash__(self) -> int:
        return hash((self._nothing, self._requirements))


_EVERYTHING = Selector()
_NOTHING = Selector(_nothing=True)


# --- the string grammar -------------------------------------------------------------------------

(_ERROR, _END, _CLOSE, _COMMA, _NOT, _DOUBLE_EQ, _EQ, _GT, _IDENT, _IN, _LT, _NOT_EQ, _NOT_IN,
 _OPEN) = range(14)
_KEYWORDS = {
    ")": _CLOSE, ",": _COMMA, "!": _NOT, "==": _DOUBLE_EQ, "=": _EQ, ">": _GT,
    "in": _IN, "<": _LT, "!=": _NOT_EQ, "notin": _NOT_IN, "(": _OPEN,
}
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
_WORD_END = _SPECIAL | _WHITESPACE | {"\0"}


def _lex(text: str) -> list[tuple[int, str]]:
    """Tokens as apimachinery's lexer produces them (a NUL character ends the input)."""
    tokens: list[tuple[int, str]] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= end or text[pos] == "\0":
            tokens.append((_END, ""))
            return tokens
        if text[pos] in _SPECIAL:
            # longest run of special characters that is still a token
            buffer, last = "", None
            while pos < end and text[pos] in _SPECIAL:
                candidate = buffer + text[pos]
                if candidate in _KEYWORDS:
                    buffer, last = candidate, (_KEYWORDS[candidate], candidate)
                    pos += 1
                elif last is not None:
                    break
                else:
                    buffer = candidate
                    pos += 1
            if pos < end and text[pos] == "\0":
                pos += 1  # the lexer consumes the NUL that ends a symbol run
            tokens.append(last or (_ERROR, f"error expected: keyword found '{buffer}'"))
        else:
            start = pos
            while pos < end and text[pos] not in _WORD_END:
                pos += 1
            word = text[start:pos]
            if pos < end and text[pos] == "\0":
                pos += 1  # the lexer consumes the NUL that ends a word
            tokens.append((_KEYWORDS.get(word, _IDENT), word))


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.position = 0

    def lookahead(self, values: bool = True) -> tuple[int, str]:
        tok, lit = self.tokens[self.position]
        if values and tok in (_IN, _NOT_IN):
            tok = _IDENT
        return tok, lit

    def consume(self, values: bool = True) -> tuple[int, str]:
        result = self.lookahead(values)
        self.position += 1
        return result

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            tok, lit = self.lookahead()
            if tok in (_IDENT, _NOT):
                try:
                    requirements.append(self.requirement())
                except SelectorError as err:
                    raise SelectorError(f"unable to parse requirement: {err}") from None
                tok, lit = self.consume()
                if tok == _END:
                    return requirements
                if tok == _COMMA:
                    tok2, lit2 = self.lookahead()
                    if tok2 not in (_IDENT, _NOT):
                        raise SelectorError(f"found '{lit2}', expected: identifier after ','")
                else:
                    raise SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
            elif tok == _END:
                return requirements
            else:
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        operator = ""
        tok, key = self.consume()
        if tok == _NOT:
            operator = DOES_NOT_EXIST
            tok, key = self.consume()
        if tok != _IDENT:
            raise SelectorError(f"found '{key}', expected: identifier")
        key_msgs = is_qualified_name(key)
        if key_msgs:
            # apimachinery validates the key here with a nil path, which prints as "<nil>"
            raise SelectorError(str(invalid_value("<nil>", key, "; ".join(key_msgs))))
        if self.lookahead()[0] in (_END, _COMMA) and operator != DOES_NOT_EXIST:
            operator = EXISTS
        if operator in (EXISTS, DOES_NOT_EXIST):
            return new_requirement(key, operator)
        operator = self.operator()
        values = self.set_values() if operator in (IN, NOT_IN) else self.exact_value()
        return new_requirement(key, operator, sorted(values))

    def operator(self) -> str:
        tok, lit = self.consume(values=False)
        found = {_IN: IN, _EQ: EQUALS, _DOUBLE_EQ: DOUBLE_EQUALS, _GT: GREATER_THAN, _LT: LESS_THAN,
                 _NOT_IN: NOT_IN, _NOT_EQ: NOT_EQUALS}.get(tok)
        if found is None:
            raise SelectorError(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        return found

    def set_values(self) -> set[str]:
        tok, lit = self.consume()
        if tok != _OPEN:
            raise SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead()
        if tok in (_IDENT, _COMMA):
            values = self.identifiers()
            if self.consume()[0] != _CLOSE:
                raise SelectorError(f"found '{lit}', expected: ')'")
            return values
        if tok == _CLOSE:
            self.consume()
            return {""}
        raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")

    def identifiers(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, lit = self.consume()
            if tok == _IDENT:
                values.add(lit)
                tok2, lit2 = self.lookahead()
                if tok2 == _COMMA:
                    continue
                if tok2 == _CLOSE:
                    return values
                raise SelectorError(f"found '{lit2}', expected: ',' or ')'")
            if tok == _COMMA:  # "(,", ",," and ",)" each stand for an empty value
                if not values:
                    values.add("")
                tok2 = self.lookahead()[0]
                if tok2 == _CLOSE:
                    values.add("")
                    return values
                if tok2 == _COMMA:
                    values.add("")
                continue
            raise SelectorError(f"found '{lit}', expected: ',', or identifier")

    def exact_value(self) -> set[str]:
        if self.lookahead()[0] in (_END, _COMMA):
            return {""}
        tok, lit = self.consume()
        if tok == _IDENT:
            return {lit}
        raise SelectorError(f"found '{lit}', expected: identifier")


def parse_selector(text: str) -> Selector:
    """Parse a ``labelSelector`` query value; raises :class:`SelectorError` with Kubernetes' text."""
    if not text:
        return _EVERYTHING
    return Selector(_Parser(text).parse())


def selector_from_set(labels: Mapping[str, str] | None) -> Selector:
    """A selector requiring every ``key=value`` of ``labels`` (validated)."""
    return Selector(new_requirement(k, EQUALS, [v]) for k, v in (labels or {}).items())


# --- metav1.LabelSelector ------------------------------------------------------------------------

_EXPRESSION_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def selector_from_label_selector(obj: Mapping[str, Any] | None) -> Selector:
    """metav1.LabelSelectorAsSelector: None selects nothing, ``{}`` selects everything."""
    if obj is None:
        return _NOTHING
    match_labels = obj.get("matchLabels") or {}
    expressions = obj.get("matchExpressions") or []
    if not match_labels and not expressions:
        return _EVERYTHING
    requirements = [new_requirement(k, EQUALS, [v]) for k, v in match_labels.items()]
    for expr in expressions:
        operator = _EXPRESSION_OPERATORS.get(expr.get("operator"))
        if operator is None:
            raise SelectorError(f'"{expr.get("operator") or ""}" is not a valid label selector operator')
        requirements.append(new_requirement(expr.get("key") or "", operator, expr.get("values") or []))
    return Selector(requirements)


def format_label_selector(obj: Mapping[str, Any] | None) -> str:
    """The string form a ``Scale`` subresource reports in ``status.selector`` (``""`` for none)."""
    return str(selector_from_label_selector(obj))


def validate_label_selector(
    obj: Mapping[str, Any] | None, path: str, *, allow_invalid_label_value: bool = False
) -> list[FieldError]:
    """metav1validation.ValidateLabelSelector: field errors for a LabelSelector at ``path``."""
    if obj is None:
        return []
    errs = validate_labels(obj.get("matchLabels"), f"{path}.matchLabels")
    for i, expr in enumerate(obj.get("matchExpressions") or []):
        expr_path = f"{path}.matchExpressions[{i}]"
        if not isinstance(expr, Mapping):
            errs.append(invalid_value(expr_path, expr, "must be an object"))
            continue
        operator = expr.get("operator")
        values = expr.get("values") or []
        if operator in ("In", "NotIn"):
            if not values:
                errs.append(required(f"{expr_path}.values",
                                     "must be specified when `operator` is 'In' or 'NotIn'"))
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                errs.append(forbidden(f"{expr_path}.values",
                                      "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            errs.append(invalid_value(f"{expr_path}.operator", operator, "not a valid selector operator"))
        key = expr.get("key") or ""
        errs.extend(invalid_value(f"{expr_path}.key", key, m) for m in is_qualified_name(str(key)))
        if not allow_invalid_label_value:
            for j, value in enumerate(values):
                errs.extend(invalid_value(f"{expr_path}.values[{j}]", value, m)
                            for m in is_valid_label_value(str(value)))
    return errs
