"""The runtime's Prometheus metrics: CRI operations by method and result, their latency, objects by state."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

operations = Counter("kubemini_runtime_operations_total", "CRI calls handled, by method and gRPC code",
                     ["operation", "code"])
latency = Histogram("kubemini_runtime_operation_duration_seconds", "CRI call latency by method", ["operation"],
                    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
sandboxes = Gauge("kubemini_runtime_sandboxes", "Pod sandboxes by state", ["state"])
containers = Gauge("kubemini_runtime_containers", "Containers by state", ["state"])


def observe_runtime(runtime) -> None:
    """Refresh the object gauges from the runtime's tables (called when /metrics is scraped)."""
    for gauge, records in ((sandboxes, runtime.list_sandboxes()), (containers, runtime.list_containers())):
        counts: dict[str, int] = {}
        for record in records:
            counts[record.state] = counts.get(record.state, 0) + 1
        gauge.clear()
        for state, count in counts.items():
            gauge.labels(state).set(count)
