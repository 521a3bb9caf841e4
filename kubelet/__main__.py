"""``python -m kubelet``: the kubemini node agent.

Registers the node, runs the pods bound to it through a CRI runtime (kubemini's ``python -m
kubelet.runtime`` or containerd), probes them, reports their status, and serves container logs, exec and
attach (plus /healthz and /metrics) on ``--port``. SIGTERM/SIGINT stop the kubelet and leave the
containers running — a kubelet restart does not restart healthy containers.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from pathlib import Path

import uvloop

from kubelet.kubelet import Kubelet, KubeletConfig
from kubelet.node import NodeConfig, RegistrationError
from kubelet.node.config import parse_node_labels, parse_taints
from machinery.client import ApiClient, ConfigError, load_config
from machinery.logs import configure_logging

log = logging.getLogger("kubelet")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kubelet",
                                     description="kubemini kubelet: runs the pods bound to this node through CRI.")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
    parser.add_argument("--node-name", default=socket.gethostname().lower(), help="the Node's name (default: hostname)")
    parser.add_argument("--container-runtime-endpoint", default="unix:///run/kubemini/cri.sock",
                        help="the CRI runtime's gRPC endpoint (kubemini's runtime or containerd's socket)")
    parser.add_argument("--root-dir", type=Path, default=Path("/var/lib/kubemini/kubelet"),
                        help="volumes, termination messages and checkpoints live here")
    parser.add_argument("--pod-logs-dir", type=Path, default=Path("/var/log/pods"),
                        help="container logs: <dir>/<namespace>_<pod>_<uid>/<container>/<restart>.log")
    parser.add_argument("--pod-cidr", help="this node's pod CIDR (spec.podCIDR); must match the runtime's")
    parser.add_argument("--port", type=int, default=10250, help="kubelet server port (logs, exec, /healthz, /metrics)")
    parser.add_argument("--address", default="0.0.0.0", help="address the kubelet server listens on")
    parser.add_argument("--node-ip", help="the node's InternalIP (default: the address of the default route)")
    parser.add_argument("--node-labels", default="", help="k=v,... labels to register the node with")
    parser.add_argument("--register-with-taints", default="", help="key=value:Effect,... taints to register with")
    parser.add_argument("--max-pods", type=int, default=110)
    parser.add_argument("--capacity", default="", help="override capacity, e.g. cpu=4,memory=8Gi")
    parser.add_argument("--system-reserved", default="", help="e.g. cpu=100m,memory=256Mi (taken from allocatable)")
    parser.add_argument("--kube-api-qps", type=float, default=50.0)
    parser.add_argument("--kube-api-burst", type=int, default=100)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    return parser.parse_args(argv)


def _pairs(text: str, flag: str) -> dict[str, str]:
    pairs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag}: {item!r} is not key=value")
        pairs[key] = value
    return pairs


def kubelet_config(args: argparse.Namespace) -> KubeletConfig:
    """The configuration the flags describe; ValueError (one line) when they are wrong."""
    node = NodeConfig(node_name=args.node_name, root_dir=args.root_dir.resolve(), kubelet_port=args.port,
                      node_ip=args.node_ip, pod_cidr=args.pod_cidr, labels=parse_node_labels(args.node_labels),
                      taints=parse_taints(args.register_with_taints), max_pods=args.max_pods,
                      capacity_overrides=_pairs(args.capacity, "--capacity"),
                      system_reserved=_pairs(args.system_reserved, "--system-reserved"))
    return KubeletConfig(node=node, runtime_endpoint=args.container_runtime_endpoint,
                         pod_logs_dir=args.pod_logs_dir.resolve(), address=args.address)


async def serve(args: argparse.Namespace, config: KubeletConfig) -> int:
    client_config = load_config(args.kubeconfig).with_overrides(
        qps=args.kube_api_qps, burst=args.kube_api_burst, user_agent=f"kubemini-kubelet/{config.node.node_name}")
    try:
        config.node.root_dir.mkdir(parents=True, exist_ok=True)
        config.pod_logs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        log.error("cannot create %s: %s (see --root-dir and --pod-logs-dir)", err.filename, err.strerror)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with ApiClient(client_config) as client:
        kubelet = Kubelet(client, config)
        running = asyncio.create_task(kubelet.run(), name="kubelet")
        stopping = asyncio.create_task(stop.wait(), name="signals")
        try:
            await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (running, stopping):
                task.cancel()
            results = await asyncio.gather(running, stopping, return_exceptions=True)
    if stop.is_set():
        log.info("stopped (containers keep running)")
        return 0
    error = results[0]
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]  # the TaskGroup's wrapping: report the one failure that stopped it
    if isinstance(error, (OSError, RegistrationError)):
        log.error("%s", error)
    elif isinstance(error, BaseException) and not isinstance(error, asyncio.CancelledError):
        log.error("the kubelet stopped: %r", error, exc_info=error)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    try:
        config = kubelet_config(args)
        load_config(args.kubeconfig)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return uvloop.run(serve(args, config))


if __name__ == "__main__":
    sys.exit(main())
