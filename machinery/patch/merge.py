"""JSON merge patch (RFC 7386), the ``application/merge-patch+json`` PATCH body.

kubectl sends it for ``label``, ``annotate`` and ``scale``, kopf for every change, and client-side
apply for custom resources. Objects merge recursively, ``null`` deletes a member, and any other
value (arrays included) replaces what was there.
"""

from __future__ import annotations

from typing import Any


def apply_merge_patch(original: Any, patch: Any) -> Any:
    """Return ``original`` with the merge ``patch`` applied. Mutates neither argument; the result
    shares no containers with them. A patch that is not an object replaces the document."""
    if not isinstance(patch, dict):
        return _copy(patch)
    target = _copy(original) if isinstance(original, dict) else {}
    _merge_into(target, patch)
    return target


def _merge_into(target: dict, patch: dict) -> None:
    """Apply ``patch`` to ``target`` (owned by the caller) in place; ``patch`` is only read."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            current = target.get(key)
            if not isinstance(current, dict):
                current = target[key] = {}
            _merge_into(current, value)
        else:
            target[key] = _copy(value)


def _copy(value: Any) -> Any:
    """Deep copy of a JSON value (much faster than copy.deepcopy for plain dicts and lists)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
