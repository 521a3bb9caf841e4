"""The CRI gRPC services (runtime.v1 RuntimeService and ImageService) over the :class:`Runtime`.

Each RPC converts the request, calls the runtime, and converts records back to CRI messages; failures become
gRPC status codes through :func:`kubelet.runtime.errors.grpc_code`, the one table. Nothing here decides
behaviour.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import time

import grpc

from kubelet.runtime import cgroups, metrics
from kubelet.runtime.errors import InvalidArgument, RuntimeFailure, Unavailable, grpc_code
from kubelet.runtime.images import registry
from kubelet.runtime.images.builtin import BUSYBOX_IMAGE, PAUSE_IMAGE
from kubelet.runtime.images.reference import parse
from kubelet.runtime.runtime import Runtime
from kubelet.runtime.state import CREATED, EXITED, RUNNING, SANDBOX_READY, ContainerRecord, SandboxRecord
from kubelet.runtime.streaming import StreamingServer
from proto.cri import api_pb2 as cri
from proto.cri import api_pb2_grpc as cri_grpc

log = logging.getLogger(__name__)

RUNTIME_NAME = "kubemini"
RUNTIME_VERSION = "0.1.0"
API_VERSION = "v1"
CONTAINER_STATES = {CREATED: cri.CONTAINER_CREATED, RUNNING: cri.CONTAINER_RUNNING, EXITED: cri.CONTAINER_EXITED}


def rpc(method):
    """Turn runtime failures into gRPC statuses; log anything unexpected once, with its traceback."""

    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self, request, context):
        code = grpc.StatusCode.OK
        with metrics.latency.labels(name).time():
            try:
                return await method(self, request, context)
            except RuntimeFailure as e:
                code = grpc_code(e)
                log.debug("%s: %s: %s", name, code.name, e)
                await context.abort(code, str(e))
            except grpc.aio.AbortError:
                raise
            except Exception as e:
                code = grpc.StatusCode.UNKNOWN
                log.exception("%s failed", name)
                await context.abort(code, f"{type(e).__name__}: {e}")
            finally:
                metrics.operations.labels(name, code.name).inc()

    return wrapper


def labels_match(labels, selector) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def sandbox_state(record: SandboxRecord) -> int:
    return cri.SANDBOX_READY if record.state == SANDBOX_READY else cri.SANDBOX_NOTREADY


def image_spec(record: ContainerRecord, config: cri.ContainerConfig) -> cri.ImageSpec:
    """The image a container runs, by id, with the name the user wrote (as the kubelet shows it)."""
    return cri.ImageSpec(image=record.image_id,
                         user_specified_image=config.image.user_specified_image or config.image.image)


def container_message(record: ContainerRecord) -> cri.Container:
    config = record.container_config
    return cri.Container(
        id=record.id, pod_sandbox_id=record.sandbox_id, metadata=config.metadata,
        image=image_spec(record, config), image_ref=record.image_ref, image_id=record.image_id,
        state=CONTAINER_STATES.get(record.state, cri.CONTAINER_UNKNOWN), created_at=record.created_at,
        labels=config.labels, annotations=config.annotations)


def container_status(record: ContainerRecord) -> cri.ContainerStatus:
    config = record.container_config
    user = cri.ContainerUser()
    if record.user:
        user.linux.uid = record.user["uid"]
        user.linux.gid = record.user["gid"]
        user.linux.supplemental_groups.extend(record.user.get("additional_gids", []))
    return cri.ContainerStatus(
        id=record.id, metadata=config.metadata, state=CONTAINER_STATES.get(record.state, cri.CONTAINER_UNKNOWN),
        created_at=record.created_at, started_at=record.started_at, finished_at=record.finished_at,
        exit_code=record.exit_code,
        image=image_spec(record, config), image_ref=record.image_ref, image_id=record.image_id,
        reason=record.reason, message=record.message, labels=config.labels, annotations=config.annotations,
        mounts=config.mounts, log_path=record.log_path,
        resources=cri.ContainerResources(linux=record.linux_resources), user=user, stop_signal=config.stop_signal)


def image_message(image) -> cri.Image:
    message = cri.Image(id=image.id, repo_tags=image.repo_tags, repo_digests=image.repo_digests, size=image.size,
                        spec=cri.ImageSpec(image=image.id),
                        pinned=any(tag in (BUSYBOX_IMAGE, PAUSE_IMAGE) for tag in image.repo_tags))
    user = (image.config.get("User") or "").partition(":")[0]
    if user.isdigit():
        message.uid.value = int(user)
    elif user:
        message.username = user
    else:
        message.uid.value = 0
    return message


class RuntimeServicer(cri_grpc.RuntimeServiceServicer):
    def __init__(self, runtime: Runtime, network_ready, streaming: StreamingServer | None = None) -> None:
        self.runtime = runtime
        self.network_ready = network_ready
        self.streaming = streaming

    @rpc
    async def Version(self, request, context):
        return cri.VersionResponse(version="0.1.0", runtime_name=RUNTIME_NAME, runtime_version=RUNTIME_VERSION,
                                   runtime_api_version=API_VERSION)

    @rpc
    async def Status(self, request, context):
        network_ok, network_message = await self.network_ready()
        conditions = [
            cri.RuntimeCondition(type="RuntimeReady", status=True),
            cri.RuntimeCondition(type="NetworkReady", status=network_ok,
                                 reason="" if network_ok else "NetworkPluginNotReady", message=network_message),
        ]
        return cri.StatusResponse(
            status=cri.RuntimeStatus(conditions=conditions),
            runtime_handlers=[cri.RuntimeHandler(name="", features=cri.RuntimeHandlerFeatures())],
            features=cri.RuntimeFeatures(supplemental_groups_policy=True))

    @rpc
    async def UpdateRuntimeConfig(self, request, context):
        return cri.UpdateRuntimeConfigResponse()

    # sandboxes

    @rpc
    async def RunPodSandbox(self, request, context):
        sandbox_id = await self.runtime.run_pod_sandbox(request.config, request.runtime_handler)
        return cri.RunPodSandboxResponse(pod_sandbox_id=sandbox_id)

    @rpc
    async def StopPodSandbox(self, request, context):
        await self.runtime.stop_pod_sandbox(request.pod_sandbox_id)
        return cri.StopPodSandboxResponse()

    @rpc
    async def RemovePodSandbox(self, request, context):
        await self.runtime.remove_pod_sandbox(request.pod_sandbox_id)
        return cri.RemovePodSandboxResponse()

    @rpc
    async def PodSandboxStatus(self, request, context):
        record = self.runtime.get_sandbox(request.pod_sandbox_id)
        config = record.pod_config
        status = cri.PodSandboxStatus(
            id=record.id, metadata=config.metadata, state=sandbox_state(record), created_at=record.created_at,
            network=cri.PodSandboxNetworkStatus(ip=record.ip),
            linux=cri.LinuxPodSandboxStatus(namespaces=cri.Namespace(
                options=config.linux.security_context.namespace_options)),
            labels=config.labels, annotations=config.annotations, runtime_handler=record.runtime_handler)
        info = {}
        if request.verbose:
            info["info"] = json.dumps({"pid": record.pause_pid, "netns": record.netns,
                                       "cgroupParent": record.cgroup_parent})
        return cri.PodSandboxStatusResponse(status=status, info=info, timestamp=time.time_ns())

    @rpc
    async def ListPodSandbox(self, request, context):
        f = request.filter
        items = []
        for record in self.runtime.list_sandboxes():
            config = record.pod_config
            if f.id and not record.id.startswith(f.id):
                continue
            if f.HasField("state") and f.state.state != sandbox_state(record):
                continue
            if not labels_match(config.labels, f.label_selector):
                continue
            items.append(cri.PodSandbox(id=record.id, metadata=config.metadata, state=sandbox_state(record),
                                        created_at=record.created_at, labels=config.labels,
                                        annotations=config.annotations, runtime_handler=record.runtime_handler))
        return cri.ListPodSandboxResponse(items=items)

    # containers

    @rpc
    async def CreateContainer(self, request, context):
        container_id = await self.runtime.create_container(
            request.pod_sandbox_id, request.config,
            request.sandbox_config if request.HasField("sandbox_config") else None)
        return cri.CreateContainerResponse(container_id=container_id)

    @rpc
    async def StartContainer(self, request, context):
        await self.runtime.start_container(request.container_id)
        return cri.StartContainerResponse()

    @rpc
    async def StopContainer(self, request, context):
        await self.runtime.stop_container(request.container_id, request.timeout)
        return cri.StopContainerResponse()

    @rpc
    async def RemoveContainer(self, request, context):
        await self.runtime.remove_container(request.container_id, force=True)
        return cri.RemoveContainerResponse()

    @rpc
    async def ListContainers(self, request, context):
        f = request.filter
        containers = []
        for record in self.runtime.list_containers():
            if f.id and not record.id.startswith(f.id):
                continue
            if f.pod_sandbox_id and not record.sandbox_id.startswith(f.pod_sandbox_id):
                continue
            message = container_message(record)
            if f.HasField("state") and f.state.state != message.state:
                continue
            if not labels_match(message.labels, f.label_selector):
                continue
            containers.append(message)
        return cri.ListContainersResponse(containers=containers)

    @rpc
    async def ContainerStatus(self, request, context):
        record = self.runtime.get_container(request.container_id)
        info = {}
        if request.verbose:
            info["info"] = json.dumps({"pid": record.pid, "shimPid": record.shim_pid, "cgroupPath": record.cgroup_path,
                                       "sandboxID": record.sandbox_id})
        return cri.ContainerStatusResponse(status=container_status(record), info=info)

    @rpc
    async def UpdateContainerResources(self, request, context):
        await self.runtime.update_container_resources(request.container_id, request.linux)
        return cri.UpdateContainerResourcesResponse()

    @rpc
    async def ReopenContainerLog(self, request, context):
        await self.runtime.reopen_container_log(request.container_id)
        return cri.ReopenContainerLogResponse()

    @rpc
    async def ExecSync(self, request, context):
        out, err, code = await self.runtime.exec_sync(request.container_id, list(request.cmd), request.timeout)
        return cri.ExecSyncResponse(stdout=out, stderr=err, exit_code=code)

    def _stream_url(self, kind: str, request) -> str:
        if self.streaming is None:
            raise Unavailable("this runtime runs without a streaming server")
        return self.streaming.url_for(kind, request)

    @rpc
    async def Exec(self, request, context):
        return cri.ExecResponse(url=self._stream_url("exec", request))

    @rpc
    async def Attach(self, request, context):
        return cri.AttachResponse(url=self._stream_url("attach", request))

    @rpc
    async def PortForward(self, request, context):
        return cri.PortForwardResponse(url=self._stream_url("portforward", request))

    # stats

    def _container_stats(self, record: ContainerRecord) -> cri.ContainerStats:
        at = time.time_ns()
        use = cgroups.usage(record.cgroup_path)
        stats = cri.ContainerStats(attributes=cri.ContainerAttributes(
            id=record.id, metadata=record.container_config.metadata, labels=record.container_config.labels,
            annotations=record.container_config.annotations))
        fill_cpu_memory(stats.cpu, stats.memory, use, at, self.runtime.cpu_nano_cores(record.id, use.cpu_ns, at))
        used, inodes = self.runtime.writable_layer_usage(record)
        stats.writable_layer.timestamp = at
        stats.writable_layer.fs_id.mountpoint = str(self.runtime.root)
        stats.writable_layer.used_bytes.value = used
        stats.writable_layer.inodes_used.value = inodes
        return stats

    @rpc
    async def ContainerStats(self, request, context):
        return cri.ContainerStatsResponse(stats=self._container_stats(self.runtime.get_container(request.container_id)))

    @rpc
    async def ListContainerStats(self, request, context):
        f = request.filter
        stats = []
        for record in self.runtime.list_containers():
            if record.state != RUNNING:
                continue
            if f.id and not record.id.startswith(f.id):
                continue
            if f.pod_sandbox_id and not record.sandbox_id.startswith(f.pod_sandbox_id):
                continue
            if not labels_match(record.container_config.labels, f.label_selector):
                continue
            stats.append(self._container_stats(record))
        return cri.ListContainerStatsResponse(stats=stats)

    def _sandbox_stats(self, record: SandboxRecord) -> cri.PodSandboxStats:
        at = time.time_ns()
        config = record.pod_config
        stats = cri.PodSandboxStats(attributes=cri.PodSandboxAttributes(
            id=record.id, metadata=config.metadata, labels=config.labels, annotations=config.annotations))
        use = cgroups.usage(record.cgroup_parent)
        fill_cpu_memory(stats.linux.cpu, stats.linux.memory, use, at,
                        self.runtime.cpu_nano_cores(f"pod:{record.id}", use.cpu_ns, at))
        if use.pids is not None:
            stats.linux.process.timestamp = at
            stats.linux.process.process_count.value = use.pids
        interface = self.runtime.network.interface_stats(record.id) if record.netns else None
        if interface is not None:
            rx, tx = interface
            stats.linux.network.timestamp = at
            stats.linux.network.default_interface.name = "eth0"
            stats.linux.network.default_interface.rx_bytes.value = rx
            stats.linux.network.default_interface.tx_bytes.value = tx
        for container in self.runtime.list_containers():
            if container.sandbox_id == record.id and container.state == RUNNING:
                stats.linux.containers.append(self._container_stats(container))
        return stats

    @rpc
    async def PodSandboxStats(self, request, context):
        return cri.PodSandboxStatsResponse(stats=self._sandbox_stats(self.runtime.get_sandbox(request.pod_sandbox_id)))

    @rpc
    async def ListPodSandboxStats(self, request, context):
        f = request.filter
        stats = [self._sandbox_stats(record) for record in self.runtime.list_sandboxes()
                 if record.state == SANDBOX_READY and (not f.id or record.id.startswith(f.id))
                 and labels_match(record.pod_config.labels, f.label_selector)]
        return cri.ListPodSandboxStatsResponse(stats=stats)


def fill_cpu_memory(cpu: cri.CpuUsage, memory: cri.MemoryUsage, use: cgroups.Usage, at: int,
                    nano_cores: int | None) -> None:
    cpu.timestamp = at
    memory.timestamp = at
    if use.cpu_ns is not None:
        cpu.usage_core_nano_seconds.value = use.cpu_ns
    if nano_cores is not None:
        cpu.usage_nano_cores.value = nano_cores
    for field, value in (("working_set_bytes", use.working_set), ("usage_bytes", use.memory_usage),
                         ("rss_bytes", use.rss), ("page_faults", use.page_faults),
                         ("major_page_faults", use.major_page_faults)):
        if value is not None:
            getattr(memory, field).value = value
    if use.memory_limit is not None and use.working_set is not None and use.memory_limit < 1 << 62:
        memory.available_bytes.value = max(0, use.memory_limit - use.working_set)


class ImageServicer(cri_grpc.ImageServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.images = runtime.images
        self.root = runtime.root

    @rpc
    async def ListImages(self, request, context):
        wanted = request.filter.image.image
        images = await asyncio.to_thread(self.images.list)
        if wanted:
            match = self.images.resolve(wanted)
            images = [match] if match is not None else []
        return cri.ListImagesResponse(images=[image_message(image) for image in images])

    @rpc
    async def ImageStatus(self, request, context):
        if not request.image.image:
            raise InvalidArgument("ImageStatus needs an image")
        image = self.images.resolve(request.image.image)
        # An unknown image is not an error here: the kubelet asks to learn whether it must pull.
        return cri.ImageStatusResponse(image=image_message(image) if image is not None else None)

    @rpc
    async def PullImage(self, request, context):
        if not request.image.image:
            raise InvalidArgument("PullImage needs an image")
        auth = {key: value for key, value in (
            ("username", request.auth.username), ("password", request.auth.password), ("auth", request.auth.auth),
            ("identity_token", request.auth.identity_token), ("registry_token", request.auth.registry_token))
            if value}
        builtin = self._builtin(request.image.image)
        if builtin is not None:
            return cri.PullImageResponse(image_ref=builtin.id)
        image = await registry.pull(self.images, request.image.image, auth or None)
        return cri.PullImageResponse(image_ref=image.id)

    def _builtin(self, ref: str):
        """The built-in image ``ref`` names (busybox:latest, the pause image), which is pinned: pulling it (the
        default policy for a ``:latest`` image is Always) answers from the store, so pods run offline."""
        reference = parse(ref)
        if reference.digest or f"{reference.name}:{reference.tag or 'latest'}" not in (BUSYBOX_IMAGE, PAUSE_IMAGE):
            return None
        return self.images.resolve(ref)

    @rpc
    async def RemoveImage(self, request, context):
        """Idempotent (an unknown image is OK). An image with users (a container or pod sandbox in any state, see
        ImageStore.add_user) is refused with FAILED_PRECONDITION naming them. Debian's containerd 1.6 answers OK
        even for a running container's image (its containers keep their own snapshots; containerd#6192), CRI-O
        refuses; we must refuse: a container's rootfs is an overlayfs stacked on the image's own layer dirs."""
        if not request.image.image:
            raise InvalidArgument("RemoveImage needs an image")
        await asyncio.to_thread(self.images.remove, request.image.image)
        return cri.RemoveImageResponse()

    @rpc
    async def ImageFsInfo(self, request, context):
        used, inodes, mountpoint = await asyncio.to_thread(self.images.fs_info)
        usage = cri.FilesystemUsage(timestamp=time.time_ns(), fs_id=cri.FilesystemIdentifier(mountpoint=mountpoint))
        usage.used_bytes.value = used
        usage.inodes_used.value = inodes
        return cri.ImageFsInfoResponse(image_filesystems=[usage], container_filesystems=[usage])


async def serve(runtime: Runtime, listen: str, network_ready,
                streaming: StreamingServer | None = None) -> grpc.aio.Server:
    """Start the gRPC server on ``listen`` (``unix:///path`` or ``host:port``); the caller awaits termination."""
    if listen.startswith("unix://"):
        path = listen.removeprefix("unix://")
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 16 * 1024 * 1024),
                                      ("grpc.max_send_message_length", 16 * 1024 * 1024)])
    cri_grpc.add_RuntimeServiceServicer_to_server(RuntimeServicer(runtime, network_ready, streaming), server)
    cri_grpc.add_ImageServiceServicer_to_server(ImageServicer(runtime), server)
    if server.add_insecure_port(listen) == 0 and not listen.startswith("unix://"):
        raise RuntimeFailure(f"cannot listen on {listen}")
    await server.start()
    return server

