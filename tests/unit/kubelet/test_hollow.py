"""Hollow nodes without a server: the documents they write, the spread timetable, the fleet and pod loops on fakes."""

from __future__ import annotations

import asyncio
import ipaddress
from datetime import timedelta

import pytest

from kubelet.hollow.__main__ import build_config, parse_args
from kubelet.hollow.config import HOLLOW_LABEL, HollowConfig, node_ip, pod_cidr
from kubelet.hollow.fleet import HollowFleet
from kubelet.hollow.metrics import HollowMetrics
from kubelet.hollow.nodes import heartbeat_patch, lease_object, node_object, renewed_lease
from kubelet.hollow.pods import HollowPods, PodAddresses, PodHost, needs_running_status, running_status
from kubelet.hollow.schedule import SpreadLoop, spread_offsets
from machinery import errors
from machinery.cache import Indexer
from machinery.client import LEASES, NODES, PODS
from machinery.meta import deep_copy, format_rfc3339
from tests.fakes import FakeClient, FakeClock


async def settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


# --- configuration and fake addresses -------------------------------------------------------------------


def test_each_node_gets_its_own_addresses():
    assert [node_ip(i) for i in (0, 1, 255)] == ["10.128.0.1", "10.128.0.2", "10.128.1.0"]
    assert [pod_cidr(i) for i in (0, 1, 256, 999)] == ["10.0.0.0/24", "10.0.1.0/24", "10.1.0.0/24", "10.3.231.0/24"]


def test_node_labels_and_taints_use_the_node_agents_syntax():
    config = build_config(parse_args(["--node-labels", "zone=a, tier=b,",
                                      "--node-taints", "hollow=true:NoSchedule,dedicated:NoExecute"]))
    assert dict(config.labels) == {"zone": "a", "tier": "b"}
    assert config.taints == (
        {"key": "hollow", "value": "true", "effect": "NoSchedule"}, {"key": "dedicated", "effect": "NoExecute"})


