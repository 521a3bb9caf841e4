"""The kubelet's admission of pods bound to its node (kubelet.pods.admission.admit)."""

from __future__ import annotations

from kubelet.pods.admission import Rejection, admit
from tests.unit.kubelet.podfixtures import container, pod, sidecar

SCHEDULED = {"conditions": [{"type": "PodScheduled", "status": "True"}]}


def node(*, cpu: str = "2", memory: str = "4Gi", pods: str = "110", labels: dict | None = None,
         taints: list | None = None, **allocatable: str) -> dict:
    return {"metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1", **(labels or {})}},
            "spec": {"taints": taints or []},
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods, **allocatable}}}


def needing(cpu: str | None = None, memory: str | None = None, *, name: str = "p", scheduled: bool = True,
            **spec) -> dict:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    p = pod(container("app", resources={"requests": requests}), name=name, uid=f"uid-{name}", **spec)
    if scheduled:
        p["status"] = dict(SCHEDULED)
    return p


def test_a_pod_that_fits_is_admitted():
    assert admit(needing("500m", "1Gi"), node(), [needing("1", "1Gi", name="other")]) is None


def test_too_much_cpu_is_out_of_cpu_with_the_kubelets_message():
    rejection = admit(needing("1500m"), node(cpu="2"), [needing("1", name="other")])
    assert rejection == Rejection("OutOfcpu", "Node didn't have enough resource: cpu, requested: 1500, used: 1000, "
                                              "capacity: 2000")


def test_too_much_memory_is_out_of_memory():
    rejection = admit(needing(memory="3Gi"), node(memory="4Gi"), [needing(memory="2Gi", name="other")])
    assert rejection is not None and rejection.reason == "OutOfmemory"
    assert "requested: 3221225472, used: 2147483648, capacity: 4294967296" in rejection.message


def test_a_resource_the_node_does_not_have_at_all():
    p = pod(container("app", resources={"requests": {"example.com/gpu": "1"}}))
    assert admit(p, node(), []).reason == "OutOfexample.com/gpu"
    assert admit(p, node(**{"example.com/gpu": "1"}), []) is None


def test_the_pod_count_is_limited():
    running = [needing(name=f"p{i}") for i in range(3)]
    assert admit(needing(name="new"), node(pods="3"), running).reason == "OutOfpods"
    assert admit(needing(name="new"), node(pods="4"), running) is None


def test_init_containers_count_at_their_peak_and_sidecars_add_up():
    p = pod(container("app", resources={"requests": {"cpu": "500m"}}),
            init=[sidecar("proxy", resources={"requests": {"cpu": "500m"}}),
                  container("setup", resources={"requests": {"cpu": "1500m"}})])
    # The peak: proxy (500m) + setup (1500m) = 2 CPUs; steady state proxy + app = 1 CPU.
    assert admit(p, node(cpu="2"), []) is None
    assert admit(p, node(cpu="1900m"), []).reason == "OutOfcpu"


def test_a_pod_without_requests_needs_nothing_but_a_pod_slot():
    assert admit(pod(), node(cpu="0", memory="0"), []) is None


def test_node_selector_and_required_affinity_must_match():
    assert admit(needing(nodeSelector={"disk": "ssd"}), node(labels={"disk": "ssd"}), []) is None
    rejection = admit(needing(nodeSelector={"disk": "ssd"}), node(), [])
    assert rejection == Rejection("NodeAffinity", "Predicate NodeAffinity failed: node(s) didn't match Pod's node "
                                                  "affinity/selector")
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]}}}
    assert admit(needing(affinity=affinity), node(labels={"zone": "b"}), []) is None
    assert admit(needing(affinity=affinity), node(labels={"zone": "c"}), []).reason == "NodeAffinity"


def test_an_untolerated_no_execute_taint_rejects():
    taint = {"key": "dedicated", "value": "db", "effect": "NoExecute"}
    rejection = admit(needing(), node(taints=[taint]), [])
    assert rejection == Rejection("Taint", "Predicate TaintToleration failed: node(s) had untolerated taint "
                                           "{dedicated: db}")
    tolerated = needing(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "db",
                                      "effect": "NoExecute"}])
    assert admit(tolerated, node(taints=[taint]), []) is None


def test_no_schedule_taints_stop_only_pods_that_were_bound_without_the_scheduler():
    taint = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    assert admit(needing(), node(taints=[taint]), []) is None
    assert admit(needing(scheduled=False), node(taints=[taint]), []).reason == "Taint"
    prefer = {"key": "x", "effect": "PreferNoSchedule"}
    assert admit(needing(scheduled=False), node(taints=[prefer]), []) is None


def test_host_ports_must_be_free():
    def with_port(name: str, port: int, protocol: str = "TCP") -> dict:
        return pod(container("app", ports=[{"containerPort": 80, "hostPort": port, "protocol": protocol}]),
                   name=name, uid=name)

    running = [with_port("a", 8080)]
    assert admit(with_port("b", 8080), node(), running) == Rejection(
        "NodePorts", "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports")
    assert admit(with_port("c", 8081), node(), running) is None
    assert admit(with_port("d", 8080, "UDP"), node(), running) is None


def test_resources_are_checked_before_affinity():
    rejection = admit(needing("4", nodeSelector={"disk": "ssd"}), node(cpu="2"), [])
    assert rejection.reason == "OutOfcpu"
