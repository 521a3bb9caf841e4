"""Controller-manager benchmark: how fast a 1,000-replica Deployment becomes 1,000 pod objects and back to 0.

A Deployment is created with the controller-manager running (no scheduler or kubelet: pods stay
Pending, which is what the controllers' write path is about). A watch on the namespace's pods counts
ADDED and DELETED events; the clock stops at the 1,000th. The achieved pod write rate is printed as a
ratio of the raw etcd put rate measured in the same run.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import orjson

from kubemini.process import ControllerManagerProcess

NAMESPACE = "bench-deploy"


def deployment(replicas: int) -> dict:
    labels = {"app": "bench"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bench"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}}}


async def _count_until(client: httpx.AsyncClient, event_type: str, target: int, started: asyncio.Event) -> float:
    """Watch pods; return the monotonic time when the ``target``-th event of ``event_type`` arrived."""
    seen = 0
    async with client.stream("GET", f"/api/v1/namespaces/{NAMESPACE}/pods",
                             params={"watch": "true", "timeoutSeconds": "600"}) as stream:
        started.set()
        async for line in stream.aiter_lines():
            if line and orjson.loads(line)["type"] == event_type:
                seen += 1
                if seen == target:
                    return time.monotonic()
    raise RuntimeError(f"the watch ended after {seen} {event_type} events (wanted {target})")


async def _timed(client: httpx.AsyncClient, event_type: str, target: int, action) -> float:
    started = asyncio.Event()
    counting = asyncio.create_task(_count_until(client, event_type, target, started))
    await started.wait()
    begin = time.monotonic()
    await action()
    return await asyncio.wait_for(counting, 600) - begin


MANAGER_ARGS = ["--controllers", "replicaset,deployment", "--kube-api-qps", "0"]


async def bench_deployment(api_url: str, kubeconfig: Path, log_dir: Path, replicas: int) -> dict:
    """Seconds from creating the Deployment to its ``replicas``-th pod, and from scaling to 0 to the last deletion.

    The controller-manager runs without a client-side rate limit (``--kube-api-qps 0``), so the figure is
    what the controllers and the API server can do; the default limit (100 qps) would cap it at ~100 pods/s.
    """
    manager = ControllerManagerProcess(kubeconfig, log_dir, extra_args=MANAGER_ARGS)
    manager.start()
    try:
        async with httpx.AsyncClient(base_url=api_url, timeout=60) as client:
            await client.post("/api/v1/namespaces", json={"metadata": {"name": NAMESPACE}})

            async def create() -> None:
                resp = await client.post(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments",
                                         json=deployment(replicas))
                resp.raise_for_status()

            async def scale_to_zero() -> None:
                resp = await client.patch(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/bench/scale",
                                          content=orjson.dumps({"spec": {"replicas": 0}}),
                                          headers={"Content-Type": "application/merge-patch+json"})
                resp.raise_for_status()

            up = await _timed(client, "ADDED", replicas, create)
            down = await _timed(client, "DELETED", replicas, scale_to_zero)
    finally:
        manager.stop()
    return {"replicas": replicas, "up_s": up, "down_s": down,
            "creates_per_s": replicas / up, "deletes_per_s": replicas / down}
