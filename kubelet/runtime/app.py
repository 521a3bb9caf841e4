"""Wiring of the runtime process: image store, pod network, runc, the runtime, gRPC, the streaming server (exec,
attach, port-forward) and /healthz + /metrics.

Like containerd's ``/run/containerd``, the runtime's state — records, bundles, pod files, pinned namespaces, shim
logs and sockets, runc's own state — lives on a tmpfs the runtime mounts at ``<root>/state`` (writable layers and
images stay on disk under ``<root>``): a pod start creates some thirty files and directories there, and on a
filesystem that must search for a free inode (ext4 without a journal skips recently deleted ones) that was up to a
fifth of a busy node's CPU. The tmpfs outlives a restart of the runtime, so running pods are recovered; the runtime
unmounts it when it stops with no pod sandbox left, and a reboot empties it (as it ends every container).

Separate from ``__main__`` so tests and ``kubemini up`` can run the same assembly in-process or as a child.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kubelet.runtime import metrics, mounts
from kubelet.runtime.images import ImageStore
from kubelet.runtime.images.builtin import ensure_builtin_images
from kubelet.runtime.network import PodNetwork
from kubelet.runtime.runc import Runc, find_runc
from kubelet.runtime.runtime import PAUSE_IMAGE, Runtime
from kubelet.runtime.server import serve
from kubelet.runtime.streaming import StreamingServer

log = logging.getLogger(__name__)
STATE_SIZE = "512m"  # an upper bound: a tmpfs uses memory only for what it holds (~30 KiB per pod)
MS_NOSUID, MS_NODEV = 0x2, 0x4


def mount_state(state: Path) -> bool:
    """A tmpfs on ``state`` unless one is there already; whether it is (False: a directory that already holds a
    previous runtime's files on disk, kept as it is)."""
    state.mkdir(parents=True, exist_ok=True)
    if os.path.ismount(state):
        return True
    if any(state.iterdir()):
        log.warning("%s holds state on disk from an earlier runtime: keeping it there (no tmpfs)", state)
        return False
    mounts.mount("kubemini-state", state, "tmpfs", f"size={STATE_SIZE},mode=0700", flags=MS_NOSUID | MS_NODEV)
    return True


class RuntimeApp:
    def __init__(self, *, root: Path, pod_cidr: str, bridge: str = "kubemini0", runc: str | None = None,
                 pause_image: str | None = None, pids_limit: int = 0, ip_forward: bool = False,
                 backend: str = "runc") -> None:
        self.root = root
        self.ip_forward = ip_forward
        root.mkdir(parents=True, exist_ok=True)
        self.state = root / "state"
        self.state_mounted = mount_state(self.state)
        self.images = ImageStore(root / "images")
        self.network = PodNetwork(root / "network", pod_cidr, bridge)
        self.runtime = Runtime(self.state, writable=root / "writable", images=self.images, network=self.network,
                               runc=self._oci_runtime(backend, runc, root, self.state),
                               pause_image=pause_image or PAUSE_IMAGE, pids_limit=pids_limit)
        self.server = None
        self.http = None
        self.streaming = None

    @staticmethod
    def _oci_runtime(backend: str, runc: str | None, root: Path, state: Path) -> Runc:
        """runc, or the process backend: ocirun, which takes the same command lines (its own state directory)."""
        if backend == "process":
            from kubelet.runtime.process.install import install

            return Runc(install(root / "bin"), str(state / "ocirun"))
        if backend != "runc":
            raise ValueError(f"unknown backend {backend!r} (runc or process)")
        return Runc(find_runc(runc), str(state / "runc"))

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
        if self.state_mounted and not self.runtime.list_sandboxes():
            mounts.unmount(self.state)  # nothing to remember for a next runtime
