"""Hollow-node benchmark: what 1,000 heartbeating nodes cost the API server.

A private etcd and API server (the other benchmarks leave thousands of objects behind). First a probe
client creates small ConfigMaps at a steady 20/s for ``seconds`` on the idle server, while the API
server's CPU (utime + stime from /proc/<pid>/stat, as % of one core) is sampled over the window.
Then ``python -m kubelet.hollow`` registers 1,000 nodes; once every node is registered and the first
round of Lease renewals is under way, the same probe runs again for the same time. The figures are
the probe's write latency p50/p99 with the nodes heartbeating, as a ratio of the idle server's, and
the API server's CPU with and without them. The hollow process's own CPU and the Lease renewal rate
it achieved (target ~nodes/10 per second) are printed too.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import urllib.request
from pathlib import Path

import orjson

from bench.load import percentile
from bench.rawhttp import Connection
from kubemini.apiserverproc import ApiServerProcess, write_kubeconfig
from kubemini.etcdserver import EtcdServer
from kubemini.process import HollowNodesProcess

PROBE_RATE = 20  # ConfigMap creates per second
SETTLE_SECONDS = 3.0  # after registration, before measuring: the renewals reach their steady rate


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far (fields 14 and 15 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def lease_renewals(metrics_url: str) -> float:
    with urllib.request.urlopen(metrics_url, timeout=5) as resp:
        text = resp.read().decode()
    match = re.search(r"^hollow_lease_renewals_total (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def probe(host: str, port: int, namespace: str, seconds: float, pids: list[int]) -> dict:
    """Create ConfigMaps at PROBE_RATE/s for ``seconds``; latencies and the CPU % of each pid meanwhile."""
    conn = await Connection.open(host, port)
    latencies: list[float] = []
    count = int(seconds * PROBE_RATE)
    cpu_before = [cpu_seconds(pid) for pid in pids]
    started = time.perf_counter()
    for i in range(count):
        delay = started + i / PROBE_RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        body = orjson.dumps({"metadata": {"name": f"probe-{time.time_ns()}"}, "data": {"i": str(i)}})
        t0 = time.perf_counter()
        status, text = await conn.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body)
        latencies.append(time.perf_counter() - t0)
        if status != 201:
            raise RuntimeError(f"probe create failed: {status} {text[:200]!r}")
    elapsed = time.perf_counter() - started
    cpu = [(cpu_seconds(pid) - before) / elapsed * 100 for pid, before in zip(pids, cpu_before, strict=True)]
    rss = [rss_mib(pid) for pid in pids]
    conn.close()
    return {"p50_ms": percentile(latencies, 50) * 1e3, "p99_ms": percentile(latencies, 99) * 1e3,
            "seconds": elapsed, "cpu_percent": cpu, "rss_mib": rss}


async def _count_ready_nodes(host: str, port: int) -> int:
    conn = await Connection.open(host, port)
    status, body = await conn.request("GET", "/api/v1/nodes?labelSelector=kubemini.io%2Fhollow%3Dtrue")
    conn.close()
    if status != 200:
        raise RuntimeError(f"listing nodes failed: {status}")
    return sum(1 for node in orjson.loads(body)["items"]
               if any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"]))


async def bench_hollow(work_dir: Path, nodes: int = 1000, seconds: float = 20.0) -> dict:
    etcd = EtcdServer(work_dir / "hollow-etcd").start()
    api = ApiServerProcess([etcd.endpoint], work_dir).start()
    host, port = "127.0.0.1", api.port
    hollow = HollowNodesProcess(write_kubeconfig(work_dir / "hollow-kubeconfig", api.url), work_dir,
                                extra_args=["--nodes", str(nodes), "--log-level", "warning"])
    try:
        conn = await Connection.open(host, port)
        await conn.request("POST", "/api/v1/namespaces", orjson.dumps({"metadata": {"name": "probe"}}))
        conn.close()
        await probe(host, port, "probe", 2.0, [])  # warm-up
        idle = await probe(host, port, "probe", seconds, [api.pid])
        started = time.perf_counter()
        await asyncio.to_thread(hollow.start, 120.0)  # ready = every node registered
        registered_s = time.perf_counter() - started
        ready = await _count_ready_nodes(host, port)
        await asyncio.sleep(SETTLE_SECONDS)
        renewals_before = lease_renewals(hollow.url + "/metrics")
        loaded = await probe(host, port, "probe", seconds, [api.pid, hollow.pid])
        renewals = lease_renewals(hollow.url + "/metrics") - renewals_before
    finally:
        hollow.stop()
        api.stop()
        etcd.stop()
    return {"nodes": nodes, "ready": ready, "register_s": registered_s,
            "renewals_per_s": renewals / loaded["seconds"],
            "idle_p50_ms": idle["p50_ms"], "idle_p99_ms": idle["p99_ms"], "idle_cpu": idle["cpu_percent"][0],
            "p50_ms": loaded["p50_ms"], "p99_ms": loaded["p99_ms"], "api_cpu": loaded["cpu_percent"][0],
            "hollow_cpu": loaded["cpu_percent"][1], "hollow_rss_mib": loaded["rss_mib"][1], "seconds": seconds}


def print_hollow(result: dict) -> None:
    print(f"hollow nodes: {result['nodes']} registered in {result['register_s']:.1f} s ({result['ready']} Ready), "
          f"heartbeating at {result['renewals_per_s']:.0f} lease writes/s (target ~{result['nodes'] / 10:.0f}/s); "
          f"probe of {PROBE_RATE} ConfigMap creates/s for {result['seconds']:.0f} s: p50 {result['p50_ms']:.1f} ms, "
          f"p99 {result['p99_ms']:.1f} ms vs idle p50 {result['idle_p50_ms']:.1f} ms, "
          f"p99 {result['idle_p99_ms']:.1f} ms (p99 ratio {result['p99_ms'] / result['idle_p99_ms']:.2f}); "
          f"API server CPU {result['api_cpu']:.0f}% of one core (idle with the probe {result['idle_cpu']:.0f}%); "
          f"hollow process CPU {result['hollow_cpu']:.0f}%, RSS {result['hollow_rss_mib']:.0f} MiB")