@pytest.mark.parametrize(("argv", "message"), [
    (["--nodes", "0"], "--nodes must be between 1"),
    (["--name-prefix", "Bad_"], "--name-prefix"),
    (["--memory", "lots"], "--memory 'lots' is not a quantity"),
    (["--pods", "300"], "--pods must be between 1 and 250"),
    (["--node-labels", "novalue"], "--node-labels: node label 'novalue': expected key=value"),
    (["--node-labels", "bad key!=x"], "--node-labels: node labels: Invalid value"),
    (["--node-taints", "k=v:Sometimes"], "--node-taints: taint k: effect 'Sometimes' is not one of"),
    (["--node-taints", "k=v v:NoSchedule"], "--node-taints: taint k: value 'v v'"),
    (["--pod-ready-delay", "-1"], "--pod-ready-delay must not be negative"),
    (["--node-lease-duration-seconds", "0"], "--node-lease-duration-seconds must be at least 1"),
])
def test_bad_flags_are_one_line_errors(argv, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        build_config(parse_args(argv))


def test_bad_flag_syntax_exits_2_with_one_error_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--nodes", "many"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == ["error: argument --nodes: invalid int value: 'many' (see --help)"]


def test_flags_build_the_configuration():
    config = build_config(parse_args(["--nodes", "3", "--cpu", "8", "--node-labels", "zone=z1",
                                      "--node-lease-duration-seconds", "8"]))
    assert (config.nodes, config.cpu, dict(config.labels), config.lease_renew_interval) == (3, "8", {"zone": "z1"}, 2)
    assert parse_args([]).kube_api_qps == 0  # one process stands for many kubelets: no client-side limit


# --- the node documents ---------------------------------------------------------------------------------


def test_node_object_is_a_healthy_registered_node():
    clock = FakeClock()
    config = HollowConfig(nodes=10, cpu="8", memory="32Gi", pods=50, labels={"zone": "z1"},
                          taints=({"key": "hollow", "effect": "NoSchedule"},))
    node = node_object(config, 7, clock.now())
    assert node["metadata"]["name"] == "hollow-node-7"
    assert node["metadata"]["labels"] == {"zone": "z1", "kubernetes.io/hostname": "hollow-node-7",
                                          "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                                          HOLLOW_LABEL: "true"}
    assert node["spec"] == {"podCIDR": "10.0.7.0/24", "podCIDRs": ["10.0.7.0/24"],
                            "taints": [{"key": "hollow", "effect": "NoSchedule"}]}
    status = node["status"]
    assert status["capacity"] == status["allocatable"] == {"cpu": "8", "memory": "32Gi", "pods": "50",
                                                           "ephemeral-storage": "100Gi"}
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert conditions == {"MemoryPressure": ("False", "KubeletHasSufficientMemory"),
                          "DiskPressure": ("False", "KubeletHasNoDiskPressure"),
                          "PIDPressure": ("False", "KubeletHasSufficientPID"), "Ready": ("True", "KubeletReady")}
    assert status["addresses"][0] == {"type": "InternalIP", "address": "10.128.0.8"}
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert status["nodeInfo"]["kubeletVersion"].startswith("v1.35")
    # machineID is stable across restarts of the hollow process
    assert node_object(config, 7, clock.now())["status"]["nodeInfo"]["machineID"] == status["nodeInfo"]["machineID"]


def test_heartbeat_moves_heartbeat_times_only():
    clock = FakeClock()
    registered = clock.now()
    clock.advance(300)
    patch = heartbeat_patch(clock.now(), registered)
    for condition in patch["status"]["conditions"]:
        assert condition["lastHeartbeatTime"] == format_rfc3339(clock.now())
        assert condition["lastTransitionTime"] == format_rfc3339(registered)
    assert set(patch["status"]) == {"conditions"}


def test_lease_is_owned_by_its_node_and_renewal_keeps_the_resource_version():
    clock = FakeClock()
    config = HollowConfig()
    lease = lease_object(config, "hollow-node-0", "uid-0", clock.now())
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "uid-0"
    assert lease["spec"]["leaseDurationSeconds"] == 40
    stored = {**lease, "metadata": {**lease["metadata"], "resourceVersion": "7"}}
    clock.advance(10)
    renewed = renewed_lease(stored, config, clock.now())
    assert renewed["metadata"]["resourceVersion"] == "7"
    assert renewed["spec"]["renewTime"] > stored["spec"]["renewTime"]
    assert stored["spec"]["renewTime"] == lease["spec"]["renewTime"]  # not mutated


# --- the pod status document ------------------------------------------------------------------------------


def bound_pod(name="web", node="hollow-node-0", uid="uid-web", **status) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "uid": uid, "generation": 1,
                         "resourceVersion": "5"},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nginx:1.27"}],
                     "initContainers": [{"name": "setup", "image": "busybox:1.36"},
                                        {"name": "proxy", "image": "envoy:1", "restartPolicy": "Always"}]},
            "status": {"phase": "Pending", "qosClass": "BestEffort", **status}}


def test_running_status_is_what_a_healthy_kubelet_reports():
    clock = FakeClock()
    scheduled = {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}
    custom = {"type": "example.com/gate", "status": "True"}
    pod = bound_pod(conditions=[scheduled, custom])
    before = deep_copy(pod)
    status = running_status(pod, host_ip="10.128.0.1", pod_ip="10.0.0.2", now=clock.now())
    assert pod == before  # must not mutate
    assert status["phase"] == "Running"
    assert (status["podIP"], status["podIPs"], status["hostIP"]) == ("10.0.0.2", [{"ip": "10.0.0.2"}], "10.128.0.1")
    assert status["startTime"] == format_rfc3339(clock.now())
    conditions = {c["type"]: c for c in status["conditions"]}
    assert {t: c["status"] for t, c in conditions.items()} == {
        "PodReadyToStartContainers": "True", "Initialized": "True", "ContainersReady": "True", "Ready": "True",
        "PodScheduled": "True", "example.com/gate": "True"}
    assert conditions["PodScheduled"]["lastTransitionTime"] == "2025-01-01T00:00:00Z"
    [app] = status["containerStatuses"]
    assert app["ready"] and app["started"] and app["restartCount"] == 0
    assert app["containerID"] == "hollow://uid-web/app"
    assert app["imageID"].startswith("nginx@sha256:")
    assert "running" in app["state"]
    setup, proxy = status["initContainerStatuses"]
    assert setup["state"]["terminated"]["reason"] == "Completed" and setup["state"]["terminated"]["exitCode"] == 0
    assert "running" in proxy["state"] and proxy["ready"]  # a sidecar keeps running
    assert not needs_running_status({**pod, "status": status})


