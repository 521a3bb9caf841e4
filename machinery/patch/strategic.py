"""Strategic merge patch (``application/strategic-merge-patch+json``) applied as kube-apiserver does.

kubectl's default ``patch``, client-side ``apply``, ``set image``, ``cordon``, ``rollout restart`` and
the official Python client (dict bodies) all send this format to built-in kinds. It is JSON merge
patch plus per-field metadata read through a :class:`~machinery.patch.schema.PatchSchema` and a few
in-band directives. The rules follow apimachinery's ``strategicpatch`` (v1.35):

* Objects merge key by key; ``null`` deletes a key; any other value replaces (lists included) unless
  the field's patch strategy is ``merge``. A field with strategy ``replace`` is replaced wholesale.
* Lists with strategy ``merge`` and a merge key merge item by item: items matching an existing item's
  merge key merge into it; new items are added. Lists of primitives with strategy ``merge`` are a set
  union. Only the patch strategy counts: ``x-kubernetes-list-type: map`` without it still replaces.
* Order of a merged list: items named by the patch follow the patch's order, items only in the
  original keep their relative order and are interleaved by their original position (best effort:
  an item the original does not have goes before the original-only items it is compared with).
  ``$setElementOrder/<field>: [...]`` (a sibling of the list) sets the order of the items it names.
* Directives: ``{"$patch": "replace"|"delete"}`` in an object replaces it / makes it ``{}``; in a
  merging list ``{"$patch": "replace"}`` replaces the list by the patch's other items and
  ``{"$patch": "delete", <key>: v}`` removes the items with that key;
  ``$deleteFromPrimitiveList/<field>: [...]`` removes values from a primitive list;
  ``$retainKeys: [...]`` drops every key of the original object not listed (union types such as a
  Deployment's ``strategy``). Directives never reach the result.
* A value the original does not have (or has with another type) is taken from the patch without its
  ``null`` members and without any object carrying ``$patch``, as current apimachinery does.

Differences from apimachinery, all on input kubectl never sends, chosen so bad input gets a clear
PatchError or a sensible result instead of Go's accidents: lists of lists are replaced (it rejects
them); ``$deleteFromPrimitiveList`` on a list of objects is an error (it merges the items in);
values taken wholesale from the patch (atomic lists, ``replace``) lose their ``null`` members and
directives, which Go's typed decoding drops anyway; a ``$setElementOrder`` for a list empty on both
sides is accepted; items a sort order does not know keep their relative order at its end.
"""

from __future__ import annotations

import json
from typing import Any

from machinery.patch import PatchError
from machinery.patch.schema import UNKNOWN_SCHEMA, PatchSchema
from machinery.patch.values import copy_json, json_type

PATCH_DIRECTIVE = "$patch"
RETAIN_KEYS_DIRECTIVE = "$retainKeys"
SET_ELEMENT_ORDER_PREFIX = "$setElementOrder"
DELETE_FROM_PRIMITIVE_LIST_PREFIX = "$deleteFromPrimitiveList"

_REPLACE = "replace"
_DELETE = "delete"
_MERGE = "merge"
_RETAIN_KEYS_STRATEGY = "retainKeys"

_MISSING: Any = object()
_SCALAR_TYPES = frozenset({"null", "boolean", "integer", "number", "string"})


def apply_strategic_merge_patch(original: dict, patch: dict, schema: PatchSchema) -> dict:
    """Return ``original`` with the strategic merge ``patch`` applied, reading list strategies and
    merge keys from ``schema`` (the schema of the whole object).

    Mutates neither argument and the result shares no containers with them. Raises PatchError for
    an invalid directive, a merge-list item without its merge key, or values of the wrong shape.
    """
    if not isinstance(original, dict):
        raise PatchError(f"cannot apply a strategic merge patch to {_go_type(original)}: not an object")
    if not isinstance(patch, dict):
        raise PatchError(f"a strategic merge patch must be a JSON object, got {_go_type(patch)}")
    return _merge_map(copy_json(original), patch, schema)


# --- objects --------------------------------------------------------------------------------


