"""The volume plugins: inline-disk and ReadWriteOncePod conflicts, and what each does with missing or unbound claims.

Claims live in a fake PersistentVolumeClaim informer; pods already on nodes come from a Snapshot.
"""

from __future__ import annotations

from typing import Any

import pytest

from machinery.client import PERSISTENT_VOLUME_CLAIMS
from scheduler.framework import ClusterEvent, Code, CycleState, Handle, NodeInfo, PodInfo, Snapshot, Status
from scheduler.plugins.volumes import (
    ERR_NO_PV_NO_CLASS,
    ERR_REASON_DISK_CONFLICT,
    ERR_REASON_RWOP_CONFLICT,
    ERR_UNBOUND_IMMEDIATE,
    NodeVolumeLimits,
    VolumeBinding,
    VolumeRestrictions,
    VolumeZone,
)
from tests.fakes import FakeInformers


def claim_volume(claim: str, name: str = "data") -> dict:
    return {"name": name, "persistentVolumeClaim": {"claimName": claim}}


def ephemeral_volume(name: str = "scratch") -> dict:
    return {"name": name, "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"]}}}}


def pod(name: str, *volumes: dict, namespace: str = "default") -> PodInfo:
    return PodInfo({"metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
                    "spec": {"containers": [{"name": "c", "image": "app"}], "volumes": list(volumes)}})


def pvc(name: str, *, modes: tuple[str, ...] = ("ReadWriteOnce",), volume: str = "pv-1", namespace: str = "default",
        **extra: Any) -> dict:
    spec: dict[str, Any] = {"accessModes": list(modes)}
    if volume:
        spec["volumeName"] = volume
    obj: dict[str, Any] = {"metadata": {"name": name, "namespace": namespace, **extra.pop("metadata", {})},
                           "spec": {**spec, **extra.pop("spec", {})}}
    obj.update(extra)
    return obj


def node(name: str, *pods: PodInfo) -> NodeInfo:
    info = NodeInfo({"metadata": {"name": name}, "status": {"allocatable": {"pods": "110"}}})
    for p in pods:
        info.add_pod(p)
    return info


def handle(*claims: dict, nodes: tuple[NodeInfo, ...] = ()) -> Handle:
    informers = FakeInformers()
    informers.add(PERSISTENT_VOLUME_CLAIMS, *claims)
    snapshot = Snapshot(list(nodes))
    return Handle(client=None, informers=informers, clock=None, snapshot=lambda: snapshot)


def assert_status(status: Status | None, code: Code, *reasons: str) -> None:
    assert status is not None
    assert (status.code, status.reasons) == (code, reasons)


def pre_filter(plugin: Any, pod_info: PodInfo, state: CycleState | None = None) -> Status | None:
    result, status = plugin.pre_filter(state or CycleState(), pod_info, [])
    assert result is None
    return status


# --- VolumeRestrictions: inline disks -------------------------------------------------------------------


def gce(pd: str, read_only: bool = False) -> dict:
    return {"name": "gce", "gcePersistentDisk": {"pdName": pd, "readOnly": read_only}}


def ebs(volume_id: str, read_only: bool = False) -> dict:
    return {"name": "ebs", "awsElasticBlockStore": {"volumeID": volume_id, "readOnly": read_only}}


def iscsi(iqn: str, read_only: bool = False) -> dict:
    return {"name": "iscsi", "iscsi": {"targetPortal": "10.0.0.1:3260", "iqn": iqn, "lun": 0, "readOnly": read_only}}


def rbd(monitors: list[str], image: str, pool: str | None = None, read_only: bool = False) -> dict:
    source: dict[str, Any] = {"monitors": monitors, "image": image, "readOnly": read_only}
    if pool:
        source["pool"] = pool
    return {"name": "rbd", "rbd": source}


DISK_CASES = [
    ("gce same disk", gce("d1"), gce("d1"), False),
    ("gce same disk, both read-only", gce("d1", True), gce("d1", True), True),
    ("gce same disk, one read-only", gce("d1", True), gce("d1"), False),
    ("gce other disk", gce("d1"), gce("d2"), True),
    ("ebs same volume even read-only", ebs("v1", True), ebs("v1", True), False),
    ("ebs other volume", ebs("v1"), ebs("v2"), True),
    ("iscsi same iqn", iscsi("iqn.a"), iscsi("iqn.a"), False),
    ("iscsi same iqn, both read-only", iscsi("iqn.a", True), iscsi("iqn.a", True), True),
    ("iscsi other iqn", iscsi("iqn.a"), iscsi("iqn.b"), True),
    ("rbd shared monitor, same pool and image", rbd(["m1", "m2"], "img"), rbd(["m2"], "img"), False),
    ("rbd default pool equals explicit rbd", rbd(["m1"], "img"), rbd(["m1"], "img", pool="rbd"), False),
    ("rbd other pool", rbd(["m1"], "img", pool="a"), rbd(["m1"], "img", pool="b"), True),
    ("rbd no shared monitor", rbd(["m1"], "img"), rbd(["m2"], "img"), True),
    ("rbd both read-only", rbd(["m1"], "img", read_only=True), rbd(["m1"], "img", read_only=True), True),
    ("different kinds never conflict", gce("d1"), ebs("d1"), True),
]


