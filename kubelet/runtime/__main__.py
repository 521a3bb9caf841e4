"""``python -m kubelet.runtime``: run kubemini's CRI runtime on a unix socket.

Example::

    python -m kubelet.runtime --listen unix:///run/kubemini/cri.sock --root /var/lib/kubemini/runtime \\
        --pod-cidr 10.88.0.0/24

The runtime keeps running containers when it stops (their shims live on); started again on the same ``--root``
it finds them. It needs root, runc (``apt-get install runc``), and for its built-in images busybox-static and
catatonit.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from kubelet.runtime.errors import RuntimeFailure

DEFAULT_SOCKET = "unix:///run/kubemini/cri.sock"
DEFAULT_ROOT = "/var/lib/kubemini/runtime"
DEFAULT_CIDR = "10.88.0.0/24"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kubelet.runtime",
                                     description="kubemini's container runtime: a CRI (runtime.v1) gRPC server "
                                                 "running pods as runc containers.")
    parser.add_argument("--listen", default=DEFAULT_SOCKET,
                        help=f"gRPC endpoint, unix:///path or host:port (default {DEFAULT_SOCKET})")
    parser.add_argument("--root", default=DEFAULT_ROOT, type=Path,
                        help=f"state, images and container root filesystems (default {DEFAULT_ROOT})")
    parser.add_argument("--pod-cidr", default=DEFAULT_CIDR,
                        help=f"IPv4 range pod IPs are taken from; its first address is the bridge's "
                             f"(default {DEFAULT_CIDR})")
    parser.add_argument("--bridge", default="kubemini0", help="name of the pods' bridge (default kubemini0)")
    parser.add_argument("--ip-forward", action="store_true",
                        help="enable IPv4 forwarding on the host (pods reaching beyond the node)")
    parser.add_argument("--backend", default="runc", choices=["runc", "process"],
                        help="how containers are made: runc, or 'process' for ocirun, kubemini's own OCI runtime "
                             "in Python (namespaces and cgroups directly, for machines without runc; --runc is then "
                             "ignored; see docs/process-backend.md) (default runc)")
    parser.add_argument("--runc", default=None, help="path of the runc binary (default: found on PATH)")
    parser.add_argument("--pause-image", default=None, help="image of the pods' pause process "
                                                            "(default: the built-in kubemini.local/pause:latest)")
    parser.add_argument("--pids-limit", type=int, default=0,
                        help="pids cgroup limit for every container; 0 = unlimited (default 0)")
    parser.add_argument("--metrics-port", type=int, default=0,
                        help="serve /healthz and /metrics on 127.0.0.1:PORT (default: off)")
    parser.add_argument("--streaming-port", type=int, default=0,
                        help="port of the exec/attach/port-forward streaming server on 127.0.0.1; 0 = any free "
                             "port (default 0)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    from kubelet.runtime.app import RuntimeApp

    app = RuntimeApp(root=args.root, pod_cidr=args.pod_cidr, bridge=args.bridge, runc=args.runc,
                     pause_image=args.pause_image, pids_limit=args.pids_limit, ip_forward=args.ip_forward,
                     backend=args.backend)
    await app.start(args.listen, metrics_port=args.metrics_port, streaming_port=args.streaming_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    logging.getLogger("kubelet.runtime").info("serving CRI on %s (root %s)", args.listen, args.root)
    await stop.wait()
    await app.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format='time="%(asctime)s" level=%(levelname)s logger=%(name)s msg="%(message)s"')
    if os.geteuid() != 0:
        print("error: the runtime needs root (it mounts filesystems and creates cgroups and network namespaces)",
              file=sys.stderr)
        return 1
    try:
        asyncio.run(run(args))
    except RuntimeFailure as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
