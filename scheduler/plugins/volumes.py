"""The volume plugins, reduced to what kubemini can check: it has PersistentVolumeClaims but no PV controller,
no StorageClasses, no CSINode objects and no provisioning, so nothing ever binds a claim to a volume.

- VolumeRestrictions — as Kubernetes: inline GCE PD / AWS EBS / iSCSI / RBD volumes conflict with the same
  disk used by a pod on the node (UNSCHEDULABLE "node(s) had no available disk"; shared read-only mounts
  are fine where Kubernetes allows them), and a ReadWriteOncePod claim another pod already uses
  rejects the pod (UNSCHEDULABLE, preemption may free it).
- NodeVolumeLimits — only the claim lookup: a missing claim is UNSCHEDULABLE_AND_UNRESOLVABLE
  ``looking up PVC ns/x: persistentvolumeclaim "x" not found`` on every node. Attach limits come from
  CSINode objects kubemini does not have, so no limit is enforced.
- VolumeBinding — PreFilter's checks: missing, lost, terminating or (generic ephemeral) foreign claims are
  UNSCHEDULABLE_AND_UNRESOLVABLE; a claim without ``spec.volumeName`` counts as an unbound claim with
  Immediate binding (no StorageClass can say WaitForFirstConsumer) — "pod has unbound immediate
  PersistentVolumeClaims". A claim with ``spec.volumeName`` counts as bound (no bind-completed annotation
  needed: no controller would add it); PV node affinity is not checked.
- VolumeZone — a missing claim, or an unbound one without a storage class, is UNSCHEDULABLE_AND_UNRESOLVABLE;
  PV zone labels are not checked.

Claims are read from the shared PersistentVolumeClaim informer (registered when the plugin is built).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from machinery.client import PERSISTENT_VOLUME_CLAIMS
from machinery.meta import controller_ref, name_of, uid_of
from scheduler.framework import ClusterEvent, CycleState, Handle, NodeInfo, PodInfo, PreFilterResult, Status, skip
from scheduler.framework.status import error, unresolvable, unschedulable

ERR_REASON_DISK_CONFLICT = "node(s) had no available disk"
ERR_REASON_RWOP_CONFLICT = ("node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod "
                            "access mode")
ERR_UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
ERR_NO_PV_NO_CLASS = "PersistentVolumeClaim had no pv name and storageClass name"
BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"
_INLINE_DISKS = ("gcePersistentDisk", "awsElasticBlockStore", "rbd", "iscsi")

Obj = Mapping[str, Any]


def not_found(name: str) -> str:
    return f'persistentvolumeclaim "{name}" not found'


def claim_refs(pod_info: PodInfo, *, ephemeral: bool = True) -> Iterator[tuple[str, bool]]:
    """(claim name, is generic ephemeral) for each volume backed by a claim."""
    for volume in (pod_info.pod.get("spec") or {}).get("volumes") or ():
        if volume.get("persistentVolumeClaim") is not None:
            yield volume["persistentVolumeClaim"].get("claimName") or "", False
        elif ephemeral and volume.get("ephemeral") is not None:
            yield f"{pod_info.name}-{volume.get('name') or ''}", True


def storage_class_of(claim: Obj) -> str:
    """GetPersistentVolumeClaimClass: the beta annotation wins over spec.storageClassName."""
    annotations = (claim.get("metadata") or {}).get("annotations") or {}
    if BETA_STORAGE_CLASS in annotations:
        return annotations[BETA_STORAGE_CLASS]
    return (claim.get("spec") or {}).get("storageClassName") or ""


class _ClaimLister:
    def __init__(self, handle: Handle) -> None:
        self.store = handle.informers.informer(PERSISTENT_VOLUME_CLAIMS).store

    def get(self, namespace: str, name: str) -> Obj | None:
        return self.store.get_by_name(namespace, name)


# --- VolumeRestrictions -----------------------------------------------------------------------------


def _same_disk(kind: str, mine: Obj, theirs: Obj) -> bool:
    both_read_only = bool(mine.get("readOnly")) and bool(theirs.get("readOnly"))
    if kind == "gcePersistentDisk":
        return mine.get("pdName") == theirs.get("pdName") and not both_read_only
    if kind == "awsElasticBlockStore":
        return mine.get("volumeID") == theirs.get("volumeID")
    if kind == "iscsi":
        return mine.get("iqn") == theirs.get("iqn") and not both_read_only
    # rbd: same image in the same pool behind a shared monitor
    return (bool(set(mine.get("monitors") or ()) & set(theirs.get("monitors") or ()))
            and (mine.get("pool") or "rbd") == (theirs.get("pool") or "rbd")
            and mine.get("image") == theirs.get("image") and not both_read_only)


def _disk_conflict(disks: tuple[tuple[str, Obj], ...], pod: Obj) -> bool:
    for volume in (pod.get("spec") or {}).get("volumes") or ():
        for kind, mine in disks:
            theirs = volume.get(kind)
            if theirs is not None and _same_disk(kind, mine, theirs):
                return True
    return False


def _uses(pod_info: PodInfo, namespace: str, claims: frozenset[str]) -> int:
    if pod_info.namespace != namespace:
        return 0
    return sum(1 for name, _ in claim_refs(pod_info, ephemeral=False) if name in claims)


class _RestrictionsState:
    __slots__ = ("disks", "rwop_claims", "rwop_total", "rwop_users")

    def __init__(self, disks: tuple[tuple[str, Obj], ...], rwop_claims: frozenset[str],
                 rwop_users: dict[str, int]) -> None:
        self.disks = disks  # the pod's inline disks: (kind, volume source)
        self.rwop_claims = rwop_claims
        self.rwop_users = rwop_users  # node name -> references by its pods to the pod's ReadWriteOncePod claims
        self.rwop_total = sum(rwop_users.values())


class VolumeRestrictions:
    NAME = "VolumeRestrictions"
    STATE_KEY = "PreFilterVolumeRestrictions"

    def __init__(self, args: dict[str, Any] | None, handle: Handle) -> None:
        self.handle = handle
        self.claims = _ClaimLister(handle)

    def pre_filter(self, state: CycleState, pod_info: PodInfo,
                   nodes: list[NodeInfo]) -> tuple[PreFilterResult | None, Status | None]:
        volumes = (pod_info.pod.get("spec") or {}).get("volumes") or ()
        disks = tuple((kind, v[kind]) for v in volumes for kind in _INLINE_DISKS if v.get(kind) is not None)
        rwop: set[str] = set()
        for name, _ in claim_refs(pod_info, ephemeral=False):
            claim = self.claims.get(pod_info.namespace, name)
            if claim is None:
                return None, unresolvable(not_found(name))
            if "ReadWriteOncePod" in ((claim.get("spec") or {}).get("accessModes") or ()):
                rwop.add(name)
        users: dict[str, int] = {}
        if rwop:
            claims = frozenset(rwop)
            for node in self.handle.snapshot().node_infos:
                count = sum(_uses(p, pod_info.namespace, claims) for p in node.pods if p.uid != pod_info.uid)
                if count:
                    users[node.name] = count
        if not disks and not users:
            return None, skip()
        state.write(self.STATE_KEY, _RestrictionsState(disks, frozenset(rwop), users))
        return None, None

    def filter(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo) -> Status | None:
        s: _RestrictionsState | None = state.get(self.STATE_KEY)
        if s is None:
            return error(f"reading {self.STATE_KEY!r} from cycle state: PreFilter did not run")
        if s.disks and any(_disk_conflict(s.disks, p.pod) for p in node_info.pods):
            return unschedulable(ERR_REASON_DISK_CONFLICT)
        # users on other nodes always conflict; users on this node may be gone in a preemption dry run
        if s.rwop_total and (s.rwop_total > s.rwop_users.get(node_info.name, 0) or any(
                _uses(p, pod_info.namespace, s.rwop_claims) for p in node_info.pods if p.uid != pod_info.uid)):
            return unschedulable(ERR_REASON_RWOP_CONFLICT)
        return None

    def events_to_register(self) -> list[ClusterEvent]:
        return [ClusterEvent("Pod", "Delete"), ClusterEvent("Node", "Add"),
                ClusterEvent("PersistentVolumeClaim", "Add")]


# --- NodeVolumeLimits -------------------------------------------------------------------------------


class NodeVolumeLimits:
    NAME = "NodeVolumeLimits"
    STATE_KEY = "PreFilterNodeVolumeLimits"

    def __init__(self, args: dict[str, Any] | None, handle: Handle) -> None:
        self.claims = _ClaimLister(handle)

    def pre_filter(self, state: CycleState, pod_info: PodInfo,
                   nodes: list[NodeInfo]) -> tuple[PreFilterResult | None, Status | None]:
        missing = next((name for name, _ in claim_refs(pod_info)
                        if self.claims.get(pod_info.namespace, name) is None), None)
        if missing is None:  # no claims, or all exist: without CSINode limits there is nothing to check
            return None, skip()
        state.write(self.STATE_KEY, f"looking up PVC {pod_info.namespace}/{missing}: {not_found(missing)}")
        return None, None

    def filter(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo) -> Status | None:
        message = state.get(self.STATE_KEY)
        return unresolvable(message) if message else None

    def events_to_register(self) -> list[ClusterEvent]:
        return [ClusterEvent("PersistentVolumeClaim", "Add"), ClusterEvent("Pod", "Delete"),
                ClusterEvent("Node", "Add")]


# --- VolumeBinding ----------------------------------------------------------------------------------


def _claim_problem(pod_info: PodInfo, name: str, ephemeral: bool, claim: Obj | None) -> str:
    """Why this claim makes the pod unschedulable for good (VolumeBinding's podHasPVCs), or ""."""
    if claim is None:
        if ephemeral:
            return f'waiting for ephemeral volume controller to create the persistentvolumeclaim "{name}"'
        return not_found(name)
    if (claim.get("status") or {}).get("phase") == "Lost":
        volume = (claim.get("spec") or {}).get("volumeName") or ""
        return f'persistentvolumeclaim "{name}" bound to non-existent persistentvolume "{volume}"'
    if (claim.get("metadata") or {}).get("deletionTimestamp"):
        return f'persistentvolumeclaim "{name}" is being deleted'
    if ephemeral:
        owner = controller_ref(claim)
        if owner is None or owner.get("uid") != uid_of(pod_info.pod):
            return (f"PVC {pod_info.namespace}/{name_of(claim)} was not created for pod "
                    f"{pod_info.namespace}/{pod_info.name} (pod is not owner)")
    return ""


class VolumeBinding:
    NAME = "VolumeBinding"

    def __init__(self, args: dict[str, Any] | None, handle: Handle) -> None:
        self.claims = _ClaimLister(handle)

    def pre_filter(self, state: CycleState, pod_info: PodInfo,
                   nodes: list[NodeInfo]) -> tuple[PreFilterResult | None, Status | None]:
        refs = list(claim_refs(pod_info))
        if not refs:
            return None, skip()
        unbound = False
        for name, ephemeral in refs:
            claim = self.claims.get(pod_info.namespace, name)
            problem = _claim_problem(pod_info, name, ephemeral, claim)
            if problem:
                return None, unresolvable(problem)
            unbound = unbound or not ((claim or {}).get("spec") or {}).get("volumeName")
        if unbound:
            return None, unresolvable(ERR_UNBOUND_IMMEDIATE)
        return None, skip()  # every claim is bound; PV node affinity is not checked (no PVs in kubemini)

    def filter(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo) -> Status | None:
        return None  # PreFilter always skips the Filter step (see the module docstring)

    def events_to_register(self) -> list[ClusterEvent]:
        return [ClusterEvent("PersistentVolumeClaim", "Add"), ClusterEvent("PersistentVolumeClaim", "Update"),
                ClusterEvent("Node", "Add"), ClusterEvent("Node", "UpdateNodeLabel")]


# --- VolumeZone -------------------------------------------------------------------------------------


class VolumeZone:
    NAME = "VolumeZone"

    def __init__(self, args: dict[str, Any] | None, handle: Handle) -> None:
        self.claims = _ClaimLister(handle)

    def pre_filter(self, state: CycleState, pod_info: PodInfo,
                   nodes: list[NodeInfo]) -> tuple[PreFilterResult | None, Status | None]:
        for name, _ in claim_refs(pod_info, ephemeral=False):
            claim = self.claims.get(pod_info.namespace, name)
            if claim is None:
                return None, unresolvable(not_found(name))
            if not (claim.get("spec") or {}).get("volumeName") and not storage_class_of(claim):
                return None, unresolvable(ERR_NO_PV_NO_CLASS)
        return None, skip()  # PV zone labels are not checked (no PVs in kubemini)

    def filter(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo) -> Status | None:
        return None  # PreFilter always skips the Filter step

    def events_to_register(self) -> list[ClusterEvent]:
        return [ClusterEvent("PersistentVolumeClaim", "Add"), ClusterEvent("PersistentVolumeClaim", "Update"),
                ClusterEvent("Node", "Add"), ClusterEvent("Node", "UpdateNodeLabel")]
