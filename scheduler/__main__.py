"""``python -m scheduler``: the kubemini scheduler process.

Talks to the API server only (``--kubeconfig``), schedules pods whose ``spec.schedulerName`` is one of
its profiles', optionally under leader election (Lease ``kube-system/kube-scheduler``), and serves
/healthz and /metrics. SIGTERM/SIGINT stop it gracefully; losing the lease exits with status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys

import uvloop

from machinery.client import ApiClient, ClientConfig, ConfigError
from machinery.component import add_component_flags, component_settings, serve_component
from machinery.events import EventRecorder
from machinery.informer import SharedInformerFactory
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
    add_component_flags(parser, port=10259, lease_name="kube-scheduler")
    parser.add_argument("--config", help="a KubeSchedulerConfiguration YAML file (profiles, plugins, weights)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    try:
        config = load_scheduler_config(args.config, set(REGISTRY))
        settings = component_settings(args, user_agent="kubemini-scheduler")
        check_plugin_args(config)
    except (ConfigError, SchedulerConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    synced: list[bool] = []

    async def schedule(client: ApiClient) -> None:
        recorder = EventRecorder(client, "default-scheduler", host=socket.gethostname())
        scheduler = build_scheduler(client, config, recorder)
        scheduler.informers.start()
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(recorder.run(), name="events")
                await scheduler.informers.wait_for_sync()
                synced.append(True)
                await scheduler.run()
        finally:
            await scheduler.informers.stop()

    metrics.LEADER.labels("kube-scheduler").set(0)
    log.info("profiles: %s", ", ".join(p.scheduler_name for p in config.profiles))
    return uvloop.run(serve_component(
        "scheduler", settings, metrics.REGISTRY, schedule, ready=lambda: bool(synced),
        on_leading=lambda leading: metrics.LEADER.labels("kube-scheduler").set(int(leading))))


def check_plugin_args(config: SchedulerConfig) -> None:
    """Build every profile once, offline, so that bad plugin args are a clear error at start-up rather than
    a traceback when this scheduler starts leading (building touches no network)."""
    offline = ApiClient(ClientConfig(server="http://127.0.0.1:1"))
    try:
        build_scheduler(offline, config, EventRecorder(offline, "default-scheduler"))
    except (TypeError, KeyError) as exc:
        raise SchedulerConfigError(f"invalid plugin configuration: {exc}") from exc


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


if __name__ == "__main__":
    sys.exit(main())