def _merge_map(original: dict, patch: dict, schema: PatchSchema) -> dict:
    """Merge ``patch`` into ``original`` (owned: changed in place) and return the result.
    ``patch`` is only read; every value taken from it is copied."""
    if PATCH_DIRECTIVE in patch:
        return _apply_map_directive(patch)
    _apply_retain_keys(original, patch)
    handled = _merge_ordered_lists(original, patch, schema)
    for key, value in patch.items():
        if key in handled or key == RETAIN_KEYS_DIRECTIVE:
            continue
        delete_list = key.startswith(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
        if delete_list:
            key = _directive_target(key, DELETE_FROM_PRIMITIVE_LIST_PREFIX)
        if value is None:
            original.pop(key, None)
            continue
        current = original.get(key, _MISSING)
        if isinstance(current, dict) and isinstance(value, dict):
            sub = _field(schema, key)
            if _strategy(sub) == _REPLACE:
                original[key] = _replacement_map(value)
            else:
                original[key] = _merge_map(current, value, sub)
        elif isinstance(current, list) and isinstance(value, list):
            original[key] = _merge_list_field(current, value, _field(schema, key), key, delete_list)[0]
        elif not delete_list:
            _put_fresh(original, key, value)
    return original


def _apply_map_directive(patch: dict) -> dict:
    """``$patch`` inside an object: ``replace`` keeps only the patch's content, ``delete`` empties it."""
    directive = patch[PATCH_DIRECTIVE]
    if directive == _REPLACE:
        return _fresh({k: v for k, v in patch.items() if k != PATCH_DIRECTIVE})[0]
    if directive == _DELETE:
        return {}
    raise PatchError(f"unknown patch type: {_go_format(directive)} in map: {_go_format(patch)}")


def _replacement_map(value: dict) -> dict:
    """The new value of an object field whose patch strategy is ``replace``."""
    if PATCH_DIRECTIVE in value:
        return _apply_map_directive(value)
    return _fresh(value)[0]


def _apply_retain_keys(original: dict, patch: dict) -> None:
    """``$retainKeys``: every non-null key the patch sets must be listed; keys of the original that
    are not listed are dropped (before the patch merges in)."""
    if RETAIN_KEYS_DIRECTIVE not in patch:
        return
    listed = patch[RETAIN_KEYS_DIRECTIVE]
    bad_format = "invalid patch format of retainKeys"
    if not isinstance(listed, list) or not all(isinstance(k, str) for k in listed):
        raise PatchError(f"{bad_format}: {RETAIN_KEYS_DIRECTIVE} must be a list of field names")
    retain = set(listed)
    for key, value in patch.items():
        if value is None or key == RETAIN_KEYS_DIRECTIVE or _is_list_directive(key):
            continue
        if key not in retain:
            raise PatchError(
                f'{bad_format}: "{key}" is set by the patch but not listed in {RETAIN_KEYS_DIRECTIVE}'
            )
    for key in [k for k in original if k not in retain]:
        del original[key]


# --- lists ----------------------------------------------------------------------------------


def _merge_list_field(
    current: list, value: list, field_schema: PatchSchema, name: str, delete_list: bool
) -> tuple[list, list]:
    """Merge or replace the list field ``name`` according to its patch strategy; returns the new
    list and the server order (see :func:`_merge_list`). ``$deleteFromPrimitiveList`` applies
    whatever the strategy."""
    if _strategy(field_schema) == _MERGE or delete_list:
        items = field_schema.items() or UNKNOWN_SCHEMA
        return _merge_list(current, value, items, field_schema.patch_merge_key, name, delete_list)
    return _fresh(value)[0], current


def _merge_list(
    original: list, patch: list, items: PatchSchema, merge_key: str, name: str, delete_list: bool
) -> tuple[list, list]:
    """Merge two lists of a field with strategy ``merge``. Returns the new list and the order of
    the live items that a ``$setElementOrder`` next to the list interleaves against.

    That server order is ``original`` for lists of primitives. For lists of objects apimachinery
    uses the original's storage after the merge worked in it: the items left after ``$patch:
    delete``, then as many of the added items as were deleted (the appends reuse the freed slots).
    Its own tests pin the resulting order, so we reproduce it.
    """
    if not original and not patch:
        return list(original), original
    kind = _element_kind(original, patch)
    if kind == "list":  # lists of lists are atomic
        return (list(original) if delete_list else _fresh(patch)[0]), original
    if kind == "map" and delete_list:
        raise PatchError(f"{DELETE_FROM_PRIMITIVE_LIST_PREFIX}/{name} applies only to lists of primitives")
    if kind == "scalar":
        if delete_list:
            dropped = {_scalar_key(v) for v in patch}
            return [v for v in original if _scalar_key(v) not in dropped], original
        merged = _dedupe([*original, *_fresh(patch)[0]])
        server_order, patch_order, live_order = original, patch, original
    else:
        if not merge_key:
            raise PatchError(f"cannot merge lists without merge key for {name}")
        remaining, plain, replacement = _apply_list_directives(original, patch, merge_key)
        if replacement is None:
            server_order, patch_order = remaining, plain
        else:
            server_order, patch_order = replacement, []
        merged = _merge_items(server_order, patch_order, merge_key, items)
        live_order = remaining
        if replacement is None:
            added = merged[len(remaining) :]
            live_order = remaining + added[: len(original) - len(remaining)]
    if merge_key:
        in_patch, server_only = _partition_maps(merged, patch_order, merge_key)
    else:
        in_patch, server_only = _partition_scalars(merged, patch_order)
    ordered = _normalize_order(in_patch, server_only, patch_order, server_order, merge_key, kind)
    return ordered, live_order


def _apply_list_directives(original: list, patch: list, merge_key: str) -> tuple[list, list, list | None]:
    """Handle the ``$patch`` items of a merging list of objects. Returns the original items left
    after deletions, the patch items without directives, and the replacement list if the patch
    has ``{"$patch": "replace"}`` (None otherwise)."""
    plain: list = []
    replace = False
    for item in patch:
        if PATCH_DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[PATCH_DIRECTIVE]
        if directive == _DELETE:
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
            doomed = _scalar_key(item[merge_key])
            original = [o for o in original if not (merge_key in o and _scalar_key(o[merge_key]) == doomed)]
        elif directive == _REPLACE:
            replace = True  # keep going: the other $patch items are dropped, not applied
        elif directive == _MERGE:
            raise PatchError("merging lists cannot yet be specified in the patch")
        else:
            raise PatchError(f"unknown patch type: {_go_format(directive)} in map: {_go_format(item)}")
    return original, plain, (_fresh(plain)[0] if replace else None)


def _merge_items(original: list, patch: list, merge_key: str, items: PatchSchema) -> list:
    """Merge each patch item into the original item with the same merge key, or add it.
    ``original``'s items are owned; the list itself is left as it is (it is the server order)."""
    merged = list(original)
    position: dict[Any, int] = {}
    for index, item in enumerate(merged):
        if merge_key in item:
            position.setdefault(_scalar_key(item[merge_key]), index)
    for item in patch:
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        key = _scalar_key(item[merge_key])
        index = position.get(key)
        if index is None:
            position[key] = len(merged)
            merged.append(_fresh(item)[0])
        else:
            merged[index] = _merge_map(merged[index], item, items)
    return merged


def _merge_ordered_lists(original: dict, patch: dict, schema: PatchSchema) -> set[str]:
    """Apply every ``$setElementOrder/<field>`` of ``patch``: merge ``<field>`` (if the patch has it)
    and order it. Returns the patch keys it consumed, which the caller must skip."""
    handled: set[str] = set()
    for key, order in patch.items():
        if not key.startswith(SET_ELEMENT_ORDER_PREFIX):
            continue
        handled.add(key)
        if not isinstance(order, list):
            raise _bad_arg_type([], order)
        name = _directive_target(key, SET_ELEMENT_ORDER_PREFIX)
        field_schema = _field(schema, name)
        merge_key = field_schema.patch_merge_key
        current = original.get(name, _MISSING)
        value = patch.get(name, _MISSING)
        if current is not _MISSING and not isinstance(current, list):
            raise _bad_arg_type([], current)
        if value is not _MISSING and not isinstance(value, list):
            raise _bad_arg_type([], value)
        _check_order_matches_patch([] if value is _MISSING else value, order, merge_key)
        if current is _MISSING and value is _MISSING:
            continue
        handled.add(name)
        if value is _MISSING:
            merged = server_order = current
        elif current is _MISSING:
            merged, server_order = _fresh(value)[0], []
        else:
            merged, server_order = _merge_list_field(current, value, field_schema, name, False)
        kind = _element_kind(server_order, [] if value is _MISSING else value)
        if kind == "empty":
            kind = "map" if merge_key else "scalar"
        if merged and (kind == "scalar" or (kind == "map" and merge_key)):
            if merge_key:
                in_order, server_only = _partition_maps(merged, order, merge_key)
            else:
                in_order, server_only = _partition_scalars(merged, order)
            merged = _normalize_order(in_order, server_only, order, server_order, merge_key, kind)
        original[name] = merged
    return handled


def _check_order_matches_patch(patch_list: list, order: list, merge_key: str) -> None:
    """The patch's items (deletions aside) must appear in ``$setElementOrder`` in the same order."""
    if not order or not patch_list:
        return
    items = patch_list
    if merge_key:
        for item in patch_list:
            if not isinstance(item, dict):
                raise _bad_arg_type({}, item)
        items = [i for i in patch_list if i.get(PATCH_DIRECTIVE) != _DELETE]
    at_item = at_order = 0
    while at_item < len(items) and at_order < len(order):
        item = items[at_item]
        if isinstance(item, dict) and PATCH_DIRECTIVE in item:
            at_item += 1
            continue
        if _same_entry(item, order[at_order], merge_key):
            at_item += 1
        at_order += 1
    if at_item < len(items):
        raise PatchError(
            f"the order in patch list:\n{_go_format(patch_list)}\n doesn't match "
            f"{SET_ELEMENT_ORDER_PREFIX} list:\n{_go_format(order)}"
        )


def _same_entry(left: Any, right: Any, merge_key: str) -> bool:
    if not merge_key:
        return _scalar_key(left) == _scalar_key(right)
    for side in (left, right):
        if not isinstance(side, dict):
            raise _bad_arg_type({}, side)
        if merge_key not in side:
            raise _no_merge_key(side, merge_key)
    return _scalar_key(left[merge_key]) == _scalar_key(right[merge_key])


# --- ordering -------------------------------------------------------------------------------


def _normalize_order(
    in_patch: list, server_only: list, patch_order: list, server_order: list, merge_key: str, kind: str
) -> list:
    """Sort the patch's items by ``patch_order`` and the others by ``server_order``, then
    interleave them by their position in ``server_order``."""
    if kind == "map":
        for group in (in_patch, server_only, patch_order, server_order):
            for item in group:
                if not isinstance(item, dict):
                    raise _bad_arg_type({}, item)
                if merge_key not in item:
                    raise _no_merge_key(item, merge_key)
    in_patch = _sort_by(in_patch, patch_order, merge_key)
    server_only = _sort_by(server_only, server_order, merge_key)
    return _interleave(server_only, in_patch, server_order, merge_key)


def _sort_by(items: list, order: list, merge_key: str) -> list:
    """Stable sort by position in ``order``; items ``order`` lacks go last, in their own order."""
    position = _positions(order, merge_key)
    last = len(order)
    return sorted(items, key=lambda item: position.get(_order_key(item, merge_key), last))


def _interleave(left: list, right: list, server_order: list, merge_key: str) -> list:
    """Merge two sorted lists keeping each one's order: take from ``left`` (the original-only
    items) while its head sits before ``right``'s head in ``server_order``, else from ``right``."""
    position = _positions(server_order, merge_key)
    out: list = []
    i = j = 0
    while i < len(left) and j < len(right):
        left_at = position.get(_order_key(left[i], merge_key))
        right_at = position.get(_order_key(right[j], merge_key))
        if left_at is not None and right_at is not None and left_at < right_at:
            out.append(left[i])
            i += 1
        else:
            out.append(right[j])
            j += 1
    out.extend(left[i:])
    out.extend(right[j:])
    return out


def _positions(order: list, merge_key: str) -> dict[Any, int]:
    position: dict[Any, int] = {}
    for index, item in enumerate(order):
        position.setdefault(_order_key(item, merge_key), index)
    return position


def _order_key(item: Any, merge_key: str) -> Any:
    if merge_key:
        return _scalar_key(item.get(merge_key) if isinstance(item, dict) else None)
    return _scalar_key(item)


def _partition_maps(merged: list, partition_by: list, merge_key: str) -> tuple[list, list]:
    """Split ``merged`` into the items whose merge key ``partition_by`` has and the others."""
    keys = set()
    for index, item in enumerate(partition_by):
        if not isinstance(item, dict):
            raise PatchError(f"value for key {index} is not a map")
        if merge_key in item:
            keys.add(_scalar_key(item[merge_key]))
    present: list = []
    absent: list = []
    for item in merged:
        if not isinstance(item, dict):
            raise _bad_arg_type({}, item)
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        (present if _scalar_key(item[merge_key]) in keys else absent).append(item)
    return present, absent


def _partition_scalars(merged: list, partition_by: list) -> tuple[list, list]:
    keys = {_scalar_key(v) for v in partition_by}
    present = [v for v in merged if _scalar_key(v) in keys]
    absent = [v for v in merged if _scalar_key(v) not in keys]
    return present, absent


def _dedupe(values: list) -> list:
    seen: set = set()
    out = []
    for value in values:
        key = _scalar_key(value)
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out


# --- values ---------------------------------------------------------------------------------


def _element_kind(*lists: list) -> str:
    """The kind of the items of ``lists`` ("map", "scalar", "list" or "empty"); they must share one
    JSON type."""
    seen = None
    for values in lists:
        for value in values:
            kind = _go_type(value)
            if seen is None:
                seen = kind
            elif kind != seen:
                raise PatchError(f"list element types are not identical: {_go_format(list(lists))}")
    if seen is None:
        return "empty"
    if seen == "map[string]interface {}":
        return "map"
    if seen == "[]interface {}":
        return "list"
    return "scalar"


def _put_fresh(target: dict, key: str, value: Any) -> None:
    new, keep = _fresh(value)
    if keep:
        target[key] = new
    else:
        target.pop(key, None)


def _fresh(value: Any) -> tuple[Any, bool]:
    """A copy of a patch value that lands where the original has nothing to merge with: without
    ``null`` object members and directive keys, and without objects carrying ``$patch``
    (the second result is False when ``value`` itself is such an object)."""
    if isinstance(value, dict):
        if PATCH_DIRECTIVE in value:
            return None, False
        out = {}
        for key, item in value.items():
            if item is None or _is_directive_key(key):
                continue
            new, keep = _fresh(item)
            if keep:
                out[key] = new
        return out, True
    if isinstance(value, list):
        kept = []
        for item in value:
            new, keep = _fresh(item)
            if keep:
                kept.append(new)
        return kept, True
    return value, True


def _scalar_key(value: Any) -> Any:
    """A hashable identity for a JSON value: equal only for the same JSON type and value, as Go
    compares interface values (1 and 1.0, or 1 and true, are different)."""
    kind = json_type(value)
    if kind in _SCALAR_TYPES:
        return (kind, value)
    return ("json", json.dumps(value, sort_keys=True, default=str))


# --- schema and directive helpers -----------------------------------------------------------


def _field(schema: PatchSchema, name: str) -> PatchSchema:
    return schema.field(name) or UNKNOWN_SCHEMA


def _strategy(schema: PatchSchema) -> str:
    """The patch strategy that decides merging; ``retainKeys`` only matters to patch generation."""
    declared = schema.patch_strategy
    parts = [p for p in declared.split(",") if p and p != _RETAIN_KEYS_STRATEGY]
    if len(parts) > 1:
        raise PatchError(f"unexpected patch strategy: {declared}")
    return parts[0] if parts else ""


def _is_list_directive(key: str) -> bool:
    return key.startswith(SET_ELEMENT_ORDER_PREFIX) or key.startswith(DELETE_FROM_PRIMITIVE_LIST_PREFIX)


def _is_directive_key(key: str) -> bool:
    return key in (PATCH_DIRECTIVE, RETAIN_KEYS_DIRECTIVE) or _is_list_directive(key)


def _directive_target(key: str, prefix: str) -> str:
    """``$setElementOrder/containers`` → ``containers``."""
    head, slash, target = key.partition("/")
    if not slash or head != prefix:
        what = "setElementOrder list" if prefix == SET_ELEMENT_ORDER_PREFIX else "primitive list"
        raise PatchError(f'invalid patch format of {what}: "{key}" is not "{prefix}/<field>"')
    return target


# --- error messages (apimachinery's wording, Go's %v formatting) ----------------------------


def _no_merge_key(item: dict, merge_key: str) -> PatchError:
    return PatchError(f"map: {_go_format(item)} does not contain declared merge key: {merge_key}")


def _bad_arg_type(expected: Any, actual: Any) -> PatchError:
    return PatchError(f"expected a {_go_type(expected)}, but received a {_go_type(actual)}")


_GO_TYPE_NAMES = {
    "object": "map[string]interface {}",
    "array": "[]interface {}",
    "boolean": "bool",
    "integer": "int64",
    "number": "float64",
    "string": "string",
    "null": "<nil>",
}


def _go_type(value: Any) -> str:
    """The type of a decoded JSON value as Go's ``%T`` prints it (``map[string]interface {}``)."""
    return _GO_TYPE_NAMES.get(json_type(value), type(value).__name__)


def _go_format(value: Any) -> str:
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_format(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_format(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)
