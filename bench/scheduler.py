"""Scheduler benchmark: 1,000 nodes and 10,000 pods, throughput and per-pod latency from a watch.

Nodes (32 CPU, 128 GiB, 110 pods each, spread over 10 zone labels) are created through the API; the
scheduler process runs without a client rate limit. A watch on pods records when each pod is seen
bound; throughput is pods ÷ (last binding - first creation request), and a pod's latency is from
its creation response to the event showing it bound. Batches: plain pods, then pods with a zone
topology spread constraint, then pods with preferred pod anti-affinity on the hostname.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson

from bench.load import percentile, run_concurrently
from bench.rawhttp import Connection
from kubemini.apiserverproc import ApiServerProcess, write_kubeconfig
from kubemini.etcdserver import EtcdServer
from kubemini.process import SchedulerProcess

ZONES = 10


def node(i: int) -> dict:
    name = f"node-{i:04d}"
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  "topology.kubernetes.io/zone": f"zone-{i % ZONES}"}}}


NODE_STATUS = orjson.dumps({"status": {
    "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
    "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}})


def pod(name: str, namespace: str, kind: str) -> dict:
    labels = {"app": kind}
    spec: dict = {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                                  "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}
    if kind == "spread":
        spec["topologySpreadConstraints"] = [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                              "whenUnsatisfiable": "DoNotSchedule",
                                              "labelSelector": {"matchLabels": labels}}]
    elif kind == "anti":
        spec["affinity"] = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": labels},
                                                "topologyKey": "kubernetes.io/hostname"}}]}}
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": spec}


class _Writer:
    def __init__(self, host: str, port: int, requests) -> None:
        self.host, self.port, self.requests = host, port, requests

    async def open(self, lane: int) -> Connection:
        return await Connection.open(self.host, self.port)

    async def __call__(self, i: int, conn: Connection) -> None:
        method, path, body, content_type, expected = self.requests(i)
        status, text = await conn.request(method, path, body, content_type)
        if status != expected:
            raise RuntimeError(f"{method} {path}: {status} {text[:200]!r}")


async def _create_nodes(host: str, port: int, count: int) -> None:
    await run_concurrently(count, _Writer(host, port, lambda i: (
        "POST", "/api/v1/nodes", orjson.dumps(node(i)), "application/json", 201)))
    await run_concurrently(count, _Writer(host, port, lambda i: (
        "PATCH", f"/api/v1/nodes/node-{i:04d}/status", NODE_STATUS, "application/merge-patch+json", 200)))


async def _watch_bindings(host: str, port: int, namespace: str, expected: int, bound_at: dict[str, float],
                          ready: asyncio.Event) -> None:
    conn = await Connection.open(host, port)
    await conn.start_stream(f"/api/v1/namespaces/{namespace}/pods?watch=true&timeoutSeconds=900")
    ready.set()
    buffer = b""
    while len(bound_at) < expected:
        chunk = await conn.read_chunk()
        if not chunk:
            break
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        now = time.perf_counter()
        for line in lines:
            if not line:
                continue
            obj = orjson.loads(line)["object"]
            if obj["spec"].get("nodeName"):
                bound_at.setdefault(obj["metadata"]["name"], now)
    conn.close()


async def _batch(host: str, port: int, namespace: str, kind: str, count: int, nodes: int) -> dict:
    bound_at: dict[str, float] = {}
    created_at: dict[str, float] = {}
    ready = asyncio.Event()
    watching = asyncio.create_task(_watch_bindings(host, port, namespace, count, bound_at, ready))
    await ready.wait()

    class Creates(_Writer):
        async def __call__(self, i: int, conn: Connection) -> None:
            await super().__call__(i, conn)
            created_at[f"{kind}-{i:05d}"] = time.perf_counter()

    started = time.perf_counter()
    await run_concurrently(count, Creates(host, port, lambda i: (
        "POST", f"/api/v1/namespaces/{namespace}/pods", orjson.dumps(pod(f"{kind}-{i:05d}", namespace, kind)),
        "application/json", 201)))
    await asyncio.wait_for(watching, 900)
    latencies = [bound_at[name] - created_at[name] for name in bound_at if name in created_at]
    return {"kind": kind, "pods": count, "nodes": nodes, "seconds": max(bound_at.values()) - started,
            "pods_per_s": count / (max(bound_at.values()) - started),
            "p50_ms": percentile(latencies, 50) * 1e3, "p99_ms": percentile(latencies, 99) * 1e3}


async def bench_scheduler(work_dir: Path, nodes: int, batches: list[tuple[str, int]]) -> list[dict]:
    """Its own etcd and API server (the other benchmarks leave thousands of unscheduled pods behind)."""
    etcd = EtcdServer(work_dir / "sched-etcd").start()
    api = ApiServerProcess([etcd.endpoint], work_dir).start()
    host, port = "127.0.0.1", api.port
    scheduler = SchedulerProcess(write_kubeconfig(work_dir / "sched-kubeconfig", api.url), work_dir,
                                 extra_args=["--kube-api-qps", "0"])
    results = []
    try:
        await _create_nodes(host, port, nodes)
        scheduler.start()
        for kind, count in batches:
            namespace = f"sched-{kind}"
            conn = await Connection.open(host, port)  # a fresh one: the server closes idle keep-alives
            await conn.request("POST", "/api/v1/namespaces", orjson.dumps({"metadata": {"name": namespace}}))
            conn.close()
            results.append(await _batch(host, port, namespace, kind, count, nodes))
    finally:
        scheduler.stop()
        api.stop()
        etcd.stop()
    return results
