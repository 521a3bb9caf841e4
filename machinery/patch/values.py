"""JSON value helpers the patch algorithms share: a cheap deep copy and the type of a JSON value.

Every algorithm in this package copies what it takes from a patch into the result (so the result
shares no containers with its inputs) and names value types in its error messages: RFC 8259 names
for JSON patch (``got array``), Go's for strategic merge patch as apimachinery prints them
(``map[string]interface {}``). The copy and the one classification both of those namings start from
live here, so the algorithms cannot disagree about what a value is.
"""

from __future__ import annotations

from typing import Any


def copy_json(value: Any) -> Any:
    """Deep copy of a JSON value (much faster than copy.deepcopy for plain dicts and lists).

    Only dicts and lists are copied; anything else is returned as it is (JSON scalars are immutable).
    """
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def json_type(value: Any) -> str | None:
    """The JSON type of a decoded value: ``object``, ``array``, ``string``, ``boolean``, ``integer``,
    ``number`` (a float) or ``null``; None for a value no JSON document decodes to (a tuple, a set)."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is a subclass of int
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return None
