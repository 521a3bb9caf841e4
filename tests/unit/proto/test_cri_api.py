"""The CRI runtime.v1 stubs: names, field numbers and wire encoding match upstream k8s.io/cri-api (v1.35)."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest

from proto.cri import api_pb2, api_pb2_grpc

RUNTIME_METHODS = [
    "Version",
    "RunPodSandbox",
    "StopPodSandbox",
    "RemovePodSandbox",
    "PodSandboxStatus",
    "ListPodSandbox",
    "CreateContainer",
    "StartContainer",
    "StopContainer",
    "RemoveContainer",
    "ListContainers",
    "ContainerStatus",
    "UpdateContainerResources",
    "ReopenContainerLog",
    "ExecSync",
    "Exec",
    "Attach",
    "PortForward",
    "ContainerStats",
    "ListContainerStats",
    "PodSandboxStats",
    "ListPodSandboxStats",
    "UpdateRuntimeConfig",
    "Status",
]
IMAGE_METHODS = ["ListImages", "ImageStatus", "PullImage", "RemoveImage", "ImageFsInfo"]

# (message, field, number) as published in k8s.io/cri-api pkg/apis/runtime/v1/api.proto.
FIELD_NUMBERS = [
    ("VersionResponse", "runtime_api_version", 4),
    ("PodSandboxMetadata", "namespace", 3),
    ("PodSandboxMetadata", "attempt", 4),
    ("PodSandboxConfig", "log_directory", 3),
    ("PodSandboxConfig", "port_mappings", 5),
    ("PodSandboxConfig", "annotations", 7),
    ("PodSandboxConfig", "linux", 8),
    ("PodSandboxConfig", "windows", 9),
    ("RunPodSandboxRequest", "runtime_handler", 2),
    ("LinuxPodSandboxConfig", "sysctls", 3),
    ("LinuxPodSandboxConfig", "resources", 5),
    ("LinuxSandboxSecurityContext", "run_as_group", 8),
    ("LinuxSandboxSecurityContext", "readonly_rootfs", 4),
    ("LinuxSandboxSecurityContext", "seccomp_profile_path", 7),
    ("LinuxSandboxSecurityContext", "supplemental_groups_policy", 11),
    ("NamespaceOption", "userns_options", 5),
    ("Namespace", "options", 2),
    ("Mount", "uidMappings", 6),
    ("Mount", "recursive_read_only", 8),
    ("Mount", "image_sub_path", 10),
    ("ImageSpec", "annotations", 2),
    ("ImageSpec", "user_specified_image", 18),
    ("ImageSpec", "runtime_handler", 19),
    ("ImageSpec", "image_ref", 20),
    ("ContainerConfig", "envs", 6),
    ("ContainerConfig", "log_path", 11),
    ("ContainerConfig", "tty", 14),
    ("ContainerConfig", "linux", 15),
    ("ContainerConfig", "CDI_devices", 17),
    ("ContainerConfig", "stop_signal", 18),
    ("LinuxContainerConfig", "security_context", 2),
    ("LinuxContainerResources", "memory_limit_in_bytes", 4),
    ("LinuxContainerResources", "oom_score_adj", 5),
    ("LinuxContainerResources", "unified", 9),
    ("LinuxContainerResources", "memory_swap_limit_in_bytes", 10),
    ("LinuxContainerSecurityContext", "run_as_user", 5),
    ("LinuxContainerSecurityContext", "run_as_group", 12),
    ("LinuxContainerSecurityContext", "run_as_username", 6),
    ("LinuxContainerSecurityContext", "no_new_privs", 11),
    ("LinuxContainerSecurityContext", "seccomp", 15),
    ("LinuxContainerSecurityContext", "supplemental_groups_policy", 17),
    ("CreateContainerRequest", "sandbox_config", 3),
    ("Container", "image_ref", 5),
    ("Container", "image_id", 10),
    ("ContainerStatus", "exit_code", 7),
    ("ContainerStatus", "reason", 10),
    ("ContainerStatus", "log_path", 15),
    ("ContainerStatus", "image_id", 17),
    ("ContainerStatus", "stop_signal", 19),
    ("PodSandboxStatus", "network", 5),
    ("PodSandboxStatus", "runtime_handler", 9),
    ("PodSandboxStatusResponse", "containers_statuses", 3),
    ("PodSandboxStatusResponse", "timestamp", 4),
    ("PodSandbox", "runtime_handler", 7),
    ("ContainerFilter", "label_selector", 4),
    ("StopContainerRequest", "timeout", 2),
    ("ExecSyncRequest", "cmd", 2),
    ("ExecSyncRequest", "timeout", 3),
    ("ExecSyncResponse", "exit_code", 3),
    ("AttachRequest", "tty", 3),
    ("Image", "pinned", 8),
    ("PullImageRequest", "sandbox_config", 3),
    ("AuthConfig", "registry_token", 6),
    ("ImageFsInfoResponse", "container_filesystems", 2),
    ("StatusResponse", "features", 4),
    ("ContainerStats", "io", 6),
    ("MemoryUsage", "psi", 8),
]

ENUM_VALUES = [
    ("NamespaceMode", "TARGET", 3),
    ("PodSandboxState", "SANDBOX_NOTREADY", 1),
    ("ContainerState", "CONTAINER_UNKNOWN", 3),
    ("MountPropagation", "PROPAGATION_BIDIRECTIONAL", 2),
    ("Protocol", "SCTP", 2),
    ("SupplementalGroupsPolicy", "Strict", 1),
    ("Signal", "SIGKILL", 13),
    ("Signal", "SIGTERM", 23),
    ("Signal", "SIGRTMAX", 65),
]


def test_package_and_services() -> None:
    assert api_pb2.DESCRIPTOR.package == "runtime.v1"
    assert set(api_pb2.DESCRIPTOR.services_by_name) == {"RuntimeService", "ImageService"}
    assert api_pb2.DESCRIPTOR.services_by_name["RuntimeService"].full_name == "runtime.v1.RuntimeService"
    # the generated stubs expose client and server helpers for both services
    assert hasattr(api_pb2_grpc, "RuntimeServiceStub")
    assert hasattr(api_pb2_grpc, "ImageServiceServicer")
    assert hasattr(api_pb2_grpc, "add_RuntimeServiceServicer_to_server")


@pytest.mark.parametrize(("service", "methods"), [("RuntimeService", RUNTIME_METHODS), ("ImageService", IMAGE_METHODS)])
def test_service_methods_are_unary_with_matching_messages(service: str, methods: list[str]) -> None:
    desc = api_pb2.DESCRIPTOR.services_by_name[service]
    assert [m.name for m in desc.methods] == methods
    for method in desc.methods:
        assert not method.client_streaming, method.name
        assert not method.server_streaming, method.name
        assert method.input_type.name == f"{method.name}Request"
        assert method.output_type.name == f"{method.name}Response"
        assert method.input_type.full_name.startswith("runtime.v1.")


def test_grpc_method_paths() -> None:
    # The HTTP/2 path is what a real runtime routes on.
    stub = api_pb2_grpc.RuntimeServiceStub(_RecordingChannel())
    assert stub.Version._method == "/runtime.v1.RuntimeService/Version"
    assert stub.RunPodSandbox._method == "/runtime.v1.RuntimeService/RunPodSandbox"
    images = api_pb2_grpc.ImageServiceStub(_RecordingChannel())
    assert images.PullImage._method == "/runtime.v1.ImageService/PullImage"


class _RecordingCallable:
    def __init__(self, method: str) -> None:
        self._method = method


class _RecordingChannel:
    """Stands in for a grpc.Channel: records the method path each stub binds to."""

    def unary_unary(self, method: str, *args: object, **kwargs: object) -> _RecordingCallable:
        return _RecordingCallable(method)


@pytest.mark.parametrize(("message", "field", "number"), FIELD_NUMBERS)
def test_field_numbers(message: str, field: str, number: int) -> None:
    desc = api_pb2.DESCRIPTOR.message_types_by_name[message]
    assert desc.fields_by_name[field].number == number


@pytest.mark.parametrize(("enum", "name", "number"), ENUM_VALUES)
def test_enum_values(enum: str, name: str, number: int) -> None:
    assert api_pb2.DESCRIPTOR.enum_types_by_name[enum].values_by_name[name].number == number


def test_security_profile_nested_enum() -> None:
    profile = api_pb2.SecurityProfile.DESCRIPTOR
    assert profile.fields_by_name["profile_type"].number == 1
    assert profile.fields_by_name["localhost_ref"].number == 2
    assert profile.enum_types_by_name["ProfileType"].values_by_name["Localhost"].number == 2


def _sandbox_config() -> api_pb2.PodSandboxConfig:
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name="web-0", uid="1234-abcd", namespace="default", attempt=1),
        hostname="web-0",
        log_directory="/var/log/pods/default_web-0_1234-abcd",
        dns_config=api_pb2.DNSConfig(servers=["10.96.0.10"], searches=["default.svc.cluster.local"]),
        port_mappings=[api_pb2.PortMapping(protocol=api_pb2.TCP, container_port=80, host_port=8080)],
        labels={"app": "web"},
        annotations={"kubemini.io/created-by": "test"},
        linux=api_pb2.LinuxPodSandboxConfig(
            cgroup_parent="/kubepods/besteffort/pod1234",
            security_context=api_pb2.LinuxSandboxSecurityContext(
                namespace_options=api_pb2.NamespaceOption(network=api_pb2.POD, pid=api_pb2.CONTAINER),
                run_as_user=api_pb2.Int64Value(value=1000),
                seccomp=api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.RuntimeDefault),
            ),
            sysctls={"net.ipv4.ip_unprivileged_port_start": "0"},
        ),
    )


def test_run_pod_sandbox_round_trip() -> None:
    req = api_pb2.RunPodSandboxRequest(config=_sandbox_config(), runtime_handler="runc")
    parsed = api_pb2.RunPodSandboxRequest.FromString(req.SerializeToString())
    assert parsed == req
    assert parsed.config.metadata.namespace == "default"
    assert parsed.config.port_mappings[0].host_port == 8080
    assert parsed.config.linux.security_context.run_as_user.value == 1000
    assert parsed.config.linux.security_context.HasField("run_as_group") is False
    assert dict(parsed.config.linux.sysctls) == {"net.ipv4.ip_unprivileged_port_start": "0"}


def test_create_container_round_trip() -> None:
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="nginx", attempt=0),
        image=api_pb2.ImageSpec(image="docker.io/library/nginx:1.27", user_specified_image="nginx:1.27"),
        command=["nginx"],
        args=["-g", "daemon off;"],
        working_dir="/",
        envs=[api_pb2.KeyValue(key="PORT", value="80")],
        mounts=[
            api_pb2.Mount(
                container_path="/data",
                host_path="/var/lib/kubemini/pods/1234/volumes/data",
                readonly=True,
                propagation=api_pb2.PROPAGATION_PRIVATE,
            )
        ],
        labels={"io.kubernetes.container.name": "nginx"},
        log_path="nginx/0.log",
        linux=api_pb2.LinuxContainerConfig(
            resources=api_pb2.LinuxContainerResources(
                cpu_period=100000, cpu_quota=50000, memory_limit_in_bytes=128 * 1024 * 1024
            ),
            security_context=api_pb2.LinuxContainerSecurityContext(
                capabilities=api_pb2.Capability(drop_capabilities=["ALL"]), no_new_privs=True
            ),
        ),
        stop_signal=api_pb2.SIGTERM,
    )
    req = api_pb2.CreateContainerRequest(pod_sandbox_id="sb-1", config=config, sandbox_config=_sandbox_config())
    parsed = api_pb2.CreateContainerRequest.FromString(req.SerializeToString())
    assert parsed == req
    assert parsed.config.linux.resources.memory_limit_in_bytes == 134217728
    assert list(parsed.config.args) == ["-g", "daemon off;"]
    assert parsed.config.mounts[0].readonly is True
    assert parsed.config.stop_signal == api_pb2.SIGTERM
    assert parsed.sandbox_config.metadata.name == "web-0"


def test_version_request_wire_bytes() -> None:
    # field 1, wire type 2 (length-delimited) -> tag 0x0a, then length 5 and the UTF-8 bytes
    assert api_pb2.VersionRequest(version="0.1.0").SerializeToString() == b"\n\x050.1.0"


def test_container_status_wire_tags() -> None:
    # high-numbered fields land on the tags upstream peers expect
    status = api_pb2.ContainerStatus(exit_code=137, stop_signal=api_pb2.SIGKILL)
    # exit_code: field 7 varint -> 0x38; stop_signal: field 19 varint -> 0x98 0x01
    assert status.SerializeToString() == b"\x38\x89\x01\x98\x01\x0d"
    spec = api_pb2.ImageSpec(image_ref="sha256:ab")
    # image_ref: field 20 length-delimited -> 0xa2 0x01
    assert spec.SerializeToString() == b"\xa2\x01\x09sha256:ab"


class _FakeRuntime(api_pb2_grpc.RuntimeServiceServicer):
    def Version(self, request: api_pb2.VersionRequest, context: object) -> api_pb2.VersionResponse:
        return api_pb2.VersionResponse(
            version=request.version, runtime_name="fake", runtime_version="1.0.0", runtime_api_version="v1"
        )


def test_stub_and_servicer_talk_over_a_real_channel() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    api_pb2_grpc.add_RuntimeServiceServicer_to_server(_FakeRuntime(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = api_pb2_grpc.RuntimeServiceStub(channel).Version(api_pb2.VersionRequest(version="0.1.0"), timeout=5)
        assert (reply.version, reply.runtime_name, reply.runtime_api_version) == ("0.1.0", "fake", "v1")
    finally:
        server.stop(None)
