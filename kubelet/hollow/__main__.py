"""``python -m kubelet.hollow``: N hollow nodes (fake kubelets, like kwok) in one process, for scale tests.

Registers ``--nodes`` Nodes that heartbeat (Lease every 10 s, status every 5 minutes, spread evenly)
and marks pods bound to them Running and Ready without running anything. Serves /healthz (ready once
every node is registered and the pod watch synced) and /metrics on ``--port``. SIGTERM/SIGINT stop
it; the nodes stay registered (delete them with ``kubectl delete nodes -l kubemini.io/hollow=true``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import NoReturn

import uvloop

from kubelet.hollow.config import HollowConfig
from kubelet.hollow.fleet import HollowFleet
from kubelet.hollow.metrics import HollowMetrics
from kubelet.node.config import parse_node_labels, parse_taints
from machinery.client import ApiClient, ConfigError
from machinery.component import add_component_flags, component_settings, serve_component
from machinery.logs import configure_logging

log = logging.getLogger("kubelet.hollow")
DEFAULT_PORT = 10246


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Bad flags: one ``error:`` line (not the whole usage) and exit status 2."""
        self.exit(2, f"error: {message} (see --help)\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _Parser(
        prog="python -m kubelet.hollow",
        description="kubemini hollow nodes: N fake nodes that heartbeat and report bound pods Running and Ready "
                    "without containers (for scale tests).")
    add_component_flags(parser, port=DEFAULT_PORT, lease_name="kubemini-hollow-nodes")
    # one process stands for many kubelets, each with its own request budget: no client-side limit by default
    parser.set_defaults(kube_api_qps=0.0)
    parser.add_argument("--nodes", type=int, default=1, help="how many nodes (default: %(default)s)")
    parser.add_argument("--name-prefix", default="hollow-node-",
                        help="node names are PREFIX0 .. PREFIX<N-1> (default: %(default)s)")
    parser.add_argument("--cpu", default="4", help="each node's CPU capacity (default: %(default)s)")
    parser.add_argument("--memory", default="16Gi", help="each node's memory capacity (default: %(default)s)")
    parser.add_argument("--pods", type=int, default=110, help="each node's pod capacity (default: %(default)s)")
    parser.add_argument("--ephemeral-storage", default="100Gi",
                        help="each node's ephemeral-storage capacity (default: %(default)s)")
    parser.add_argument("--node-labels", default="", metavar="K=V,...", help="extra labels on every node")
    parser.add_argument("--node-taints", default="", metavar="KEY[=VALUE]:EFFECT,...",
                        help="taints every node registers with (like the kubelet's --register-with-taints)")
    parser.add_argument("--pod-ready-delay", type=float, default=0.0, metavar="SECONDS",
                        help="seconds from a pod being bound to it being reported Running/Ready (default: 0)")
    parser.add_argument("--node-lease-duration-seconds", type=int, default=40, metavar="SECONDS",
                        help="each node's Lease duration; it is renewed every quarter of it (default: %(default)s)")
    parser.add_argument("--node-status-report-frequency", type=float, default=300.0, metavar="SECONDS",
                        help="seconds between node status heartbeats (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="API writes in flight at once (default: %(default)s)")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> HollowConfig:
    """The fleet configuration the flags describe; ValueError (one line, naming the flag) when they are wrong."""
    try:
        labels = parse_node_labels(args.node_labels)
    except ValueError as err:
        raise ValueError(f"--node-labels: {err}") from None
    try:
        taints = parse_taints(args.node_taints)
    except ValueError as err:
        raise ValueError(f"--node-taints: {err}") from None
    return HollowConfig(
        nodes=args.nodes, name_prefix=args.name_prefix, cpu=args.cpu, memory=args.memory, pods=args.pods,
        ephemeral_storage=args.ephemeral_storage, labels=labels, taints=taints, pod_ready_delay=args.pod_ready_delay,
        lease_duration=args.node_lease_duration_seconds, status_report_interval=args.node_status_report_frequency,
        concurrency=args.concurrency)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    try:
        config = build_config(args)
        settings = component_settings(args, user_agent="kubemini-hollow-node")
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    metrics = HollowMetrics()
    fleets: list[HollowFleet] = []

    async def run_fleet(client: ApiClient) -> None:
        fleet = HollowFleet(client, config, metrics=metrics, clock=client.clock)
        fleets.append(fleet)
        await fleet.run()

    return uvloop.run(serve_component("hollow-nodes", settings, metrics.registry, run_fleet,
                                      ready=lambda: bool(fleets) and fleets[-1].ready()))


if __name__ == "__main__":
    sys.exit(main())
