"""The scheduler process against its own etcd and API server (so the rest of the suite never sees bound
pods): Node objects created through the API (no kubelet), pods scheduled, explained, preempted, ganged.

Each test creates its nodes and deletes them afterwards, so "0/N nodes are available" counts only its own.
"""

from __future__ import annotations

import json
import subprocess
import threading
import uuid

import httpx
import pytest

from kubemini.apiserverproc import ApiServerProcess, write_kubeconfig
from kubemini.etcdserver import EtcdServer
from kubemini.process import SchedulerProcess
from tests.conftest import KUBECTL
from tests.support import wait_for

MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    etcd = EtcdServer(tmp_path_factory.mktemp("sched-etcd")).start()
    api = ApiServerProcess([etcd.endpoint], tmp_path_factory.mktemp("sched-api")).start()
    kubeconfig = write_kubeconfig(tmp_path_factory.mktemp("sched-kube") / "config", api.url)
    scheduler = SchedulerProcess(kubeconfig, tmp_path_factory.mktemp("sched-log")).start()
    yield api, kubeconfig, scheduler
    scheduler.stop()
    api.stop()
    etcd.stop()


@pytest.fixture
def api(cluster):
    with httpx.Client(base_url=cluster[0].url, timeout=30) as client:
        yield client


@pytest.fixture
def ns(api):
    name = "s-" + uuid.uuid4().hex[:8]
    assert api.post("/api/v1/namespaces", json={"metadata": {"name": name}}).status_code == 201
    return name


