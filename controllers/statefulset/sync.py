"""One pass of a StatefulSet over its pods: create, repair, scale down and roll, in ordinal order.

:class:`PodSync` follows ``StatefulSetControl.updateStatefulSet`` of Kubernetes 1.35. Pods are sorted
into *replicas* (ordinals ``start … start+replicas-1``) and *condemned* (any other ordinal). Then:

1. each replica, lowest ordinal first: a Failed/Succeeded pod is deleted (it is recreated once gone);
   a missing pod is created (its claims first) from the current revision below the partition and the
   update revision above it; a pod with a wrong identity (labels, hostname, subdomain) is updated;
   with OrderedReady the pass stops at the first pod that is new, terminating or not yet
   Running+Ready(+available for minReadySeconds) — so ordinal *n* only starts once *n-1* is healthy;
2. condemned pods, highest ordinal first: deleted (with ``whenScaled: Delete`` their claims first get
   the pod as owner, so the garbage collector deletes them with it); OrderedReady deletes one at a
   time and waits for it to be gone;
3. RollingUpdate: from the highest ordinal down to the partition, the first pod not at the update
   revision is deleted (it comes back from the update revision); one at a time, each must be healthy
   again before the next. OnDelete does nothing here: users delete pods themselves.

Simplifications: ``rollingUpdate.maxUnavailable`` is ignored (always one pod at a time, the
Kubernetes default); Parallel mode acts on all pods of a step at once but in the same order; PVC
claims of existing pods are only (re)created while the pod is Pending; the ownerReferences of claims
are set when the claim is created (whenDeleted) or the pod condemned (whenScaled), not reconciled
when the policy changes later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controllers.podcontrol import pod_from_template
from controllers.podutil import is_terminating
from controllers.statefulset import util
from machinery.client import PERSISTENT_VOLUME_CLAIMS, PODS, STATEFUL_SETS, ApiClient
from machinery.errors import StatusError, is_already_exists, is_conflict, is_not_found
from machinery.events import EventRecorder
from machinery.meta import deep_copy, name_of, namespace_of, new_controller_ref, uid_of

log = logging.getLogger(__name__)

Obj = dict[str, Any]


@dataclass
class PodSync:
    client: ApiClient
    recorder: EventRecorder
    sts: Obj
    current: Obj  # the current ControllerRevision
    update: Obj  # the update ControllerRevision
    claims: Callable[[str, str], Obj | None]  # (namespace, name) -> cached PVC
    now: datetime
    #: set when the pass waits on something only time changes (minReadySeconds)
    requeue_after: float | None = field(default=None, init=False)

    @property
    def ordered(self) -> bool:
        return util.pod_management(self.sts) == util.ORDERED_READY

    async def run(self, pods: list[Obj]) -> None:
        replicas, condemned = self.split(pods)
        # OrderedReady stops at the first step still in progress; Parallel goes on with the next ones
        if not await self.sync_replicas(replicas) and self.ordered:
            return
        if not await self.scale_down(condemned) and self.ordered:
            return
        if util.strategy_type(self.sts) == util.ROLLING_UPDATE:
            await self.roll(replicas)

    def split(self, pods: list[Obj]) -> tuple[list[Obj | None], list[Obj]]:
        """Replicas by index (None: missing) and condemned pods, highest ordinal first."""
        start, count = util.start_ordinal(self.sts), util.spec_replicas(self.sts)
        replicas: list[Obj | None] = [None] * count
        condemned: list[Obj] = []
        for pod in pods:
            ordinal = util.ordinal_of(pod)
            if start <= ordinal < start + count:
                replicas[ordinal - start] = pod
            elif ordinal >= 0:
                condemned.append(pod)
        condemned.sort(key=util.ordinal_of, reverse=True)
        return replicas, condemned

    # --- step 1: replicas --------------------------------------------------------------------------

    async def sync_replicas(self, replicas: list[Obj | None]) -> bool:
        """Bring each replica into existence and health; False when the pass must stop here."""
        start = util.start_ordinal(self.sts)
        proceed = True
        for index, pod in enumerate(replicas):
            ordinal = start + index
            if pod is not None and util.is_finished(pod):
                if not is_terminating(pod):
                    await self.delete_pod(pod, "Pod {pod} in StatefulSet {set} is {phase}, recreating")
                proceed = False  # the replacement is created once the old pod is gone
            elif pod is None:
                await self.create_pod(ordinal, index)
                proceed = False
            elif is_terminating(pod):
                proceed = False
            elif not util.is_healthy(pod, util.min_ready_seconds(self.sts), self.now):
                self._wait_for_availability(pod)
                proceed = False
            elif not util.identity_matches(self.sts, pod):
                await self.repair_identity(pod, ordinal)
            elif (pod.get("status") or {}).get("phase") == "Pending":
                await self.create_claims(ordinal)
            if not proceed and self.ordered:
                return False
        return proceed

    def _wait_for_availability(self, pod: Obj) -> None:
        min_ready = util.min_ready_seconds(self.sts)
        if min_ready > 0 and util.is_running_and_ready(pod):
            self.requeue_after = float(min_ready)

    async def create_pod(self, ordinal: int, index: int) -> None:
        revision = self.current if self._from_current(index) else self.update
        await self.create_claims(ordinal)
        pod = pod_from_template(util.template_of_revision(revision), self.sts, STATEFUL_SETS,
                                name=util.pod_name(self.sts, ordinal),
                                extra_labels={util.REVISION_LABEL: name_of(revision)})
        util.set_identity(self.sts, pod, ordinal)
        util.set_storage(self.sts, pod, ordinal)
        try:
            await self.client.create(PODS, pod, namespace_of(self.sts))
        except StatusError as err:
            if is_already_exists(err):
                return  # our cache has not seen it yet
            self._event("Warning", "FailedCreate", f"create Pod {name_of(pod)} in StatefulSet {name_of(self.sts)} "
                        f"failed error: {err.message}")
            raise
        self._event("Normal", "SuccessfulCreate",
                    f"create Pod {name_of(pod)} in StatefulSet {name_of(self.sts)} successful")

    def _from_current(self, index: int) -> bool:
        """newVersionedStatefulSetPod: below the partition, pods keep the current revision."""
        return util.strategy_type(self.sts) == util.ROLLING_UPDATE and index < util.partition(self.sts)

    async def create_claims(self, ordinal: int) -> None:
        """Create the ordinal's missing claims (a claim being deleted is an error: retry later)."""
        namespace = namespace_of(self.sts)
        for template in util.claim_templates(self.sts):
            claim = util.new_claim(self.sts, template, ordinal)
            existing = self.claims(namespace, name_of(claim))
            if existing is not None:
                if is_terminating(existing):
                    raise StatusError(409, "Conflict", f"pvc {name_of(claim)} is being deleted")
                continue
            if util.retention(self.sts, "whenDeleted") == util.DELETE:
                owner = _owner_ref(self.sts, STATEFUL_SETS.api_version, STATEFUL_SETS.kind)
                claim["metadata"]["ownerReferences"] = [owner]
            pod = util.pod_name(self.sts, ordinal)
            try:
                await self.client.create(PERSISTENT_VOLUME_CLAIMS, claim, namespace)
            except StatusError as err:
                if is_already_exists(err):
                    continue
                self._event("Warning", "FailedCreate", f"create Claim {name_of(claim)} for Pod {pod} in "
                            f"StatefulSet {name_of(self.sts)} failed error: {err.message}")
                raise
            self._event("Normal", "SuccessfulCreate",
                        f"create Claim {name_of(claim)} Pod {pod} in StatefulSet {name_of(self.sts)} success")

    async def repair_identity(self, pod: Obj, ordinal: int) -> None:
        fixed = deep_copy(pod)
        util.set_identity_labels(fixed, ordinal)  # the pod spec (hostname, subdomain) is immutable
        await self.client.replace(PODS, fixed)
        self._event("Normal", "SuccessfulUpdate",
                    f"update Pod {name_of(pod)} in StatefulSet {name_of(self.sts)} successful")

    # --- step 2: condemned pods --------------------------------------------------------------------

    async def scale_down(self, condemned: list[Obj]) -> bool:
        """Delete pods beyond the replicas, highest ordinal first; False when the pass must stop."""
        for pod in condemned:
            if is_terminating(pod):
                if self.ordered:
                    return False
                continue
            if util.retention(self.sts, "whenScaled") == util.DELETE:
                await self.hand_claims_to(pod)
            await self.delete_pod(pod)
            if self.ordered:
                return False
        return not condemned

    async def hand_claims_to(self, pod: Obj) -> None:
        """Make the pod an owner of its claims, so the garbage collector deletes them after it."""
        ordinal = util.ordinal_of(pod)
        for template in util.claim_templates(self.sts):
            name = util.claim_name(template, self.sts, ordinal)
            claim = self.claims(namespace_of(pod), name)
            if claim is None or any(r.get("uid") == uid_of(pod) for r in claim["metadata"].get("ownerReferences")
                                    or ()):
                continue
            refs = [*(claim["metadata"].get("ownerReferences") or ()), _owner_ref(pod, PODS.api_version, PODS.kind)]
            patch = {"metadata": {"ownerReferences": refs, "uid": uid_of(claim),
                                  "resourceVersion": claim["metadata"].get("resourceVersion")}}
            try:
                await self.client.patch(PERSISTENT_VOLUME_CLAIMS, name, patch, namespace_of(pod))
            except StatusError as err:
                if not is_not_found(err):
                    raise

    # --- step 3: rolling update --------------------------------------------------------------------

    async def roll(self, replicas: list[Obj | None]) -> None:
        min_ready = util.min_ready_seconds(self.sts)
        for index in range(len(replicas) - 1, util.partition(self.sts) - 1, -1):
            pod = replicas[index]
            if pod is None:
                return
            if util.pod_revision(pod) != name_of(self.update) and not is_terminating(pod):
                await self.delete_pod(pod, "Pod {pod} in StatefulSet {set} is at revision {old}, rolling to {new}")
                return
            if not util.is_healthy(pod, min_ready, self.now):
                return

    # --- shared ------------------------------------------------------------------------------------

    async def delete_pod(self, pod: Obj, why: str = "") -> None:
        if why:
            log.info(why.format(pod=name_of(pod), set=name_of(self.sts), phase=(pod.get("status") or {}).get("phase"),
                                old=util.pod_revision(pod), new=name_of(self.update)))
        try:
            await self.client.delete(PODS, name_of(pod), namespace_of(pod), preconditions={"uid": uid_of(pod)})
        except StatusError as err:
            if is_not_found(err) or is_conflict(err):
                return  # gone already, or replaced by a new pod of the same name (a stale cache): nothing to do
            self._event("Warning", "FailedDelete", f"delete Pod {name_of(pod)} in StatefulSet {name_of(self.sts)} "
                        f"failed error: {err.message}")
            raise
        self._event("Normal", "SuccessfulDelete",
                    f"delete Pod {name_of(pod)} in StatefulSet {name_of(self.sts)} successful")

    def _event(self, kind: str, reason: str, message: str) -> None:
        self.recorder.event(self.sts, kind, reason, message)


def _owner_ref(owner: Mapping[str, Any], api_version: str, kind: str) -> Obj:
    """A non-controller owner reference (claims are not controlled by the set, only kept alive by it)."""
    ref = new_controller_ref(owner, api_version=api_version, kind=kind)
    ref["controller"] = False
    return ref
