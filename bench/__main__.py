"""``make bench``: API server performance measured against raw etcd in the same run.

Starts a private etcd and API server (child processes, random ports), then prints:

1. raw etcd puts/s through our etcd client vs pod creates/s through the API server, both with 64
   requests in flight and ~1 KiB pods (target ratio >= 0.6);
2. watch delivery latency p50/p99 with 1,000 watchers while 200 writes/s happen (target p99 <= 100 ms);
3. LIST of 10,000 pods from the watch cache (resourceVersion=0) and consistently (from etcd), p50,
   and the ratio to a raw etcd range of the same keys;
4. API server RSS at rest and with 10,000 pods;
5. the controller-manager: a Deployment of 1,000 replicas to 1,000 pod objects and back to 0 (seconds,
   and the pod write rate achieved as a ratio of the raw etcd put rate of 1.);
6. the scheduler: 1,000 nodes, 10,000 plain pods then pods with topology spread and with pod
   anti-affinity — pods/s from first creation to last binding (target >= 300 for plain pods) and p99
   per-pod latency, as a ratio of the API server's create rate of 1.
7. the CRI runtime: RunPodSandbox → container running for 50 busybox pods, one after another and 10 at a time,
   p50/p99 (target p99 <= 500 ms), as a ratio of bare ``runc run`` in the same run; memory of the runtime
   process and of the per-container shims with the pods running.
8. hollow nodes: 1,000 of them heartbeating (~100 Lease writes/s) — the API server's CPU and the p50/p99 of a
   probe's writes meanwhile, as a ratio of the same probe on the idle server (bench/hollow.py).

Nothing here asserts: numbers are printed, with the machine they came from.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import orjson
import uvloop

from apiserver.__main__ import GC_THRESHOLDS
from apiserver.storage.etcd import EtcdClient, prefix_range_end
from bench.coldstart import bench_cold_start, print_cold_start
from bench.controllers import bench_deployment
from bench.hollow import bench_hollow, print_hollow
from bench.kubelet import bench_pod_startup, print_pod_startup
from bench.load import percentile, run_concurrently
from bench.rawhttp import Connection
from bench.runtime import bench_runtime
from bench.scheduler import bench_scheduler
from kubemini.apiserverproc import ApiServerProcess, write_kubeconfig
from kubemini.etcdserver import EtcdServer


def pod(name: str, namespace: str = "bench") -> dict:
    """A ~1 KiB pod, like a small real workload's."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app": "bench", "tier": "backend", "pod-template-hash": "5d8f7c9b6"},
                     "annotations": {"bench.kubemini.io/note": "x" * 420}},
        "spec": {"containers": [{
            "name": "app", "image": "registry.example/bench/app:1.2.3",
            "args": ["--port=8080", "--log-level=info"],
            "ports": [{"containerPort": 8080, "name": "http"}],
            "env": [{"name": "MODE", "value": "bench"}, {"name": "REGION", "value": "local"}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}},
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
        }]},
    }


class EtcdPuts:
    def __init__(self, client: EtcdClient, value: bytes) -> None:
        self.client, self.value = client, value

    async def __call__(self, i: int, _state) -> None:
        await self.client.put(f"/bench/raw/{i}".encode(), self.value)


class PodCreates:
    def __init__(self, host: str, port: int, namespace: str) -> None:
        self.host, self.port, self.namespace = host, port, namespace

    async def open(self, lane: int) -> Connection:
        return await Connection.open(self.host, self.port)

    async def __call__(self, i: int, conn: Connection) -> None:
        status, body = await conn.request("POST", f"/api/v1/namespaces/{self.namespace}/pods",
                                          orjson.dumps(pod(f"p{i:06d}", self.namespace)))
        if status != 201:
            raise RuntimeError(f"create failed: {status} {body[:300]!r}")


