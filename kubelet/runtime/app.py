"""Wiring of the runtime process: image store, pod network, runc, the runtime, gRPC, the streaming server (exec,
attach, port-forward) and /healthz + /metrics.

Separate from ``__main__`` so tests and ``kubemini up`` can run the same assembly in-process or as a child.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kubelet.runtime import metrics
from kubelet.runtime.images import ImageStore
from kubelet.runtime.images.builtin import ensure_builtin_images
from kubelet.runtime.network import PodNetwork
from kubelet.runtime.runc import Runc, find_runc
from kubelet.runtime.runtime import PAUSE_IMAGE, Runtime
from kubelet.runtime.server import serve
from kubelet.runtime.streaming import StreamingServer

log = logging.getLogger(__name__)


class RuntimeApp:
    def __init__(self, *, root: Path, pod_cidr: str, bridge: str = "kubemini0", runc: str | None = None,
                 pause_image: str | None = None, pids_limit: int = 0, ip_forward: bool = False,
                 backend: str = "runc") -> None:
        self.root = root
        self.ip_forward = ip_forward
        root.mkdir(parents=True, exist_ok=True)
        self.images = ImageStore(root / "images")
        self.network = PodNetwork(root / "network", pod_cidr, bridge)
        self.runtime = Runtime(root / "state", images=self.images, network=self.network,
                               runc=self._oci_runtime(backend, runc, root), pause_image=pause_image or PAUSE_IMAGE,
                               pids_limit=pids_limit)
        self.server = None
        self.http = None
        self.streaming = None

    @staticmethod
    def _oci_runtime(backend: str, runc: str | None, root: Path) -> Runc:
        """runc, or the process backend: ocirun, which takes the same command lines (its own state directory)."""
        if backend == "process":
            from kubelet.runtime.process.install import install

            return Runc(install(root / "bin"), str(root / "ocirun"))
        if backend != "runc":
            raise ValueError(f"unknown backend {backend!r} (runc or process)")
        return Runc(find_runc(runc), str(root / "runc"))

    async def start(self, listen: str, *, metrics_port: int = 0, streaming_port: int = 0) -> None:
        await asyncio.to_thread(ensure_builtin_images, self.images)
        await self.network.ensure_bridge(ip_forward=self.ip_forward)
        await self.runtime.recover()
        self.streaming = StreamingServer(self.runtime, "127.0.0.1", streaming_port)
        await self.streaming.start()
        self.server = await serve(self.runtime, listen, self.network_ready, self.streaming)
        if metrics_port:
            self.http = await asyncio.start_server(self._http, "127.0.0.1", metrics_port)

    async def network_ready(self) -> tuple[bool, str]:
        """Status asks this every few seconds: a sysfs read, and a repair only when the bridge is gone or down."""
        if self.network.bridge_up():
            return True, ""
        try:
            await self.network.ensure_bridge(ip_forward=self.ip_forward)
        except Exception as e:
            return False, f"pod bridge unavailable: {e}"
        return True, ""

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1].decode(errors="replace") if request.count(b" ") >= 2 else "/"
            if path in ("/healthz", "/livez", "/readyz"):
                status, body, kind = "200 OK", b"ok", "text/plain"
            elif path == "/metrics":
                metrics.observe_runtime(self.runtime)
                status, body, kind = "200 OK", generate_latest(), CONTENT_TYPE_LATEST
            else:
                status, body, kind = "404 Not Found", b"not found", "text/plain"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        writer.close()

    async def stop(self) -> None:
        if self.http is not None:
            self.http.close()
        if self.server is not None:
            await self.server.stop(grace=2)
        if self.streaming is not None:
            await self.streaming.stop()
        self.runtime.close()
