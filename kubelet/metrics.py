"""The kubelet's Prometheus metrics (served on the kubelet port's /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

RUNNING_PODS = Gauge("kubelet_running_pods", "Pods with a running sandbox.", registry=REGISTRY)
RUNNING_CONTAINERS = Gauge("kubelet_running_containers", "Running containers.", registry=REGISTRY)
POD_WORKERS = Gauge("kubelet_pod_workers", "Pod workers by state.", ["state"], registry=REGISTRY)
SYNC_DURATION = Histogram("kubelet_pod_worker_duration_seconds", "Duration of one pod sync.", ["operation"],
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=REGISTRY)
POD_START = Histogram("kubelet_pod_start_sli_duration_seconds",
                      "From the pod's creation to all its containers running, as seen by the kubelet.",
                      buckets=(0.25, 0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120), registry=REGISTRY)
RELIST_DURATION = Histogram("kubelet_pleg_relist_duration_seconds", "Duration of one runtime relist.",
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=REGISTRY)
SYNC_ERRORS = Counter("kubelet_pod_sync_errors_total", "Pod syncs that raised.", registry=REGISTRY)
STATUS_WRITES = Counter("kubelet_pod_status_writes_total", "Pod status patches sent.", registry=REGISTRY)
