"""One sync of one Deployment: find or create its new ReplicaSet, scale ReplicaSets, write status.

:class:`DeploymentSync` holds what a single reconcile works on — a private copy of the Deployment
(whose status, revision annotation and collision count it changes and writes) and the ReplicaSets
the Deployment controls — and the operations every strategy shares (``deployment/sync.go``):
``get_all_replica_sets_and_sync_revision`` (find the new RS by template, create it when asked,
keep revisions in step), ``scale`` (the only-active-RS case and proportional scaling of a
rollout in flight), ``scale_replica_set`` (an update with the resourceVersion the decision was
made on, so a stale cache ends in a conflict and a retry, never in a wrong scale), cleanup of old
revisions beyond ``revisionHistoryLimit``, and status writes that happen only when something changed.

Unlike Kubernetes, the object returned by every write replaces the one held here, so a second step
of the same sync does not trip over a conflict with the first one's write.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from controllers.deployment import progress, util
from machinery.client import DEPLOYMENTS, REPLICA_SETS, ApiClient
from machinery.clock import Clock
from machinery.errors import StatusError, is_already_exists, is_not_found
from machinery.events import NORMAL, WARNING, EventRecorder
from machinery.meta import (
    controller_ref,
    deep_copy,
    is_being_deleted,
    name_of,
    namespace_of,
    new_controller_ref,
    now_rfc3339,
    resource_version_of,
    uid_of,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class DeploymentSync:
    def __init__(self, client: ApiClient, recorder: EventRecorder, clock: Clock, deployment: Obj,
                 replica_sets: list[Obj]) -> None:
        self.client = client
        self.recorder = recorder
        self.clock = clock
        self.d = deployment  # a private copy: status and the revision annotation are changed here, then written
        self.replica_sets = list(replica_sets)  # the RSes this deployment controls, as last read or written

    # --- small helpers ----------------------------------------------------------------------------

    @property
    def replicas(self) -> int:
        return util.spec_replicas(self.d)

    @property
    def status(self) -> Obj:
        return self.d.setdefault("status", {})

    def now_stamp(self) -> str:
        return now_rfc3339(self.clock.now())

    def _track(self, rs: Obj) -> Obj:
        """Remember the newest copy of an RS we wrote (replacing the one with its UID)."""
        uid = uid_of(rs)
        self.replica_sets = [rs if uid_of(old) == uid else old for old in self.replica_sets]
        if not any(uid_of(old) == uid for old in self.replica_sets):
            self.replica_sets.append(rs)
        return rs

    async def update_status(self) -> None:
        """UpdateStatus with the copy's status and annotations (the /status subresource takes both)."""
        written = await self.client.replace_status(DEPLOYMENTS, self.d)
        self.d.setdefault("metadata", {})["resourceVersion"] = resource_version_of(written)

    # --- new and old ReplicaSets --------------------------------------------------------------------

    async def get_all_replica_sets_and_sync_revision(self, create: bool) -> tuple[Obj | None, list[Obj]]:
        """The new RS (created when ``create`` and missing; None otherwise) and all the old ones."""
        old_rss = util.find_old_replica_sets(self.d, self.replica_sets)
        new_rs = await self.get_new_replica_set(old_rss, create)
        return new_rs, old_rss

    async def get_new_replica_set(self, old_rss: list[Obj], create: bool) -> Obj | None:
        """getNewReplicaSet: sync the existing new RS's annotations, or create it (with the next revision)."""
        existing = util.find_new_replica_set(self.d, self.replica_sets)
        new_revision = util.max_revision(old_rss) + 1
        if existing is not None:
            return await self._sync_existing_new_rs(existing, new_revision)
        if not create:
            return None
        new_rs = self._new_replica_set(old_rss, new_revision)
        created, already_existed = await self._create_new_rs(new_rs)
        created = self._track(created)
        replicas = util.spec_replicas(created)
        if not already_existed and replicas > 0:
            self.recorder.event(self.d, NORMAL, "ScalingReplicaSet",
                                f"Scaled up replica set {name_of(created)} from 0 to {replicas}")
        needs_update = util.set_deployment_revision(self.d, str(new_revision))
        if not already_existed and util.progress_deadline(self.d) is not None:
            util.set_condition(self.status, util.new_condition(
                util.PROGRESSING, "True", util.NEW_RS_REASON, f'Created new replica set "{name_of(created)}"',
                self.now_stamp()))
            needs_update = True
        if needs_update:
            await self.update_status()
        return created

    async def _sync_existing_new_rs(self, rs: Obj, new_revision: int) -> Obj:
        updated = deep_copy(rs)
        changed = util.set_new_replica_set_annotations(self.d, updated, new_revision, exists=True)
        min_ready = int((self.d.get("spec") or {}).get("minReadySeconds") or 0)
        if changed or int(updated["spec"].get("minReadySeconds") or 0) != min_ready:
            updated["spec"]["minReadySeconds"] = min_ready
            return self._track(await self.client.replace(REPLICA_SETS, updated))
        needs_update = util.set_deployment_revision(
            self.d, (updated["metadata"].get("annotations") or {}).get(util.REVISION_ANNOTATION, ""))
        if util.progress_deadline(self.d) is not None and util.get_condition(self.status, util.PROGRESSING) is None:
            util.set_condition(self.status, util.new_condition(
                util.PROGRESSING, "True", util.FOUND_NEW_RS_REASON, f'Found new replica set "{name_of(rs)}"',
                self.now_stamp()))
            needs_update = True
        if needs_update:
            await self.update_status()
        return rs

    def _new_replica_set(self, old_rss: list[Obj], new_revision: int) -> Obj:
        """The RS to create: named after the template hash, labelled and selected by it, owned by us."""
        spec = self.d.get("spec") or {}
        template = deep_copy(spec.get("template") or {})
        pod_hash = util.compute_hash(spec.get("template") or {}, self.status.get("collisionCount"))
        template_meta = template.setdefault("metadata", {})
        template_meta["labels"] = {**(template_meta.get("labels") or {}), util.POD_TEMPLATE_HASH_LABEL: pod_hash}
        selector = deep_copy(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), util.POD_TEMPLATE_HASH_LABEL: pod_hash}
        rs: Obj = {
            "apiVersion": REPLICA_SETS.api_version,
            "kind": REPLICA_SETS.kind,
            "metadata": {
                "name": f"{name_of(self.d)}-{pod_hash}",
                "namespace": namespace_of(self.d),
                "labels": dict(template_meta["labels"]),
                "ownerReferences": [new_controller_ref(self.d, api_version=DEPLOYMENTS.api_version,
                                                       kind=DEPLOYMENTS.kind)],
            },
            "spec": {"replicas": 0, "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                     "selector": selector, "template": template},
        }
        rs["spec"]["replicas"] = util.new_rs_new_replicas(self.d, [*old_rss, rs], rs)
        util.set_new_replica_set_annotations(self.d, rs, new_revision, exists=False)
        return rs

    async def _create_new_rs(self, rs: Obj) -> tuple[Obj, bool]:
        """Create ``rs`` → (the RS, whether it existed already). On AlreadyExists the existing RS is taken
        if it is ours with an equal template (a slow cache); otherwise that is a hash collision: count it
        in status.collisionCount and raise, so the next sync tries the next name."""
        try:
            return await self.client.create(REPLICA_SETS, rs, namespace_of(rs)), False
        except StatusError as err:
            if is_already_exists(err):
                existing = await self.client.get(REPLICA_SETS, name_of(rs), namespace_of(rs))
                ref = controller_ref(existing)
                if (ref is not None and ref.get("uid") == uid_of(self.d)
                        and util.equal_ignore_hash((self.d.get("spec") or {}).get("template"),
                                                   (existing.get("spec") or {}).get("template"))):
                    return existing, True
                before = self.status.get("collisionCount")
                self.status["collisionCount"] = int(before or 0) + 1
                await self.update_status()
                log.info("deployment %s/%s: hash collision on %s, collisionCount %s -> %s", namespace_of(self.d),
                         name_of(self.d), name_of(rs), before, self.status["collisionCount"])
                raise
            if _namespace_terminating(err):
                raise
            message = f'Failed to create new replica set "{name_of(rs)}": {err.message}'
            if util.progress_deadline(self.d) is not None:
                util.set_condition(self.status, util.new_condition(
                    util.PROGRESSING, "False", util.FAILED_RS_CREATE_REASON, message, self.now_stamp()))
                try:
                    await self.update_status()
                except StatusError:
                    pass  # the creation failure is the bigger problem to report
            self.recorder.event(self.d, WARNING, util.FAILED_RS_CREATE_REASON, message)
            raise

    # --- scaling ---------------------------------------------------------------------------------

    async def scale_replica_set_and_record_event(self, rs: Obj, new_scale: int) -> tuple[bool, Obj]:
        if util.spec_replicas(rs) == new_scale:
            return False, rs
        operation = "up" if util.spec_replicas(rs) < new_scale else "down"
        return await self.scale_replica_set(rs, new_scale, operation)

    async def scale_replica_set(self, rs: Obj, new_scale: int, operation: str) -> tuple[bool, Obj]:
        """Set spec.replicas (and the desired/max annotations); an event when the size changed."""
        max_replicas = self.replicas + util.max_surge(self.d)
        size_changes = util.spec_replicas(rs) != new_scale
        if not size_changes and not util.replicas_annotations_need_update(rs, self.replicas, max_replicas):
            return False, rs
        old_scale = util.spec_replicas(rs)
        updated = deep_copy(rs)
        updated["spec"]["replicas"] = new_scale
        util.set_replicas_annotations(updated, self.replicas, max_replicas)
        written = self._track(await self.client.replace(REPLICA_SETS, updated))
        if size_changes:
            self.recorder.event(self.d, NORMAL, "ScalingReplicaSet",
                                f"Scaled {operation} replica set {name_of(written)} from {old_scale} to {new_scale}")
        return size_changes, written

    async def scale(self, new_rs: Obj | None, old_rss: list[Obj]) -> None:
        """Scale for a changed spec.replicas: the only active RS takes it all; a saturated new RS means
        old ones go to 0; otherwise (a rolling update in flight) every active RS grows or shrinks in
        proportion to its size, the largest absorbing the rounding leftovers."""
        target = util.find_active_or_latest(new_rs, old_rss)
        if target is not None:
            if util.spec_replicas(target) != self.replicas:
                await self.scale_replica_set_and_record_event(target, self.replicas)
            return
        if util.is_saturated(self.d, new_rs):
            for old in util.active(old_rss):
                await self.scale_replica_set_and_record_event(old, 0)
            return
        if util.strategy_type(self.d) != util.ROLLING_UPDATE:
            return
        await self._scale_proportionally(util.active([*old_rss, new_rs]))

    async def _scale_proportionally(self, running: list[Obj]) -> None:
        allowed = self.replicas + util.max_surge(self.d) if self.replicas > 0 else 0
        to_add = allowed - util.replica_count(running)
        operation = ""
        if to_add > 0:
            running, operation = util.sorted_by_size_newer(running), "up"
        elif to_add < 0:
            running, operation = util.sorted_by_size_older(running), "down"
        sizes: list[int] = []
        added = 0
        for rs in running:
            share = util.replica_set_proportion(rs, self.d, to_add, added) if to_add else 0
            sizes.append(util.spec_replicas(rs) + share)
            added += share
        if running and to_add:
            sizes[0] = max(0, sizes[0] + to_add - added)  # leftovers go to the largest RS
        for rs, size in zip(running, sizes, strict=True):
            await self.scale_replica_set(rs, size, operation)

    # --- history and status ------------------------------------------------------------------------

    async def cleanup_deployment(self, old_rss: list[Obj]) -> None:
        """Delete the oldest revisions beyond revisionHistoryLimit, only RSes that run and own nothing."""
        limit = util.revision_history_limit(self.d)
        if limit is None:
            return
        alive = [rs for rs in old_rss if not is_being_deleted(rs)]
        excess = len(alive) - limit
        if excess <= 0:
            return
        for rs in sorted(alive, key=util.by_revision)[:excess]:
            status = rs.get("status") or {}
            if (util.spec_replicas(rs) != 0 or int(status.get("replicas") or 0) != 0
                    or int(status.get("terminatingReplicas") or 0) != 0
                    or int((rs.get("metadata") or {}).get("generation") or 0) > int(status.get("observedGeneration")
                                                                                    or 0)):
                continue
            try:
                await self.client.delete(REPLICA_SETS, name_of(rs), namespace_of(rs),
                                         preconditions={"uid": uid_of(rs)})
            except StatusError as err:
                if not is_not_found(err):
                    raise

    async def sync_deployment_status(self, all_rss: list[Obj], new_rs: Obj | None) -> None:
        """syncDeploymentStatus: counts and the Available condition, written only when they changed."""
        status = progress.calculate_status(all_rss, new_rs, self.d, self.clock.now())
        if progress.status_equal(self.d.get("status"), status):
            return
        self.d["status"] = status
        await self.update_status()

    async def sync_rollout_status(self, all_rss: list[Obj], new_rs: Obj | None) -> float | None:
        """syncRolloutStatus: also the Progressing story; returns when to look again for a deadline."""
        status = progress.rollout_status(all_rss, new_rs, self.d, self.clock.now())
        if not progress.status_equal(self.d.get("status"), status):
            self.d["status"] = status
            await self.update_status()
        return progress.stuck_requeue_after(self.d, status, self.clock.now())

    # --- the non-rollout paths ---------------------------------------------------------------------

    async def sync(self) -> None:
        """A paused deployment or a scaling event: scale, never roll; clean up history when paused."""
        new_rs, old_rss = await self.get_all_replica_sets_and_sync_revision(create=False)
        await self.scale(new_rs, old_rss)
        new_rs, old_rss = self.refresh(new_rs, old_rss)
        if (self.d.get("spec") or {}).get("paused"):
            await self.cleanup_deployment(old_rss)
        await self.sync_deployment_status(all_replica_sets(new_rs, old_rss), new_rs)

    async def sync_status_only(self) -> None:
        new_rs, old_rss = await self.get_all_replica_sets_and_sync_revision(create=False)
        await self.sync_deployment_status(all_replica_sets(new_rs, old_rss), new_rs)

    async def is_scaling_event(self) -> bool:
        """A replicas change not yet passed on: an active RS's desired-replicas annotation differs."""
        new_rs, old_rss = await self.get_all_replica_sets_and_sync_revision(create=False)
        for rs in util.active(all_replica_sets(new_rs, old_rss)):
            desired = util.desired_replicas_annotation(rs)
            if desired is not None and desired != self.replicas:
                return True
        return False

    async def check_paused_conditions(self) -> None:
        """Progressing=Unknown DeploymentPaused / DeploymentResumed when the pause state flips."""
        if util.progress_deadline(self.d) is None:
            return
        cond = util.get_condition(self.status, util.PROGRESSING)
        if cond is not None and cond.get("reason") == util.TIMED_OUT_REASON:
            return  # a timed-out rollout keeps saying so
        paused_recorded = cond is not None and cond.get("reason") == util.PAUSED_REASON
        paused = bool((self.d.get("spec") or {}).get("paused"))
        if paused and not paused_recorded:
            reason, message = util.PAUSED_REASON, "Deployment is paused"
        elif not paused and paused_recorded:
            reason, message = util.RESUMED_REASON, "Deployment is resumed"
        else:
            return
        util.set_condition(self.status, util.new_condition(util.PROGRESSING, "Unknown", reason, message,
                                                           self.now_stamp()))
        await self.update_status()

    def refresh(self, new_rs: Obj | None, old_rss: list[Obj]) -> tuple[Obj | None, list[Obj]]:
        """The same RSes as last written by this sync."""
        by_uid = {uid_of(rs): rs for rs in self.replica_sets}
        fresh_new = by_uid.get(uid_of(new_rs), new_rs) if new_rs is not None else None
        return fresh_new, [by_uid.get(uid_of(rs), rs) for rs in old_rss]


def all_replica_sets(new_rs: Obj | None, old_rss: list[Obj]) -> list[Obj]:
    """``append(oldRSs, newRS)`` without the nil."""
    return [*old_rss, new_rs] if new_rs is not None else list(old_rss)


def _namespace_terminating(err: StatusError) -> bool:
    causes = (err.details or {}).get("causes") or ()
    return any(isinstance(c, Mapping) and c.get("reason") == "NamespaceTerminating" for c in causes)
