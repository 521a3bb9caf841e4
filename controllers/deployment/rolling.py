"""The RollingUpdate strategy: grow the new ReplicaSet and shrink the old ones within maxSurge/maxUnavailable.

Each sync takes at most one kind of step (``deployment/rolling.go``): scale the new RS up as far as
``replicas + maxSurge`` total allows (sum of the ReplicaSets' ``spec.replicas``); if that did nothing,
scale old RSes down as far as keeping ``replicas - maxUnavailable`` available allows — first the
old replicas that are not available anyway (``cleanup_unhealthy_replicas``, which never lowers
availability), then available ones, oldest RS first. The next step waits for the ReplicaSet
controller to report the effect in RS status (an RS update event brings the deployment back).
Hence, at every moment, Σ spec.replicas ≤ replicas + maxSurge and Σ status.availableReplicas ≥
replicas - maxUnavailable once the deployment was that available.
"""

from __future__ import annotations

from typing import Any

from controllers.deployment import progress, util
from controllers.deployment.sync import DeploymentSync, all_replica_sets

Obj = dict[str, Any]


async def rollout_rolling(s: DeploymentSync) -> float | None:
    """rolloutRolling: one step, then status; returns when to look again for the progress deadline."""
    new_rs, old_rss = await s.get_all_replica_sets_and_sync_revision(create=True)
    assert new_rs is not None  # create=True either returns the new RS or raises
    if await reconcile_new_replica_set(s, all_replica_sets(new_rs, old_rss), new_rs):
        new_rs, old_rss = s.refresh(new_rs, old_rss)
        return await s.sync_rollout_status(all_replica_sets(new_rs, old_rss), new_rs)
    if await reconcile_old_replica_sets(s, all_replica_sets(new_rs, old_rss), util.active(old_rss), new_rs):
        new_rs, old_rss = s.refresh(new_rs, old_rss)
        return await s.sync_rollout_status(all_replica_sets(new_rs, old_rss), new_rs)
    if progress.deployment_complete(s.d, s.status):
        await s.cleanup_deployment(old_rss)
    return await s.sync_rollout_status(all_replica_sets(new_rs, old_rss), new_rs)


async def reconcile_new_replica_set(s: DeploymentSync, all_rss: list[Obj], new_rs: Obj) -> bool:
    """Scale the new RS toward spec.replicas without the total exceeding replicas + maxSurge."""
    current = util.spec_replicas(new_rs)
    if current == s.replicas:
        return False
    if current > s.replicas:
        scaled, _ = await s.scale_replica_set_and_record_event(new_rs, s.replicas)
        return scaled
    target = util.new_rs_new_replicas(s.d, all_rss, new_rs)
    scaled, _ = await s.scale_replica_set_and_record_event(new_rs, target)
    return scaled


async def reconcile_old_replica_sets(s: DeploymentSync, all_rss: list[Obj], old_rss: list[Obj],
                                     new_rs: Obj) -> bool:
    """Scale old RSes down as far as availability allows; True when anything was scaled down.

    ``max_scaled_down`` counts the new RS's not-yet-available replicas as unavailable, so old
    replicas are not removed while the new ones that should replace them are not up yet.
    """
    if util.replica_count(old_rss) == 0:
        return False  # nothing to scale down
    min_available = s.replicas - util.max_unavailable(s.d)
    new_unavailable = util.spec_replicas(new_rs) - util.status_int(new_rs, "availableReplicas")
    max_scaled_down = util.replica_count(all_rss) - min_available - new_unavailable
    if max_scaled_down <= 0:
        return False
    old_rss, cleaned = await cleanup_unhealthy_replicas(s, old_rss, max_scaled_down)
    scaled = await scale_down_old_replica_sets_for_rolling_update(s, [*old_rss, new_rs], old_rss)
    return cleaned + scaled > 0


async def cleanup_unhealthy_replicas(s: DeploymentSync, old_rss: list[Obj],
                                     max_cleanup: int) -> tuple[list[Obj], int]:
    """Remove old replicas that are not available (they would block the rollout), oldest RS first,
    at most ``max_cleanup``; the ReplicaSet controller deletes not-ready pods first."""
    old_rss = sorted(old_rss, key=util.by_creation)
    total = 0
    for i, rs in enumerate(old_rss):
        if total >= max_cleanup:
            break
        replicas, available = util.spec_replicas(rs), util.status_int(rs, "availableReplicas")
        if replicas == 0 or replicas == available:
            continue
        count = min(max_cleanup - total, replicas - available)
        if count <= 0:
            continue  # more available than asked for: nothing unhealthy to remove
        _, old_rss[i] = await s.scale_replica_set_and_record_event(rs, replicas - count)
        total += count
    return old_rss, total


async def scale_down_old_replica_sets_for_rolling_update(s: DeploymentSync, all_rss: list[Obj],
                                                         old_rss: list[Obj]) -> int:
    """Scale old RSes down, oldest first, by as many replicas as are available beyond the minimum."""
    min_available = s.replicas - util.max_unavailable(s.d)
    # A ReplicaSet reporting more available replicas than its spec asks for was just scaled down and its
    # status is stale: those extra pods are being deleted, so they are not counted (Kubernetes counts the
    # status as is, which can remove one step too many while the status lags).
    available = sum(min(util.status_int(rs, "availableReplicas"), util.spec_replicas(rs)) for rs in all_rss)
    if available <= min_available:
        return 0
    to_scale_down = available - min_available
    total = 0
    for rs in sorted(old_rss, key=util.by_creation):
        if total >= to_scale_down:
            break
        replicas = util.spec_replicas(rs)
        if replicas == 0:
            continue
        count = min(replicas, to_scale_down - total)
        await s.scale_replica_set_and_record_event(rs, replicas - count)
        total += count
    return total
