"""Prometheus metrics of the API server, served at /metrics.

Every layer records into this one registry (storage: etcd latency; server: requests, watchers).
Names follow kube-apiserver's where a counterpart exists, so dashboards read the same.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "apiserver_request_total", "Requests by verb, resource and HTTP code.",
    ["verb", "resource", "code"], registry=REGISTRY,
)
REQUEST_LATENCY = Histogram(
    "apiserver_request_duration_seconds", "Request latency by verb and resource (watches excluded).",
    ["verb", "resource"], registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WATCHERS = Gauge(
    "apiserver_registered_watchers", "Watches currently open, by resource.", ["resource"], registry=REGISTRY,
)
CACHE_OBJECTS = Gauge(
    "apiserver_watch_cache_objects", "Objects held by the watch cache, by resource.", ["resource"],
    registry=REGISTRY,
)
CACHE_REVISION = Gauge(
    "apiserver_watch_cache_resource_version", "Latest etcd revision seen by the watch cache.", ["resource"],
    registry=REGISTRY,
)
ETCD_LATENCY = Histogram(
    "etcd_request_duration_seconds", "etcd request latency by operation.", ["operation"], registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


def observe_request(verb: str, resource: str, code: int, seconds: float) -> None:
    REQUESTS.labels(verb, resource, str(code)).inc()
    REQUEST_LATENCY.labels(verb, resource).observe(seconds)


def render(registry) -> bytes:
    """The exposition text, with cache gauges refreshed from ``registry`` first."""
    for store in registry.stores():
        if store.cache is not None:
            CACHE_OBJECTS.labels(store.info.qualified).set(len(store.cache))
            CACHE_REVISION.labels(store.info.qualified).set(store.cache.revision)
    return generate_latest(REGISTRY)