def test_running_status_keeps_the_start_time():
    pod = bound_pod(startTime="2025-02-02T00:00:00Z")
    assert running_status(pod, host_ip="h", pod_ip="p", now=FakeClock().now())["startTime"] == "2025-02-02T00:00:00Z"


def test_pods_that_need_no_status():
    assert needs_running_status(bound_pod())
    assert not needs_running_status(bound_pod(phase="Succeeded"))
    deleting = bound_pod()
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert not needs_running_status(deleting)


def test_pod_addresses_lowest_first_kept_and_released():
    addresses = PodAddresses(ipaddress.IPv4Network("10.0.5.0/30"))  # room for one pod (.2)
    assert addresses.assign("a") == "10.0.5.2"
    assert addresses.assign("a") == "10.0.5.2"
    with pytest.raises(RuntimeError, match="no free pod address"):
        addresses.assign("b")
    addresses.release("a")
    assert addresses.assign("b") == "10.0.5.2"
    wide = PodAddresses(ipaddress.IPv4Network("10.0.6.0/24"))
    assert wide.assign("x", "10.0.6.77") == "10.0.6.77"  # a pod keeps the address it was reported with
    assert wide.assign("y", "10.0.6.77") == "10.0.6.2"   # ... unless another pod has it
    assert wide.assign("z", "192.168.0.1") == "10.0.6.3"  # ... or it is not from this node's range


# --- spreading writes over the interval ---------------------------------------------------------------


def test_spread_offsets_are_even():
    assert spread_offsets(4, 10.0) == [0.0, 2.5, 5.0, 7.5]
    assert spread_offsets(0, 10.0) == []
    offsets = spread_offsets(1000, 10.0)
    assert sum(1 for o in offsets if o < 1.0) == 100  # 1,000 nodes: ~100 renewals in any one second


async def test_spread_loop_runs_each_item_once_per_interval_at_its_slot():
    clock = FakeClock()
    calls: list[tuple[float, int]] = []

    async def action(i: int) -> None:
        calls.append((clock.monotonic() - 1000.0, i))

    loop = SpreadLoop("test", 4, 10.0, action, clock)
    task = asyncio.create_task(loop.run())
    try:
        for _ in range(9):
            await settle()
            clock.advance(2.5)
        await settle()
        assert calls == [(2.5, 0), (5.0, 1), (7.5, 2), (10.0, 3), (12.5, 0), (15.0, 1), (17.5, 2), (20.0, 3),
                         (22.5, 0)]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_spread_loop_skips_an_item_still_busy_and_restarts_when_far_behind():
    clock = FakeClock()
    release = asyncio.Event()
    calls: list[int] = []

    async def action(i: int) -> None:
        calls.append(i)
        if i == 0 and len(calls) == 1:
            await release.wait()  # item 0's first write hangs

    loop = SpreadLoop("test", 2, 10.0, action, clock, first_delay=0.0)
    task = asyncio.create_task(loop.run())
    try:
        for _ in range(4):
            await settle()
            clock.advance(5.0)
        await settle()
        # slots at 0, 5, 10, 15, 20 s: item 0's slots at 10 and 20 came while its first write still ran
        assert calls == [0, 1, 1]
        assert loop.skipped == 2
        release.set()
        clock.advance(100.0)  # 95 s late: one overdue write, then a fresh timetable, no burst of 20 slots
        await settle()
        assert loop.restarts == 1
        assert calls == [0, 1, 1, 1, 0]
        clock.advance(5.0)
        await settle()
        assert calls == [0, 1, 1, 1, 0, 1]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# --- the fleet against a fake API ------------------------------------------------------------------------


