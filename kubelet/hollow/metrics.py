"""Prometheus metrics of the hollow-node process, served at /metrics.

One registry per :class:`HollowMetrics` (tests and benches may run several fleets in one process);
the process serves the one its fleet was built with.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class HollowMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.nodes_registered = Gauge("hollow_nodes_registered", "Hollow nodes registered (created or adopted).",
                                      registry=self.registry)
        self.lease_renewals = Counter("hollow_lease_renewals", "Node Lease renewals written.",
                                      registry=self.registry)
        self.node_status_updates = Counter("hollow_node_status_updates", "Node status heartbeats written.",
                                           registry=self.registry)
        self.pod_status_writes = Counter("hollow_pod_status_writes", "Pod status patches written (Running/Ready).",
                                         registry=self.registry)
        self.pod_deletions = Counter("hollow_pod_deletions", "Pods deleted after their deletion was requested.",
                                     registry=self.registry)
        self.pods_running = Gauge("hollow_pods_running", "Pods bound to hollow nodes with a pod IP assigned.",
                                  registry=self.registry)
        self.errors = Counter("hollow_errors", "Writes that failed, by kind of write.", ["kind"],
                              registry=self.registry)
