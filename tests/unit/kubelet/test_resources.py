"""kubelet.resources: QoS cgroup placement, CRI linux resources, OOM scores, effective pod requests.

Expected numbers are what the Kubernetes kubelet computes for the same pod (kuberuntime's
generateLinuxContainerResources and qos.GetContainerOOMScoreAdjust).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kubelet.resources import (
    container_resources,
    hugepage_size_name,
    milli_cpu_to_shares,
    oom_score_adj,
    pod_cgroup_parent,
    pod_requests,
    qos_class,
    scaled,
)
from machinery.podspec import is_sidecar
from machinery.quantity import parse_quantity

GI = 1024**3
NODE_MEMORY = 8 * GI


def res(cpu_req=None, cpu_lim=None, mem_req=None, mem_lim=None, **limits) -> dict:
    out: dict = {"requests": {}, "limits": dict(limits)}
    for key, name, value in (("requests", "cpu", cpu_req), ("limits", "cpu", cpu_lim),
                             ("requests", "memory", mem_req), ("limits", "memory", mem_lim)):
        if value is not None:
            out[key][name] = value
    return {k: v for k, v in out.items() if v}


def pod(*containers: dict, init: tuple[dict, ...] = (), uid: str = "u-1", **spec) -> dict:
    body = {"containers": list(containers), **spec}
    if init:
        body["initContainers"] = list(init)
    return {"metadata": {"name": "p", "namespace": "ns", "uid": uid}, "spec": body}


def ctr(name: str = "c", resources: dict | None = None, **extra) -> dict:
    return {"name": name, "image": "busybox", "resources": resources or {}, **extra}


# --- QoS and cgroup parent -------------------------------------------------------------------------


def test_cgroup_parent_follows_the_qos_tier():
    assert pod_cgroup_parent(pod(ctr(resources=res("1", "1", "1Gi", "1Gi")))) == "/kubepods/podu-1"
    assert pod_cgroup_parent(pod(ctr(resources=res("1", None, None, None)))) == "/kubepods/burstable/podu-1"
    assert pod_cgroup_parent(pod(ctr())) == "/kubepods/besteffort/podu-1"


def test_qos_class_prefers_the_stored_status():
    p = pod(ctr())
    p["status"] = {"qosClass": "Burstable"}  # e.g. after a resize the spec alone might say otherwise
    assert qos_class(p) == "Burstable"
    assert pod_cgroup_parent(p) == "/kubepods/burstable/podu-1"
    assert qos_class(pod(ctr())) == "BestEffort"


# --- CRI linux resources ------------------------------------------------------------------------------


def test_guaranteed_container_resources():
    c = ctr(resources=res("500m", "500m", "256Mi", "256Mi"))
    out = container_resources(pod(c), c, node_memory_capacity=NODE_MEMORY)
    assert out.cpu_shares == 512
    assert out.cpu_period == 100000
    assert out.cpu_quota == 50000
    assert out.memory_limit_in_bytes == 256 * 1024**2
    assert out.memory_swap_limit_in_bytes == 256 * 1024**2
    assert out.oom_score_adj == -997


def test_best_effort_container_resources():
    c = ctr()
    out = container_resources(pod(c), c, node_memory_capacity=NODE_MEMORY)
    assert (out.cpu_shares, out.cpu_period, out.cpu_quota, out.memory_limit_in_bytes) == (2, 0, 0, 0)
    assert out.oom_score_adj == 1000


def test_cpu_limit_only_gives_shares_from_the_limit():
    c = ctr(resources={"limits": {"cpu": "250m"}})
    out = container_resources(pod(c), c, node_memory_capacity=NODE_MEMORY)
    assert (out.cpu_shares, out.cpu_quota) == (256, 25000)


def test_tiny_values_are_clamped():
    c = ctr(resources=res("1m", "1m", None, None))
    out = container_resources(pod(c), c, node_memory_capacity=NODE_MEMORY)
    assert out.cpu_shares == 2  # 1m * 1024 / 1000 rounds to 1, minimum 2
    assert out.cpu_quota == 1000  # 100 µs, minimum 1000 µs


def test_explicit_resources_override_the_spec():
    """The kubelet passes the allocated resources, which can lag behind a resized spec."""
    c = ctr(resources=res("2", None, "1Gi", "2Gi"))
    allocated = res("1", None, "1Gi", "1536Mi")
    out = container_resources(pod(c), c, node_memory_capacity=NODE_MEMORY, resources=allocated)
    assert out.cpu_shares == 1024
    assert out.memory_limit_in_bytes == 1536 * 1024**2


def test_hugepages_limits():
    c = ctr(resources=res("1", "1", "1Gi", "1Gi", **{"hugepages-2Mi": "64Mi", "hugepages-1Gi": "2Gi"}))
    out = container_resources(pod(c), c, node_memory_capacity=NODE_MEMORY)
    assert {(h.page_size, h.limit) for h in out.hugepage_limits} == {("2MB", 64 * 1024**2), ("1GB", 2 * GI)}
    assert hugepage_size_name(64 * 1024) == "64KB"


def test_bad_quantities_count_as_absent():
    c = ctr(resources={"requests": {"cpu": "lots"}, "limits": {"memory": [1]}})
    out = container_resources(pod(c), c, node_memory_capacity=NODE_MEMORY)
    assert (out.cpu_shares, out.memory_limit_in_bytes) == (2, 0)


@given(st.integers(min_value=0, max_value=10**9))
def test_shares_are_within_the_kernel_range(milli):
    assert 2 <= milli_cpu_to_shares(milli) <= 262144


# --- OOM score --------------------------------------------------------------------------------------


def test_burstable_oom_score_scales_with_the_memory_request():
    c = ctr(resources=res(None, None, "2Gi", None))
    assert oom_score_adj(pod(c), c, node_memory_capacity=NODE_MEMORY) == 750  # 1000 - 1000*2/8


def test_burstable_oom_score_stays_between_guaranteed_and_best_effort():
    big = ctr(resources=res(None, None, "8Gi", None))
    assert oom_score_adj(pod(big), big, node_memory_capacity=NODE_MEMORY) == 3
    none = ctr(resources=res("100m", None, None, None))
    assert oom_score_adj(pod(none), none, node_memory_capacity=NODE_MEMORY) == 999


def test_node_critical_pods_get_the_guaranteed_score():
    c = ctr()
    assert oom_score_adj(pod(c, priorityClassName="system-node-critical"), c,
                         node_memory_capacity=NODE_MEMORY) == -997


def test_sidecar_never_scores_above_the_smallest_app_container():
    app = ctr("app", res(None, None, "4Gi", None))
    sidecar = ctr("side", res(None, None, "1Gi", None), restartPolicy="Always")
    p = pod(app, init=(sidecar,))
    assert oom_score_adj(p, app, node_memory_capacity=NODE_MEMORY) == 500
    assert oom_score_adj(p, sidecar, node_memory_capacity=NODE_MEMORY) == 500  # not 875


# --- effective pod requests ---------------------------------------------------------------------------


def q(value: str):
    return parse_quantity(value)


def test_pod_requests_sum_app_containers_and_sidecars_and_overhead():
    p = pod(ctr("a", res("100m", None, "64Mi", None)), ctr("b", res("200m", None, None, None)),
            init=(ctr("s", res("50m", None, "16Mi", None), restartPolicy="Always"),),
            overhead={"cpu": "10m", "memory": "1Mi"})
    total = pod_requests(p)
    assert total["cpu"] == q("360m")
    assert total["memory"] == q("81Mi")


def test_pod_requests_take_the_largest_init_moment():
    p = pod(ctr("a", res("100m", None, "64Mi", None)),
            init=(ctr("s", res("50m", None, None, None), restartPolicy="Always"),
                  ctr("i", res("1", None, "32Mi", None))))
    total = pod_requests(p)
    assert total["cpu"] == q("1050m")  # the plain init container runs beside the sidecar
    assert total["memory"] == q("64Mi")


def test_pod_level_requests_replace_the_containers_figure():
    p = pod(ctr("a", res("100m", None, "64Mi", None)), resources={"requests": {"cpu": "2"}})
    total = pod_requests(p)
    assert total["cpu"] == q("2")
    assert total["memory"] == q("64Mi")


def test_pod_requests_with_allocated_overrides():
    p = pod(ctr("a", res("4", None, "64Mi", None)))
    total = pod_requests(p, resources={"a": res("1", None, "64Mi", None)})
    assert total["cpu"] == q("1")


def test_pod_limits_use_the_same_peak_and_add_overhead_only_where_limited():
    p = pod(ctr("a", res(None, "1", None, "64Mi")),
            init=(ctr("s", res(None, "500m", None, "16Mi"), restartPolicy="Always"),
                  ctr("i", res(None, None, None, "128Mi"))),
            overhead={"memory": "1Mi", "ephemeral-storage": "1Gi"})
    total = pod_requests(p, key="limits")
    assert total["memory"] == q("145Mi")  # the init container beside the sidecar (144Mi) beats a + s (80Mi)
    assert total["cpu"] == q("1500m")
    assert "ephemeral-storage" not in total  # no container limits it: overhead does not make a limit
    assert pod_requests(p)["ephemeral-storage"] == q("1Gi")  # requests take every overhead


def test_pod_level_limits_replace_the_containers_figure():
    p = pod(ctr("a", res(None, None, None, "64Mi")), resources={"limits": {"memory": "1Gi"}})
    assert pod_requests(p, key="limits")["memory"] == q("1Gi")


def test_scaled_is_millicores_for_cpu_and_units_otherwise():
    assert (scaled("cpu", q("1.5")), scaled("memory", q("1Ki")), scaled("cpu", None)) == (1500, 1024, 0)
    assert scaled("memory", q("1500m")) == 2  # rounded up, as Quantity.Value()


def test_sidecar_is_an_init_container_that_always_restarts():
    assert is_sidecar({"name": "s", "restartPolicy": "Always"})
    assert not is_sidecar({"name": "i"})
    assert not is_sidecar({"name": "i", "restartPolicy": "Never"})
