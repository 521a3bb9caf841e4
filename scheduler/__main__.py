"""``python -m scheduler``: the kubemini scheduler process.

Talks to the API server only (``--kubeconfig``), schedules pods whose ``spec.schedulerName`` is one of
its profiles', optionally under leader election (Lease ``kube-system/kube-scheduler``), and serves
/healthz and /metrics. SIGTERM/SIGINT stop it gracefully; losing the lease exits with status 1.
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

from machinery.client import ApiClient, ConfigError, load_config
from machinery.componentserver import ComponentServer
from machinery.events import EventRecorder
from machinery.informer import SharedInformerFactory
from machinery.leaderelection import LeaderElectionConfig, LeaderElector, LeadershipLost
from machinery.logs import configure_logging
from scheduler import metrics
from scheduler.cache import SchedulerCache
from scheduler.config import SchedulerConfig, SchedulerConfigError
from scheduler.config import load_config as load_scheduler_config
from scheduler.framework.interface import Handle
from scheduler.framework.runtime import Framework
from scheduler.plugins import REGISTRY
from scheduler.queue import SchedulingQueue
from scheduler.scheduler import Scheduler

log = logging.getLogger("scheduler")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scheduler",
                                     description="kubemini scheduler: assigns pending pods to nodes.")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster config, then $KUBECONFIG, "
                                             "then ~/.kube/config)")
    parser.add_argument("--context", help="kubeconfig context to use (default: current-context)")
    parser.add_argument("--config", help="a KubeSchedulerConfiguration YAML file (profiles, plugins, weights)")
    parser.add_argument("--kube-api-qps", type=float, default=100.0, help="client-side request rate limit (0: none)")
    parser.add_argument("--kube-api-burst", type=int, default=200, help="client-side burst")
    parser.add_argument("--leader-elect", action="store_true", help="schedule only while holding the lease")
    parser.add_argument("--leader-elect-lease-duration", type=float, default=15.0)
    parser.add_argument("--leader-elect-renew-deadline", type=float, default=10.0)
    parser.add_argument("--leader-elect-retry-period", type=float, default=2.0)
    parser.add_argument("--leader-elect-resource-namespace", default="kube-system")
    parser.add_argument("--leader-elect-resource-name", default="kube-scheduler")
    parser.add_argument("--bind-address", default="127.0.0.1", help="address for /healthz and /metrics")
    parser.add_argument("--port", type=int, default=10259, help="port for /healthz and /metrics (0: any free port)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    try:
        if args.kube_api_qps > 0 and args.kube_api_burst < 1:
            raise ValueError(f"--kube-api-burst must be at least 1 when --kube-api-qps is set "
                             f"(got {args.kube_api_burst})")
        if not 0 <= args.port <= 65535:
            raise ValueError(f"--port must be between 0 and 65535 (got {args.port})")
        config = load_scheduler_config(args.config, set(REGISTRY))
        client_config = load_config(args.kubeconfig, context=args.context).with_overrides(
            qps=args.kube_api_qps, burst=args.kube_api_burst, user_agent="kubemini-scheduler")
        election = None
        if args.leader_elect:
            election = LeaderElectionConfig(
                args.leader_elect_resource_namespace, args.leader_elect_resource_name,
                f"{socket.gethostname()}_{uuid.uuid4()}", args.leader_elect_lease_duration,
                args.leader_elect_renew_deadline, args.leader_elect_retry_period)
    except (ConfigError, SchedulerConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return uvloop.run(_serve(client_config, config, election, args))


def build_scheduler(client: ApiClient, config: SchedulerConfig, recorder: EventRecorder) -> Scheduler:
    """The scheduler with one framework per profile, sharing one queue, cache and set of informers."""
    informers = SharedInformerFactory(client)
    cache = SchedulerCache()
    waiting_pods: dict = {}
    profiles = {}
    for profile in config.profiles:
        handle = Handle(client=client, informers=informers, clock=client.clock, recorder=recorder,
                        snapshot=cache.snapshot, waiting_pods=waiting_pods)
        profiles[profile.scheduler_name] = Framework(
            profile, REGISTRY, handle, percentage_of_nodes_to_score=config.percentage_of_nodes_to_score)
    first = next(iter(profiles.values()))

    def pre_enqueue(pod_info) -> bool:
        name = pod_info.spec.get("schedulerName") or "default-scheduler"
        framework = profiles.get(name, first)
        return framework.pre_enqueue(pod_info) is None

    queue = SchedulingQueue(first.less, clock=client.clock, initial_backoff=config.pod_initial_backoff_seconds,
                            max_backoff=config.pod_max_backoff_seconds, pre_enqueue=pre_enqueue)
    for framework in profiles.values():
        framework.handle.extra["nominated_pods_for_node"] = queue.nominated_pods_for_node
        framework.handle.extra["pre_filter_plugins"] = framework.points["preFilter"]
        framework.handle.extra["activate"] = queue.activate
    return Scheduler(client, informers, profiles, queue, cache, recorder, clock=client.clock)


async def _serve(client_config, config: SchedulerConfig, election: LeaderElectionConfig | None, args) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with ApiClient(client_config) as client:
        recorder = EventRecorder(client, "default-scheduler", host=socket.gethostname())
        state: dict = {}
        server = ComponentServer(metrics.REGISTRY, host=args.bind_address, port=args.port,
                                 checks={"informer-sync": lambda: election is not None or state.get("synced", False)})
        try:
            server.bind()
        except OSError as exc:
            log.error("%s", exc)
            return 1

        async def schedule() -> None:
            scheduler = build_scheduler(client, config, recorder)
            state["scheduler"] = scheduler
            scheduler.informers.start()
            try:
                await scheduler.informers.wait_for_sync()
                state["synced"] = True
                metrics.LEADER.labels("kube-scheduler").set(1 if election else 0)
                await scheduler.run()
            finally:
                metrics.LEADER.labels("kube-scheduler").set(0)
                await scheduler.informers.stop()

        async def lead() -> LeadershipLost | None:
            if election is None:
                await schedule()
                return None
            elector = LeaderElector(client, election, client.clock,
                                    on_new_leader=lambda who: log.info("the leader is now %s", who))
            return await elector.run(schedule)

        log.info("scheduler pid %d talking to %s with profiles %s", os.getpid(), client_config.server,
                 ", ".join(p.scheduler_name for p in config.profiles))
        async with asyncio.TaskGroup() as tasks:
            recording = tasks.create_task(recorder.run(), name="events")
            serving = tasks.create_task(server.serve(), name="component server")
            running = tasks.create_task(lead(), name="scheduler")
            stopping = tasks.create_task(stop.wait(), name="signals")
            await asyncio.wait({serving, running, stopping}, return_when=asyncio.FIRST_COMPLETED)
            for task in (recording, serving, running, stopping):
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


if __name__ == "__main__":
    sys.exit(main())
