"""The async REST client every kubemini component uses to talk to the API server (our client-go rest/dynamic).

One :class:`ApiClient` per process holds two HTTP/1.1 connection pools (httpx) — requests, at most
``max_in_flight`` at once, and watches, one long-lived connection each — a client-side rate limit
(QPS/burst token bucket) and the retry policy:

* 429 Too Many Requests: the server did not act, so every verb is retried (after ``Retry-After``).
* The connection could not be made: nothing was sent, every verb is retried.
* 503, 504 and broken connections after the request was sent: only reads (GET) are retried — a write
  may already have been applied, and repeating it could create twice or fail with a misleading 409.

Errors arrive as :class:`machinery.errors.StatusError` rebuilt from the server's ``metav1.Status``, so
callers branch with ``is_not_found(err)`` and friends. Objects are plain JSON dicts.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import orjson

from machinery.client.config import ClientConfig
from machinery.client.resources import Resource
from machinery.client.transport import StreamTransport
from machinery.clock import REAL_CLOCK, Clock
from machinery.errors import StatusError, service_unavailable
from machinery.ratelimit import TokenBucket

log = logging.getLogger(__name__)

JSON = "application/json"
PATCH_CONTENT_TYPES = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD"})
RETRY_ANY_VERB_CODES = frozenset({429})
RETRY_READ_CODES = frozenset({429, 500, 503, 504})
MAX_RETRIES = 6
# Requests in flight at once (more wait their turn). Watches hold a connection each and have their own
# unbounded pool. Bounding the queue matters: httpcore's pool does work proportional to connections times
# queued requests on every request, so 500 concurrent creates spent half the controller-manager's CPU there.
MAX_IN_FLIGHT = 8
MAX_BACKOFF = 8.0


class ApiClient:
    """A Kubernetes API client over HTTP. Use as ``async with ApiClient(config) as client``."""

    def __init__(self, config: ClientConfig, *, clock: Clock = REAL_CLOCK,
                 transport: httpx.AsyncBaseTransport | None = None, max_retries: int = MAX_RETRIES,
                 max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.config = config
        self.clock = clock
        self.max_retries = max_retries
        self._bucket = TokenBucket(config.qps, config.burst, clock)
        self._inflight = asyncio.Semaphore(max_in_flight)
        ssl_context = config.ssl_context()
        common = {"base_url": config.server, "headers": {"User-Agent": config.user_agent, "Accept": JSON},
                  "auth": _ConfigAuth(config, clock), "verify": ssl_context,
                  "timeout": httpx.Timeout(config.timeout, connect=min(config.timeout, 10.0))}
        # our own lean HTTP/1.1 transport (machinery.client.transport): httpx's default one was most of the CPU
        self._http = httpx.AsyncClient(
            **common, limits=httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight),
            transport=transport or StreamTransport(ssl_context=ssl_context, max_connections=max_in_flight))
        self._watch_http = httpx.AsyncClient(
            **common, limits=httpx.Limits(max_connections=None),
            transport=transport or StreamTransport(ssl_context=ssl_context, max_connections=None))

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()
        await self._watch_http.aclose()

    # --- the one request path -------------------------------------------------------------------

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      body: Any = None, content_type: str = JSON, idempotent: bool | None = None) -> Any:
        """Send one request with rate limiting and retries; return the decoded JSON body.

        ``idempotent`` overrides the method's default (only GET/HEAD are retried after the request
        may have reached the server).
        """
        retry_after_send = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        content = None if body is None else (body if isinstance(body, bytes) else orjson.dumps(body))
        headers = {"Content-Type": content_type} if content is not None else None
        attempt = 0
        while True:
            await self._bucket.wait()
            try:
                async with self._inflight:
                    resp = await self._http.request(method, path, params=_clean(params), content=content,
                                                    headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                error: StatusError = service_unavailable(f"cannot connect to {self.config.server}: {exc}")
                retryable, delay = True, None
            except httpx.TransportError as exc:
                error = service_unavailable(f"{method} {path}: {type(exc).__name__}: {exc}")
                retryable, delay = retry_after_send, None
            else:
                if resp.status_code < 400:
                    return orjson.loads(resp.content) if resp.content else {}
                error = _status_error(resp)
                codes = RETRY_READ_CODES if retry_after_send else RETRY_ANY_VERB_CODES
                retryable, delay = resp.status_code in codes, error.retry_after_seconds
            if not retryable or attempt >= self.max_retries:
                raise error
            wait = delay if delay is not None else _backoff(attempt)
            log.debug("retrying %s %s in %.2fs after %s", method, path, wait, error)
            attempt += 1
            await self.clock.sleep(wait)

    # --- verbs ------------------------------------------------------------------------------------

    async def get(self, resource: Resource, name: str, namespace: str | None = None, *,
                  subresource: str | None = None) -> dict[str, Any]:
        return await self.request("GET", resource.path(namespace, name, subresource))

    async def list(self, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None,
                   field_selector: str | None = None, limit: int | None = None, continue_: str | None = None,
                   resource_version: str | None = None) -> dict[str, Any]:
        """One page of a list (``metadata.continue`` says whether there are more)."""
        params = {"labelSelector": label_selector, "fieldSelector": field_selector, "limit": limit,
                  "continue": continue_, "resourceVersion": resource_version}
        return await self.request("GET", resource.collection_path(namespace), params=params)

    async def list_all(self, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None,
                       field_selector: str | None = None, page_size: int = 500) -> dict[str, Any]:
        """Every page of a list, as one list whose resourceVersion is that of the first page (a snapshot)."""
        first = await self.list(resource, namespace, label_selector=label_selector,
                                field_selector=field_selector, limit=page_size)
        items = list(first.get("items") or [])
        token = (first.get("metadata") or {}).get("continue")
        while token:
            page = await self.list(resource, namespace, limit=page_size, continue_=token,
                                   label_selector=label_selector, field_selector=field_selector)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
        first["items"] = items
        first.setdefault("metadata", {}).pop("continue", None)
        return first

    async def create(self, resource: Resource, obj: Mapping[str, Any], namespace: str | None = None, *,
                     subresource: str | None = None, name: str | None = None, dry_run: bool = False,
                     field_manager: str | None = None) -> dict[str, Any]:
        """POST to the collection (or to ``name``'s subresource, e.g. a binding or an eviction)."""
        namespace = namespace or (obj.get("metadata") or {}).get("namespace")
        path = resource.path(namespace, name, subresource) if subresource else resource.collection_path(namespace)
        params = {"dryRun": "All" if dry_run else None, "fieldManager": field_manager}
        return await self.request("POST", path, params=params, body=_with_type(resource, obj, subresource))

    async def replace(self, resource: Resource, obj: Mapping[str, Any], *, subresource: str | None = None,
                      dry_run: bool = False, field_manager: str | None = None) -> dict[str, Any]:
        """PUT the whole object; its metadata.resourceVersion (when set) makes it a compare-and-swap."""
        meta = obj.get("metadata") or {}
        path = resource.path(meta.get("namespace"), meta.get("name") or "", subresource)
        params = {"dryRun": "All" if dry_run else None, "fieldManager": field_manager}
        return await self.request("PUT", path, params=params, body=_with_type(resource, obj, subresource))

    async def replace_status(self, resource: Resource, obj: Mapping[str, Any]) -> dict[str, Any]:
        return await self.replace(resource, obj, subresource="status")

    async def patch(self, resource: Resource, name: str, patch: Any, namespace: str | None = None, *,
                    patch_type: str = "merge", subresource: str | None = None, field_manager: str | None = None,
                    force: bool | None = None, dry_run: bool = False) -> dict[str, Any]:
        """PATCH with ``patch_type`` one of json, merge, strategic, apply."""
        try:
            content_type = PATCH_CONTENT_TYPES[patch_type]
        except KeyError:
            raise ValueError(f"unknown patch type {patch_type!r}; use one of {sorted(PATCH_CONTENT_TYPES)}") from None
        if patch_type == "apply" and not field_manager:
            raise ValueError("an apply patch needs a field_manager")
        params = {"fieldManager": field_manager, "force": _flag(force), "dryRun": "All" if dry_run else None}
        return await self.request("PATCH", resource.path(namespace, name, subresource), params=params,
                                  body=patch, content_type=content_type)

    async def apply(self, resource: Resource, obj: Mapping[str, Any], *, field_manager: str,
                    force: bool = False, subresource: str | None = None) -> dict[str, Any]:
        """Server-side apply ``obj`` (which carries its own name and namespace)."""
        meta = obj.get("metadata") or {}
        return await self.patch(resource, meta.get("name") or "", _with_type(resource, obj, None),
                                meta.get("namespace"), patch_type="apply", field_manager=field_manager,
                                force=force, subresource=subresource)

    async def delete(self, resource: Resource, name: str, namespace: str | None = None, *,
                     propagation_policy: str | None = None, grace_period_seconds: int | None = None,
                     preconditions: Mapping[str, str] | None = None, dry_run: bool = False) -> dict[str, Any]:
        """DELETE; returns the object (still present while finalizers run) or a Status."""
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if preconditions:
            options["preconditions"] = dict(preconditions)
        if dry_run:
            options["dryRun"] = ["All"]
        return await self.request("DELETE", resource.path(namespace, name), body=options)

    async def delete_collection(self, resource: Resource, namespace: str | None = None, *,
                                label_selector: str | None = None, field_selector: str | None = None,
                                propagation_policy: str | None = None) -> dict[str, Any]:
        params = {"labelSelector": label_selector, "fieldSelector": field_selector,
                  "propagationPolicy": propagation_policy}
        return await self.request("DELETE", resource.collection_path(namespace), params=params)

    async def get_json(self, path: str, *, accept: str | None = None) -> Any:
        """GET an arbitrary path (discovery, /version) and decode it."""
        if accept is None:
            return await self.request("GET", path)
        await self._bucket.wait()
        async with self._inflight:
            resp = await self._http.get(path, headers={"Accept": accept})
        if resp.status_code >= 400:
            raise _status_error(resp)
        return orjson.loads(resp.content)

    # --- watch ------------------------------------------------------------------------------------

    async def watch(self, resource: Resource, namespace: str | None = None, *, resource_version: str | None = None,
                    label_selector: str | None = None, field_selector: str | None = None,
                    allow_bookmarks: bool = True, timeout_seconds: int | None = None) -> AsyncIterator[dict[str, Any]]:
        """Stream watch events (``{"type": ..., "object": ...}``) until the server ends the watch.

        An ``ERROR`` event is raised as its StatusError (410 Expired/Gone means: relist). Use
        :mod:`machinery.client.watch` for a watch that lists, resumes and relists by itself.
        """
        params = {"watch": "true", "resourceVersion": resource_version, "labelSelector": label_selector,
                  "fieldSelector": field_selector, "allowWatchBookmarks": _flag(allow_bookmarks or None),
                  "timeoutSeconds": timeout_seconds}
        await self._bucket.wait()
        timeout = httpx.Timeout(self.config.timeout, read=(timeout_seconds or 3600) + 30)
        try:
            async with self._watch_http.stream("GET", resource.collection_path(namespace), params=_clean(params),
                                         timeout=timeout) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise _status_error(resp)
                async for line in resp.aiter_lines():
                    if not line:
                        continue
                    event = orjson.loads(line)
                    if event.get("type") == "ERROR":
                        raise StatusError.from_status(event.get("object") or {})
                    yield event
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise service_unavailable(f"watch {resource.qualified}: {type(exc).__name__}: {exc}") from exc


class _ConfigAuth(httpx.Auth):
    """Authorization from the config, re-read every minute so a rotated service-account token is picked up."""

    REFRESH_SECONDS = 60.0

    def __init__(self, config: ClientConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self._headers = config.auth_headers()
        self._read_at = clock.monotonic()

    def auth_flow(self, request: httpx.Request):
        if self.config.token_file and self.clock.monotonic() - self._read_at >= self.REFRESH_SECONDS:
            self._headers = self.config.auth_headers()
            self._read_at = self.clock.monotonic()
        request.headers.update(self._headers)
        yield request


def _clean(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not params:
        return None
    return {k: v for k, v in params.items() if v is not None and v != ""}


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


def _with_type(resource: Resource, obj: Mapping[str, Any], subresource: str | None) -> Mapping[str, Any]:
    """Fill in apiVersion/kind when the caller left them out (the server requires them on writes)."""
    if subresource or (obj.get("apiVersion") and obj.get("kind")):
        return obj
    return {"apiVersion": resource.api_version, "kind": resource.kind, **obj}


def _status_error(resp: httpx.Response) -> StatusError:
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        error = StatusError.from_status(body, resp.status_code)
    else:
        text = resp.text.strip()[:200] or resp.reason_phrase
        error = StatusError(resp.status_code, _reason_for(resp.status_code), text)
    retry_after = resp.headers.get("Retry-After")
    if retry_after and retry_after.isdigit():
        error.retry_after_seconds = int(retry_after)
    return error


def _reason_for(code: int) -> str:
    return {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
            409: "Conflict", 410: "Gone", 422: "Invalid", 429: "TooManyRequests", 503: "ServiceUnavailable",
            504: "Timeout"}.get(code, "InternalError" if code >= 500 else "")


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter: ~0.1 s, 0.2 s, 0.4 s … capped at 8 s."""
    return min(MAX_BACKOFF, 0.1 * (2 ** attempt)) * random.uniform(0.8, 1.2)
