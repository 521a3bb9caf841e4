"""The ``kubemini`` command end to end: real processes in a temp data dir on a random free port.

One story, as a user would live it: ``up -d`` (as root a node that gets Ready and runs, through real kubectl, a
Deployment whose pods mount a memory-backed emptyDir), ``status``, ``logs apiserver``, a second ``up`` refused,
``etcd snapshot save``, ``down`` leaving no process, mount or bridge, the data dir wiped, ``etcd snapshot
restore`` and ``up -d`` again with every object of the snapshot back. A second story runs ``--etcd-members 3``,
kills one member and still writes, then restarts the members on their recorded ports.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx
import pytest

from kubemini import clusterstate
from kubemini.cluster import mounts_under
from kubemini.ports import free_port
from tests.conftest import KUBECTL
from tests.support import wait_for

AS_ROOT = os.geteuid() == 0
DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: cli-test}
spec:
  replicas: 2
  selector: {matchLabels: {app: cli-test}}
  template:
    metadata: {labels: {app: cli-test}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: c, image: busybox, command: [sleep, "600"], volumeMounts: [{name: scratch, mountPath: /scratch}]}
      volumes: [{name: scratch, emptyDir: {medium: Memory}}]
"""
# What a snapshot must bring back: every object of these kinds, by uid.
RESTORED_KINDS = ("namespaces", "configmaps", "secrets", "serviceaccounts", "services", "deployments.apps",
                  "replicasets.apps", "pods", "nodes", "leases.coordination.k8s.io")


def kubemini(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubemini", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def data_dir(tmp_path: Path):
    path = tmp_path / "data"
    yield path
    kubemini("down", "--data-dir", str(path))  # whatever the test left running


def up(data_dir: Path, bridge_prefix: str) -> subprocess.CompletedProcess[str]:
    # a private bridge and pod network: a `make up` cluster may be running on this machine at the same time
    return kubemini("up", "-d", "--data-dir", str(data_dir), "--port", str(free_port()),
                    "--bridge-prefix", bridge_prefix, "--pod-cidr-prefix", "10.231")


def docker_archive(path: Path, tag: str) -> Path:
    """A one-layer image in ``docker save`` format (what ``image load`` gets from users without a registry)."""
    def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        add(tar, "hello.txt", b"hello\n")
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    config = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["/hello"]}, "rootfs": {
        "type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer.getvalue()).hexdigest()]}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    with tarfile.open(path, "w") as tar:
        add(tar, "layer.tar", layer.getvalue())
        add(tar, config_name, config)
        add(tar, "manifest.json", json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": ["layer.tar"]}])
            .encode())
    return path


def images(runtime_root: Path) -> str:
    return subprocess.run([sys.executable, "-m", "kubelet.runtime.images", "--root", str(runtime_root / "images"),
                           "list"], capture_output=True, text=True, check=True).stdout


def bridge_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def kubectl(kubeconfig: str, *args: str, input: str | None = None) -> str:
    done = subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, *args], input=input, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def running_pods(kubeconfig: str) -> list[str]:
    pods = json.loads(kubectl(kubeconfig, "get", "pods", "-l", "app=cli-test", "-o", "json"))["items"]
    return [p["metadata"]["name"] for p in pods if p.get("status", {}).get("phase") == "Running"]


def etcd_leader(endpoint: str) -> bool:
    status = httpx.post(f"{endpoint}/v3/maintenance/status", json={}, timeout=5).json()
    return status["leader"] == status["header"]["member_id"]


def every_object(kubeconfig: str) -> set[tuple[str, str, str, str]]:
    """(kind, namespace, name, uid) of every object of RESTORED_KINDS, as kubectl lists them."""
    listed = json.loads(kubectl(kubeconfig, "get", ",".join(RESTORED_KINDS), "--all-namespaces", "-o", "json"))
    return {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"], o["metadata"]["uid"])
            for o in listed["items"]}


