"""Shared fixtures: one real etcd and one real API server process per test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from hypothesis import settings

from kubemini.apiserverproc import ApiServerProcess, write_kubeconfig
from kubemini.etcdserver import EtcdServer
from kubemini.process import ControllerManagerProcess

# CI runs the property tests with a fixed seed and no deadline, so a run is reproducible and a busy
# machine cannot fail it; developers' runs keep exploring new examples.
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

KUBECTL = os.environ.get("KUBEMINI_KUBECTL", "/usr/lib/google-cloud-sdk/bin/kubectl.1.32")


@pytest.fixture(scope="session")
def etcd(tmp_path_factory):
    server = EtcdServer(tmp_path_factory.mktemp("etcd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def apiserver(etcd, tmp_path_factory):
    proc = ApiServerProcess([etcd.endpoint], tmp_path_factory.mktemp("apiserver"),
                            extra_args=["--bookmark-interval", "1"])
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def kubeconfig(apiserver, tmp_path_factory) -> Path:
    return write_kubeconfig(tmp_path_factory.mktemp("kube") / "config", apiserver.url)


@pytest.fixture(scope="session")
def controller_manager(kubeconfig, tmp_path_factory):
    """One controller-manager process (all controllers) against the session's API server."""
    proc = ControllerManagerProcess(kubeconfig, tmp_path_factory.mktemp("controller-manager"))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def api(apiserver):
    with httpx.Client(base_url=apiserver.url, timeout=30) as client:
        yield client


@pytest.fixture
def namespace(api) -> str:
    name = "t-" + uuid.uuid4().hex[:10]
    resp = api.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    assert resp.status_code == 201, resp.text
    return name


class Kubectl:
    def __init__(self, kubeconfig: Path, cache_dir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.cache_dir = cache_dir

    def run(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60):
        cmd = [KUBECTL, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache_dir), *args]
        result = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def __call__(self, *args: str, **kw) -> str:
        return self.run(*args, **kw).stdout


@pytest.fixture(scope="session")
def kubectl(kubeconfig, tmp_path_factory):
    if not shutil.which(KUBECTL) and not os.path.exists(KUBECTL):
        pytest.fail(f"kubectl not found at {KUBECTL}; set KUBEMINI_KUBECTL")
    return Kubectl(kubeconfig, tmp_path_factory.mktemp("kubecache"))
