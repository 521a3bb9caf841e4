"""Matching a node against a NodeSelector (nodeAffinity's required terms): shared by the scheduler and the kubelet.

Terms are ORed; within a term ``matchExpressions`` (label requirements, operators In/NotIn/Exists/
DoesNotExist/Gt/Lt) and ``matchFields`` (only ``metadata.name`` with In/NotIn and one value) are ANDed. An
empty term matches nothing; a term that does not parse never matches (and keeps its error).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from machinery import labels as lbl

OBJECT_NAME_FIELD = "metadata.name"

Obj = Mapping[str, Any]
Labels = Mapping[str, str]

_OPERATORS = {"In": lbl.IN, "NotIn": lbl.NOT_IN, "Exists": lbl.EXISTS, "DoesNotExist": lbl.DOES_NOT_EXIST,
              "Gt": lbl.GREATER_THAN, "Lt": lbl.LESS_THAN}


class NodeSelectorError(ValueError):
    """A node selector term that does not parse (bad operator, key, value count or Gt/Lt number)."""


def _label_matcher(expressions: Sequence[Obj]) -> Callable[[Labels | None], bool]:
    requirements = []
    for expr in expressions:
        operator = _OPERATORS.get(expr.get("operator"))
        if operator is None:
            raise NodeSelectorError(f"{expr.get('operator')!r} is not a valid node selector operator")
        try:
            requirements.append(lbl.new_requirement(expr.get("key") or "", operator, expr.get("values") or ()))
        except lbl.SelectorError as exc:
            raise NodeSelectorError(str(exc)) from None
    return lbl.Selector(requirements).matches


def _field_requirements(expressions: Sequence[Obj]) -> tuple[tuple[str, bool, str], ...]:
    """matchFields as (field, is_in, value): only In/NotIn with exactly one value are valid."""
    result = []
    for expr in expressions:
        operator, values = expr.get("operator"), expr.get("values") or []
        if operator not in ("In", "NotIn"):
            raise NodeSelectorError(f"{operator!r} is not a supported field selector operator")
        if len(values) != 1:
            raise NodeSelectorError("matchFields values must have one element")
        result.append((expr.get("key") or "", operator == "In", values[0]))
    return tuple(result)


class NodeSelectorTerm:
    """One compiled ``nodeSelectorTerm``; a term that failed to parse keeps its error and matches nothing."""

    __slots__ = ("error", "fields", "labels")

    def __init__(self, term: Obj) -> None:
        self.labels: Callable[[Labels | None], bool] | None = None
        self.fields: tuple[tuple[str, bool, str], ...] = ()
        self.error: NodeSelectorError | None = None
        try:
            if term.get("matchExpressions"):
                self.labels = _label_matcher(term["matchExpressions"])
            if term.get("matchFields"):
                self.fields = _field_requirements(term["matchFields"])
        except NodeSelectorError as exc:
            self.error = exc

    def matches(self, labels: Labels, name: str) -> bool:
        if self.error is not None:
            return False
        if self.labels is not None and not self.labels(labels):
            return False
        if self.fields and name:  # a node without a name has no fields to compare
            for key, is_in, value in self.fields:
                actual = name if key == OBJECT_NAME_FIELD else ""
                if (actual == value) != is_in:
                    return False
        return True


def is_empty_term(term: Obj | None) -> bool:
    return not term or (not term.get("matchExpressions") and not term.get("matchFields"))


def compile_node_selector(selector: Obj, *, strict: bool = False) -> list[NodeSelectorTerm]:
    """The non-empty terms of a NodeSelector; ``strict`` raises on the first term that does not parse."""
    terms = [NodeSelectorTerm(t) for t in selector.get("nodeSelectorTerms") or () if not is_empty_term(t)]
    if strict:
        for term in terms:
            if term.error is not None:
                raise term.error
    return terms


def node_selector_matches(terms: Sequence[NodeSelectorTerm], labels: Labels, name: str) -> bool:
    for term in terms:  # noqa: SIM110 - a plain loop is faster than any()
        if term.matches(labels, name):
            return True
    return False