class Nodes:
    """Creates nodes for one test and deletes them afterwards."""

    def __init__(self, api: httpx.Client) -> None:
        self.api = api
        self.names: list[str] = []

    def add(self, name: str, cpu: str = "4", memory: str = "8Gi", pods: str = "110", labels: dict | None = None,
            taints: list | None = None) -> dict:
        body = {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
                "spec": {"taints": taints} if taints else {}}
        created = self.api.post("/api/v1/nodes", json=body)
        assert created.status_code == 201, created.text
        status = {"status": {"capacity": {"cpu": cpu, "memory": memory, "pods": pods},
                             "allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                             "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}
        patched = self.api.patch(f"/api/v1/nodes/{name}/status", json=status, headers=MERGE)
        assert patched.status_code == 200, patched.text
        self.names.append(name)
        return patched.json()

    def cleanup(self) -> None:
        for name in self.names:
            self.api.delete(f"/api/v1/nodes/{name}")


@pytest.fixture
def nodes(api):
    created = Nodes(api)
    yield created
    created.cleanup()


def make_pod(name: str, cpu: str = "100m", **spec) -> dict:
    return {"metadata": {"name": name, "labels": spec.pop("labels", {"app": name})},
            "spec": {"containers": [{"name": "app", "image": "nginx",
                                     "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}], **spec}}


def create(api, ns: str, pod: dict) -> dict:
    resp = api.post(f"/api/v1/namespaces/{ns}/pods", json=pod)
    assert resp.status_code == 201, resp.text
    return resp.json()


def get_pod(api, ns: str, name: str) -> dict:
    return api.get(f"/api/v1/namespaces/{ns}/pods/{name}").json()


def node_of(api, ns: str, name: str) -> str:
    return get_pod(api, ns, name)["spec"].get("nodeName", "")


def wait_bound(api, ns: str, name: str, timeout: float = 15) -> str:
    return wait_for(lambda: node_of(api, ns, name), timeout, message=f"pod {name} bound")


def unschedulable_message(api, ns: str, name: str) -> str:
    for cond in get_pod(api, ns, name).get("status", {}).get("conditions") or ():
        if cond["type"] == "PodScheduled" and cond["status"] == "False" and cond["reason"] == "Unschedulable":
            return cond["message"]
    return ""


def test_pods_are_bound_to_nodes_with_room(api, ns, nodes):
    nodes.add("fit-a", cpu="2")
    nodes.add("fit-b", cpu="2")
    for i in range(3):
        create(api, ns, make_pod(f"p{i}", cpu="1"))
    placed = [wait_bound(api, ns, f"p{i}") for i in range(3)]
    assert set(placed) <= {"fit-a", "fit-b"} and len(set(placed)) == 2  # 3 pods of 1 cpu on two 2-cpu nodes: both used
    events = api.get(f"/api/v1/namespaces/{ns}/events").json()["items"]
    assert any(e["reason"] == "Scheduled" and e["message"] == f"Successfully assigned {ns}/p0 to {placed[0]}"
               for e in events)


def test_a_pod_that_fits_nowhere_stays_pending_and_says_why(api, ns, nodes, cluster):
    nodes.add("small-a", cpu="1")
    nodes.add("small-b", cpu="1", taints=[{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}])
    create(api, ns, make_pod("huge", cpu="8"))
    message = wait_for(lambda: unschedulable_message(api, ns, "huge"), 15, message="PodScheduled=False")
    assert message.startswith("0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint "
                              "{dedicated: infra}."), message
    assert message.endswith("preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, "
                            "1 Preemption is not helpful for scheduling.."), message
    assert node_of(api, ns, "huge") == ""
    described = subprocess.run([KUBECTL, "--kubeconfig", str(cluster[1]), "describe", "pod", "huge", "-n", ns],
                               capture_output=True, text=True, timeout=60, check=True).stdout
    assert "FailedScheduling" in described and "0/2 nodes are available: 1 Insufficient cpu" in described
    # the pod becomes schedulable when a big enough node appears
    nodes.add("big", cpu="16")
    assert wait_bound(api, ns, "huge") == "big"


def test_node_selector_affinity_and_tolerations(api, ns, nodes):
    nodes.add("zone-a", labels={"zone": "a"})
    nodes.add("zone-b", labels={"zone": "b", "disk": "ssd"})
    nodes.add("infra", labels={"zone": "a"}, taints=[{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}])
    create(api, ns, make_pod("selected", nodeSelector={"zone": "b"}))
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}}
    create(api, ns, make_pod("affine", affinity=affinity))
    tolerating = make_pod("tolerating", nodeSelector={"zone": "a"},
                          tolerations=[{"key": "dedicated", "operator": "Equal", "value": "infra",
                                        "effect": "NoSchedule"}])
    create(api, ns, tolerating)
    assert wait_bound(api, ns, "selected") == "zone-b"
    assert wait_bound(api, ns, "affine") == "zone-b"
    assert wait_bound(api, ns, "tolerating") in {"zone-a", "infra"}


def test_required_anti_affinity_spreads_three_and_leaves_the_fourth_pending(api, ns, nodes):
    for name in ("anti-1", "anti-2", "anti-3"):
        nodes.add(name)
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "spread"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    for i in range(4):
        create(api, ns, make_pod(f"r{i}", labels={"app": "spread"}, affinity=anti))
    bound = wait_for(lambda: [n for n in (node_of(api, ns, f"r{i}") for i in range(4)) if n], 15,
                     message="3 bound")
    wait_for(lambda: len([n for n in (node_of(api, ns, f"r{i}") for i in range(4)) if n]) == 3, 15,
             message="exactly 3 bound")
    bound = [node_of(api, ns, f"r{i}") for i in range(4)]
    assert sorted(n for n in bound if n) == ["anti-1", "anti-2", "anti-3"]
    pending = next(f"r{i}" for i in range(4) if not bound[i])
    message = wait_for(lambda: unschedulable_message(api, ns, pending), 15, message="the 4th explained")
    assert "3 node(s) didn't match pod anti-affinity rules" in message


def test_topology_spread_across_zones(api, ns, nodes):
    for zone in ("a", "b", "c"):
        for i in (1, 2):
            nodes.add(f"tz-{zone}{i}", labels={"topology.kubernetes.io/zone": zone})
    spread = [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "zonal"}}}]
    for i in range(6):
        create(api, ns, make_pod(f"z{i}", labels={"app": "zonal"}, topologySpreadConstraints=spread))
    placed = [wait_bound(api, ns, f"z{i}") for i in range(6)]
    zones = [n.split("-")[1][0] for n in placed]
    assert sorted(zones) == ["a", "a", "b", "b", "c", "c"]


def test_high_priority_pod_preempts_a_low_priority_one(api, ns, nodes):
    for name, value in (("low", 10), ("high", 1000)):
        api.post("/apis/scheduling.k8s.io/v1/priorityclasses",
                 json={"metadata": {"name": f"{ns}-{name}"}, "value": value})
    nodes.add("only", cpu="2")
    create(api, ns, make_pod("victim", cpu="1500m", priorityClassName=f"{ns}-low"))
    assert wait_bound(api, ns, "victim") == "only"
    create(api, ns, make_pod("vip", cpu="1500m", priorityClassName=f"{ns}-high"))
    nominated = wait_for(lambda: get_pod(api, ns, "vip").get("status", {}).get("nominatedNodeName"), 15,
                         message="vip nominated")
    assert nominated == "only"
    victim = wait_for(lambda: (get_pod(api, ns, "victim").get("metadata") or {}).get("deletionTimestamp")
                      or api.get(f"/api/v1/namespaces/{ns}/pods/victim").status_code == 404, 15,
                      message="victim deleted")
    assert victim
    # no kubelet: finish the victim's graceful deletion ourselves, as a kubelet would
    api.delete(f"/api/v1/namespaces/{ns}/pods/victim", params={"gracePeriodSeconds": "0"})
    assert wait_bound(api, ns, "vip") == "only"