async def test_register_creates_nodes_and_leases():
    client = FakeClient()
    fleet = HollowFleet(client, HollowConfig(nodes=3), clock=client.clock)
    await fleet.register_all()
    assert fleet.registered == 3 and fleet.metrics.nodes_registered._value.get() == 3
    nodes = {n["metadata"]["name"]: n for n in client.all(NODES)}
    assert sorted(nodes) == ["hollow-node-0", "hollow-node-1", "hollow-node-2"]
    leases = {lease["metadata"]["name"]: lease for lease in client.all(LEASES, "kube-node-lease")}
    assert leases["hollow-node-1"]["metadata"]["ownerReferences"][0]["uid"] == nodes["hollow-node-1"]["metadata"]["uid"]


async def test_register_adopts_an_existing_node():
    client = FakeClient()
    config = HollowConfig(nodes=1)
    old = node_object(config, 0, client.clock.now())
    old["spec"] = {"podCIDR": "10.99.0.0/24", "podCIDRs": ["10.99.0.0/24"]}
    old["status"]["conditions"][-1]["status"] = "Unknown"
    client.seed(NODES, old)
    fleet = HollowFleet(client, config, clock=client.clock)
    await fleet.register_all()
    stored = client.stored(NODES, None, "hollow-node-0")
    assert {c["type"]: c["status"] for c in stored["status"]["conditions"]}["Ready"] == "True"
    assert [a.verb for a in client.actions_of(plural="nodes")] == ["create", "patch"]
    assert str(fleet.nodes[0].addresses.cidr) == "10.99.0.0/24"  # its podCIDR is immutable: pod IPs come from it


async def test_lease_renewal_advances_renew_time_and_rereads_after_a_conflict():
    client = FakeClient()
    fleet = HollowFleet(client, HollowConfig(nodes=1), clock=client.clock)
    await fleet.register_all()
    first = client.stored(LEASES, "kube-node-lease", "hollow-node-0")["spec"]["renewTime"]
    client.clock.advance(10)
    await fleet.renew_lease(0)
    second = client.stored(LEASES, "kube-node-lease", "hollow-node-0")["spec"]["renewTime"]
    assert second > first
    # someone else wrote the lease: our copy is stale, the PUT conflicts, we re-read and renew
    stored = client.stored(LEASES, "kube-node-lease", "hollow-node-0")
    stored["metadata"]["resourceVersion"] = "99999"
    client.clock.advance(10)
    await fleet.renew_lease(0)
    assert client.stored(LEASES, "kube-node-lease", "hollow-node-0")["spec"]["renewTime"] > second
    assert [a.verb for a in client.actions_of(plural="leases")][-3:] == ["update", "get", "update"]
    # the lease was deleted (e.g. garbage collected): it is created again
    client.objects = {k: v for k, v in client.objects.items() if v.get("kind") != "Lease"}
    await fleet.renew_lease(0)
    assert client.stored(LEASES, "kube-node-lease", "hollow-node-0") is not None


async def test_node_status_heartbeat_patches_conditions():
    client = FakeClient()
    fleet = HollowFleet(client, HollowConfig(nodes=1), clock=client.clock)
    await fleet.register_all()
    client.clock.advance(300)
    await fleet.post_node_status(0)
    [patch] = [a for a in client.actions_of("patch", "nodes") if a.subresource == "status"]
    ready = patch.body["status"]["conditions"][-1]
    assert ready["lastHeartbeatTime"] == format_rfc3339(client.clock.now())
    assert ready["lastTransitionTime"] == format_rfc3339(client.clock.now() - timedelta(seconds=300))
    client.fail("patch", "nodes", errors.not_found("nodes", "hollow-node-0"))
    await fleet.post_node_status(0)  # logged and counted, not raised
    assert fleet.metrics.errors.labels("node-status")._value.get() == 1


# --- pods against a fake API ------------------------------------------------------------------------------


