"""Pod startup latency through the whole stack: creation → Running as a watch sees it, 30 pods on one node.

A private etcd, API server, scheduler, kubemini CRI runtime and kubelet. N busybox pods (no probes,
``imagePullPolicy: IfNotPresent``) are created at once; each pod's latency runs from just before its
create request to the first watch event showing it Running with every container started — what
Kubernetes' pod startup SLO measures (its target: p99 ≤ 5 s; ours: p99 ≤ 2 s). The baseline, in the same
run and on the same runtime, is what the runtime alone needs for one pod (RunPodSandbox + CreateContainer +
StartContainer over CRI, one pod after another): the ratio says what scheduling, the kubelet and the status
round trip add on top.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import orjson

from bench.load import percentile
from bench.runtime import _remove, _run_batch
from kubemini.apiserverproc import ApiServerProcess, write_kubeconfig
from kubemini.etcdserver import EtcdServer
from kubemini.process import KubeletProcess, RuntimeProcess, SchedulerProcess
from proto.cri import api_pb2_grpc as cri_grpc

BASELINE_PODS = 5


def _pod(i: int, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"start-{i}"},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": node}, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "app", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                                     "command": ["sleep", "3600"]}]}}


def _started(pod: dict) -> bool:
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    return status.get("phase") == "Running" and bool(statuses) and all(s.get("started") for s in statuses)


async def _measure(url: str, node: str, pods: int) -> list[float]:
    async with httpx.AsyncClient(base_url=url, timeout=None) as client:
        await client.post("/api/v1/namespaces", json={"metadata": {"name": "startup"}})
        sent: dict[str, float] = {}
        seen: dict[str, float] = {}
        done = asyncio.Event()

        async def watch() -> None:
            async with client.stream("GET", "/api/v1/namespaces/startup/pods",
                                     params={"watch": "1", "resourceVersion": "0"}) as resp:
                async for line in resp.aiter_lines():
                    if not line:
                        continue
                    obj = orjson.loads(line)["object"]
                    name = obj["metadata"]["name"]
                    if name not in seen and _started(obj):
                        seen[name] = time.perf_counter()
                        if len(seen) == pods:
                            done.set()
                            return

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.5)  # the watch is established

        async def create(i: int) -> None:
            sent[f"start-{i}"] = time.perf_counter()
            resp = await client.post("/api/v1/namespaces/startup/pods", json=_pod(i, node))
            resp.raise_for_status()

        await asyncio.gather(*(create(i) for i in range(pods)))
        try:
            await asyncio.wait_for(done.wait(), timeout=120)
        finally:
            watcher.cancel()
        return [(seen[name] - sent[name]) * 1000 for name in sent]


async def _runtime_baseline(endpoint: str) -> list[float]:
    import grpc

    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = cri_grpc.RuntimeServiceStub(channel)
        sandboxes, latencies = await _run_batch(stub, 900, BASELINE_PODS, 1)
        await _remove(stub, sandboxes)
    return latencies


async def bench_pod_startup(work_dir: Path, pods: int = 30) -> dict:
    """Run the benchmark; returns the numbers (nothing is asserted)."""
    if os.geteuid() != 0 or shutil.which("runc") is None:
        return {"skipped": "needs root and runc"}
    work = work_dir / "pod-startup"
    etcd = EtcdServer(work / "etcd")
    etcd.start()
    procs: list = []
    runtime = RuntimeProcess(work, work / "runtime", pod_cidr="10.213.251.0/24", bridge=f"kmk{secrets.token_hex(3)}")
    try:
        api = ApiServerProcess([etcd.endpoint], work)
        procs.append(api.start())
        kubeconfig = write_kubeconfig(work / "kubeconfig", api.url)
        procs.append(SchedulerProcess(kubeconfig, work).start())
        procs.append(runtime.start(timeout=60))
        baseline = await _runtime_baseline(runtime.endpoint)
        node = "bench-node"
        kubelet = KubeletProcess(kubeconfig, work, node_name=node, runtime_endpoint=runtime.endpoint,
                                 root_dir=work / "kubelet", pod_logs_dir=work / "pod-logs", pod_cidr=runtime.pod_cidr,
                                 extra_args=["--node-ip", "127.0.0.1"])
        procs.append(kubelet.start(timeout=60))
        latencies = await _measure(api.url, node, pods)
        await _delete_pods(api.url, runtime.endpoint)
        return {"pods": pods, "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
                "max_ms": max(latencies), "runtime_p50_ms": percentile(baseline, 50)}
    finally:
        _stop(procs, etcd, runtime.bridge)


async def _delete_pods(url: str, endpoint: str) -> None:
    """Delete the pods and wait until the kubelet has removed every sandbox (the runtime keeps containers
    running when it stops, as containerd does)."""
    import grpc

    from proto.cri import api_pb2 as cri

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await client.delete("/api/v1/namespaces/startup/pods")
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = cri_grpc.RuntimeServiceStub(channel)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not (await stub.ListPodSandbox(cri.ListPodSandboxRequest())).items:
                return
            await asyncio.sleep(0.5)


def _stop(procs: list, etcd: EtcdServer, bridge: str) -> None:
    for proc in reversed(procs):
        proc.stop()
    etcd.stop()
    subprocess.run(["ip", "link", "del", bridge], check=False, capture_output=True)


def print_pod_startup(result: dict) -> None:
    if "skipped" in result:
        print(f"pod startup: skipped ({result['skipped']})")
        return
    print(f"pod startup, {result['pods']} pods created at once on one node (creation -> Running seen by a watch): "
          f"p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms, max {result['max_ms']:.0f} ms "
          f"(target p99 <= 2000 ms); the runtime alone starts one pod in {result['runtime_p50_ms']:.0f} ms "
          f"(p50 ratio {result['p50_ms'] / result['runtime_p50_ms']:.1f})")