def test_gang_binds_only_when_all_members_fit(api, ns, nodes):
    nodes.add("gang-1", cpu="1")
    nodes.add("gang-2", cpu="1")
    nodes.add("gang-3", cpu="1")
    workload = {"apiVersion": "scheduling.k8s.io/v1alpha1", "kind": "Workload", "metadata": {"name": "train"},
                "spec": {"podGroups": [{"name": "workers", "policy": {"gang": {"minCount": 4}}}]}}
    resp = api.post(f"/apis/scheduling.k8s.io/v1alpha1/namespaces/{ns}/workloads", json=workload)
    assert resp.status_code == 201, resp.text
    for i in range(4):
        create(api, ns, make_pod(f"w{i}", cpu="800m", workloadRef={"name": "train", "podGroup": "workers"}))
    watcher_done = threading.Event()
    bindings: list[str] = []

    def watch() -> None:
        with httpx.Client(base_url=str(api.base_url), timeout=None) as client, client.stream(
                "GET", f"/api/v1/namespaces/{ns}/pods", params={"watch": "true", "timeoutSeconds": "40"}) as s:
            for line in s.iter_lines():
                event = json.loads(line)
                if event["object"]["spec"].get("nodeName") and event["object"]["metadata"]["name"] not in bindings:
                    bindings.append(event["object"]["metadata"]["name"])
                if watcher_done.is_set():
                    return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    # three members fit and wait at Permit for the fourth, which fits nowhere: none is bound
    message = wait_for(lambda: next((m for m in (unschedulable_message(api, ns, f"w{i}") for i in range(4)) if m),
                                    ""), 20, message="the gang's fourth member explained")
    assert "Insufficient cpu" in message
    assert bindings == [] and all(node_of(api, ns, f"w{i}") == "" for i in range(4))
    nodes.add("gang-4", cpu="1")
    placed = [wait_bound(api, ns, f"w{i}", timeout=30) for i in range(4)]
    assert sorted(placed) == ["gang-1", "gang-2", "gang-3", "gang-4"]
    watcher_done.set()


LEADER_ARGS = ["--leader-elect", "--leader-elect-lease-duration", "3", "--leader-elect-renew-deadline", "2",
               "--leader-elect-retry-period", "0.5"]


def leading(proc: SchedulerProcess) -> bool:
    try:
        text = httpx.get(proc.url + "/metrics", timeout=2).text
    except httpx.HTTPError:
        return False
    return 'leader_election_master_status{name="kube-scheduler"} 1.0' in text


def test_two_schedulers_one_leader_and_failover_binds_each_pod_once(tmp_path):
    etcd = EtcdServer(tmp_path / "etcd").start()
    api_proc = ApiServerProcess([etcd.endpoint], tmp_path).start()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", api_proc.url)
    first = SchedulerProcess(kubeconfig, tmp_path, extra_args=LEADER_ARGS, log_name="sched-1")
    second = SchedulerProcess(kubeconfig, tmp_path, extra_args=LEADER_ARGS, log_name="sched-2")
    api = httpx.Client(base_url=api_proc.url, timeout=30)
    bindings: dict[str, list[str]] = {}
    stop = threading.Event()
    try:
        api.post("/api/v1/namespaces", json={"metadata": {"name": "kube-system"}})
        nodes = Nodes(api)
        nodes.add("ha-1")
        nodes.add("ha-2")
        assert api.post("/api/v1/namespaces", json={"metadata": {"name": "ha"}}).status_code == 201

        def watch() -> None:
            with httpx.Client(base_url=api_proc.url, timeout=None) as client, client.stream(
                    "GET", "/api/v1/namespaces/ha/pods", params={"watch": "true", "timeoutSeconds": "60"}) as s:
                for line in s.iter_lines():
                    obj = json.loads(line)["object"]
                    node_name = obj["spec"].get("nodeName")
                    seen = bindings.setdefault(obj["metadata"]["name"], [])
                    if node_name and (not seen or seen[-1] != node_name):
                        seen.append(node_name)
                    if stop.is_set():
                        return

        threading.Thread(target=watch, daemon=True).start()
        first.start()
        second.start()
        leader = wait_for(lambda: next((p for p in (first, second) if leading(p)), None), 10, message="a leader")
        standby = second if leader is first else first
        assert not leading(standby)
        for i in range(10):
            create(api, "ha", make_pod(f"before-{i}"))
        for i in range(10):
            wait_bound(api, "ha", f"before-{i}")
        leader.kill()
        for i in range(10):
            create(api, "ha", make_pod(f"after-{i}"))
        wait_for(lambda: leading(standby), 10, message="the standby leading")
        for i in range(10):
            wait_bound(api, "ha", f"after-{i}")
        stop.set()
        assert len(bindings) == 20
        assert all(len(nodes_seen) == 1 for nodes_seen in bindings.values()), bindings
    finally:
        stop.set()
        first.stop()
        second.stop()
        api.close()
        api_proc.stop()
        etcd.stop()