def test_up_status_logs_snapshot_down_restore(data_dir: Path) -> None:
    bridge_prefix = f"kmt{secrets.token_hex(3)}"
    started = up(data_dir, bridge_prefix)
    assert started.returncode == 0, started.stderr
    assert f"export KUBECONFIG={data_dir / 'kubeconfig'}" in started.stdout
    record = clusterstate.read_cluster(data_dir)
    assert record is not None
    api = httpx.Client(base_url=record.api_url, timeout=10)

    status = kubemini("status", "--data-dir", str(data_dir))
    assert status.returncode == 0, status.stdout + status.stderr
    assert "apiserver" in status.stdout and " no " not in status.stdout
    if AS_ROOT:
        [node] = record.nodes
        ready = api.get(f"/api/v1/nodes/{node.name}").json()["status"]["conditions"]
        assert {"type": "Ready", "status": "True"}.items() <= next(c for c in ready if c["type"] == "Ready").items()
        assert f"{node.name:<32} True" in status.stdout

    logs = kubemini("logs", "apiserver", "--data-dir", str(data_dir))
    assert logs.returncode == 0 and "Uvicorn running on" in logs.stdout

    archive = docker_archive(data_dir.parent / "image.tar", "kubemini.test/cli:1")
    loaded = kubemini("image", "load", str(archive), "--data-dir", str(data_dir))
    assert loaded.returncode == 0, loaded.stderr
    for root in [Path(n.runtime_root) for n in record.nodes] or [data_dir / "runtime"]:
        assert "kubemini.test/cli" in images(root)

    again = up(data_dir, bridge_prefix)
    assert again.returncode == 1 and "already running" in again.stderr

    created = api.post("/api/v1/namespaces/default/configmaps",
                       json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "before-snapshot"}})
    assert created.status_code == 201, created.text
    if AS_ROOT:  # something for down to clean up: containers and tmpfs mounts under the data dir
        kubectl(record.kubeconfig, "apply", "-f", "-", input=DEPLOYMENT)
        wait_for(lambda: len(running_pods(record.kubeconfig)) == 2, timeout=60, message="the Deployment's pods to run")
        assert mounts_under(data_dir)
    before = every_object(record.kubeconfig)
    assert ("ConfigMap", "default", "before-snapshot") in {o[:3] for o in before}
    snapshot = data_dir.parent / "etcd.snapshot"
    saved = kubemini("etcd", "snapshot", "save", str(snapshot), "--data-dir", str(data_dir))
    assert saved.returncode == 0, saved.stderr
    assert snapshot.stat().st_size > 0
    refused = kubemini("etcd", "snapshot", "restore", str(snapshot), "--data-dir", str(data_dir))
    assert refused.returncode == 1 and "kubemini down" in refused.stderr
    pids = clusterstate.read_pids(data_dir)
    assert len(pids) >= 4

    stopped = kubemini("down", "--data-dir", str(data_dir))
    assert stopped.returncode == 0, stopped.stderr
    assert not [name for name, pid in pids.items() if clusterstate.alive(pid)]
    assert not (data_dir / "pids.json").exists()
    assert mounts_under(data_dir) == []
    assert not bridge_exists(f"{bridge_prefix}0")

    shutil.rmtree(data_dir)  # the disk is lost: only the snapshot remains
    restored = kubemini("etcd", "snapshot", "restore", str(snapshot), "--data-dir", str(data_dir))
    assert restored.returncode == 0, restored.stderr
    assert up(data_dir, bridge_prefix).returncode == 0
    assert every_object(str(data_dir / "kubeconfig")) >= before
    assert kubemini("down", "--data-dir", str(data_dir)).returncode == 0


