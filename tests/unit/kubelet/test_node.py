"""The node agent against fakes: registration, adoption, status and conditions, pressure, the Lease, host facts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from kubelet.cri import CriError
from kubelet.node import (
    FsStats,
    LinuxHost,
    MemoryStats,
    NodeAgent,
    NodeConfig,
    NodeLease,
    PidStats,
    RegistrationError,
    SystemIdentity,
    parse_node_labels,
    parse_taints,
)
from kubelet.node.host import default_route_interface, go_arch, os_release_name, parse_meminfo
from kubelet.node.pressure import PressureTracker, Signals, crossed_thresholds
from machinery.client import LEASES, NAMESPACES, NODES
from machinery.clock import FakeClock
from machinery.errors import conflict as conflict_error
from machinery.errors import invalid, not_found, service_unavailable
from machinery.meta import format_rfc3339, micro_time_now
from proto.cri import api_pb2 as cri
from tests.fakes import FakeClient, FakeRecorder

GI = 1024**3
MI = 1024**2
ROOT = Path("/var/lib/kubelet-test")


@dataclass
class FakeHost:
    cpus: int = 4
    memory_stats: MemoryStats = field(default_factory=lambda: MemoryStats(8 * GI, 6 * GI, 2 * GI))
    filesystems: dict[str, FsStats] = field(default_factory=lambda: {
        str(ROOT): FsStats(100 * GI, 60 * GI, 1000, 900), "/images": FsStats(50 * GI, 40 * GI, 1000, 900)})
    pid_stats: PidStats | None = field(default_factory=lambda: PidStats(32768, 200))
    ip: str | None = "192.0.2.10"

    def cpu_count(self) -> int:
        return self.cpus

    def memory(self) -> MemoryStats:
        return self.memory_stats

    def filesystem(self, path: Path) -> FsStats | None:
        return self.filesystems.get(str(path))

    def pids(self) -> PidStats | None:
        return self.pid_stats

    def identity(self) -> SystemIdentity:
        return SystemIdentity("machine-1", "uuid-1", "boot-1", "6.1.0", "Debian GNU/Linux 12 (bookworm)", "amd64")

    def default_ip(self) -> str | None:
        return self.ip


class FakeRuntime:
    """Answers the CRI calls the node agent makes; flip ``down`` / ``network_ready`` to change its state."""

    def __init__(self) -> None:
        self.down = False
        self.network_ready = True
        self.images = [
            cri.Image(id="sha256:small", repo_tags=["busybox:latest"], repo_digests=["busybox@sha256:aa"], size=5),
            cri.Image(id="sha256:big", repo_tags=["nginx:1.27"], size=500),
            cri.Image(id="sha256:none", size=1000),
        ]

    def _check(self, method: str) -> None:
        if self.down:
            raise CriError(method, grpc.StatusCode.UNAVAILABLE, "connection refused")

    async def version(self):
        self._check("Version")
        return cri.VersionResponse(version="0.1.0", runtime_name="kubemini", runtime_version="0.1.0",
                                   runtime_api_version="v1")

    async def status(self, verbose: bool = False):
        self._check("Status")
        network = cri.RuntimeCondition(type="NetworkReady", status=self.network_ready,
                                       reason="" if self.network_ready else "NetworkPluginNotReady",
                                       message="" if self.network_ready else "no bridge")
        return cri.StatusResponse(
            status=cri.RuntimeStatus(conditions=[cri.RuntimeCondition(type="RuntimeReady", status=True), network]),
            runtime_handlers=[cri.RuntimeHandler(name="", features=cri.RuntimeHandlerFeatures(
                recursive_read_only_mounts=True))],
            features=cri.RuntimeFeatures(supplemental_groups_policy=True))

    async def list_images(self):
        self._check("ListImages")
        return list(self.images)

    async def image_fs_info(self):
        self._check("ImageFsInfo")
        usage = cri.FilesystemUsage(fs_id=cri.FilesystemIdentifier(mountpoint="/images"))
        return cri.ImageFsInfoResponse(image_filesystems=[usage])


def make_agent(client: FakeClient | None = None, runtime: FakeRuntime | None = None, host: FakeHost | None = None,
               recorder=None, **config) -> tuple[NodeAgent, FakeClient, FakeRuntime, FakeHost]:
    client = client or FakeClient()
    runtime = runtime or FakeRuntime()
    host = host or FakeHost()
    settings = {"node_name": "node-1", "root_dir": ROOT, **config}
    agent = NodeAgent(client, runtime, NodeConfig(**settings), clock=client.clock, host=host, recorder=recorder)
    return agent, client, runtime, host


def conditions_of(node: dict) -> dict[str, dict]:
    return {c["type"]: c for c in node["status"]["conditions"]}


async def settle(rounds: int = 30) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


# --- registration ----------------------------------------------------------------------------------


async def test_registration_creates_the_node_with_labels_spec_and_full_status() -> None:
    agent, client, _, _ = make_agent(pod_cidr="10.244.1.0/24", labels={"tier": "edge"},
                                     taints=({"key": "dedicated", "value": "edge", "effect": "NoSchedule"},))
    node = await agent.register()

    assert agent.node == node == client.stored(NODES, None, "node-1")
    meta, spec, status = node["metadata"], node["spec"], node["status"]
    assert meta["labels"] == {"tier": "edge", "kubernetes.io/hostname": "node-1", "kubernetes.io/os": "linux",
                              "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                              "beta.kubernetes.io/arch": "amd64"}
    assert meta["annotations"] == {"volumes.kubernetes.io/controller-managed-attach-detach": "true"}
    assert spec == {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"],
                    "taints": [{"key": "dedicated", "value": "edge", "effect": "NoSchedule"}]}
    assert status["capacity"] == {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "100Gi", "pods": "110",
                                  "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
    assert status["allocatable"] == {"cpu": "4", "memory": "8092Mi", "ephemeral-storage": "90Gi",
                                     "pods": "110", "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
    assert status["nodeInfo"] == {
        "machineID": "machine-1", "systemUUID": "uuid-1", "bootID": "boot-1", "kernelVersion": "6.1.0",
        "osImage": "Debian GNU/Linux 12 (bookworm)", "containerRuntimeVersion": "kubemini://0.1.0",
        "kubeletVersion": "v1.35.0-kubemini", "kubeProxyVersion": "", "operatingSystem": "linux",
        "architecture": "amd64", "swap": {"capacity": 2 * GI}}
    assert status["addresses"] == [{"type": "InternalIP", "address": "192.0.2.10"},
                                   {"type": "Hostname", "address": "node-1"}]
    assert agent.node_ip == "192.0.2.10"
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    # largest first, digests before tags, unnamed images left out
    assert status["images"] == [{"names": ["nginx:1.27"], "sizeBytes": 500},
                                {"names": ["busybox@sha256:aa", "busybox:latest"], "sizeBytes": 5}]
    assert status["runtimeHandlers"] == [{"name": "", "features": {"recursiveReadOnlyMounts": True,
                                                                   "userNamespaces": False}}]
    assert status["features"] == {"supplementalGroupsPolicy": True}
    conditions = conditions_of(node)
    assert [c["type"] for c in status["conditions"]] == ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    assert {t: (c["status"], c["reason"]) for t, c in conditions.items()} == {
        "MemoryPressure": ("False", "KubeletHasSufficientMemory"),
        "DiskPressure": ("False", "KubeletHasNoDiskPressure"),
        "PIDPressure": ("False", "KubeletHasSufficientPID"),
        "Ready": ("True", "KubeletReady")}
    assert conditions["Ready"]["message"] == "kubelet is posting ready status"
    now = format_rfc3339(client.clock.now())
    assert all(c["lastHeartbeatTime"] == c["lastTransitionTime"] == now for c in conditions.values())


async def test_capacity_overrides_and_system_reserved_shape_allocatable() -> None:
    agent, _, _, _ = make_agent(capacity_overrides={"cpu": "2", "example.com/gpu": "1"}, max_pods=30,
                                system_reserved={"cpu": "500m", "memory": "1Gi", "example.com/gpu": "3"})
    assert agent.allocatable() == {"cpu": "1500m", "memory": "7068Mi", "ephemeral-storage": "90Gi",
                                   "pods": "30", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
                                   "example.com/gpu": "0"}
    node = await agent.register()
    assert node["status"]["capacity"]["cpu"] == "2"
    assert node["status"]["capacity"]["example.com/gpu"] == "1"


async def test_node_ip_falls_back_to_loopback_and_config_wins() -> None:
    assert make_agent(host=FakeHost(ip=None))[0].node_ip == "127.0.0.1"
    assert make_agent(node_ip="10.1.2.3")[0].node_ip == "10.1.2.3"


async def test_adopting_an_existing_node_reconciles_what_the_kubelet_owns() -> None:
    client = FakeClient()
    client.seed(NODES, {"metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "old-name",
                                                                  "team": "a"}},
                        "spec": {"taints": [{"key": "admin", "effect": "NoSchedule"}]},
                        "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady",
                                                   "message": "old", "lastHeartbeatTime": "2025-01-01T00:00:00Z",
                                                   "lastTransitionTime": "2025-01-01T00:00:00Z"}]}})
    agent, _, _, _ = make_agent(client, pod_cidr="10.244.7.0/24", labels={"tier": "edge"},
                                taints=({"key": "new", "effect": "NoExecute"},))
    node = await agent.register()

    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "node-1" and labels["kubernetes.io/arch"] == "amd64"
    assert labels["team"] == "a" and "tier" not in labels  # --node-labels apply at creation only
    assert node["metadata"]["annotations"]["volumes.kubernetes.io/controller-managed-attach-detach"] == "true"
    assert node["spec"]["podCIDRs"] == ["10.244.7.0/24"]
    assert node["spec"]["taints"] == [{"key": "admin", "effect": "NoSchedule"}]
    ready = conditions_of(node)["Ready"]
    assert ready["status"] == "True" and ready["lastTransitionTime"] == format_rfc3339(client.clock.now())
    assert [(a.verb, a.subresource) for a in client.actions_of(plural="nodes")] == [
        ("create", ""), ("get", ""), ("patch", ""), ("patch", "status")]
    assert agent.node == client.stored(NODES, None, "node-1")


async def test_adoption_keeps_a_pod_cidr_already_set() -> None:
    client = FakeClient()
    client.seed(NODES, {"metadata": {"name": "node-1"}, "spec": {"podCIDR": "10.1.0.0/24",
                                                                  "podCIDRs": ["10.1.0.0/24"]}})
    agent, _, _, _ = make_agent(client, pod_cidr="10.244.7.0/24")
    node = await agent.register()
    assert node["spec"]["podCIDRs"] == ["10.1.0.0/24"]


async def test_registration_retries_with_backoff_until_the_server_answers() -> None:
    agent, client, _, _ = make_agent()
    client.fail("create", "nodes", service_unavailable("etcd is down"))
    client.fail("create", "nodes", service_unavailable("etcd is down"))
    task = asyncio.create_task(agent.register())
    await settle()
    assert not task.done() and client.clock.sleepers == 1
    client.clock.advance(0.1)
    await settle()
    assert not task.done()
    client.clock.advance(0.2)  # doubled
    node = await asyncio.wait_for(task, 1)
    assert node["metadata"]["name"] == "node-1"
    assert len(client.actions_of("create", "nodes")) == 3


async def test_an_invalid_node_is_a_clear_error_not_a_retry_loop() -> None:
    agent, client, _, _ = make_agent()
    client.fail("create", "nodes", invalid("Node", "node-1", []))
    with pytest.raises(RegistrationError, match="cannot register node node-1"):
        await agent.register()


@pytest.mark.parametrize("settings, problem", [
    ({"node_name": "Bad_Name"}, "node name"),
    ({"labels": {"bad key!": "x"}}, "node labels"),
    ({"taints": ({"key": "k", "effect": "Sometimes"},)}, "effect 'Sometimes'"),
    ({"capacity_overrides": {"cpu": "lots"}}, "capacity override cpu='lots'"),
    ({"system_reserved": {"memory": "-1Gi"}}, "must not be negative"),
    ({"node_ip": "300.1.1.1"}, "not an IP address"),
    ({"pod_cidr": "10.0.0.0/99"}, "pod CIDR"),
    ({"max_pods": 0}, "max pods"),
])
def test_bad_configuration_is_one_clear_error(settings: dict, problem: str) -> None:
    with pytest.raises(ValueError, match="invalid node configuration") as err:
        NodeConfig(**{"node_name": "node-1", "root_dir": ROOT, **settings})
    assert problem in str(err.value)


def test_flag_syntax_for_labels_and_taints() -> None:
    assert parse_node_labels("a=1, example.com/b=x,") == {"a": "1", "example.com/b": "x"}
    assert parse_taints("dedicated=gpu:NoSchedule,spot:PreferNoSchedule") == (
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}, {"key": "spot", "effect": "PreferNoSchedule"})
    with pytest.raises(ValueError, match="expected key=value"):
        parse_node_labels("novalue")
    with pytest.raises(ValueError, match="expected key"):
        parse_taints("noeffect")


# --- status and conditions ---------------------------------------------------------------------------


async def test_status_is_patched_only_on_change_or_after_the_report_frequency() -> None:
    agent, client, _, host = make_agent()
    await agent.register()
    registered = format_rfc3339(client.clock.now())

    client.clock.advance(10)
    assert await agent.sync_status() is False
    assert client.actions_of("patch", "nodes") == []

    host.memory_stats = MemoryStats(8 * GI, 50 * MI)  # a change: memory pressure
    client.clock.advance(10)
    assert await agent.sync_status() is True
    (patch,) = [a.body for a in client.actions_of("patch", "nodes")]
    assert patch["status"]["conditions"][0]["status"] == "True"
    assert "images" not in patch["status"] and "capacity" not in patch["status"]  # unchanged parts are not sent
    assert patch["status"]["nodeInfo"] == {"swap": {"capacity": 0}}
    memory = conditions_of(agent.node)["MemoryPressure"]
    assert (memory["reason"], memory["lastTransitionTime"]) == ("KubeletHasInsufficientMemory",
                                                                format_rfc3339(client.clock.now()))
    assert conditions_of(agent.node)["Ready"]["lastTransitionTime"] == registered

    client.clock.advance(290)
    assert await agent.sync_status() is False
    client.clock.advance(10)  # 300 s since the last write: heartbeat
    assert await agent.sync_status() is True
    patch = client.actions_of("patch", "nodes")[-1].body
    assert set(patch["status"]) == {"conditions"}
    ready = conditions_of(agent.node)["Ready"]
    assert ready["lastHeartbeatTime"] == format_rfc3339(client.clock.now())
    assert ready["lastTransitionTime"] == registered


async def test_ready_follows_the_runtime() -> None:
    agent, client, runtime, _ = make_agent()
    runtime.network_ready = False
    node = await agent.register()
    ready = conditions_of(node)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "KubeletNotReady")
    assert ready["message"] == ("container runtime network not ready: NetworkReady=false "
                                "reason:NetworkPluginNotReady message:no bridge")

    runtime.network_ready = True
    client.clock.advance(10)
    await agent.sync_status()
    assert conditions_of(agent.node)["Ready"]["status"] == "True"

    runtime.down = True
    client.clock.advance(10)
    await agent.sync_status()
    ready = conditions_of(agent.node)["Ready"]
    assert (ready["status"], ready["message"]) == ("False", "container runtime is down")
    # what the runtime said before stays reported while it is down
    assert agent.node["status"]["nodeInfo"]["containerRuntimeVersion"] == "kubemini://0.1.0"
    assert len(agent.node["status"]["images"]) == 2


async def test_condition_events_are_recorded_on_transitions() -> None:
    recorder = FakeRecorder()
    agent, client, runtime, _ = make_agent(recorder=recorder)
    await agent.register()
    assert sorted(recorder.reasons()) == ["NodeHasNoDiskPressure", "NodeHasSufficientMemory",
                                          "NodeHasSufficientPID", "NodeReady"]
    runtime.down = True
    client.clock.advance(10)
    await agent.sync_status()
    assert recorder.events[-1] == ("node-1", "Normal", "NodeNotReady", "Node node-1 status is now: NodeNotReady")


async def test_image_changes_are_reported() -> None:
    agent, client, runtime, _ = make_agent()
    await agent.register()
    runtime.images.append(cri.Image(id="sha256:new", repo_tags=["redis:7"], size=50))
    client.clock.advance(10)
    assert await agent.sync_status() is True
    assert [i["names"] for i in agent.node["status"]["images"]] == [
        ["nginx:1.27"], ["redis:7"], ["busybox@sha256:aa", "busybox:latest"]]


async def test_a_deleted_node_is_registered_again() -> None:
    agent, client, _, _ = make_agent()
    first = await agent.register()
    del client.objects[("nodes", "", "node-1")]
    assert await agent.sync_status() is True
    assert agent.node["metadata"]["uid"] != first["metadata"]["uid"]
    assert client.stored(NODES, None, "node-1") is not None


# --- pressure ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signals, expected", [
    (Signals(memory=MemoryStats(8 * GI, 101 * MI)), {}),
    (Signals(memory=MemoryStats(8 * GI, 99 * MI)), {"MemoryPressure": ["memory.available"]}),
    (Signals(nodefs=FsStats(100, 11, 100, 100)), {}),
    (Signals(nodefs=FsStats(100, 9, 100, 100)), {"DiskPressure": ["nodefs.available"]}),
    (Signals(nodefs=FsStats(100, 50, 100, 4)), {"DiskPressure": ["nodefs.inodesFree"]}),
    (Signals(imagefs=FsStats(100, 16, 100, 100)), {}),
    (Signals(imagefs=FsStats(100, 14, 100, 100)), {"DiskPressure": ["imagefs.available"]}),
    (Signals(pids=PidStats(1000, 899)), {}),
    (Signals(pids=PidStats(1000, 901)), {"PIDPressure": ["pid.available"]}),
    (Signals(nodefs=FsStats(0, 0, 0, 0)), {}),  # unknown sizes are never pressure
])
def test_pressure_thresholds(signals: Signals, expected: dict) -> None:
    assert crossed_thresholds(signals) == expected


def test_pressure_lasts_for_the_transition_period() -> None:
    clock = FakeClock()
    tracker = PressureTracker(clock, 300)
    assert tracker.observe(["DiskPressure"]) == {"DiskPressure"}
    clock.advance(299)
    assert tracker.observe([]) == {"DiskPressure"}
    clock.advance(1)
    assert tracker.observe([]) == frozenset()


async def test_disk_pressure_from_the_image_filesystem_reaches_the_node() -> None:
    host = FakeHost()
    host.filesystems["/images"] = FsStats(100 * GI, 10 * GI, 1000, 900)
    agent, _, _, _ = make_agent(host=host)
    node = await agent.register()
    disk = conditions_of(node)["DiskPressure"]
    assert (disk["status"], disk["reason"], disk["message"]) == ("True", "KubeletHasDiskPressure",
                                                                 "kubelet has disk pressure")
    assert conditions_of(node)["Ready"]["status"] == "True"  # Ready stays independent of pressure


# --- lease ------------------------------------------------------------------------------------------------


def node_lease(client: FakeClient, owner: dict | None) -> NodeLease:
    return NodeLease(client, "node-1", 40, owner=lambda: owner, clock=client.clock)


async def test_lease_is_created_owned_by_the_node_then_renewed_with_one_put() -> None:
    client = FakeClient()
    node = client.seed(NODES, {"metadata": {"name": "node-1"}})
    lease = node_lease(client, node)
    created = await lease.renew()
    assert created["metadata"]["namespace"] == "kube-node-lease"
    assert created["spec"] == {"holderIdentity": "node-1", "leaseDurationSeconds": 40,
                               "renewTime": micro_time_now(client.clock.now())}
    assert created["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Node", "name": "node-1",
                                                       "uid": node["metadata"]["uid"]}]
    client.actions.clear()
    client.clock.advance(10)
    renewed = await lease.renew()
    assert renewed["spec"]["renewTime"] == micro_time_now(client.clock.now())
    assert [a.verb for a in client.actions] == ["update"]


async def test_lease_without_a_known_node_gets_its_owner_on_a_later_renewal() -> None:
    client = FakeClient()
    owner: dict | None = None
    lease = NodeLease(client, "node-1", 40, owner=lambda: owner, clock=client.clock)
    assert "ownerReferences" not in (await lease.renew())["metadata"]
    owner = client.seed(NODES, {"metadata": {"name": "node-1"}})
    renewed = await lease.renew()
    assert renewed["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]


async def test_lease_conflict_rereads_and_namespace_is_created_when_missing() -> None:
    client = FakeClient()
    lease = node_lease(client, None)
    client.fail("create", "leases", not_found("namespaces", "kube-node-lease"))
    await lease.renew()
    assert client.stored(NAMESPACES, None, "kube-node-lease") is not None
    client.fail("update", "leases", conflict_error("leases", "node-1", "the object has been modified",
                                                   "coordination.k8s.io"))
    client.actions.clear()
    await lease.renew()
    assert [a.verb for a in client.actions] == ["update", "get", "update"]
    assert client.stored(LEASES, "kube-node-lease", "node-1")["spec"]["holderIdentity"] == "node-1"


async def test_lease_loop_renews_every_interval_and_backs_off_on_failure() -> None:
    client = FakeClient()
    lease = node_lease(client, None)
    task = asyncio.create_task(lease.run(10))
    try:
        await settle()
        assert client.stored(LEASES, "kube-node-lease", "node-1") is not None
        client.fail("update", "leases", service_unavailable("down"))
        client.fail("update", "leases", service_unavailable("down"))
        client.clock.advance(10)
        await settle()
        assert len(client.actions_of("update", "leases")) == 1
        client.clock.advance(0.2)
        await settle()
        assert len(client.actions_of("update", "leases")) == 2
        client.clock.advance(0.39)
        await settle()
        assert len(client.actions_of("update", "leases")) == 2  # 400 ms the second time
        client.clock.advance(0.01)
        await settle()
        assert len(client.actions_of("update", "leases")) == 3
        assert client.stored(LEASES, "kube-node-lease", "node-1")["spec"]["renewTime"] == \
            micro_time_now(client.clock.now())
    finally:
        task.cancel()


# --- the agent's loops ---------------------------------------------------------------------------------


async def test_run_registers_renews_the_lease_and_updates_status_on_request() -> None:
    agent, client, runtime, _ = make_agent()
    task = asyncio.create_task(agent.run())
    try:
        await settle()
        assert agent.node is not None
        lease = client.stored(LEASES, "kube-node-lease", "node-1")
        assert lease["metadata"]["ownerReferences"][0]["uid"] == agent.node["metadata"]["uid"]

        runtime.down = True
        agent.request_status_update()  # no waiting for the 10 s tick
        await settle()
        assert conditions_of(client.stored(NODES, None, "node-1"))["Ready"]["status"] == "False"

        runtime.down = False
        client.clock.advance(10)  # the tick: status back to Ready, lease renewed
        await settle()
        assert conditions_of(client.stored(NODES, None, "node-1"))["Ready"]["status"] == "True"
        assert client.stored(LEASES, "kube-node-lease", "node-1")["spec"]["renewTime"] == \
            micro_time_now(client.clock.now())
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_status_loop_survives_api_errors() -> None:
    agent, client, _, host = make_agent()
    task = asyncio.create_task(agent.run())
    try:
        await settle()
        client.fail("get", "nodes", service_unavailable("apiserver restarting"))
        host.memory_stats = MemoryStats(8 * GI, 10 * MI)
        client.clock.advance(10)
        await settle()
        assert not task.done()
        assert conditions_of(client.stored(NODES, None, "node-1"))["MemoryPressure"]["status"] == "False"
        client.clock.advance(10)
        await settle()
        assert conditions_of(client.stored(NODES, None, "node-1"))["MemoryPressure"]["status"] == "True"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# --- host facts ----------------------------------------------------------------------------------------


def test_host_parsers() -> None:
    assert parse_meminfo("MemTotal:       16384 kB\nMemAvailable:    8192 kB\nHugePages_Total: 0\n") == {
        "MemTotal": 16384 * 1024, "MemAvailable": 8192 * 1024, "HugePages_Total": 0}
    assert os_release_name('NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n') == \
        "Debian GNU/Linux 12 (bookworm)"
    assert os_release_name("") == "Linux"
    assert (go_arch("x86_64"), go_arch("aarch64"), go_arch("riscv64")) == ("amd64", "arm64", "riscv64")
    routes = ("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
              "eth1\t00000000\t010200C0\t0003\t0\t0\t200\t00000000\n"
              "eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\n"
              "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n")
    assert default_route_interface(routes) == "eth0"
    assert default_route_interface(routes.splitlines()[0]) is None


def test_linux_host_reads_a_fixture_tree(tmp_path: Path) -> None:
    proc, etc, sys = tmp_path / "proc", tmp_path / "etc", tmp_path / "sys"
    (proc / "sys/kernel/random").mkdir(parents=True)
    (proc / "meminfo").write_text("MemTotal: 2048 kB\nMemAvailable: 1024 kB\nSwapTotal: 512 kB\n")
    (proc / "sys/kernel/pid_max").write_text("4096\n")
    (proc / "sys/kernel/random/boot_id").write_text("boot-xyz\n")
    (proc / "loadavg").write_text("0.00 0.01 0.05 1/300 1234\n")
    etc.mkdir()
    (etc / "machine-id").write_text("abc123\n")
    (etc / "os-release").write_text('PRETTY_NAME="Test OS 1"\n')
    host = LinuxHost(proc, etc, sys)
    assert host.memory() == MemoryStats(2048 * 1024, 1024 * 1024, 512 * 1024)
    assert host.pids() == PidStats(4096, 300)
    identity = host.identity()
    assert (identity.machine_id, identity.system_uuid, identity.boot_id, identity.os_image) == (
        "abc123", "abc123", "boot-xyz", "Test OS 1")
    assert host.cpu_count() >= 1
    stats = host.filesystem(tmp_path / "does/not/exist/yet")  # the nearest existing parent's filesystem
    assert stats is not None and stats.capacity_bytes > 0
