"""What every kubemini component process does the same way: flags, client, leader election, serving.

The controller-manager and the scheduler (and later the kubelet) each have their own work, but
reach the API server, elect a leader, serve /healthz and /metrics, react to signals and exit with
the same codes: 0 after SIGTERM/SIGINT, 1 when the lease was lost or the metrics server died, 2 for
bad flags (one ``error:`` line). :func:`add_component_flags` adds the shared flags,
:func:`component_settings` turns them into a client configuration and a leader-election
configuration, and :func:`serve_component` runs ``work(client)`` — under the lease when asked —
until one of those ends it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from machinery.client import ApiClient, ClientConfig, load_config
from machinery.componentserver import ComponentServer
from machinery.leaderelection import LeaderElectionConfig, LeaderElector, LeadershipLost

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComponentSettings:
    client: ClientConfig
    election: LeaderElectionConfig | None
    bind_address: str
    port: int


def add_component_flags(parser: argparse.ArgumentParser, *, port: int, lease_name: str) -> None:
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster config, then $KUBECONFIG, "
                                             "then ~/.kube/config)")
    parser.add_argument("--context", help="kubeconfig context to use (default: current-context)")
    parser.add_argument("--kube-api-qps", type=float, default=100.0, help="client-side request rate limit (0: none)")
    parser.add_argument("--kube-api-burst", type=int, default=200, help="client-side burst")
    parser.add_argument("--leader-elect", action="store_true", help="work only while holding the lease")
    parser.add_argument("--leader-elect-lease-duration", type=float, default=15.0, metavar="SECONDS")
    parser.add_argument("--leader-elect-renew-deadline", type=float, default=10.0, metavar="SECONDS")
    parser.add_argument("--leader-elect-retry-period", type=float, default=2.0, metavar="SECONDS")
    parser.add_argument("--leader-elect-resource-namespace", default="kube-system")
    parser.add_argument("--leader-elect-resource-name", default=lease_name)
    parser.add_argument("--bind-address", default="127.0.0.1", help="address for /healthz and /metrics")
    parser.add_argument("--port", type=int, default=port, help="port for /healthz and /metrics (0: any free port)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"])


def component_settings(args: argparse.Namespace, user_agent: str) -> ComponentSettings:
    """The settings the shared flags describe; ValueError or ConfigError (one line) when they are wrong."""
    if args.kube_api_qps > 0 and args.kube_api_burst < 1:
        raise ValueError(f"--kube-api-burst must be at least 1 when --kube-api-qps is set (got {args.kube_api_burst})")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be between 0 and 65535 (got {args.port})")
    client = load_config(args.kubeconfig, context=args.context).with_overrides(
        qps=args.kube_api_qps, burst=args.kube_api_burst, user_agent=user_agent)
    election = None
    if args.leader_elect:
        election = LeaderElectionConfig(
            args.leader_elect_resource_namespace, args.leader_elect_resource_name,
            f"{socket.gethostname()}_{uuid.uuid4()}", args.leader_elect_lease_duration,
            args.leader_elect_renew_deadline, args.leader_elect_retry_period)
    return ComponentSettings(client, election, args.bind_address, args.port)


async def serve_component(name: str, settings: ComponentSettings, registry: CollectorRegistry,
                          work: Callable[[ApiClient], Awaitable[None]], *,
                          ready: Callable[[], bool] = lambda: True,
                          on_leading: Callable[[bool], None] = lambda _leading: None) -> int:
    """Serve /healthz and /metrics and run ``work(client)`` (while leading, with leader election) until a
    signal (exit 0), a lost lease or a dead metrics server (exit 1)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    election = settings.election
    async with ApiClient(settings.client) as client:
        server = ComponentServer(registry, host=settings.bind_address, port=settings.port,
                                 checks={"ready": lambda: election is not None or ready()})
        try:
            server.bind()
        except OSError as exc:
            log.error("%s", exc)
            return 1

        async def lead() -> LeadershipLost | None:
            if election is None:
                await work(client)
                return None
            elector = LeaderElector(client, election, client.clock,
                                    on_new_leader=lambda who: log.info("the leader is now %s", who))
            log.info("waiting to lead %s/%s as %s", election.lease_namespace, election.lease_name, election.identity)

            async def leading() -> None:
                on_leading(True)
                try:
                    await work(client)
                finally:
                    on_leading(False)

            return await elector.run(leading)

        log.info("%s pid %d talking to %s", name, os.getpid(), settings.client.server)
        async with asyncio.TaskGroup() as tasks:
            serving = tasks.create_task(server.serve(), name="component server")
            running = tasks.create_task(lead(), name=name)
            stopping = tasks.create_task(stop.wait(), name="signals")
            await asyncio.wait({serving, running, stopping}, return_when=asyncio.FIRST_COMPLETED)
            for task in (serving, running, stopping):
                task.cancel()
    if stop.is_set():
        log.info("stopped")
        return 0
    if serving.done() and not serving.cancelled():
        log.error("the /healthz and /metrics server stopped unexpectedly; exiting")
        return 1
    outcome = None if running.cancelled() else running.result()
    if isinstance(outcome, LeadershipLost):
        log.error("leader election lost (%s); exiting", outcome.reason)
        return 1
    return 0