def test_three_etcd_members_survive_losing_one(data_dir: Path) -> None:
    port = free_port()
    started = kubemini("up", "-d", "--data-dir", str(data_dir), "--port", str(port), "--nodes", "0",
                       "--etcd-members", "3")
    assert started.returncode == 0, started.stderr
    record = clusterstate.read_cluster(data_dir)
    assert record is not None and [m.name for m in record.etcd_members] == ["etcd-1", "etcd-2", "etcd-3"]
    pids = clusterstate.read_pids(data_dir)
    assert {"etcd-1", "etcd-2", "etcd-3"} <= set(pids)

    leader = next(m.name for m in record.etcd_members if etcd_leader(m.endpoint))
    os.kill(pids[leader], signal.SIGKILL)  # the leader crashes: the other two elect a new one
    wait_for(lambda: not clusterstate.alive(pids[leader]), timeout=10, message=f"{leader} to die")

    def write(name: str) -> bool:
        return subprocess.run([KUBECTL, "--kubeconfig", record.kubeconfig, "create", "configmap", name],
                              capture_output=True, timeout=60).returncode == 0
    # a write racing the election may time out (etcd cannot tell whether it was applied); then they succeed
    wait_for(lambda: write(f"first-after-loss-{time.monotonic_ns()}"), timeout=20, message="a write to succeed")
    for i in range(5):
        kubectl(record.kubeconfig, "create", "configmap", f"after-loss-{i}", "--from-literal=k=v")
    status = kubemini("status", "--data-dir", str(data_dir))
    assert status.returncode == 1 and f"{leader:<24} {pids[leader]:>8}  no" in status.stdout

    assert kubemini("down", "--data-dir", str(data_dir)).returncode == 0
    assert not [name for name, pid in pids.items() if clusterstate.alive(pid)]
    # the members come back on their recorded peer ports, the lost one catches up, the data is all there
    again = kubemini("up", "-d", "--data-dir", str(data_dir), "--port", str(port), "--nodes", "0")
    assert again.returncode == 0, again.stderr
    names = kubectl(record.kubeconfig, "get", "configmaps", "-o", "name")
    assert all(f"configmap/after-loss-{i}" in names for i in range(5))
    refused = kubemini("up", "-d", "--data-dir", str(data_dir), "--etcd-members", "1")
    assert refused.returncode == 1 and "already running" in refused.stderr
    assert kubemini("down", "--data-dir", str(data_dir)).returncode == 0
    wrong = kubemini("up", "-d", "--data-dir", str(data_dir), "--port", str(port), "--etcd-members", "1")
    assert wrong.returncode == 1 and "--etcd-members 3" in wrong.stderr
    assert not clusterstate.read_pids(data_dir)


@pytest.mark.skipif(not AS_ROOT, reason="a node needs root")
@pytest.mark.parametrize(("runtime", "reported"), [("containerd", "containerd://"), ("process", "kubemini://")])
def test_a_node_on_another_runtime(data_dir: Path, runtime: str, reported: str) -> None:
    bridge_prefix = f"kmd{secrets.token_hex(3)}"
    started = kubemini("up", "-d", "--data-dir", str(data_dir), "--port", str(free_port()), "--runtime",
                       runtime, "--bridge-prefix", bridge_prefix, "--pod-cidr-prefix", "10.234")
    assert started.returncode == 0, started.stderr
    record = clusterstate.read_cluster(data_dir)
    assert record is not None and [n.runtime for n in record.nodes] == [runtime]
    node = json.loads(kubectl(record.kubeconfig, "get", "node", record.nodes[0].name, "-o", "json"))
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith(reported)
    # `busybox` means :latest, which containerd would pull (no registry here): the built-in copy is used instead
    kubectl(record.kubeconfig, "apply", "-f", "-",
            input=DEPLOYMENT.replace("image: busybox,", "image: busybox, imagePullPolicy: IfNotPresent,"))
    wait_for(lambda: len(running_pods(record.kubeconfig)) == 2, timeout=60, message="the Deployment's pods to run")
    assert "10.234.0." in kubectl(record.kubeconfig, "get", "pods", "-o", "wide")
    if runtime == "process":  # no runc involved: the containers were made by ocirun
        assert (Path(record.nodes[0].runtime_root) / "state" / "ocirun").is_dir()
        assert not (Path(record.nodes[0].runtime_root) / "state" / "runc").exists()
    socket = record.nodes[0].runtime_socket

    assert kubemini("down", "--data-dir", str(data_dir)).returncode == 0
    assert mounts_under(data_dir) == []
    assert not bridge_exists(f"{bridge_prefix}0")
    shims = subprocess.run(["pgrep", "-f", f"(containerd-shim|shim.py).*{data_dir}"], capture_output=True,
                           text=True).stdout
    assert shims == "", f"{socket}: shims left: {shims}"