async def bench_creates(etcd_endpoint: str, host: str, port: int, n: int) -> dict:
    client = EtcdClient([etcd_endpoint])
    await client.connect()
    value = orjson.dumps(pod("p000000"))
    await run_concurrently(500, EtcdPuts(client, value))  # warm-up
    raw_s, raw_lat = await run_concurrently(n, EtcdPuts(client, value))
    conn = await Connection.open(host, port)
    await conn.request("POST", "/api/v1/namespaces", orjson.dumps({"metadata": {"name": "warm"}}))
    await run_concurrently(500, PodCreates(host, port, "warm"))
    api_s, api_lat = await run_concurrently(n, PodCreates(host, port, "bench"))
    await client.delete_range(b"/bench/raw/", prefix_range_end(b"/bench/raw/"))
    await client.close()
    conn.close()
    return {
        "pod_bytes": len(value),
        "etcd_puts_per_s": n / raw_s, "etcd_p50_ms": percentile(raw_lat, 50) * 1e3,
        "etcd_p99_ms": percentile(raw_lat, 99) * 1e3,
        "creates_per_s": n / api_s, "create_p50_ms": percentile(api_lat, 50) * 1e3,
        "create_p99_ms": percentile(api_lat, 99) * 1e3,
    }


async def bench_watch(host: str, port: int, watchers: int, rate: int, seconds: float) -> dict:
    conn = await Connection.open(host, port)
    await conn.request("POST", "/api/v1/namespaces", orjson.dumps({"metadata": {"name": "watch"}}))
    _, body = await conn.request("GET", "/api/v1/namespaces/watch/configmaps")
    rv = orjson.loads(body)["metadata"]["resourceVersion"]
    latencies: list[float] = []
    counts = [0] * watchers
    expected = int(rate * seconds)
    marker = b'"ts":"'

    async def watch(i: int) -> None:
        c = await Connection.open(host, port)
        status = await c.start_stream(f"/api/v1/namespaces/watch/configmaps?watch=true&resourceVersion={rv}")
        assert status == 200, status
        tail = b""
        while counts[i] < expected:
            chunk = tail + await c.read_chunk()
            now = time.time_ns()
            pos = chunk.find(marker)
            last = 0
            while pos != -1:
                end = chunk.find(b'"', pos + len(marker))
                if end == -1:
                    break
                latencies.append((now - int(chunk[pos + len(marker):end])) / 1e6)
                counts[i] += 1
                last = end
                pos = chunk.find(marker, end)
            tail = chunk[last:] if pos != -1 else b""
        c.close()

    tasks = [asyncio.create_task(watch(i)) for i in range(watchers)]
    await asyncio.sleep(2.0)  # let every watch connect
    interval = 1.0 / rate
    start = time.perf_counter()
    for i in range(expected):
        target = start + i * interval
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        cm = {"metadata": {"name": f"w{i:05d}"}, "data": {"ts": str(time.time_ns())}}
        await conn.request("POST", "/api/v1/namespaces/watch/configmaps", orjson.dumps(cm))
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
    except TimeoutError:
        pass
    conn.close()
    delivered = sum(counts)
    return {"watchers": watchers, "writes": expected, "delivered": delivered,
            "complete": delivered == watchers * expected,
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "max_ms": max(latencies) if latencies else 0}


async def bench_list(etcd_endpoint: str, host: str, port: int, rounds: int, count: int) -> dict:
    conn = await Connection.open(host, port)
    client = EtcdClient([etcd_endpoint])
    await client.connect()

    async def timed(fn) -> float:
        samples = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            await fn()
            samples.append(time.perf_counter() - t0)
        return statistics.median(samples) * 1e3

    # each timed call ends when the whole response has arrived; checking it is not timed
    bodies: dict[str, bytes] = {}

    async def cached():
        status, bodies["cache"] = await conn.request("GET", "/api/v1/namespaces/bench/pods?resourceVersion=0")
        assert status == 200

    async def consistent():
        status, bodies["consistent"] = await conn.request("GET", "/api/v1/namespaces/bench/pods")
        assert status == 200

    ranges = []

    async def raw():
        prefix = b"/registry/pods/bench/"
        ranges.append(len((await client.range(prefix, prefix_range_end(prefix))).kvs))

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the cache catches up with the creates just made
        _, body = await conn.request("GET", "/api/v1/namespaces/bench/pods?resourceVersion=0")
        if len(orjson.loads(body)["items"]) >= count:
            break
        await asyncio.sleep(0.2)
    result = {"cache_p50_ms": await timed(cached), "consistent_p50_ms": await timed(consistent),
              "raw_etcd_p50_ms": await timed(raw)}
    for kind, body in bodies.items():
        assert len(orjson.loads(body)["items"]) >= count, kind
    assert min(ranges) >= count
    await client.close()
    conn.close()
    return result


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} vCPU ({cpu}), {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}"


