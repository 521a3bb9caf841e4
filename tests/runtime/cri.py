"""A CRI client for the runtime tests: starts a runtime process and drives it over gRPC the way crictl does.

The same :class:`CriClient` can point at any runtime.v1 endpoint (kubemini's or containerd's), which is what
makes the suite a wire-compatibility check. Helpers build the sandbox and container configs the kubelet would
send, with the fields the tests vary as keyword arguments.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
import uuid
from pathlib import Path
from typing import ClassVar

import grpc

from kubemini import process
from proto.cri import api_pb2 as cri
from proto.cri import api_pb2_grpc as cri_grpc
from tests.support import wait_for

BUSYBOX = "busybox"


def missing_prerequisites() -> str | None:
    """Why the real-runtime tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "the CRI runtime needs root (mounts, cgroups, network namespaces)"
    for binary, package in (("runc", "runc"), ("busybox", "busybox-static"), ("catatonit", "catatonit"),
                            ("ip", "iproute2")):
        if shutil.which(binary, path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
            return f"{binary} is missing: apt-get install -y {package} (make test installs it)"
    if not Path("/sys/fs/cgroup/memory").is_dir():
        return "no cgroup v1 memory hierarchy at /sys/fs/cgroup/memory"
    return None


class CriClient:
    """Thin synchronous stubs with a default deadline, like crictl's."""

    def __init__(self, endpoint: str, timeout: float = 60.0) -> None:
        self.channel = grpc.insecure_channel(endpoint)
        self.runtime = cri_grpc.RuntimeServiceStub(self.channel)
        self.images = cri_grpc.ImageServiceStub(self.channel)
        self.timeout = timeout

    def __getattr__(self, name: str):
        stub = self.images if hasattr(self.images, name) else self.runtime
        method = getattr(stub, name)

        def call(request=None, **kwargs):
            kwargs.setdefault("timeout", self.timeout)
            return method(request, **kwargs)

        return call

    def close(self) -> None:
        self.channel.close()


class RuntimeProcess(process.RuntimeProcess):
    """kubemini's runtime on a private root, socket, bridge and pod CIDR, logging at debug level."""

    runtime_name: ClassVar[str] = "kubemini"  # what Version reports

    def __init__(self, base: Path) -> None:
        super().__init__(base, base / "root", pod_cidr=f"10.213.{secrets.randbelow(200) + 20}.0/24",
                         bridge=f"kmt{secrets.token_hex(3)}", socket=base / "cri.sock",
                         extra_args=["--log-level", "debug"])

    @property
    def cidr(self) -> str:
        return self.pod_cidr

    def start(self, timeout: float = 60.0) -> RuntimeProcess:
        return super().start(timeout)


def sandbox_config(name: str | None = None, *, namespace: str = "default", host_network: bool = False,
                   log_directory: str = "", cgroup_parent: str = "", labels: dict | None = None,
                   hostname: str = "") -> cri.PodSandboxConfig:
    """The sandbox config the kubelet sends; like the kubelet, no hostname for a hostNetwork pod (it keeps the
    node's UTS namespace, and containerd's runc refuses a hostname without a private one)."""
    name = name or f"pod-{secrets.token_hex(3)}"
    config = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=name, namespace=namespace, uid=str(uuid.uuid4()), attempt=0),
        hostname=hostname or ("" if host_network else name), log_directory=log_directory,
        labels=labels or {"app": name})
    config.linux.cgroup_parent = cgroup_parent
    if host_network:
        config.linux.security_context.namespace_options.network = cri.NODE
    return config


def container_config(name: str, command: list[str], *, image: str = BUSYBOX, log_path: str = "",
                     memory: int = 0, cpu_quota: int = 0, cpu_period: int = 0, env: dict | None = None,
                     labels: dict | None = None) -> cri.ContainerConfig:
    config = cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name=name, attempt=0), image=cri.ImageSpec(image=image), command=command,
        log_path=log_path, labels=labels or {"container": name},
        envs=[cri.KeyValue(key=k, value=v) for k, v in (env or {}).items()])
    resources = config.linux.resources
    resources.memory_limit_in_bytes = memory
    resources.cpu_quota = cpu_quota
    resources.cpu_period = cpu_period
    return config


class Pods:
    """Creates sandboxes/containers for a test and removes them afterwards, whatever happened."""

    def __init__(self, client: CriClient) -> None:
        self.client = client
        self.sandboxes: list[str] = []

    def run_sandbox(self, config: cri.PodSandboxConfig | None = None) -> tuple[str, cri.PodSandboxConfig]:
        config = config or sandbox_config()
        sandbox_id = self.client.RunPodSandbox(cri.RunPodSandboxRequest(config=config)).pod_sandbox_id
        self.sandboxes.append(sandbox_id)
        return sandbox_id, config

    def create(self, sandbox: tuple[str, cri.PodSandboxConfig], config: cri.ContainerConfig) -> str:
        sandbox_id, sandbox_cfg = sandbox
        return self.client.CreateContainer(cri.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_cfg)).container_id

    def run(self, sandbox: tuple[str, cri.PodSandboxConfig], config: cri.ContainerConfig) -> str:
        container_id = self.create(sandbox, config)
        self.client.StartContainer(cri.StartContainerRequest(container_id=container_id))
        return container_id

    def status(self, container_id: str, verbose: bool = False) -> cri.ContainerStatusResponse:
        return self.client.ContainerStatus(cri.ContainerStatusRequest(container_id=container_id, verbose=verbose))

    def wait_exited(self, container_id: str, timeout: float = 30) -> cri.ContainerStatus:
        def exited():
            status = self.status(container_id).status
            return status if status.state == cri.CONTAINER_EXITED else None

        return wait_for(exited, timeout=timeout, message=f"container {container_id[:12]} to exit")

    def cleanup(self) -> None:
        for sandbox_id in self.sandboxes:
            with contextlib.suppress(grpc.RpcError):
                self.client.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))
                self.client.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))
        self.sandboxes.clear()


def elapsed(start: float) -> float:
    return time.monotonic() - start
