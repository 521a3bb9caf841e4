"""An in-memory stand-in for :class:`kubelet.cri.RuntimeClient`, for unit tests of the kubelet's pod logic.

:class:`FakeRuntime` keeps sandboxes and containers the way a CRI runtime does — states, labels and
annotations, metadata attempts, created/started/finished times in nanoseconds taken from a
:class:`~machinery.clock.FakeClock`'s wall time, exit codes and reasons — and answers with the same
protobuf messages and the same error codes as kubemini's runtime (NOT_FOUND for unknown ids on create and
status calls; idempotent stop/remove; ALREADY_EXISTS for a reused name+attempt; FAILED_PRECONDITION for a
container in a sandbox that is not ready). Tests script it:

- ``fail(method, code, details, times=, when=)`` makes the next call(s) of a method raise ``CriError``;
- ``crash_on_start(name, exit_code)`` makes every instance of container ``name`` exit as soon as it starts;
- ``exit(container_id, code)`` / ``oom_kill(container_id)`` end a running container, as its process would;
- ``exec_exit_codes[command]`` scripts ExecSync (hooks, exec probes), which otherwise succeeds;
- ``block(method)`` holds calls of a method until the returned event is set (to interleave with a sync);
- every call is recorded in ``calls`` (``calls_of(method)``), containers started in ``started``, running ones
  stopped (by StopContainer or StopPodSandbox) in ``stopped``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from kubelet.cri import CriError
from kubelet.cri import labels as L
from machinery.clock import FakeClock
from proto.cri import api_pb2 as cri

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STOPPED_EXIT_CODE = 137  # what a process that ignores SIGTERM ends with once the runtime kills it


@dataclass
class FakeSandbox:
    id: str
    config: cri.PodSandboxConfig
    created_at: int
    ip: str
    state: int = cri.SANDBOX_READY

    @property
    def uid(self) -> str:
        return self.config.metadata.uid

    @property
    def attempt(self) -> int:
        return self.config.metadata.attempt

    @property
    def host_network(self) -> bool:
        return self.config.linux.security_context.namespace_options.network == cri.NODE


@dataclass
class FakeContainer:
    id: str
    sandbox_id: str
    config: cri.ContainerConfig
    image_ref: str
    created_at: int
    log_path: str
    state: int = cri.CONTAINER_CREATED
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    stop_timeout: int | None = None  # the timeout of the StopContainer call that ended it, if one did

    @property
    def name(self) -> str:
        return self.config.metadata.name

    @property
    def attempt(self) -> int:
        return self.config.metadata.attempt

    @property
    def uid(self) -> str:
        return self.config.labels.get(L.POD_UID, "")

    @property
    def restart_count(self) -> int:
        return int(self.config.annotations.get(L.RESTART_COUNT, "0"))

    @property
    def running(self) -> bool:
        return self.state == cri.CONTAINER_RUNNING

    @property
    def exited(self) -> bool:
        return self.state == cri.CONTAINER_EXITED


@dataclass
class Call:
    method: str
    args: tuple

    def __repr__(self) -> str:
        return f"<{self.method}{self.args!r}>"


@dataclass
class _Failure:
    method: str
    code: grpc.StatusCode
    details: str
    times: int | None  # None: every call
    when: Callable[..., bool] | None


@dataclass
class FakeRuntime:
    """The CRI runtime as the kubelet sees it through ``RuntimeClient``; one instance is one node's runtime."""

    clock: FakeClock = field(default_factory=FakeClock)
    images: dict[str, cri.Image] = field(default_factory=dict)
    runtime_name: str = "fakecri"
    sandboxes: dict[str, FakeSandbox] = field(default_factory=dict)
    containers: dict[str, FakeContainer] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    started: list[tuple[str, str]] = field(default_factory=list)  # (pod uid, container name) per StartContainer
    stopped: list[tuple[str, str, int]] = field(default_factory=list)  # (uid, name, timeout): running ones stopped
    stop_exit_code: int = STOPPED_EXIT_CODE
    exec_exit_codes: dict[str, int] = field(default_factory=dict)  # ExecSync's exit code by the command's first word
    _failures: list[_Failure] = field(default_factory=list)
    _crashes: dict[str, tuple[int, str]] = field(default_factory=dict)
    _blocks: dict[str, asyncio.Event] = field(default_factory=dict)
    _names: set[str] = field(default_factory=set)
    _ids: int = 0

    # --- scripting -----------------------------------------------------------------------------------

    def add_image(self, name: str) -> cri.Image:
        """Make ``name`` present on the node (as if pulled before)."""
        image_id = "sha256:" + hashlib.sha256(name.encode()).hexdigest()
        image = self.images.get(image_id) or cri.Image(id=image_id, size=1 << 20)
        if name not in image.repo_tags:
            image.repo_tags.append(name)
        self.images[image_id] = image
        return image

    def fail(self, method: str, code: grpc.StatusCode = grpc.StatusCode.UNKNOWN, details: str = "", *,
             times: int | None = 1, when: Callable[..., bool] | None = None) -> None:
        """The next ``times`` calls (None: all) of ``method`` (snake_case, e.g. ``"pull_image"``) whose arguments
        satisfy ``when(*args)`` raise ``CriError(code)``."""
        self._failures.append(_Failure(method, code, details or code.name.lower(), times, when))

    def crash_on_start(self, name: str, exit_code: int = 1, reason: str = "") -> None:
        """Every container named ``name`` started from now on exits at once with ``exit_code``."""
        self._crashes[name] = (exit_code, reason)

    def stop_crashing(self, name: str) -> None:
        self._crashes.pop(name, None)

    def block(self, method: str) -> asyncio.Event:
        """Hold calls of ``method`` until the returned event is set."""
        event = self._blocks[method] = asyncio.Event()
        return event

    def exit(self, container_id: str, exit_code: int = 0, reason: str = "", message: str = "") -> None:
        """The container's process ended (no-op unless it runs)."""
        container = self.containers[container_id]
        if container.running:
            container.state = cri.CONTAINER_EXITED
            container.finished_at = self.now_ns()
            container.exit_code, container.reason, container.message = exit_code, reason, message

    def oom_kill(self, container_id: str) -> None:
        self.exit(container_id, 137, "OOMKilled")

    def lose_sandbox(self, sandbox_id: str) -> None:
        """The sandbox died behind the kubelet's back (its containers with it)."""
        sandbox = self.sandboxes[sandbox_id]
        sandbox.state = cri.SANDBOX_NOTREADY
        for container in self._in_sandbox(sandbox_id):
            self.exit(container.id, 137)

    # --- queries for assertions ----------------------------------------------------------------------

    def now_ns(self) -> int:
        return (self.clock.now() - EPOCH) // timedelta(microseconds=1) * 1000

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def instances(self, uid: str, name: str | None = None) -> list[FakeContainer]:
        """The pod's containers (of one name), oldest first."""
        found = [c for c in self.containers.values() if c.uid == uid and (name is None or c.name == name)]
        return sorted(found, key=lambda c: (c.created_at, c.attempt))

    def latest(self, uid: str, name: str) -> FakeContainer | None:
        found = self.instances(uid, name)
        return found[-1] if found else None

    def running_names(self, uid: str) -> set[str]:
        return {c.name for c in self.instances(uid) if c.running}

    def sandboxes_of(self, uid: str) -> list[FakeSandbox]:
        return sorted((s for s in self.sandboxes.values() if s.uid == uid), key=lambda s: s.attempt)

    def started_names(self, uid: str) -> list[str]:
        return [name for pod_uid, name in self.started if pod_uid == uid]

    # --- internals -----------------------------------------------------------------------------------

    async def _enter(self, method: str, *args: Any) -> None:
        self.calls.append(Call(method, args))
        gate = self._blocks.get(method)
        if gate is not None:
            await gate.wait()
        for failure in self._failures:
            if failure.method == method and (failure.when is None or failure.when(*args)):
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                raise CriError(_rpc_name(method), failure.code, failure.details)

    def _new_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids:04d}"

    def _sandbox(self, sandbox_id: str) -> FakeSandbox:
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None:
            raise CriError("PodSandboxStatus", grpc.StatusCode.NOT_FOUND, f"pod sandbox {sandbox_id} not found")
        return sandbox

    def _container(self, method: str, container_id: str) -> FakeContainer:
        container = self.containers.get(container_id)
        if container is None:
            raise CriError(method, grpc.StatusCode.NOT_FOUND, f"container {container_id} not found")
        return container

    def _in_sandbox(self, sandbox_id: str) -> list[FakeContainer]:
        return [c for c in self.containers.values() if c.sandbox_id == sandbox_id]

    def _find_image(self, name: str) -> cri.Image | None:
        if name in self.images:
            return self.images[name]
        wanted = {name, f"{name}:latest"} if ":" not in name.rsplit("/", 1)[-1] else {name}
        return next((i for i in self.images.values() if wanted & set(i.repo_tags)), None)

    def _stop(self, container: FakeContainer, timeout: int) -> None:
        if container.state == cri.CONTAINER_CREATED:
            container.state, container.finished_at = cri.CONTAINER_EXITED, self.now_ns()
        elif container.running:
            self.exit(container.id, self.stop_exit_code)
            container.stop_timeout = timeout
            self.stopped.append((container.uid, container.name, timeout))

    # --- RuntimeClient surface: runtime --------------------------------------------------------------

    async def version(self) -> cri.VersionResponse:
        await self._enter("version")
        return cri.VersionResponse(version="0.1.0", runtime_name=self.runtime_name, runtime_version="1.0",
                                   runtime_api_version="v1")

    async def status(self, verbose: bool = False) -> cri.StatusResponse:
        await self._enter("status")
        conditions = [cri.RuntimeCondition(type="RuntimeReady", status=True),
                      cri.RuntimeCondition(type="NetworkReady", status=True)]
        return cri.StatusResponse(status=cri.RuntimeStatus(conditions=conditions))

    async def run_pod_sandbox(self, config: cri.PodSandboxConfig, runtime_handler: str = "") -> str:
        await self._enter("run_pod_sandbox", config)
        meta = config.metadata
        key = f"{meta.name}_{meta.namespace}_{meta.uid}_{meta.attempt}"
        if key in self._names:
            raise CriError("RunPodSandbox", grpc.StatusCode.ALREADY_EXISTS, f"pod sandbox name {key!r} is reserved")
        self._names.add(key)
        sandbox_id = self._new_id("sb")
        copy = cri.PodSandboxConfig()
        copy.CopyFrom(config)
        self.sandboxes[sandbox_id] = FakeSandbox(sandbox_id, copy, self.now_ns(), f"10.88.0.{len(self.sandboxes) + 2}")
        return sandbox_id

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        await self._enter("stop_pod_sandbox", sandbox_id)
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None:
            return
        for container in self._in_sandbox(sandbox_id):
            self._stop(container, 0)
        sandbox.state = cri.SANDBOX_NOTREADY

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        await self._enter("remove_pod_sandbox", sandbox_id)
        sandbox = self.sandboxes.pop(sandbox_id, None)
        if sandbox is None:
            return
        for container in self._in_sandbox(sandbox_id):
            del self.containers[container.id]

    async def pod_sandbox_status(self, sandbox_id: str, verbose: bool = False) -> cri.PodSandboxStatus:
        await self._enter("pod_sandbox_status", sandbox_id)
        sandbox = self._sandbox(sandbox_id)
        status = cri.PodSandboxStatus(id=sandbox.id, metadata=sandbox.config.metadata, state=sandbox.state,
                                      created_at=sandbox.created_at, labels=sandbox.config.labels,
                                      annotations=sandbox.config.annotations)
        status.network.ip = "" if sandbox.host_network else sandbox.ip
        status.linux.namespaces.options.network = cri.NODE if sandbox.host_network else cri.POD
        return status

    async def list_pod_sandboxes(self, labels: Mapping[str, str] | None = None) -> list[cri.PodSandbox]:
        await self._enter("list_pod_sandboxes", dict(labels or {}))
        return [cri.PodSandbox(id=s.id, metadata=s.config.metadata, state=s.state, created_at=s.created_at,
                               labels=s.config.labels, annotations=s.config.annotations)
                for s in self.sandboxes.values() if _matches(s.config.labels, labels)]

    async def create_container(self, sandbox_id: str, config: cri.ContainerConfig,
                               sandbox_config: cri.PodSandboxConfig) -> str:
        await self._enter("create_container", sandbox_id, config, sandbox_config)
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None:
            raise CriError("CreateContainer", grpc.StatusCode.NOT_FOUND, f"pod sandbox {sandbox_id} not found")
        if sandbox.state != cri.SANDBOX_READY:
            raise CriError("CreateContainer", grpc.StatusCode.FAILED_PRECONDITION, f"sandbox {sandbox_id} not ready")
        key = f"{config.metadata.name}_{sandbox_id}_{config.metadata.attempt}"
        if key in self._names:
            raise CriError("CreateContainer", grpc.StatusCode.ALREADY_EXISTS, f"container name {key!r} is reserved")
        image = self._find_image(config.image.image)
        if image is None:
            raise CriError("CreateContainer", grpc.StatusCode.NOT_FOUND, f"image {config.image.image!r} not found")
        self._names.add(key)
        copy = cri.ContainerConfig()
        copy.CopyFrom(config)
        container_id = self._new_id("ct")
        log_path = f"{sandbox.config.log_directory}/{config.log_path}" if config.log_path else ""
        self.containers[container_id] = FakeContainer(container_id, sandbox_id, copy, image.id, self.now_ns(),
                                                      log_path)
        return container_id

    async def start_container(self, container_id: str) -> None:
        await self._enter("start_container", container_id)
        container = self._container("StartContainer", container_id)
        if container.state != cri.CONTAINER_CREATED:
            raise CriError("StartContainer", grpc.StatusCode.FAILED_PRECONDITION, f"container {container_id} is "
                                                                                  "not created")
        container.state, container.started_at = cri.CONTAINER_RUNNING, self.now_ns()
        self.started.append((container.uid, container.name))
        crash = self._crashes.get(container.name)
        if crash is not None:
            self.exit(container_id, crash[0], crash[1])

    async def stop_container(self, container_id: str, timeout: int) -> None:
        await self._enter("stop_container", container_id, timeout)
        self._stop(self._container("StopContainer", container_id), timeout)

    async def remove_container(self, container_id: str) -> None:
        await self._enter("remove_container", container_id)
        self.containers.pop(container_id, None)

    async def list_containers(self, labels: Mapping[str, str] | None = None, *,
                              sandbox_id: str = "") -> list[cri.Container]:
        await self._enter("list_containers", dict(labels or {}), sandbox_id)
        return [cri.Container(id=c.id, pod_sandbox_id=c.sandbox_id, metadata=c.config.metadata, image=c.config.image,
                              image_ref=c.image_ref, state=c.state, created_at=c.created_at, labels=c.config.labels,
                              annotations=c.config.annotations)
                for c in self.containers.values()
                if _matches(c.config.labels, labels) and (not sandbox_id or c.sandbox_id == sandbox_id)]

    async def container_status(self, container_id: str, verbose: bool = False) -> cri.ContainerStatus:
        await self._enter("container_status", container_id)
        c = self._container("ContainerStatus", container_id)
        return cri.ContainerStatus(
            id=c.id, metadata=c.config.metadata, state=c.state, created_at=c.created_at, started_at=c.started_at,
            finished_at=c.finished_at, exit_code=c.exit_code, image=c.config.image, image_ref=c.image_ref,
            reason=c.reason, message=c.message, labels=c.config.labels, annotations=c.config.annotations,
            mounts=c.config.mounts, log_path=c.log_path)

    async def update_container_resources(self, container_id: str, linux: cri.LinuxContainerResources) -> None:
        await self._enter("update_container_resources", container_id, linux)
        self._container("UpdateContainerResources", container_id).config.linux.resources.CopyFrom(linux)

    async def reopen_container_log(self, container_id: str) -> None:
        await self._enter("reopen_container_log", container_id)
        self._container("ReopenContainerLog", container_id)

    async def exec_sync(self, container_id: str, cmd: list[str], timeout: float = 0) -> cri.ExecSyncResponse:
        await self._enter("exec_sync", container_id, list(cmd), timeout)
        self._container("ExecSync", container_id)
        code = self.exec_exit_codes.get(cmd[0] if cmd else "", 0)
        return cri.ExecSyncResponse(stdout=b"", stderr=b"failed\n" if code else b"", exit_code=code)

    async def exec(self, request: cri.ExecRequest) -> str:
        await self._enter("exec", request)
        return f"http://fakecri/exec/{request.container_id}"

    async def attach(self, request: cri.AttachRequest) -> str:
        await self._enter("attach", request)
        return f"http://fakecri/attach/{request.container_id}"

    async def port_forward(self, sandbox_id: str, ports: list[int]) -> str:
        await self._enter("port_forward", sandbox_id, list(ports))
        return f"http://fakecri/portforward/{sandbox_id}"

    async def container_stats(self, container_id: str) -> cri.ContainerStats:
        await self._enter("container_stats", container_id)
        self._container("ContainerStats", container_id)
        return cri.ContainerStats(attributes=cri.ContainerAttributes(id=container_id))

    async def list_container_stats(self) -> list[cri.ContainerStats]:
        await self._enter("list_container_stats")
        return [cri.ContainerStats(attributes=cri.ContainerAttributes(id=c)) for c in self.containers]

    async def close(self) -> None:
        return None

    # --- RuntimeClient surface: images ---------------------------------------------------------------

    async def list_images(self) -> list[cri.Image]:
        await self._enter("list_images")
        return list(self.images.values())

    async def image_status(self, image: str) -> cri.Image | None:
        await self._enter("image_status", image)
        return self._find_image(image)

    async def pull_image(self, image: str, sandbox_config: cri.PodSandboxConfig | None = None) -> str:
        await self._enter("pull_image", image)
        return self.add_image(image).id

    async def image_fs_info(self) -> cri.ImageFsInfoResponse:
        await self._enter("image_fs_info")
        return cri.ImageFsInfoResponse()


def _matches(labels: Mapping[str, str], selector: Mapping[str, str] | None) -> bool:
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def _rpc_name(method: str) -> str:
    special = {"list_pod_sandboxes": "ListPodSandbox", "exec_sync": "ExecSync"}
    return special.get(method) or "".join(part.capitalize() for part in method.split("_"))
