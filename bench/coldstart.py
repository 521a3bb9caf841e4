"""Cold start and idle memory of a whole ``kubemini up`` cluster.

Cold start: ``python -m kubemini up -d`` in a fresh temp data dir, timed from the command's launch until it
returns — which ``-d`` does once every node is Ready (as root with runc one real node; otherwise the control
plane only, which the result says). Each run starts from nothing (new data dir, new etcd), is taken down again
and repeated; the figures are the median and the worst run. Each component's "ready in" line gives where the
time goes.

Idle memory: after the last start the cluster is left alone for ``idle_seconds`` and the RSS of every recorded
component (each process and its descendants, from /proc) is summed: the control plane (etcd, API server,
controller-manager, scheduler) and the node (CRI runtime, its shims, kubelet) separately. RSS double-counts
shared pages (the Python interpreter's text), so PSS from /proc/<pid>/smaps_rollup is reported beside it.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from kubemini import clusterstate
from kubemini.ports import free_port

CONTROL_PLANE = ("etcd", "apiserver", "controller-manager", "scheduler")
READY_LINE = re.compile(r"^\s+(.+?)\s+ready in\s+([\d.]+)s")


def _kubemini(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubemini", *args], capture_output=True, text=True, timeout=180)


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (children from /proc/<pid>/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
    return found


def _memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in KiB; zeros if it is gone."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    values = dict(re.findall(r"^(Rss|Pss):\s+(\d+) kB", rollup, re.MULTILINE))
    return int(values.get("Rss", 0)), int(values.get("Pss", 0))


def _group_memory_mib(pids: list[int]) -> tuple[float, float]:
    every = {p for pid in pids for p in _descendants(pid)}
    rss, pss = map(sum, zip(*(_memory_kib(p) for p in every), strict=True)) if every else (0, 0)
    return rss / 1024, pss / 1024


def bench_cold_start(tmp: Path, runs: int = 3, idle_seconds: float = 10.0) -> dict:
    seconds: list[float] = []
    phases: dict[str, list[float]] = {}
    nodes = 0
    memory: dict[str, float] = {}
    for run in range(runs):
        data_dir = tmp / f"coldstart-{run}"
        started = time.monotonic()
        done = _kubemini("up", "-d", "--data-dir", str(data_dir), "--port", str(free_port()),
                         "--bridge-prefix", "kmbench", "--pod-cidr-prefix", "10.232")
        seconds.append(time.monotonic() - started)
        try:
            if done.returncode != 0:
                raise RuntimeError(f"kubemini up failed: {done.stderr.strip()}")
            for line in done.stdout.splitlines():
                if match := READY_LINE.match(line):
                    phases.setdefault(match[1], []).append(float(match[2]))
            record = clusterstate.read_cluster(data_dir)
            nodes = len(record.nodes) if record else 0
            if run == runs - 1:
                time.sleep(idle_seconds)
                pids = clusterstate.read_pids(data_dir)
                plane = [pid for name, pid in pids.items() if name in CONTROL_PLANE or name.startswith("etcd-")]
                node = [pid for pid in pids.values() if pid not in plane]
                memory["control_plane_rss_mib"], memory["control_plane_pss_mib"] = _group_memory_mib(plane)
                memory["node_rss_mib"], memory["node_pss_mib"] = _group_memory_mib(node)
        finally:
            _kubemini("down", "--data-dir", str(data_dir))
    return {"runs": runs, "nodes": nodes, "median_s": statistics.median(seconds), "max_s": max(seconds),
            "phases_median_s": {name: statistics.median(values) for name, values in phases.items()},
            "idle_seconds": idle_seconds, **memory}


def print_cold_start(result: dict) -> None:
    what = f"{result['nodes']} node(s) Ready" if result["nodes"] else "control plane ready (no node: not root/no runc)"
    phases = ", ".join(f"{name} {value:.1f}s" for name, value in result["phases_median_s"].items())
    print(f"cold start, `kubemini up -d` until {what}: median {result['median_s']:.2f} s, worst "
          f"{result['max_s']:.2f} s over {result['runs']} runs (target <= 3 s); ready at: {phases}")
    print(f"idle memory after {result['idle_seconds']:.0f} s: control plane (etcd, API server, controller-manager, "
          f"scheduler) {result['control_plane_rss_mib']:.0f} MiB RSS / {result['control_plane_pss_mib']:.0f} MiB PSS "
          f"(target <= 300 MB); node (runtime + shims + kubelet) {result['node_rss_mib']:.0f} MiB RSS / "
          f"{result['node_pss_mib']:.0f} MiB PSS")
