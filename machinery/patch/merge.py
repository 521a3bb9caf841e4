"""JSON merge patch (RFC 7386), the ``application/merge-patch+json`` PATCH body.

kubectl sends it for ``label``, ``annotate`` and ``scale``, kopf for every change, and client-side
apply for custom resources. Objects merge recursively, ``null`` deletes a member, and any other
value (arrays included) replaces what was there.
"""

from __future__ import annotations

from typing import Any

from machinery.patch.values import copy_json


def apply_merge_patch(original: Any, patch: Any) -> Any:
    """Return ``original`` with the merge ``patch`` applied. Mutates neither argument; the result
    shares no containers with them. A patch that is not an object replaces the document."""
    if not isinstance(patch, dict):
        return copy_json(patch)
    target = copy_json(original) if isinstance(original, dict) else {}
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
            target[key] = copy_json(value)
