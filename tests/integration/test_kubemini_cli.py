"""The ``kubemini`` command end to end: real processes in a temp data dir on a random free port.

One story, as a user would live it: ``up -d`` (as root a node that gets Ready and runs a pod with a memory-backed
emptyDir), ``status``, ``logs apiserver``, a second ``up`` refused, ``etcd snapshot save``, ``down`` leaving no
process, mount or bridge, ``etcd snapshot restore`` and ``up -d`` again with the object saved in the snapshot.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import secrets
import subprocess
import sys
import tarfile
from pathlib import Path

import httpx
import pytest

from kubemini import clusterstate
from kubemini.cluster import mounts_under
from kubemini.ports import free_port
from tests.support import wait_for

AS_ROOT = os.geteuid() == 0
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "cli-test"},
       "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "600"],
                                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
                "volumes": [{"name": "scratch", "emptyDir": {"medium": "Memory"}}],
                "terminationGracePeriodSeconds": 1}}


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


def pod_running(api: httpx.Client) -> bool:
    return api.get("/api/v1/namespaces/default/pods/cli-test").json().get("status", {}).get("phase") == "Running"


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
    snapshot = data_dir.parent / "etcd.snapshot"
    saved = kubemini("etcd", "snapshot", "save", str(snapshot), "--data-dir", str(data_dir))
    assert saved.returncode == 0, saved.stderr
    assert snapshot.stat().st_size > 0

    refused = kubemini("etcd", "snapshot", "restore", str(snapshot), "--data-dir", str(data_dir))
    assert refused.returncode == 1 and "kubemini down" in refused.stderr

    if AS_ROOT:  # something for down to clean up: a container and a tmpfs mount under the data dir
        assert api.post("/api/v1/namespaces/default/pods", json=POD).status_code == 201
        wait_for(lambda: pod_running(api), timeout=30, message="the pod to run")
        assert mounts_under(data_dir)
    pids = clusterstate.read_pids(data_dir)
    assert len(pids) >= 4

    stopped = kubemini("down", "--data-dir", str(data_dir))
    assert stopped.returncode == 0, stopped.stderr
    assert not [name for name, pid in pids.items() if clusterstate.alive(pid)]
    assert not (data_dir / "pids.json").exists()
    assert mounts_under(data_dir) == []
    assert not bridge_exists(f"{bridge_prefix}0")

    restored = kubemini("etcd", "snapshot", "restore", str(snapshot), "--data-dir", str(data_dir))
    assert restored.returncode == 0, restored.stderr
    assert up(data_dir, bridge_prefix).returncode == 0
    record = clusterstate.read_cluster(data_dir)
    assert record is not None
    response = httpx.get(f"{record.api_url}/api/v1/namespaces/default/configmaps/before-snapshot", timeout=10)
    assert response.status_code == 200, response.text
    assert kubemini("down", "--data-dir", str(data_dir)).returncode == 0
