"""Field selectors as Kubernetes reads them from ``?fieldSelector=`` (``fields.ParseSelector``).

A field selector is a comma-joined AND of ``field=value``, ``field==value`` or ``field!=value``
terms. Values escape ``\\``, ``,`` and ``=`` with a backslash; any other escape is an error, and so
is an unescaped ``=`` inside a value. Which fields a resource supports is the registry's business;
this module only parses, prints and matches. Watches use :meth:`FieldSelector.only_exact` to narrow
themselves to one name or one node (``metadata.name=x``, ``spec.nodeName=n``).
"""

from __future__ import annotations

from collections.abc import Mapping

from machinery.labels import SelectorError

EQUALS = "="
NOT_EQUALS = "!="
_OPERATORS = ("!=", "==", "=")  # "==" before "=" so no '=' is left on the value


def escape_value(value: str) -> str:
    """Escape a literal value for use on the right of a term."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_value(text: str) -> str:
    """The literal value of a term's right-hand side; raises :class:`SelectorError` on bad escapes."""
    if "\\" not in text and "," not in text and "=" not in text:
        return text
    out: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            if ch not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            # apimachinery prints the rune with %v, i.e. as its code point number
            raise SelectorError(f"invalid field selector: unescaped character in value: {ord(ch)}")
        else:
            out.append(ch)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not backslash-escaped (the escapes stay in the terms)."""
    terms, start, escaped = [], 0, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in _OPERATORS:
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


class FieldSelector:
    """An immutable AND of field terms; ``FieldSelector()`` matches everything."""

    __slots__ = ("_terms",)

    def __init__(self, terms: tuple[tuple[str, str, str], ...] = ()) -> None:
        # (field, "=" or "!=", literal value)
        self._terms = terms

    @classmethod
    def everything(cls) -> FieldSelector:
        return _EVERYTHING

    @classmethod
    def one_term_equal(cls, field: str, value: str) -> FieldSelector:
        return cls(((field, EQUALS, value),))

    @property
    def empty(self) -> bool:
        return not self._terms

    @property
    def requirements(self) -> list[tuple[str, str, str]]:
        """``(field, operator, value)`` triples; the operator is ``=`` (also for ``==``) or ``!=``."""
        return list(self._terms)

    def matches(self, fields: Mapping[str, str]) -> bool:
        """Whether an object exposing these field values is selected; a missing field reads as ``""``."""
        for field, op, value in self._terms:  # noqa: SIM110 - a plain loop is faster than all()
            if (fields.get(field, "") == value) != (op == EQUALS):
                return False
        return True

    def only_exact(self, field: str) -> str | None:
        """The value ``field`` must equal when the selector contains ``field=value``, else None."""
        for name, op, value in self._terms:
            if name == field and op == EQUALS:
                return value
        return None

    def __str__(self) -> str:
        return ",".join(f"{field}{op}{escape_value(value)}" for field, op, value in self._terms)

    def __repr__(self) -> str:
        return f"FieldSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSelector):
            return NotImplemented
        return sorted(self._terms) == sorted(other._terms)  # an AND: term order does not matter

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._terms)))


_EVERYTHING = FieldSelector()


def parse_field_selector(text: str) -> FieldSelector:
    """Parse a ``fieldSelector`` query value; raises :class:`SelectorError` with Kubernetes' text.

    Terms are sorted by their raw text, as apimachinery does, which fixes the printed order.
    """
    if not text:
        return _EVERYTHING
    terms = []
    for part in sorted(_split_terms(text)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, raw = split
        terms.append((field, NOT_EQUALS if op == NOT_EQUALS else EQUALS, unescape_value(raw)))
    return FieldSelector(tuple(terms))
