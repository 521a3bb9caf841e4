"""``python -m controllers``: the kubemini controller-manager process.

Talks to the API server only (``--kubeconfig``), runs the enabled controllers, optionally under
leader election, and serves /healthz and /metrics. SIGTERM/SIGINT stop it gracefully (the lease,
if held, is released so a standby takes over at once). Losing the lease exits with status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import uuid

import uvloop

from controllers.manager import CONTROLLERS, ControllerManager, canonical_name, select_controllers
from controllers.metrics import REGISTRY
from machinery.client import ApiClient, ConfigError, load_config
from machinery.componentserver import ComponentServer
from machinery.leaderelection import LeaderElectionConfig, LeadershipLost
from machinery.logs import configure_logging

log = logging.getLogger("controllers")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m controllers",
        description="kubemini controller-manager: the reconcile loops that make workloads real.")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster config, then $KUBECONFIG, "
                                             "then ~/.kube/config)")
    parser.add_argument("--context", help="kubeconfig context to use (default: current-context)")
    parser.add_argument("--controllers", default="*",
                        help="comma-separated: '*' for all, 'name' to enable, '-name' to disable "
                             f"(known: {', '.join(sorted(CONTROLLERS))})")
    parser.add_argument("--concurrent-syncs", action="append", default=[], metavar="NAME=N",
                        help="workers for one controller, e.g. replicaset=10 (repeatable)")
    parser.add_argument("--kube-api-qps", type=float, default=100.0, help="client-side request rate limit")
    parser.add_argument("--kube-api-burst", type=int, default=200, help="client-side burst")
    parser.add_argument("--min-resync-period", type=float, default=0.0,
                        help="seconds between informer resyncs (0: never; level-driven loops do not need them)")
    parser.add_argument("--leader-elect", action="store_true", help="run only while holding the lease")
    parser.add_argument("--leader-elect-lease-duration", type=float, default=15.0)
    parser.add_argument("--leader-elect-renew-deadline", type=float, default=10.0)
    parser.add_argument("--leader-elect-retry-period", type=float, default=2.0)
    parser.add_argument("--leader-elect-resource-namespace", default="kube-system")
    parser.add_argument("--leader-elect-resource-name", default="kube-controller-manager")
    parser.add_argument("--bind-address", default="127.0.0.1", help="address for /healthz and /metrics")
    parser.add_argument("--port", type=int, default=10257, help="port for /healthz and /metrics (0: any free port)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    return parser.parse_args(argv)


def _workers(pairs: list[str]) -> dict[str, int]:
    workers: dict[str, int] = {}
    for pair in pairs:
        name, _, count = pair.partition("=")
        name = canonical_name(name)
        if name not in CONTROLLERS or not count.isdigit() or int(count) < 1:
            raise ValueError(f"--concurrent-syncs {pair!r}: want NAME=N with N ≥ 1 and NAME one of "
                             f"{', '.join(sorted(CONTROLLERS))}")
        workers[name] = int(count)
    return workers


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    try:
        if args.kube_api_qps > 0 and args.kube_api_burst < 1:
            raise ValueError(f"--kube-api-burst must be at least 1 when --kube-api-qps is set (got "
                             f"{args.kube_api_burst})")
        if not 0 <= args.port <= 65535:
            raise ValueError(f"--port must be between 0 and 65535 (got {args.port})")
        controllers = select_controllers([c.strip() for c in args.controllers.split(",") if c.strip()])
        workers = _workers(args.concurrent_syncs)
        config = load_config(args.kubeconfig, context=args.context).with_overrides(
            qps=args.kube_api_qps, burst=args.kube_api_burst, user_agent="kubemini-controller-manager")
        election = None
        if args.leader_elect:
            election = LeaderElectionConfig(
                args.leader_elect_resource_namespace, args.leader_elect_resource_name,
                f"{socket.gethostname()}_{uuid.uuid4()}", args.leader_elect_lease_duration,
                args.leader_elect_renew_deadline, args.leader_elect_retry_period)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return uvloop.run(_serve(config, controllers, workers, election, args))


async def _serve(config, controllers, workers, election, args) -> int:
    """Run the manager and the component server until a signal, a lost lease or a failure."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with ApiClient(config) as client:
        manager = ControllerManager(client, controllers, workers=workers, resync_period=args.min_resync_period)
        server = ComponentServer(REGISTRY, host=args.bind_address, port=args.port,
                                 checks={"informer-sync": lambda: election is not None or manager.synced()})
        try:
            server.bind()
        except OSError as exc:
            log.error("%s", exc)
            return 1
        log.info("controller-manager pid %d talking to %s", os.getpid(), config.server)
        async with asyncio.TaskGroup() as tasks:
            serving = tasks.create_task(server.serve(), name="component server")
            managing = tasks.create_task(manager.run(election), name="controller manager")
            stopping = tasks.create_task(stop.wait(), name="signals")
            await asyncio.wait({serving, managing, stopping}, return_when=asyncio.FIRST_COMPLETED)
            for task in (serving, managing, stopping):
                task.cancel()
    if stop.is_set():
        log.info("stopped")
        return 0
    if serving.done() and not serving.cancelled():
        log.error("the /healthz and /metrics server stopped unexpectedly; exiting")
        return 1
    outcome = None if managing.cancelled() else managing.result()
    if isinstance(outcome, LeadershipLost):
        log.error("leader election lost (%s); exiting", outcome.reason)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
