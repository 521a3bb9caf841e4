"""JSON patch (RFC 6902), the ``application/json-patch+json`` PATCH body.

The official Python client sends one whenever the patch body is a list, and users send them with
``kubectl patch --type=json``. The RFC itself is delegated to the ``jsonpatch`` library; this module
exists to turn every way that library (and ``jsonpointer`` under it) can fail into a
:class:`PatchError` with a clear message and the status kube-apiserver answers: 400 for a patch that
is not a well-formed list of operations, 422 for operations that cannot be applied to the object.
"""

from __future__ import annotations

from typing import Any

import jsonpatch
import jsonpointer

from machinery.patch import PatchError
from machinery.patch.values import json_type

# Everything jsonpatch/jsonpointer raise for bad input; AssertionError is a base of JsonPatchTestFailed.
_LIBRARY_ERRORS = (
    jsonpatch.JsonPatchException,
    jsonpointer.JsonPointerException,
    AssertionError,
    AttributeError,
    IndexError,
    KeyError,
    TypeError,
    ValueError,
)


def apply_json_patch(original: Any, operations: list) -> Any:
    """Return ``original`` with the RFC 6902 ``operations`` applied in order, all or nothing.

    Mutates neither argument. Raises PatchError (code 400) when ``operations`` is not a list of
    operation objects, and PatchError (code 422) when an operation fails: a ``test`` that does not
    hold, a ``remove``/``replace``/``move`` of a path that does not exist, an index out of range.
    """
    patch = _decode(operations)
    try:
        return patch.apply(original, in_place=False)
    except jsonpatch.JsonPatchTestFailed as err:
        raise PatchError(f"json patch test operation failed: {_describe(err)}", code=422) from None
    except _LIBRARY_ERRORS as err:
        raise PatchError(f"json patch could not be applied: {_describe(err)}", code=422) from None


def _decode(operations: Any) -> jsonpatch.JsonPatch:
    """Check the shape of the patch document and build the library's patch object from it."""
    if not isinstance(operations, list):
        raise PatchError(f"json patch must be a JSON array of operations, got {_json_type(operations)}")
    for index, operation in enumerate(operations):
        if not isinstance(operation, dict):
            raise PatchError(
                f"json patch operation {index} must be a JSON object, got {_json_type(operation)}"
            )
        if not isinstance(operation.get("op"), str):
            raise PatchError(f'json patch operation {index} has no "op" string')
        if not isinstance(operation.get("path"), str):
            raise PatchError(f'json patch operation {index} ({operation["op"]}) has no "path" string')
    try:
        return jsonpatch.JsonPatch(operations)
    except _LIBRARY_ERRORS as err:
        raise PatchError(f"invalid json patch: {_describe(err)}") from None


def _describe(err: BaseException) -> str:
    text = str(err)
    return text if text else type(err).__name__


def _json_type(value: Any) -> str:
    """RFC 8259's name for the type of ``value`` (integers are numbers too)."""
    kind = json_type(value)
    if kind is None:
        return type(value).__name__
    return "number" if kind == "integer" else kind
