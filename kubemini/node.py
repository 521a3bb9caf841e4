"""One node on this machine for ``make up``: kubemini's CRI runtime and a kubelet, and a clean way down.

Starting is two child processes (:class:`~kubemini.process.RuntimeProcess`,
:class:`~kubemini.process.KubeletProcess`) and a wait until the Node reports Ready. Stopping must leave no
container, mount, veth or cgroup behind, but the runtime — like containerd — keeps containers running when it
stops; so :func:`drain_runtime` removes every pod sandbox through CRI (which stops and removes its containers)
before the runtime is stopped, and the bridge goes last.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc

from kubelet.pods.cgroups import remove_pod_cgroups
from proto.cri import api_pb2 as cri
from proto.cri import api_pb2_grpc as cri_grpc

POD_CIDR = "10.88.0.0/24"
BRIDGE = "kubemini0"
SBIN = "/usr/sbin:/usr/bin:/sbin:/bin"


def node_prerequisites(*, runc: bool = True) -> str | None:
    """Why a node cannot run here (one line saying what to do), or None. ``runc=False``: the runtime's process
    backend makes the containers itself."""
    if os.geteuid() != 0:
        return "running pods needs root (mounts, cgroups, network namespaces): run `make up` as root"
    needed = [("busybox", "busybox-static"), ("catatonit", "catatonit"), ("ip", "iproute2")]
    for binary, package in [("runc", "runc")] * runc + needed:
        if shutil.which(binary, path=SBIN) is None:
            alternative = " (or --runtime process, which needs no runc)" if binary == "runc" else ""
            return f"{binary} is missing: apt-get install -y {package}{alternative}"
    return None


def wait_node_ready(api_url: str, node: str, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{api_url}/api/v1/nodes/{node}", timeout=2) as resp:
                conditions = json.loads(resp.read()).get("status", {}).get("conditions") or []
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                return True
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.2)
    return False


def drain_runtime(endpoint: str, timeout: float = 60.0) -> int:
    """Stop and remove every pod sandbox (and so every container) the runtime has; returns how many."""
    with grpc.insecure_channel(endpoint) as channel:
        stub = cri_grpc.RuntimeServiceStub(channel)
        try:
            sandboxes = stub.ListPodSandbox(cri.ListPodSandboxRequest(), timeout=10).items
        except grpc.RpcError:
            return 0
        for sandbox in sandboxes:
            stub.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=sandbox.id), timeout=timeout)
            stub.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id), timeout=timeout)
            remove_pod_cgroups(sandbox.metadata.uid)  # the kubelet's level of the hierarchy, as it would
        return len(sandboxes)


def remove_bridge(name: str = BRIDGE) -> None:
    subprocess.run(["ip", "link", "del", name], check=False, capture_output=True)


def kubelet_root(data_dir: Path) -> Path:
    return data_dir / "kubelet"


def runtime_root(data_dir: Path) -> Path:
    return data_dir / "runtime"


def runtime_socket(data_dir: Path) -> Path:
    return runtime_root(data_dir) / "cri.sock"
