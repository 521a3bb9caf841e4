"""The API server application: routes, start-up and shutdown.

Routing uses plain Starlette routes on the FastAPI app (each handler reads the raw request), so
a request costs one dispatch and no dependency injection. Start-up connects to etcd, fills the
watch caches, creates the default namespaces and starts compaction and bookmarks; shutdown closes
every watch cleanly before the etcd connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from apiserver import metrics
from apiserver.registry.options import WriteOptions
from apiserver.registry.registry import Registry
from apiserver.schema.openapi import OpenAPIDocuments
from apiserver.server import codec, podproxy
from apiserver.server.discovery import Discovery
from apiserver.server.rest import ResourceHandler
from apiserver.storage.compactor import run_compactor
from apiserver.storage.store import Store
from machinery import errors as api

log = logging.getLogger(__name__)

KUBERNETES_VERSION = {"major": "1", "minor": "35"}
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass
class ServerConfig:
    etcd_servers: list[str] = field(default_factory=lambda: ["http://127.0.0.1:2379"])
    watch_cache: bool = True
    compaction_interval: float = 300.0
    bookmark_interval: float = 60.0
    etcd_timeout: float = 5.0


def create_app(config: ServerConfig) -> FastAPI:
    state: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        store = await Store.connect(config.etcd_servers, timeout=config.etcd_timeout)
        registry = Registry(store, watch_cache=config.watch_cache, bookmark_interval=config.bookmark_interval)
        await _wait_for_etcd(store)
        await registry.start()
        await _bootstrap(registry)
        app.state.registry = registry
        app.state.store = store
        state.update(registry=registry, openapi=OpenAPIDocuments(registry.resources))
        tasks = [asyncio.create_task(_bookmarks(registry), name="bookmarks")]
        if config.compaction_interval > 0:
            tasks.append(asyncio.create_task(run_compactor(store, config.compaction_interval), name="compactor"))
        log.info("API server ready (etcd %s)", ",".join(config.etcd_servers))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await registry.stop()
            await store.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    def registry() -> Registry:
        return state["registry"]

    resources = _LazyHandler(lambda: ResourceHandler(registry()))
    discovery = _LazyHandler(lambda: Discovery(registry()))

    async def version(request: Request) -> Response:
        return codec.json_response({
            **KUBERNETES_VERSION, "gitVersion": "v1.35.0-kubemini", "gitCommit": "", "gitTreeState": "clean",
            "buildDate": "", "goVersion": "python", "compiler": "cpython", "platform": "linux/amd64",
        })

    async def livez(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        try:
            await asyncio.wait_for(app.state.store.current_revision(), 2.0)
        except Exception as exc:  # any failure means "not ready", with the reason
            return PlainTextResponse(f"[-]etcd failed: {exc}\nreadyz check failed", 500)
        return PlainTextResponse("ok")

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(registry()), media_type="text/plain; version=0.0.4")

    async def openapi_index(request: Request) -> Response:
        return codec.json_response(state["openapi"].index())

    async def openapi_document(request: Request) -> Response:
        doc = state["openapi"].document(request.path_params["path"])
        if doc is None:
            return codec.error_response(_path_not_found())
        headers = {"Cache-Control": "public, immutable", "Expires": "Fri, 01 Jan 2100 00:00:00 GMT"} \
            if request.query_params.get("hash") else None
        return codec.raw_json_response(doc, headers=headers)

    async def openapi_v2(request: Request) -> Response:
        return codec.error_response(_path_not_found())

    add = app.router.add_route
    add("/version", version, methods=["GET"])
    for path in ("/healthz", "/readyz"):
        add(path, readyz, methods=["GET"])
    add("/livez", livez, methods=["GET"])
    add("/metrics", metrics_endpoint, methods=["GET"])
    add("/openapi/v3", openapi_index, methods=["GET"])
    add("/openapi/v3/{path:path}", openapi_document, methods=["GET"])
    add("/openapi/v2", openapi_v2, methods=["GET"])
    add("/api", discovery.method("api"), methods=["GET"])
    add("/api/v1", discovery.method("core_resources"), methods=["GET"])
    add("/apis", discovery.method("apis"), methods=["GET"])
    add("/apis/{group}", discovery.method("group"), methods=["GET"])
    add("/apis/{group}/{version}", discovery.method("group_resources"), methods=["GET"])
    verbs = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    add("/api/v1/{path:path}", resources.method("core"), methods=verbs)
    add("/apis/{group}/{version}/{path:path}", resources.method("grouped"), methods=verbs)
    app.router.add_websocket_route("/api/v1/namespaces/{namespace}/pods/{name}/{subresource}",
                                   podproxy.stream_websocket)  # exec, attach (and a clear no for portforward)

    app.state.resource_handler = resources

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 405:
            return codec.error_response(api.method_not_allowed("the server does not allow this method on the "
                                                               "requested resource"))
        if exc.status_code == 404:
            return codec.error_response(_path_not_found())
        return codec.error_response(api.StatusError(exc.status_code, "", str(exc.detail)))

    return app


def _path_not_found() -> api.StatusError:
    return api.StatusError(404, "NotFound", "the server could not find the requested resource")


class ResourceFastPath:
    """The ASGI entry point: resource requests go straight to the resource handler.

    Resource requests are the hot path; they skip the framework's middleware stack (which costs
    about a fifth of a request here) but use the same handlers as the routes registered on the
    app. Everything else, lifespan included, goes through the FastAPI application.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.state = app.state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            params = _resource_path_params(scope["path"])
            if params is not None:
                scope["path_params"] = params
                scope["app"] = self.app
                handler = self.app.state.resource_handler.method("grouped" if "group" in params else "core")
                response = await handler(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _resource_path_params(path: str) -> dict | None:
    if path.startswith("/api/v1/"):
        rest = path[8:]
        return {"path": rest} if rest else None
    if path.startswith("/apis/"):
        parts = path[6:].split("/", 2)
        if len(parts) == 3 and parts[2]:
            return {"group": parts[0], "version": parts[1], "path": parts[2]}
    return None


class _LazyHandler:
    """Binds a route to a handler object that exists only once start-up has run."""

    def __init__(self, factory) -> None:
        self._factory = factory
        self._obj = None
        self._methods: dict = {}

    def method(self, name: str):
        cached = self._methods.get(name)
        if cached is not None:
            return cached

        async def call(request: Request) -> Response:
            if self._obj is None:
                self._obj = self._factory()
            return await getattr(self._obj, name)(request)

        call.__name__ = name
        self._methods[name] = call
        return call


async def _wait_for_etcd(store: Store, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await store.current_revision()
            return
        except Exception as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"etcd did not answer within {timeout:.0f}s: {exc}") from exc
            await asyncio.sleep(0.1)


async def _bootstrap(registry: Registry) -> None:
    namespaces = registry.get("", "v1", "namespaces")
    for name in DEFAULT_NAMESPACES:
        try:
            await namespaces.create(None, {"metadata": {"name": name}}, WriteOptions())
        except api.StatusError as err:
            if not api.is_already_exists(err):
                raise


async def _bookmarks(registry: Registry) -> None:
    while True:
        await asyncio.sleep(1.0)
        registry.send_bookmarks()