@pytest.mark.parametrize(("mine", "theirs", "fits"), [c[1:] for c in DISK_CASES], ids=[c[0] for c in DISK_CASES])
def test_inline_disk_conflicts(mine, theirs, fits):
    plugin = VolumeRestrictions({}, handle())
    state = CycleState()
    incoming = pod("new", mine)
    assert pre_filter(plugin, incoming, state) is None
    status = plugin.filter(state, incoming, node("n1", pod("old", theirs)))
    if fits:
        assert status is None
    else:
        assert_status(status, Code.UNSCHEDULABLE, ERR_REASON_DISK_CONFLICT)
    assert plugin.filter(state, incoming, node("n2")) is None


def test_restrictions_skip_pods_without_disks_or_rwop_claims():
    busy = node("n1", pod("old", claim_volume("shared")))  # a ReadWriteOnce claim may be shared
    plugin = VolumeRestrictions({}, handle(pvc("shared"), nodes=(busy,)))
    for incoming in (pod("new"), pod("new", {"name": "tmp", "emptyDir": {}}), pod("new", claim_volume("shared"))):
        assert_status(pre_filter(plugin, incoming), Code.SKIP)


def test_restrictions_missing_claim_is_unresolvable():
    status = pre_filter(VolumeRestrictions({}, handle()), pod("new", claim_volume("data")))
    assert_status(status, Code.UNSCHEDULABLE_AND_UNRESOLVABLE, 'persistentvolumeclaim "data" not found')


def test_restrictions_filter_without_pre_filter_is_an_error():
    status = VolumeRestrictions({}, handle()).filter(CycleState(), pod("new"), node("n1"))
    assert status is not None and status.code == Code.ERROR


# --- VolumeRestrictions: ReadWriteOncePod ----------------------------------------------------------------

RWOP = pvc("exclusive", modes=("ReadWriteOncePod",))


def rwop_setup(*nodes: NodeInfo) -> tuple[VolumeRestrictions, CycleState, PodInfo, Status | None]:
    plugin = VolumeRestrictions({}, handle(RWOP, nodes=nodes))
    state = CycleState()
    incoming = pod("new", claim_volume("exclusive"))
    return plugin, state, incoming, pre_filter(plugin, incoming, state)


def test_rwop_claim_in_use_rejects_every_node():
    holder = node("n2", pod("holder", claim_volume("exclusive")))
    plugin, state, incoming, status = rwop_setup(node("n1"), holder)
    assert status is None
    for target in (node("n1"), holder):
        assert_status(plugin.filter(state, incoming, target), Code.UNSCHEDULABLE, ERR_REASON_RWOP_CONFLICT)


def test_rwop_preemption_dry_run_without_the_holder_fits():
    holder_pod = pod("holder", claim_volume("exclusive"))
    holder = node("n2", holder_pod)
    plugin, state, incoming, _ = rwop_setup(node("n1"), holder)
    dry_run = holder.clone()
    dry_run.remove_pod(holder_pod)
    assert plugin.filter(state, incoming, dry_run) is None
    assert plugin.filter(state, incoming, node("n1")) is not None  # the holder is still there for other nodes


def test_rwop_claim_unused_skips():
    _, _, _, status = rwop_setup(node("n1", pod("other", claim_volume("elsewhere"))))
    assert_status(status, Code.SKIP)


def test_rwop_same_claim_name_in_another_namespace_is_another_claim():
    _, _, _, status = rwop_setup(node("n1", pod("other", claim_volume("exclusive"), namespace="prod")))
    assert_status(status, Code.SKIP)


def test_restrictions_events():
    assert VolumeRestrictions({}, handle()).events_to_register() == [
        ClusterEvent("Pod", "Delete"), ClusterEvent("Node", "Add"), ClusterEvent("PersistentVolumeClaim", "Add")]


# --- NodeVolumeLimits -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("claims", "incoming", "message"), [
    ((), pod("web"), None),
    ((pvc("data"),), pod("web", claim_volume("data")), None),
    ((), pod("web", claim_volume("data")), 'looking up PVC default/data: persistentvolumeclaim "data" not found'),
    ((), pod("web", ephemeral_volume()),
     'looking up PVC default/web-scratch: persistentvolumeclaim "web-scratch" not found'),
])
def test_node_volume_limits(claims, incoming, message):
    plugin = NodeVolumeLimits({}, handle(*claims))
    state = CycleState()
    status = pre_filter(plugin, incoming, state)
    if message is None:
        assert_status(status, Code.SKIP)
    else:
        assert status is None
        for target in (node("n1"), node("n2")):
            assert_status(plugin.filter(state, incoming, target), Code.UNSCHEDULABLE_AND_UNRESOLVABLE, message)


