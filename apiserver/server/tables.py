"""Table responses (``as=Table;g=meta.k8s.io;v=v1``) for lists, single objects and watch events."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request

from apiserver.registry.generic import ResourceStore
from apiserver.registry.printers import printer_for, table
from machinery import errors as api

INCLUDE_OBJECT = ("", "None", "Metadata", "Object")


def include_object(request: Request) -> str:
    value = request.query_params.get("includeObject", "")
    if value not in INCLUDE_OBJECT:
        raise api.bad_request(f'includeObject: Unsupported value: "{value}": supported values: "Metadata", '
                              '"None", "Object"')
    return value or "Metadata"


def table_for(request: Request, store: ResourceStore, objs: list[dict], *, revision: int,
              with_columns: bool = True) -> dict:
    info = store.info
    printer = printer_for(info.group, info.kind)
    result = table(printer, objs, now=datetime.now(UTC), include_object=include_object(request),
                   api_version_kind=(info.api_version, info.kind))
    result["metadata"] = {"resourceVersion": str(revision)}
    if not with_columns:
        result["columnDefinitions"] = None
    return result
