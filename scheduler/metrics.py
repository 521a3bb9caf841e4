"""Prometheus metrics of the scheduler, served at /metrics (kube-scheduler's names where they exist)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60)

SCHEDULE_ATTEMPTS = Counter(
    "scheduler_schedule_attempts_total", "Scheduling attempts by result (scheduled, unschedulable, error).",
    ["result", "profile"], registry=REGISTRY)
ATTEMPT_DURATION = Histogram(
    "scheduler_scheduling_attempt_duration_seconds", "One scheduling attempt: algorithm plus binding.",
    ["result", "profile"], buckets=LATENCY_BUCKETS, registry=REGISTRY)
POD_SCHEDULING_DURATION = Histogram(
    "scheduler_pod_scheduling_sli_duration_seconds",
    "End-to-end latency of a pod's scheduling: from entering the queue to being bound, over all attempts.",
    ["attempts"], buckets=LATENCY_BUCKETS, registry=REGISTRY)
PENDING_PODS = Gauge("scheduler_pending_pods", "Pods waiting, by queue (active, backoff, unschedulable).",
                     ["queue"], registry=REGISTRY)
PREEMPTION_ATTEMPTS = Counter("scheduler_preemption_attempts_total", "Preemption attempts.", registry=REGISTRY)
PREEMPTION_VICTIMS = Histogram("scheduler_preemption_victims", "Victims chosen per successful preemption.",
                               buckets=(1, 2, 4, 8, 16, 32, 64), registry=REGISTRY)
LEADER = Gauge("leader_election_master_status", "1 while this process leads, 0 otherwise.", ["name"],
               registry=REGISTRY)
