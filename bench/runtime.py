"""The CRI runtime benchmark: how long from RunPodSandbox to a running container, and what a container costs.

Starts kubemini's runtime (its own root, bridge and pod CIDR), then for N pods measures RunPodSandbox +
CreateContainer + StartContainer of a busybox ``sleep`` — first one pod after another, then 10 at a time as a
kubelet's pod workers would — and reads the memory the runtime process and the per-container shims use with
N pods running. The baseline, measured in the same run on the same machine, is bare runc: ``runc run`` of the
same busybox root filesystem from a prepared bundle, which is the floor any runc-based runtime stands on.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import grpc

from bench.load import percentile
from kubelet.runtime.images import ImageStore
from kubelet.runtime.tasks import shim_pids
from kubemini.process import RuntimeProcess
from proto.cri import api_pb2 as cri
from proto.cri import api_pb2_grpc as cri_grpc


def _sandbox(i: int) -> cri.PodSandboxConfig:
    return cri.PodSandboxConfig(metadata=cri.PodSandboxMetadata(name=f"bench-{i}", namespace="bench",
                                                                uid=str(uuid.uuid4())), hostname=f"bench-{i}")


def _container() -> cri.ContainerConfig:
    return cri.ContainerConfig(metadata=cri.ContainerMetadata(name="app"), image=cri.ImageSpec(image="busybox"),
                               command=["sleep", "3600"])


async def _start_pod(stub: cri_grpc.RuntimeServiceStub, i: int) -> tuple[str, float]:
    started = time.perf_counter()
    config = _sandbox(i)
    sandbox_id = (await stub.RunPodSandbox(cri.RunPodSandboxRequest(config=config))).pod_sandbox_id
    container_id = (await stub.CreateContainer(cri.CreateContainerRequest(
        pod_sandbox_id=sandbox_id, config=_container(), sandbox_config=config))).container_id
    await stub.StartContainer(cri.StartContainerRequest(container_id=container_id))
    return sandbox_id, (time.perf_counter() - started) * 1000


async def _run_batch(stub, first: int, count: int, parallel: int) -> tuple[list[str], list[float]]:
    limit = asyncio.Semaphore(parallel)
    sandboxes: list[str] = []
    latencies: list[float] = []

    async def one(i: int) -> None:
        async with limit:
            sandbox_id, ms = await _start_pod(stub, i)
            sandboxes.append(sandbox_id)
            latencies.append(ms)

    await asyncio.gather(*(one(first + i) for i in range(count)))
    return sandboxes, latencies


async def _remove(stub, sandboxes: list[str]) -> None:
    for sandbox_id in sandboxes:
        await stub.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))
        await stub.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _pss_mib(pid: int) -> float:
    """Proportional set size: shared pages (the Python binary, libraries) split between the processes using them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _bare_runc_ms(work: Path, rootfs_lower: str, rounds: int) -> list[float]:
    """``runc run`` of busybox ``true`` from a prepared bundle on an overlay of the same layers."""
    bundle = work / "bare"
    bundle.mkdir()
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"].update(terminal=False, args=["true"])
    spec["root"] = {"path": str(bundle / "rootfs"), "readonly": False}
    spec["linux"]["cgroupsPath"] = f"/kubemini-bench-{secrets.token_hex(4)}"
    spec["process"].pop("rlimits", None)
    (bundle / "config.json").write_text(json.dumps(spec))
    for name in ("upper", "work", "rootfs"):
        (bundle / name).mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={rootfs_lower},upperdir={bundle / 'upper'},workdir={bundle / 'work'}",
                    str(bundle / "rootfs")], check=True)
    try:
        timings = []
        for i in range(rounds):
            started = time.perf_counter()
            subprocess.run(["runc", "--root", str(work / "bare-runc"), "run", "--bundle", str(bundle), f"bare{i}"],
                           check=True, stdin=subprocess.DEVNULL, capture_output=True)
            timings.append((time.perf_counter() - started) * 1000)
        return timings
    finally:
        subprocess.run(["umount", str(bundle / "rootfs")], check=False)
        subprocess.run(["rmdir", f"/sys/fs/cgroup/memory{spec['linux']['cgroupsPath']}"], check=False,
                       capture_output=True)


def _cleanup(process: RuntimeProcess, work: Path) -> None:
    process.stop()
    subprocess.run(["ip", "link", "del", process.bridge], check=False, capture_output=True)
    shutil.rmtree(work, ignore_errors=True)


async def bench_runtime(work_dir: Path, pods: int) -> dict:
    """Run the benchmark; returns the numbers (nothing is asserted)."""
    if os.geteuid() != 0 or shutil.which("runc") is None:
        return {"skipped": "needs root and runc"}
    work = Path(tempfile.mkdtemp(prefix="runtime-", dir=work_dir))
    root = work / "root"
    process = RuntimeProcess(work, root, pod_cidr="10.213.250.0/24", bridge=f"kmb{secrets.token_hex(3)}")
    process.start(timeout=60)
    try:
        async with grpc.aio.insecure_channel(process.endpoint) as channel:
            stub = cri_grpc.RuntimeServiceStub(channel)
            await _remove(stub, (await _run_batch(stub, 0, 3, 1))[0])  # warm caches (page cache, first imports)
            rss_before = _rss_mib(process.pid)
            sequential_ids, sequential = await _run_batch(stub, 100, pods, 1)
            rss_after = _rss_mib(process.pid)
            shims = shim_pids(root)
            shim_pss = sum(_pss_mib(pid) for pid in shims)
            shim_rss = sum(_rss_mib(pid) for pid in shims)
            await _remove(stub, sequential_ids)
            parallel_ids, parallel = await _run_batch(stub, 1000, pods, 10)
            await _remove(stub, parallel_ids)
        store = ImageStore(root / "images")
        busybox_layers = store.lowerdir(store.get("busybox"))
        bare = _bare_runc_ms(work, busybox_layers, max(10, pods // 5))
    finally:
        _cleanup(process, work)
    return {
        "pods": pods,
        "sequential_p50_ms": percentile(sequential, 50), "sequential_p99_ms": percentile(sequential, 99),
        "parallel_p50_ms": percentile(parallel, 50), "parallel_p99_ms": percentile(parallel, 99),
        "bare_runc_p50_ms": percentile(bare, 50),
        "runtime_rss_before_mib": rss_before, "runtime_rss_after_mib": rss_after,
        "runtime_mib_per_container": (rss_after - rss_before) / pods,
        "shims": len(shims), "shim_pss_mib_per_container": shim_pss / pods,
        "shim_rss_mib_per_shim": shim_rss / max(1, len(shims)),
    }