def print_scheduler(result: dict, api_creates_per_s: float | None) -> None:
    ratio = f"{result['pods_per_s'] / api_creates_per_s:.2f} of the API server's create rate; " \
        if api_creates_per_s else ""
    print(f"scheduler, {result['nodes']} nodes, {result['pods']} {result['kind']} pods: {result['pods_per_s']:.0f} "
          f"pods/s ({result['seconds']:.1f} s; {ratio}target >= 300 for plain pods), latency p50 "
          f"{result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms")


def print_runtime(result: dict) -> None:
    if "skipped" in result:
        print(f"runtime: skipped ({result['skipped']})")
        return
    print(f"runtime, {result['pods']} pods (RunPodSandbox + CreateContainer + StartContainer): one at a time p50 "
          f"{result['sequential_p50_ms']:.0f} ms, p99 {result['sequential_p99_ms']:.0f} ms (target p99 <= 500 ms); "
          f"10 at a time p50 {result['parallel_p50_ms']:.0f} ms, p99 {result['parallel_p99_ms']:.0f} ms; "
          f"bare runc run p50 {result['bare_runc_p50_ms']:.0f} ms (ratio "
          f"{result['sequential_p50_ms'] / result['bare_runc_p50_ms']:.1f}); runtime process "
          f"{result['runtime_rss_before_mib']:.0f} -> {result['runtime_rss_after_mib']:.0f} MiB RSS "
          f"({result['runtime_mib_per_container'] * 1024:.0f} KiB per container); shims "
          f"{result['shim_pss_mib_per_container']:.1f} MiB PSS per pod ({result['shims']} shims: pause + container, "
          f"{result['shim_rss_mib_per_shim']:.1f} MiB RSS each)")