def test_node_volume_limits_events():
    assert ClusterEvent("PersistentVolumeClaim", "Add") in NodeVolumeLimits({}, handle()).events_to_register()


# --- VolumeBinding --------------------------------------------------------------------------------------

OWNED = {"ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "uid-web",
                              "controller": True}]}
FOREIGN = {"ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "old", "uid": "uid-old",
                                "controller": True}]}

BINDING_CASES = [
    ("no claims", (), pod("web"), None),
    ("bound claim", (pvc("data"),), pod("web", claim_volume("data")), None),
    ("missing claim", (), pod("web", claim_volume("data")), 'persistentvolumeclaim "data" not found'),
    ("missing ephemeral claim", (), pod("web", ephemeral_volume()),
     'waiting for ephemeral volume controller to create the persistentvolumeclaim "web-scratch"'),
    ("lost claim", (pvc("data", status={"phase": "Lost"}),), pod("web", claim_volume("data")),
     'persistentvolumeclaim "data" bound to non-existent persistentvolume "pv-1"'),
    ("terminating claim", (pvc("data", metadata={"deletionTimestamp": "2026-01-01T00:00:00Z"}),),
     pod("web", claim_volume("data")), 'persistentvolumeclaim "data" is being deleted'),
    ("ephemeral claim of another pod", (pvc("web-scratch", metadata=FOREIGN),), pod("web", ephemeral_volume()),
     "PVC default/web-scratch was not created for pod default/web (pod is not owner)"),
    ("own bound ephemeral claim", (pvc("web-scratch", metadata=OWNED),), pod("web", ephemeral_volume()), None),
    ("unbound claim", (pvc("data", volume=""),), pod("web", claim_volume("data")), ERR_UNBOUND_IMMEDIATE),
    ("first problem wins over unbound", (pvc("a", volume=""),), pod("web", claim_volume("a", "a"),
                                                                    claim_volume("b", "b")),
     'persistentvolumeclaim "b" not found'),
]


@pytest.mark.parametrize(("claims", "incoming", "message"), [c[1:] for c in BINDING_CASES],
                         ids=[c[0] for c in BINDING_CASES])
def test_volume_binding(claims, incoming, message):
    plugin = VolumeBinding({}, handle(*claims))
    status = pre_filter(plugin, incoming)
    if message is None:
        assert_status(status, Code.SKIP)
    else:
        assert_status(status, Code.UNSCHEDULABLE_AND_UNRESOLVABLE, message)
    assert plugin.filter(CycleState(), incoming, node("n1")) is None


def test_volume_binding_events():
    events = VolumeBinding({}, handle()).events_to_register()
    assert ClusterEvent("PersistentVolumeClaim", "Add") in events
    assert ClusterEvent("PersistentVolumeClaim", "Update") in events


# --- VolumeZone -----------------------------------------------------------------------------------------

ZONE_CASES = [
    ("no claims", (), pod("web"), None),
    ("bound claim", (pvc("data"),), pod("web", claim_volume("data")), None),
    ("missing claim", (), pod("web", claim_volume("data")), 'persistentvolumeclaim "data" not found'),
    ("unbound without a class", (pvc("data", volume=""),), pod("web", claim_volume("data")), ERR_NO_PV_NO_CLASS),
    ("unbound with a class", (pvc("data", volume="", spec={"storageClassName": "fast"}),),
     pod("web", claim_volume("data")), None),
    ("unbound with the beta class annotation",
     (pvc("data", volume="", metadata={"annotations": {"volume.beta.kubernetes.io/storage-class": "fast"}}),),
     pod("web", claim_volume("data")), None),
    ("ephemeral volumes are not its business", (), pod("web", ephemeral_volume()), None),
]


@pytest.mark.parametrize(("claims", "incoming", "message"), [c[1:] for c in ZONE_CASES],
                         ids=[c[0] for c in ZONE_CASES])
def test_volume_zone(claims, incoming, message):
    plugin = VolumeZone({}, handle(*claims))
    status = pre_filter(plugin, incoming)
    if message is None:
        assert_status(status, Code.SKIP)
    else:
        assert_status(status, Code.UNSCHEDULABLE_AND_UNRESOLVABLE, message)


def test_plugins_register_the_claim_informer():
    h = handle()
    for cls in (VolumeRestrictions, NodeVolumeLimits, VolumeBinding, VolumeZone):
        assert cls({}, h).claims.store is h.informers.informer(PERSISTENT_VOLUME_CLAIMS).store