def pod_harness(delay: float = 0.0) -> tuple[FakeClient, Indexer, HollowPods]:
    client = FakeClient()
    store = Indexer()
    addresses = PodAddresses(ipaddress.IPv4Network("10.0.0.0/24"))
    hosts = {"hollow-node-0": PodHost("hollow-node-0", "10.128.0.1", addresses)}
    return client, store, HollowPods(client, store, hosts, client.clock, HollowMetrics(), ready_delay=delay)


def put(client: FakeClient, store: Indexer, pod: dict) -> dict:
    stored = client.seed(PODS, pod)
    store.upsert(stored)
    return stored


async def drain(pods: HollowPods) -> None:
    while len(pods.queue):
        key = await pods.queue.get()
        try:
            await pods.sync_pod(key)
        finally:
            pods.queue.done(key)


async def test_a_bound_pod_is_reported_running_and_ready():
    client, store, pods = pod_harness()
    pod = put(client, store, bound_pod())
    pods.on_pod(pod)
    await drain(pods)
    [patch] = client.actions_of("patch", "pods")
    assert patch.subresource == "status" and patch.body["metadata"]["uid"] == pod["metadata"]["uid"]
    status = client.stored(PODS, "default", "web")["status"]
    assert status["phase"] == "Running" and status["podIP"] == "10.0.0.2" and status["hostIP"] == "10.128.0.1"
    assert status["qosClass"] == "BestEffort"  # fields the kubelet does not own stay
    assert pods.metrics.pod_status_writes._value.get() == 1


async def test_pods_of_other_nodes_are_left_alone():
    client, store, pods = pod_harness()
    pods.on_pod(put(client, store, bound_pod(node="real-node")))
    await drain(pods)
    assert client.actions_of("patch") == []


async def test_the_ready_delay_counts_from_when_the_pod_was_first_seen():
    client, store, pods = pod_harness(delay=5.0)
    pod = put(client, store, bound_pod())
    pods.on_pod(pod)
    await settle()
    assert len(pods.queue) == 0
    client.clock.advance(3)
    pods.on_pod_update(pod, pod)  # an update meanwhile does not restart (nor skip) the delay
    await settle()
    assert len(pods.queue) == 0
    client.clock.advance(2)
    await settle()
    await drain(pods)
    assert client.stored(PODS, "default", "web")["status"]["phase"] == "Running"


async def test_a_pod_being_deleted_is_deleted_at_once_with_a_uid_precondition():
    client, store, pods = pod_harness()
    pod = bound_pod()
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:30Z"
    pods.on_pod(put(client, store, pod))
    await drain(pods)
    [delete] = client.actions_of("delete", "pods")
    assert delete.body["preconditions"] == {"uid": "uid-web"}
    assert client.stored(PODS, "default", "web") is None


async def test_a_recreated_pod_is_reread_after_a_uid_conflict():
    client, store, pods = pod_harness()
    stale = put(client, store, bound_pod(uid="old"))
    client.objects[("pods", "default", "web")]["metadata"]["uid"] = "new"  # re-created under the same name

    original_patch = client.patch

    async def patch_with_uid_precondition(resource, name, body, namespace=None, **kw):
        if body["metadata"]["uid"] != client.stored(PODS, namespace, name)["metadata"]["uid"]:
            raise errors.conflict("pods", name, "Precondition failed: UID in precondition")
        return await original_patch(resource, name, body, namespace, **kw)

    client.patch = patch_with_uid_precondition
    pods.on_pod(stale)
    await drain(pods)
    status = client.stored(PODS, "default", "web")["status"]
    assert status["phase"] == "Running"
    assert status["containerStatuses"][0]["containerID"] == "hollow://new/app"


async def test_addresses_are_freed_when_pods_go():
    client, store, pods = pod_harness()
    pod = put(client, store, bound_pod())
    pods.on_pod(pod)
    await drain(pods)
    assert pods.metrics.pods_running._value.get() == 1
    pods.on_pod_delete(pod)
    assert pods.metrics.pods_running._value.get() == 0
    assert len(pods.hosts["hollow-node-0"].addresses) == 0
