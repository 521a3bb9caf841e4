"""Where a JSON Schema nests other schemas, and one way to rewrite all of them.

Two features rewrite the v1.35 definitions schema by schema, recursively: the validator compiled for
jsonschema-rs (:mod:`apiserver.schema.validate`) and the ``/openapi/v3`` components
(:mod:`apiserver.schema.openapi`). Each decides what to do with a schema's own keywords, but both must
descend through exactly the same keywords (``properties``, ``items``, ``additionalProperties``, ``not``,
``allOf``/``anyOf``/``oneOf``) and both drop the ``enum`` of a top-level kind's ``apiVersion``/``kind``
(the server checks those against the URL; Kubernetes publishes none). That shared part lives here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SUBSCHEMA_KEYWORDS = ("items", "additionalProperties", "not")
SUBSCHEMA_LIST_KEYWORDS = ("allOf", "anyOf", "oneOf")
TYPE_FIELDS = ("apiVersion", "kind")


def holds_subschemas(keyword: str) -> bool:
    """True for the keywords whose value is a schema, a list of schemas or a map of them."""
    return keyword == "properties" or keyword in SUBSCHEMA_KEYWORDS or keyword in SUBSCHEMA_LIST_KEYWORDS


def map_subschemas(
    keyword: str, value: Any, convert: Callable[[Any], Any], *, drop_type_enums: bool = False
) -> Any:
    """The value of ``keyword`` (one that :func:`holds_subschemas`) with ``convert`` applied to every
    schema in it. With ``drop_type_enums`` (a top-level kind), the converted ``apiVersion`` and ``kind``
    properties lose their ``enum``. Returns new containers; ``value`` is not mutated."""
    if keyword == "properties":
        return {
            name: (
                {k: v for k, v in convert(sub).items() if k != "enum"}
                if drop_type_enums and name in TYPE_FIELDS and isinstance(sub, dict)
                else convert(sub)
            )
            for name, sub in value.items()
        }
    if keyword in SUBSCHEMA_KEYWORDS:
        return convert(value)
    if keyword in SUBSCHEMA_LIST_KEYWORDS:
        return [convert(s) for s in value]
    raise ValueError(f"{keyword!r} holds no subschemas")
