"""An asyncio CRI client: one grpc.aio channel to the runtime's socket, a deadline on every call.

Methods mirror runtime.v1's RPCs with snake_case names and take/return the generated protobuf messages
(``proto.cri.api_pb2``), so nothing is lost in translation; a few conveniences (``list_containers`` with a
label selector, ``exec_sync`` with a timeout) build the request for the common cases. Errors become
:class:`CriError` with the gRPC code kept. The channel is created lazily inside the running loop, as grpc.aio
requires.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc

from proto.cri import api_pb2 as cri
from proto.cri import api_pb2_grpc as cri_grpc

DEFAULT_TIMEOUT = 120.0  # seconds: the kubelet's runtime-request-timeout is 2 minutes
MAX_MESSAGE = 16 * 1024 * 1024


class CriError(Exception):
    """A CRI call failed; ``code`` is the runtime's gRPC status code."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{method}: {details or code.name}")
        self.method = method
        self.code = code
        self.details = details


def is_not_found(err: BaseException) -> bool:
    return isinstance(err, CriError) and err.code == grpc.StatusCode.NOT_FOUND


def is_unavailable(err: BaseException) -> bool:
    return isinstance(err, CriError) and err.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class RuntimeClient:
    """``endpoint`` is ``unix:///path/to/sock`` (or any gRPC target). Use ``async with`` or call :meth:`close`."""

    def __init__(self, endpoint: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._channel: grpc.aio.Channel | None = None
        self._runtime: cri_grpc.RuntimeServiceStub | None = None
        self._images: cri_grpc.ImageServiceStub | None = None

    async def __aenter__(self) -> RuntimeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    def _stubs(self) -> tuple[cri_grpc.RuntimeServiceStub, cri_grpc.ImageServiceStub]:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.endpoint, options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)])
            self._runtime = cri_grpc.RuntimeServiceStub(self._channel)
            self._images = cri_grpc.ImageServiceStub(self._channel)
        assert self._runtime is not None and self._images is not None
        return self._runtime, self._images

    async def call(self, method: str, request, *, timeout: float | None = None, deadline: bool = True):
        """Call RPC ``method`` (its runtime.v1 name, e.g. ``"ContainerStatus"``) with ``request``; ``timeout``
        overrides the client's deadline, ``deadline=False`` sets none (image pulls take as long as they take)."""
        runtime, images = self._stubs()
        stub = images if hasattr(images, method) else runtime
        try:
            return await getattr(stub, method)(request, timeout=(timeout or self.timeout) if deadline else None)
        except grpc.aio.AioRpcError as err:
            raise CriError(method, err.code(), err.details() or "") from None

    # --- runtime ---------------------------------------------------------------------------------

    async def version(self) -> cri.VersionResponse:
        return await self.call("Version", cri.VersionRequest(version="v1"))

    async def status(self, verbose: bool = False) -> cri.StatusResponse:
        return await self.call("Status", cri.StatusRequest(verbose=verbose))

    async def run_pod_sandbox(self, config: cri.PodSandboxConfig, runtime_handler: str = "") -> str:
        request = cri.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler)
        resp = await self.call("RunPodSandbox", request)
        return resp.pod_sandbox_id

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        await self.call("StopPodSandbox", cri.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        await self.call("RemovePodSandbox", cri.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))

    async def pod_sandbox_status(self, sandbox_id: str, verbose: bool = False) -> cri.PodSandboxStatus:
        resp = await self.call("PodSandboxStatus", cri.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id,
                                                                               verbose=verbose))
        return resp.status

    async def list_pod_sandboxes(self, labels: Mapping[str, str] | None = None) -> list[cri.PodSandbox]:
        request = cri.ListPodSandboxRequest(filter=cri.PodSandboxFilter(label_selector=dict(labels or {})))
        return list((await self.call("ListPodSandbox", request)).items)

    async def create_container(self, sandbox_id: str, config: cri.ContainerConfig,
                               sandbox_config: cri.PodSandboxConfig) -> str:
        resp = await self.call("CreateContainer", cri.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_config))
        return resp.container_id

    async def start_container(self, container_id: str) -> None:
        await self.call("StartContainer", cri.StartContainerRequest(container_id=container_id))

    async def stop_container(self, container_id: str, timeout: int) -> None:
        """Stop signal, then SIGKILL after ``timeout`` seconds; the RPC deadline leaves room for the grace."""
        await self.call("StopContainer", cri.StopContainerRequest(container_id=container_id, timeout=timeout),
                        timeout=self.timeout + max(0, timeout))

    async def remove_container(self, container_id: str) -> None:
        await self.call("RemoveContainer", cri.RemoveContainerRequest(container_id=container_id))

    async def list_containers(self, labels: Mapping[str, str] | None = None, *,
                              sandbox_id: str = "") -> list[cri.Container]:
        request = cri.ListContainersRequest(filter=cri.ContainerFilter(
            pod_sandbox_id=sandbox_id, label_selector=dict(labels or {})))
        return list((await self.call("ListContainers", request)).containers)

    async def container_status(self, container_id: str, verbose: bool = False) -> cri.ContainerStatus:
        resp = await self.call("ContainerStatus", cri.ContainerStatusRequest(container_id=container_id,
                                                                             verbose=verbose))
        return resp.status

    async def update_container_resources(self, container_id: str, linux: cri.LinuxContainerResources) -> None:
        await self.call("UpdateContainerResources",
                        cri.UpdateContainerResourcesRequest(container_id=container_id, linux=linux))

    async def reopen_container_log(self, container_id: str) -> None:
        await self.call("ReopenContainerLog", cri.ReopenContainerLogRequest(container_id=container_id))

    async def exec_sync(self, container_id: str, cmd: list[str], timeout: float = 0) -> cri.ExecSyncResponse:
        """Run ``cmd`` in the container; ``timeout`` seconds (0: none) → DEADLINE_EXCEEDED when passed."""
        seconds = int(timeout) if timeout <= 0 or timeout == int(timeout) else int(timeout) + 1
        return await self.call("ExecSync", cri.ExecSyncRequest(container_id=container_id, cmd=cmd, timeout=seconds),
                               timeout=(self.timeout + seconds) if seconds else None)

    async def exec(self, request: cri.ExecRequest) -> str:
        """The streaming URL for an exec session."""
        return (await self.call("Exec", request)).url

    async def attach(self, request: cri.AttachRequest) -> str:
        return (await self.call("Attach", request)).url

    async def port_forward(self, sandbox_id: str, ports: list[int]) -> str:
        return (await self.call("PortForward", cri.PortForwardRequest(pod_sandbox_id=sandbox_id, port=ports))).url

    async def container_stats(self, container_id: str) -> cri.ContainerStats:
        return (await self.call("ContainerStats", cri.ContainerStatsRequest(container_id=container_id))).stats

    async def list_container_stats(self) -> list[cri.ContainerStats]:
        return list((await self.call("ListContainerStats", cri.ListContainerStatsRequest())).stats)

    # --- images ----------------------------------------------------------------------------------

    async def list_images(self) -> list[cri.Image]:
        return list((await self.call("ListImages", cri.ListImagesRequest())).images)

    async def image_status(self, image: str) -> cri.Image | None:
        """The image if present (``None`` when the runtime does not have it)."""
        resp = await self.call("ImageStatus", cri.ImageStatusRequest(image=cri.ImageSpec(image=image)))
        return resp.image if resp.HasField("image") else None

    async def pull_image(self, image: str, sandbox_config: cri.PodSandboxConfig | None = None) -> str:
        """Pull ``image``; returns the image reference (id) the runtime resolved it to."""
        request = cri.PullImageRequest(image=cri.ImageSpec(image=image), sandbox_config=sandbox_config)
        return (await self.call("PullImage", request, deadline=False)).image_ref

    async def image_fs_info(self) -> cri.ImageFsInfoResponse:
        return await self.call("ImageFsInfo", cri.ImageFsInfoRequest())