async def main_async(args) -> None:
    if args.only == "scheduler":
        print(f"machine: {machine()}")
        with tempfile.TemporaryDirectory(prefix="kubemini-bench-") as tmp:
            for result in await bench_scheduler(Path(tmp), args.nodes, [("plain", args.pods)]):
                print_scheduler(result, None)
        return
    if args.only == "coldstart":
        print(f"machine: {machine()}")
        with tempfile.TemporaryDirectory(prefix="kubemini-bench-") as tmp:
            print_cold_start(bench_cold_start(Path(tmp)))
        return
    if args.only == "hollow":
        print(f"machine: {machine()}")
        with tempfile.TemporaryDirectory(prefix="kubemini-bench-") as tmp:
            print_hollow(await bench_hollow(Path(tmp), args.hollow_nodes))
        return
    if args.only == "kubelet":
        print(f"machine: {machine()}")
        with tempfile.TemporaryDirectory(prefix="kubemini-bench-") as tmp:
            print_pod_startup(await bench_pod_startup(Path(tmp), args.startup_pods))
        return
    if args.only == "runtime":
        print(f"machine: {machine()}")
        with tempfile.TemporaryDirectory(prefix="kubemini-bench-") as tmp:
            print_runtime(await bench_runtime(Path(tmp), args.runtime_pods))
        return
    with tempfile.TemporaryDirectory(prefix="kubemini-bench-") as tmp:
        etcd = EtcdServer(Path(tmp) / "etcd")
        etcd.start()
        api = ApiServerProcess([etcd.endpoint], Path(tmp))
        api.start()
        try:
            host, port = "127.0.0.1", api.port
            print(f"machine: {machine()}")
            rest_rss = rss_mb(api.pid)
            conn = await Connection.open(host, port)
            await conn.request("POST", "/api/v1/namespaces", orjson.dumps({"metadata": {"name": "bench"}}))
            conn.close()
            creates = await bench_creates(etcd.endpoint, host, port, args.creates)
            print(f"creates: raw etcd {creates['etcd_puts_per_s']:.0f} puts/s (p99 {creates['etcd_p99_ms']:.1f} ms), "
                  f"API server {creates['creates_per_s']:.0f} pod creates/s (p50 {creates['create_p50_ms']:.1f} ms, "
                  f"p99 {creates['create_p99_ms']:.1f} ms), "
                  f"ratio {creates['creates_per_s'] / creates['etcd_puts_per_s']:.2f}"
                  f" (target >= 0.6); pod size {creates['pod_bytes']} bytes")
            raw_puts = creates["etcd_puts_per_s"]
            lists = await bench_list(etcd.endpoint, host, port, args.list_rounds, args.creates)
            print(f"list of {args.creates} pods: cache p50 {lists['cache_p50_ms']:.0f} ms, consistent p50 "
                  f"{lists['consistent_p50_ms']:.0f} ms, raw etcd range p50 {lists['raw_etcd_p50_ms']:.0f} ms, "
                  f"ratios {lists['cache_p50_ms'] / lists['raw_etcd_p50_ms']:.2f} / "
                  f"{lists['consistent_p50_ms'] / lists['raw_etcd_p50_ms']:.2f}")
            print(f"rss: at rest {rest_rss:.0f} MiB, with {args.creates} pods {rss_mb(api.pid):.0f} MiB")
            kubeconfig = write_kubeconfig(Path(tmp) / "kubeconfig", api.url)
            deploy = await bench_deployment(api.url, kubeconfig, Path(tmp), args.replicas)
            up_rate, down_rate = deploy["creates_per_s"], deploy["deletes_per_s"]
            print(f"deployment of {deploy['replicas']} replicas: all pods in {deploy['up_s']:.1f} s "
                  f"({up_rate:.0f} pod creates/s, ratio {up_rate / raw_puts:.2f} of raw etcd puts/s); "
                  f"scaled to 0 in {deploy['down_s']:.1f} s ({down_rate:.0f} pod deletes/s, "
                  f"ratio {down_rate / raw_puts:.2f})")
            for result in await bench_scheduler(Path(tmp), args.nodes, [
                    ("plain", args.pods), ("spread", args.pods // 5), ("anti", args.pods // 5)]):
                print_scheduler(result, creates["creates_per_s"])
            watch = await bench_watch(host, port, args.watchers, args.rate, args.seconds)
            print(f"watch: {watch['watchers']} watchers x {watch['writes']} writes at {args.rate}/s: "
                  f"p50 {watch['p50_ms']:.1f} ms, p99 {watch['p99_ms']:.1f} ms, max {watch['max_ms']:.0f} ms "
                  f"(target p99 <= 100 ms); delivered {watch['delivered']}/{watch['watchers'] * watch['writes']}")
            print_runtime(await bench_runtime(Path(tmp), args.runtime_pods))
            print_pod_startup(await bench_pod_startup(Path(tmp), args.startup_pods))
            print_hollow(await bench_hollow(Path(tmp), args.hollow_nodes))
            print_cold_start(bench_cold_start(Path(tmp)))
        finally:
            api.stop()
            etcd.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description="kubemini API server benchmarks")
    parser.add_argument("--creates", type=int, default=10000, help="pods to create (default: %(default)s)")
    parser.add_argument("--watchers", type=int, default=1000, help="concurrent watchers (default: %(default)s)")
    parser.add_argument("--rate", type=int, default=200, help="writes/s during the watch test (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=10.0, help="watch test duration (default: %(default)s)")
    parser.add_argument("--replicas", type=int, default=1000,
                        help="replicas of the controller benchmark's Deployment (default: %(default)s)")
    parser.add_argument("--nodes", type=int, default=1000,
                        help="nodes for the scheduler benchmark (default: %(default)s)")
    parser.add_argument("--pods", type=int, default=10000,
                        help="plain pods for the scheduler benchmark (default: %(default)s)")
    parser.add_argument("--runtime-pods", type=int, default=50,
                        help="pods for the CRI runtime benchmark (default: %(default)s)")
    parser.add_argument("--hollow-nodes", type=int, default=1000,
                        help="hollow nodes for the heartbeat benchmark (default: %(default)s)")
    parser.add_argument("--startup-pods", type=int, default=30,
                        help="pods for the kubelet's pod startup benchmark (default: %(default)s)")
    parser.add_argument("--only", choices=["runtime", "kubelet", "hollow", "coldstart", "scheduler"],
                        help="run only this benchmark")
    parser.add_argument("--list-rounds", type=int, default=5, help="timed lists per kind (default: %(default)s)")
    args = parser.parse_args()
    gc.set_threshold(*GC_THRESHOLDS)  # the same setting as the API server, so decoding costs compare
    uvloop.run(main_async(args))


if __name__ == "__main__":
    main()
