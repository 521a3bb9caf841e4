"""``python -m controllers``: the kubemini controller-manager process.

Talks to the API server only (``--kubeconfig``), runs the enabled controllers, optionally under
leader election (Lease ``kube-system/kube-controller-manager``), and serves /healthz and /metrics.
SIGTERM/SIGINT stop it gracefully (the lease, if held, is released so a standby takes over at
once). Losing the lease exits with status 1.
"""

from __future__ import annotations

import argparse
import logging
import sys

import uvloop

from controllers.manager import CONTROLLERS, ControllerManager, canonical_name, select_controllers
from controllers.metrics import LEADER, REGISTRY
from machinery.client import ApiClient, ConfigError
from machinery.component import add_component_flags, component_settings, serve_component
from machinery.logs import configure_logging

log = logging.getLogger("controllers")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m controllers",
        description="kubemini controller-manager: the reconcile loops that make workloads real.")
    add_component_flags(parser, port=10257, lease_name="kube-controller-manager")
    parser.add_argument("--controllers", default="*",
                        help="comma-separated: '*' for all, 'name' to enable, '-name' to disable "
                             f"(known: {', '.join(sorted(CONTROLLERS))})")
    parser.add_argument("--concurrent-syncs", action="append", default=[], metavar="NAME=N",
                        help="workers for one controller, e.g. replicaset=10 (repeatable)")
    parser.add_argument("--min-resync-period", type=float, default=0.0,
                        help="seconds between informer resyncs (0: never; level-driven loops do not need them)")
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
        controllers = select_controllers([c.strip() for c in args.controllers.split(",") if c.strip()])
        workers = _workers(args.concurrent_syncs)
        settings = component_settings(args, user_agent="kubemini-controller-manager")
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    managers: list[ControllerManager] = []
    LEADER.labels("kube-controller-manager").set(0)

    async def run_controllers(client: ApiClient) -> None:
        manager = ControllerManager(client, controllers, workers=workers, resync_period=args.min_resync_period)
        managers.append(manager)
        await manager.run_controllers()

    return uvloop.run(serve_component(
        "controller-manager", settings, REGISTRY, run_controllers,
        ready=lambda: bool(managers) and managers[-1].synced(),
        on_leading=lambda leading: LEADER.labels("kube-controller-manager").set(int(leading))))


if __name__ == "__main__":
    sys.exit(main())
