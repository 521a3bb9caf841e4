"""Request bodies in, response bodies out: content types as real clients send and accept them.

Clients send JSON with or without a Content-Type, YAML, four patch media types, and (from some
kubectl commands) protobuf, which we answer with 415. Responses are JSON; a Table is chosen by the
``as=Table`` Accept parameter, aggregated discovery by ``as=APIGroupDiscoveryList``.
"""

from __future__ import annotations

from typing import Any

import orjson
import yaml
from starlette.requests import Request
from starlette.responses import Response

from apiserver.server import protobuf
from machinery import errors as api

MAX_REQUEST_BYTES = 3 * 1024 * 1024

JSON = "application/json"
YAML = "application/yaml"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)
PROTOBUF = "application/vnd.kubernetes.protobuf"

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def media_type(request: Request) -> str:
    raw = request.headers.get("content-type", "")
    return raw.split(";", 1)[0].strip().lower()


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise api.request_entity_too_large("the request is too large: limit is 3MB")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise api.request_entity_too_large("the request is too large: limit is 3MB")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_object(body: bytes, content_type: str, *, kind: str = "", api_version: str = "") -> dict[str, Any]:
    """A JSON or YAML object body (no content type means JSON), or for a few kinds the protobuf
    that kubectl's generators send (``kind``/``api_version`` say what the URL expects); anything
    else is 415."""
    if content_type in ("", JSON, "text/plain", "*/*"):
        data = _json(body)
    elif content_type in (YAML, "application/x-yaml", "text/yaml"):
        data = _yaml(body)
    elif content_type == PROTOBUF:
        data = protobuf.decode(body, kind, api_version)
    else:
        raise api.unsupported_media_type(content_type, [JSON, YAML])
    if not isinstance(data, dict):
        raise api.bad_request("Object 'Kind' is missing in the request body: the body must be a JSON object")
    return data


def decode_patch(body: bytes, content_type: str) -> Any:
    if content_type == APPLY_PATCH:
        data = _yaml(body)
        if not isinstance(data, dict):
            raise api.bad_request("error decoding YAML: the apply configuration must be an object")
        return data
    data = _json(body)
    if content_type == JSON_PATCH and not isinstance(data, list):
        raise api.bad_request("json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp")
    if content_type in (MERGE_PATCH, STRATEGIC_PATCH) and not isinstance(data, dict):
        raise api.bad_request("error decoding patch: the patch must be a JSON object")
    return data


def require_objects(body: dict[str, Any], kind: str, *fields: str) -> dict[str, Any]:
    """400 unless each of ``fields`` is absent, null or a JSON object (request bodies are typed
    structures in Kubernetes; a wrong shape is a decoding error, not a server error)."""
    for name in fields:
        value = body.get(name)
        if value is not None and not isinstance(value, dict):
            raise api.bad_request(f'{kind} cannot be decoded: "{name}" must be an object, not {type(value).__name__}')
    return body


def _json(body: bytes) -> Any:
    if not body.strip():
        raise api.bad_request("the request body is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise api.bad_request(f"error decoding JSON: {exc}") from None


#: a YAML body may expand (through aliases) to at most this many nodes
MAX_YAML_NODES = 100_000


def _check_alias_expansion(body: bytes) -> None:
    """Refuse "billion laughs" documents: count the nodes aliases would expand to, before building
    anything. Documents without ``*`` cannot contain aliases and skip the scan."""
    if b"*" not in body:
        return
    sizes: dict[str, int] = {}
    open_nodes: list[list] = []  # [anchor, nodes so far] per open mapping/sequence
    total = 0
    for event in yaml.parse(body, Loader=_YAML_LOADER):
        if isinstance(event, yaml.AliasEvent | yaml.ScalarEvent | yaml.CollectionStartEvent):
            added = sizes.get(event.anchor, 1) if isinstance(event, yaml.AliasEvent) else 1
            total += added
            if total > MAX_YAML_NODES:
                raise api.bad_request("error converting YAML to JSON: the document expands to more than "
                                      f"{MAX_YAML_NODES} nodes (too many aliases)")
            for node in open_nodes:
                node[1] += added
            if isinstance(event, yaml.ScalarEvent) and event.anchor:
                sizes[event.anchor] = 1
            elif isinstance(event, yaml.CollectionStartEvent):
                open_nodes.append([event.anchor, 1])
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, count = open_nodes.pop()
            if anchor:
                sizes[anchor] = count


def _yaml(body: bytes) -> Any:
    try:
        _check_alias_expansion(body)
        docs = list(yaml.load_all(body, Loader=_YAML_LOADER))
    except yaml.YAMLError as exc:
        raise api.bad_request(f"error converting YAML to JSON: {exc}".replace("\n", " ")) from None
    docs = [d for d in docs if d is not None]
    if len(docs) != 1:
        raise api.bad_request("the request body must hold exactly one YAML document")
    try:
        # YAML scalars (dates, binary) must round-trip as JSON values
        return orjson.loads(orjson.dumps(docs[0]))
    except TypeError as exc:
        raise api.bad_request(f"error converting YAML to JSON: {exc}") from None


# --- responses ------------------------------------------------------------------------------------


def json_response(obj: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(obj), status_code, headers=headers, media_type=JSON)


def raw_json_response(body: bytes, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code, headers=headers, media_type=JSON)


def error_response(err: api.StatusError) -> Response:
    headers = {"Retry-After": str(err.retry_after_seconds)} if err.retry_after_seconds else None
    return json_response(err.status(), err.code, headers)


def success_status(details: dict[str, Any] | None = None, code: int = 200) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code}
    if details:
        body["details"] = details
    return body


def warning_headers(warnings: list[str]) -> list[tuple[str, str]]:
    """``Warning: 299 - "text"`` headers, as kubectl prints them."""
    return [("Warning", '299 - "' + w.replace('"', '\\"') + '"') for w in warnings]


def wants_table(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "as=Table" in accept and "g=meta.k8s.io" in accept


AGGREGATED_DISCOVERY_VERSIONS = ("v2", "v2beta1")


def aggregated_discovery_version(request: Request) -> str | None:
    """The apidiscovery.k8s.io version the client accepts first (``v2`` or ``v2beta1``; kubectl
    1.29 knows only v2beta1), or None for the legacy documents."""
    for media_range in request.headers.get("accept", "").split(","):
        params = dict(p.strip().partition("=")[::2] for p in media_range.split(";")[1:])
        if params.get("g") == "apidiscovery.k8s.io" and params.get("as") == "APIGroupDiscoveryList" \
                and params.get("v") in AGGREGATED_DISCOVERY_VERSIONS:
            return params["v"]
    return None
