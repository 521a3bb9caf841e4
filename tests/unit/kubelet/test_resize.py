"""The kubelet's resize decisions (kubelet.resize) and the allocation checkpoint (kubelet.allocation)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from kubelet.allocation import FILE_NAME, AllocationCheckpoint
from kubelet.resize import (
    ResizeDecision,
    decide_resize,
    memory_decrease_refused,
    needs_update,
    resize_conditions,
    resize_requested,
    resources_equal,
    restart_needed,
    status_resources,
    update_order,
)
from kubelet.resources import container_resources
from machinery.quantity import parse_quantity
from proto.cri import api_pb2 as cri

NODE = {"cpu": "4", "memory": "8Gi", "pods": "110"}
NOTHING_ELSE: dict = {}


def res(cpu_req=None, cpu_lim=None, mem_req=None, mem_lim=None) -> dict:
    out: dict = {"requests": {}, "limits": {}}
    for key, name, value in (("requests", "cpu", cpu_req), ("limits", "cpu", cpu_lim),
                             ("requests", "memory", mem_req), ("limits", "memory", mem_lim)):
        if value is not None:
            out[key][name] = value
    return out


def pod(resources: dict, *, name: str = "c", uid: str = "u-1", **container) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": uid, "generation": 2},
            "spec": {"containers": [{"name": name, "image": "busybox", "resources": resources, **container}]}}


def used(cpu: str, memory: str) -> dict:
    return {"cpu": parse_quantity(cpu), "memory": parse_quantity(memory)}


# --- decide_resize ------------------------------------------------------------------------------------


def test_no_change_means_no_action():
    p = pod(res("1", None, "1Gi", None))
    assert decide_resize(p, {"c": res("1000m", None, "1024Mi", None)}, NODE, NOTHING_ELSE) == ResizeDecision("none")
    assert not resize_requested(p, {"c": res("1", None, "1Gi", None)})


def test_fitting_increase_is_applied():
    p = pod(res("2", None, "1Gi", None))
    decision = decide_resize(p, {"c": res("1", None, "1Gi", None)}, NODE, used("1", "2Gi"))
    assert decision == ResizeDecision("apply")


def test_more_than_the_node_has_is_infeasible():
    p = pod(res("8", None, "1Gi", None))
    decision = decide_resize(p, {"c": res("1", None, "1Gi", None)}, NODE, NOTHING_ELSE)
    assert decision == ResizeDecision("infeasible", "Node didn't have enough capacity: cpu, requested: 8000, "
                                                    "capacity: 4000")


def test_infeasible_names_memory_first():
    p = pod(res("8", None, "16Gi", None))
    decision = decide_resize(p, {"c": res("1", None, "1Gi", None)}, NODE, NOTHING_ELSE)
    assert decision.action == "infeasible"
    assert decision.message == (f"Node didn't have enough capacity: memory, requested: {16 * 1024**3}, "
                                f"capacity: {8 * 1024**3}")


def test_fits_the_node_but_not_beside_the_others_is_deferred():
    p = pod(res("1", None, "6Gi", None))
    decision = decide_resize(p, {"c": res("1", None, "1Gi", None)}, NODE, used("1", "4Gi"))
    assert decision == ResizeDecision("deferred", f"Node didn't have enough resource: memory, requested: "
                                                  f"{6 * 1024**3}, used: {4 * 1024**3}, capacity: {8 * 1024**3}")


def test_deferred_names_cpu_first():
    p = pod(res("3", None, "6Gi", None))
    decision = decide_resize(p, {"c": res("1", None, "1Gi", None)}, NODE, used("2", "4Gi"))
    assert decision.message == "Node didn't have enough resource: cpu, requested: 3000, used: 2000, capacity: 4000"


def test_a_resize_that_raises_no_request_is_always_applied():
    """Limit-only changes and decreases need no room, even on an overcommitted node."""
    p = pod(res("1", "3", "1Gi", "2Gi"))
    decision = decide_resize(p, {"c": res("1", "2", "1Gi", "4Gi")}, NODE, used("4", "8Gi"))
    assert decision == ResizeDecision("apply")


def test_sidecars_count_and_plain_init_containers_do_not_resize():
    p = pod(res("1", None, "1Gi", None))
    p["spec"]["initContainers"] = [
        {"name": "s", "image": "b", "restartPolicy": "Always", "resources": res("2", None, None, None)},
        {"name": "i", "image": "b", "resources": res("500m", None, None, None)},
    ]
    allocated = {"c": res("1", None, "1Gi", None), "s": res("1", None, None, None),
                 "i": res("100m", None, None, None)}
    assert resize_requested(p, allocated)  # the sidecar's cpu went 1 → 2
    decision = decide_resize(p, allocated, NODE, used("1", "0"))  # 1 (c) + 2 (s) beside 1 fits in 4
    assert decision.action == "apply"
    decision = decide_resize(p, allocated, NODE, used("2", "0"))
    assert decision.message == "Node didn't have enough resource: cpu, requested: 3000, used: 2000, capacity: 4000"


# --- conditions ---------------------------------------------------------------------------------------


NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_pending_condition_for_deferred_and_infeasible():
    conds = resize_conditions(ResizeDecision("deferred", "no room"), False, None, NOW)
    assert conds == [{"type": "PodResizePending", "status": "True", "reason": "Deferred", "message": "no room",
                      "lastProbeTime": None, "lastTransitionTime": "2026-01-02T03:04:05Z"}]
    conds = resize_conditions(ResizeDecision("infeasible", "too big"), False, None, NOW, observed_generation=2)
    assert conds[0]["reason"] == "Infeasible"
    assert conds[0]["observedGeneration"] == 2


def test_in_progress_condition_with_and_without_error():
    assert resize_conditions(ResizeDecision("apply"), True, None, NOW) == [
        {"type": "PodResizeInProgress", "status": "True", "lastProbeTime": None,
         "lastTransitionTime": "2026-01-02T03:04:05Z"}]
    conds = resize_conditions(None, True, "boom", "2026-01-01T00:00:00Z")
    assert conds[0]["reason"] == "Error"
    assert conds[0]["message"] == "boom"
    assert conds[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"


def test_both_conditions_and_none():
    conds = resize_conditions(ResizeDecision("deferred", "later"), True, "failed", NOW)
    assert [c["type"] for c in conds] == ["PodResizePending", "PodResizeInProgress"]
    assert resize_conditions(ResizeDecision("none"), False, None, NOW) == []


# --- actuation helpers --------------------------------------------------------------------------------


def test_restart_needed_follows_the_resize_policy_of_changed_resources():
    container = {"name": "c", "resizePolicy": [{"resourceName": "memory", "restartPolicy": "RestartContainer"},
                                               {"resourceName": "cpu", "restartPolicy": "NotRequired"}]}
    assert not restart_needed(container, res("1", None, "1Gi", None), res("2", None, "1Gi", None))
    assert restart_needed(container, res("1", None, "1Gi", None), res("1", None, "2Gi", None))
    assert restart_needed(container, res("1", None, "1Gi", None), res("2", None, "1Gi", "2Gi"))
    assert not restart_needed({"name": "c"}, res("1", None, "1Gi", None), res("2", None, "2Gi", None))
    assert not restart_needed(container, res("1", None, "1Gi", None), res("1000m", None, "1024Mi", None))


def test_memory_decrease_below_usage_is_refused_politely():
    message = memory_decrease_refused(64 * 1024**2, 100 * 1024**2)
    assert message is not None
    assert f"memory limit ({64 * 1024**2}) below current usage ({100 * 1024**2})" in message
    assert "not decreasing memory limit below current usage" in message
    assert memory_decrease_refused(128 * 1024**2, 100 * 1024**2) is None
    assert memory_decrease_refused(None, 100 * 1024**2) is None


def test_update_order_puts_limit_decreases_first():
    old = {"a": res("1", "2", "1Gi", "2Gi"), "b": res("1", "2", "1Gi", "2Gi"), "c": res("1", None, "1Gi", None)}
    new = {"a": res("1", "3", "1Gi", "2Gi"), "b": res("1", "2", "1Gi", "1Gi"), "c": res("1", None, "1Gi", None)}
    assert update_order(["a", "b", "c"], old, new) == ["b", "a"]


def test_resources_equal_is_semantic():
    assert resources_equal(res("1", None, "1Gi", None), {"requests": {"cpu": "1000m", "memory": "1024Mi"}})
    assert resources_equal(None, {"requests": {}, "limits": {}})
    assert not resources_equal(res("1", None, None, None), res("1", "1", None, None))


# --- status fields -----------------------------------------------------------------------------------


def test_status_resources_report_what_the_runtime_runs():
    allocated = res("500m", "1", "64Mi", "128Mi")
    assert status_resources(allocated, None) == allocated  # not running: the allocated values
    same = container_resources(pod(allocated), {"name": "c"}, node_memory_capacity=8 * 1024**3, resources=allocated)
    assert status_resources(allocated, same) == allocated
    lagging = cri.LinuxContainerResources(cpu_shares=256, cpu_quota=50000, cpu_period=100000,
                                          memory_limit_in_bytes=64 * 1024**2)
    assert status_resources(allocated, lagging) == res("250m", "500m", "64Mi", "64Mi")


def test_needs_update_compares_what_a_resize_changes():
    allocated = res("500m", "1", "64Mi", "128Mi")
    expected = container_resources(pod(allocated), {"name": "c"}, node_memory_capacity=8 * 1024**3,
                                   resources=allocated)
    assert needs_update(expected, None)
    assert not needs_update(expected, expected)
    smaller = cri.LinuxContainerResources()
    smaller.CopyFrom(expected)
    smaller.memory_limit_in_bytes = 64 * 1024**2
    assert needs_update(expected, smaller)
    other = cri.LinuxContainerResources()
    other.CopyFrom(expected)
    other.oom_score_adj = 0  # clamped by the runtime: not a resize difference
    assert not needs_update(expected, other)


# --- allocation checkpoint ----------------------------------------------------------------------------


def test_unknown_pod_is_allocated_its_spec(tmp_path):
    checkpoint = AllocationCheckpoint(tmp_path / FILE_NAME)
    p = pod(res("1", None, "1Gi", None))
    assert checkpoint.allocated(p) == {"c": res("1", None, "1Gi", None)}
    assert not checkpoint.known(p)
    assert not (tmp_path / FILE_NAME).exists()


def test_allocation_survives_a_restart(tmp_path):
    path = tmp_path / FILE_NAME
    AllocationCheckpoint(path).set_allocated(pod(res("1", None, None, None)), {"c": res("1", None, None, None)})
    resized = pod(res("2", None, None, None))  # the spec moved on; the admitted value did not
    reloaded = AllocationCheckpoint(path)
    assert reloaded.known("u-1")
    assert reloaded.allocated(resized) == {"c": res("1", None, None, None)}
    assert json.loads(path.read_text())["version"] == 1
    assert not (tmp_path / (FILE_NAME + ".tmp")).exists()


def test_remove_and_retain(tmp_path):
    path = tmp_path / FILE_NAME
    checkpoint = AllocationCheckpoint(path)
    for uid in ("a", "b", "c"):
        checkpoint.set_allocated(pod(res("1", None, None, None), uid=uid), {"c": res("1", None, None, None)})
    checkpoint.remove("a")
    checkpoint.remove("missing")
    checkpoint.retain(["b", "x"])
    reloaded = AllocationCheckpoint(path)
    assert [uid for uid in ("a", "b", "c", "x") if reloaded.known(uid)] == ["b"]


def test_returned_allocations_are_copies(tmp_path):
    checkpoint = AllocationCheckpoint(tmp_path / FILE_NAME)
    p = pod(res("1", None, None, None))
    checkpoint.set_allocated(p, {"c": res("1", None, None, None)})
    checkpoint.allocated(p)["c"]["requests"]["cpu"] = "9"
    assert checkpoint.allocated(p)["c"]["requests"]["cpu"] == "1"


@pytest.mark.parametrize("content", [b"{not json", b'{"version": 7, "pods": {}}', b"[]"])
def test_malformed_checkpoint_is_ignored(tmp_path, content, caplog):
    path = tmp_path / FILE_NAME
    path.write_bytes(content)
    checkpoint = AllocationCheckpoint(path)
    assert not checkpoint.known("u-1")
    assert "allocation checkpoint" in caplog.text


def test_pod_without_uid_cannot_be_checkpointed(tmp_path):
    checkpoint = AllocationCheckpoint(tmp_path / FILE_NAME)
    with pytest.raises(ValueError, match=r"metadata\.uid"):
        checkpoint.set_allocated({"metadata": {}}, {})
