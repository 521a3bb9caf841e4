"""Prometheus metrics of the controller-manager, served at /metrics.

Work queue metrics carry client-go's names (``workqueue_depth``, ``workqueue_adds_total``,
``workqueue_retries_total``, ``workqueue_work_duration_seconds``, labelled by controller name), read
from the queues at scrape time, so dashboards built for kube-controller-manager read the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from machinery.workqueue import WorkQueue

REGISTRY = CollectorRegistry(auto_describe=True)

WORK_DURATION = Histogram(
    "workqueue_work_duration_seconds", "How long processing an item from the work queue takes.", ["name"],
    registry=REGISTRY, buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60),
)
LEADER = Gauge("leader_election_master_status", "1 while this process leads, 0 otherwise.", ["name"],
               registry=REGISTRY)


class WorkQueueCollector(Collector):
    """Depth, adds and retries of every registered queue, read when Prometheus scrapes."""

    def __init__(self) -> None:
        self._queues: list[WorkQueue] = []

    def register(self, queue: WorkQueue) -> Callable[[float], None]:
        """Track ``queue``; returns the callback to pass as its ``on_work_duration``."""
        self._queues.append(queue)
        return WORK_DURATION.labels(queue.name).observe

    def collect(self) -> Iterable:
        depth = GaugeMetricFamily("workqueue_depth", "Current depth of the work queue.", labels=["name"])
        adds = CounterMetricFamily("workqueue_adds", "Items added to the work queue.", labels=["name"])
        retries = CounterMetricFamily("workqueue_retries", "Rate-limited re-adds (retries).", labels=["name"])
        longest = GaugeMetricFamily("workqueue_longest_running_processor_seconds",
                                    "How long the longest-running worker has been processing its item.",
                                    labels=["name"])
        for queue in self._queues:
            depth.add_metric([queue.name], queue.depth)
            adds.add_metric([queue.name], queue.adds_total)
            retries.add_metric([queue.name], queue.retries_total)
            longest.add_metric([queue.name], queue.longest_processing_seconds())
        yield from (depth, adds, retries, longest)


QUEUES = WorkQueueCollector()
REGISTRY.register(QUEUES)
