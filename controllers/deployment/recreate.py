"""The Recreate strategy: every old pod is gone before a single new one is started.

``deployment/recreate.go``: scale all old ReplicaSets to 0; while any old pod still exists (RS
status still counts replicas, or a pod owned by an old RS is not yet Succeeded/Failed — a pod being
deleted counts until it is gone), do nothing but report status; only then create the new RS (it
is not even created earlier, so nothing scales up before the old pods are gone) and scale it to
``spec.replicas``. The pod-deletion handler in :mod:`.controller` wakes the deployment up when its
last pod disappears.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controllers.deployment import progress, util
from controllers.deployment.sync import DeploymentSync, all_replica_sets
from machinery.meta import uid_of

Obj = dict[str, Any]


async def rollout_recreate(s: DeploymentSync, pod_map: Mapping[str, list[Obj]]) -> float | None:
    new_rs, old_rss = await s.get_all_replica_sets_and_sync_revision(create=False)
    if await scale_down_old_replica_sets_for_recreate(s, util.active(old_rss)):
        new_rs, old_rss = s.refresh(new_rs, old_rss)
        return await s.sync_rollout_status(all_replica_sets(new_rs, old_rss), new_rs)
    if old_pods_running(new_rs, old_rss, pod_map):
        return await s.sync_rollout_status(all_replica_sets(new_rs, old_rss), new_rs)
    if new_rs is None:
        new_rs, old_rss = await s.get_all_replica_sets_and_sync_revision(create=True)
        assert new_rs is not None  # create=True either returns the new RS or raises
    await s.scale_replica_set_and_record_event(new_rs, s.replicas)
    new_rs, old_rss = s.refresh(new_rs, old_rss)
    if progress.deployment_complete(s.d, s.status):
        await s.cleanup_deployment(old_rss)
    return await s.sync_rollout_status(all_replica_sets(new_rs, old_rss), new_rs)


async def scale_down_old_replica_sets_for_recreate(s: DeploymentSync, old_rss: list[Obj]) -> bool:
    scaled = False
    for rs in old_rss:
        if util.spec_replicas(rs) == 0:
            continue
        did, _ = await s.scale_replica_set_and_record_event(rs, 0)
        scaled = scaled or did
    return scaled


def old_pods_running(new_rs: Obj | None, old_rss: list[Obj], pod_map: Mapping[str, list[Obj]]) -> bool:
    """Whether any old pod may still run: counted in an old RS's status, or owned by an old RS and not
    finished (Unknown counts: it may still be running)."""
    if util.actual_replica_count(old_rss) > 0:
        return True
    new_uid = uid_of(new_rs) if new_rs is not None else None
    for rs_uid, pods in pod_map.items():
        if rs_uid == new_uid:
            continue
        if any((p.get("status") or {}).get("phase") not in ("Succeeded", "Failed") for p in pods):
            return True
    return False
