"""``python -m apiserver``: run the kubemini API server."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from apiserver.server.app import ResourceFastPath, ServerConfig, create_app
from apiserver.server.logs import configure_logging


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m apiserver",
        description="kubemini API server: the Kubernetes REST API over etcd.",
    )
    parser.add_argument("--etcd-servers", default="http://127.0.0.1:2379",
                        help="comma-separated etcd client URLs (default: %(default)s)")
    parser.add_argument("--bind-address", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default: %(default)s)")
    parser.add_argument("--compaction-interval", type=float, default=300.0,
                        help="seconds between etcd compactions; 0 disables (default: %(default)s)")
    parser.add_argument("--bookmark-interval", type=float, default=60.0,
                        help="seconds between watch bookmarks (default: %(default)s)")
    parser.add_argument("--no-watch-cache", action="store_true", help="serve lists and watches from etcd")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    config = ServerConfig(
        etcd_servers=[s.strip() for s in args.etcd_servers.split(",") if s.strip()],
        watch_cache=not args.no_watch_cache,
        compaction_interval=args.compaction_interval or float("inf"),
        bookmark_interval=args.bookmark_interval,
    )
    app = create_app(config)
    server = ApiServer(uvicorn.Config(
        ResourceFastPath(app), host=args.bind_address, port=args.port, loop="uvloop", http="httptools",
        log_config=None, access_log=False, timeout_graceful_shutdown=5, lifespan="on",
    ), app)
    server.run()
    return 0 if server.started else 1


class ApiServer(uvicorn.Server):
    """uvicorn's server, closing every watch once it has stopped accepting connections.

    Clients see a clean end of their watch streams and reconnect elsewhere (or to the next
    instance), instead of waiting for the graceful-shutdown timeout or being re-admitted to a
    server that is about to exit.
    """

    def __init__(self, config: uvicorn.Config, app) -> None:
        super().__init__(config)
        self.fastapi_app = app

    async def shutdown(self, sockets=None) -> None:
        for server in self.servers:
            server.close()
        registry = getattr(self.fastapi_app.state, "registry", None)
        if registry is not None:
            registry.close_watches()
        await super().shutdown(sockets)


if __name__ == "__main__":
    logging.captureWarnings(True)
    sys.exit(main())
