"""The Deployment controller: roll pod templates out through ReplicaSets, as kube-controller-manager does.

A Deployment never touches pods. It owns ReplicaSets — one per pod template it has run, named
``<deployment>-<pod-template-hash>`` — and moves replicas from the old ones to the new one according
to its strategy (:mod:`.rolling`, :mod:`.recreate`); the ReplicaSet controller creates and deletes
the pods and reports their availability back in RS status, which is all this controller reads to
decide its next step. Pods are read only to know when a Recreate rollout's old pods are gone.

``reconcile`` follows ``syncDeployment``: claim the ReplicaSets (adopt matching orphans, release
ours that no longer match), then exactly one of: status only (being deleted); scale only (paused,
or ``spec.replicas`` changed — proportional scaling across a rollout in flight); a rollout step.
Rollback is not a controller concern in apps/v1: ``kubectl rollout undo`` copies an old RS's template
back into the Deployment, and :func:`~.util.find_new_replica_set` then finds that RS again (template
equal but for the hash label), which gets the next revision and is scaled up.

Simplifications: the apps/v1-less ``deprecated.deployment.rollback.to`` annotation is ignored; the
Recreate pod-deletion handler reads ReplicaSets from the cache instead of listing them from the API.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from controllers.claim import ControllerRefManager
from controllers.controller import Controller, ControllerContext
from controllers.deployment import util
from controllers.deployment.recreate import rollout_recreate
from controllers.deployment.rolling import rollout_rolling
from controllers.deployment.sync import DeploymentSync
from machinery.cache import NAMESPACE_INDEX
from machinery.client import DEPLOYMENTS, PODS, REPLICA_SETS
from machinery.events import WARNING
from machinery.labels import selector_from_label_selector
from machinery.meta import controller_ref, deep_copy, is_being_deleted, labels_of, namespace_of, uid_of

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class DeploymentController(Controller):
    NAME = "deployment"
    WORKERS = 5

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.deployments = self.informer(DEPLOYMENTS)
        self.replica_sets = self.informer(REPLICA_SETS)
        self.pods = self.informer(PODS)
        self.deployments.add_event_handler(self.enqueue, self.on_deployment_update, self.enqueue)
        self.replica_sets.add_event_handler(self.on_rs_add, self.on_rs_update, self.on_rs_delete)
        self.pods.add_event_handler(on_delete=self.on_pod_delete)

    # --- event handlers: they only enqueue ---------------------------------------------------------

    def on_deployment_update(self, old: Obj, new: Obj) -> None:
        self.enqueue(new)

    def on_rs_add(self, rs: Obj) -> None:
        if is_being_deleted(rs):
            self.on_rs_delete(rs)  # seen for the first time while already being deleted (a restart)
            return
        ref = controller_ref(rs)
        if ref is not None:
            owner = self.resolve_controller_ref(namespace_of(rs), ref)
            if owner is not None:
                self.enqueue(owner)
            return
        for d in self.deployments_selecting(rs):  # an orphan: whoever selects it may adopt it
            self.enqueue(d)

    def on_rs_update(self, old: Obj, new: Obj) -> None:
        if (old.get("metadata") or {}).get("resourceVersion") == (new.get("metadata") or {}).get("resourceVersion"):
            return  # a resync: deployments get their own
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        ref_changed = old_ref != new_ref
        if ref_changed and old_ref is not None:
            previous = self.resolve_controller_ref(namespace_of(old), old_ref)
            if previous is not None:
                self.enqueue(previous)
        if new_ref is not None:
            owner = self.resolve_controller_ref(namespace_of(new), new_ref)
            if owner is not None:
                self.enqueue(owner)
            return
        if ref_changed or labels_of(old) != labels_of(new):
            for d in self.deployments_selecting(new):
                self.enqueue(d)

    def on_rs_delete(self, rs: Obj) -> None:
        ref = controller_ref(rs)
        owner = self.resolve_controller_ref(namespace_of(rs), ref) if ref is not None else None
        if owner is not None:
            self.enqueue(owner)

    def on_pod_delete(self, pod: Obj) -> None:
        """A Recreate rollout waits for its old pods to be gone: look again when the last one goes."""
        d = self.deployment_for_pod(pod)
        if d is None or util.strategy_type(d) != util.RECREATE:
            return
        if not any(self.pod_map(d, self.owned_replica_sets(d)).values()):
            self.enqueue(d)

    # --- cache lookups -----------------------------------------------------------------------------

    def resolve_controller_ref(self, namespace: str, ref: Mapping[str, Any]) -> Obj | None:
        if ref.get("kind") != DEPLOYMENTS.kind:
            return None
        d = self.deployments.store.get_by_name(namespace, ref.get("name") or "")
        return d if d is not None and uid_of(d) == ref.get("uid") else None

    def deployments_selecting(self, rs: Obj) -> list[Obj]:
        """Deployments in the RS's namespace whose (non-empty) selector matches its labels."""
        found = []
        for d in self.deployments.store.by_index(NAMESPACE_INDEX, namespace_of(rs)):
            selector = (d.get("spec") or {}).get("selector")
            if _selects_everything(selector):
                continue
            if selector_from_label_selector(selector).matches(labels_of(rs)):
                found.append(d)
        return found

    def deployment_for_pod(self, pod: Obj) -> Obj | None:
        """The deployment controlling the ReplicaSet that controls ``pod`` (UIDs checked at each step)."""
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != REPLICA_SETS.kind:
            return None
        rs = self.replica_sets.store.get_by_name(namespace_of(pod), ref.get("name") or "")
        if rs is None or uid_of(rs) != ref.get("uid"):
            return None
        rs_ref = controller_ref(rs)
        return self.resolve_controller_ref(namespace_of(rs), rs_ref) if rs_ref is not None else None

    def owned_replica_sets(self, d: Obj) -> list[Obj]:
        return [rs for rs in self.replica_sets.store.by_index(NAMESPACE_INDEX, namespace_of(d))
                if (controller_ref(rs) or {}).get("uid") == uid_of(d)]

    def pod_map(self, d: Obj, replica_sets: list[Obj]) -> dict[str, list[Obj]]:
        """getPodMapForDeployment: the deployment's pods grouped by the UID of the RS controlling them."""
        selector = selector_from_label_selector((d.get("spec") or {}).get("selector"))
        pods: dict[str, list[Obj]] = {uid_of(rs): [] for rs in replica_sets}
        for pod in self.pods.store.by_index(NAMESPACE_INDEX, namespace_of(d)):
            ref = controller_ref(pod)
            if ref is not None and ref.get("uid") in pods and selector.matches(labels_of(pod)):
                pods[ref["uid"]].append(pod)
        return pods

    async def claim_replica_sets(self, d: Obj) -> list[Obj]:
        """getReplicaSetsForDeployment: adopt matching orphans, release ours that stopped matching."""
        selector = selector_from_label_selector((d.get("spec") or {}).get("selector"))
        manager = ControllerRefManager(self.client, d, selector, REPLICA_SETS, DEPLOYMENTS)
        return await manager.claim(self.replica_sets.store.by_index(NAMESPACE_INDEX, namespace_of(d)))

    # --- reconcile -------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        cached = self.deployments.store.get(key)
        if cached is None:
            return None  # deleted: the garbage collector removes its ReplicaSets
        d = deep_copy(cached)
        if _selects_everything((d.get("spec") or {}).get("selector")):
            await self.refuse_empty_selector(d)
            return None
        replica_sets = await self.claim_replica_sets(d)
        pod_map = self.pod_map(d, replica_sets)
        sync = DeploymentSync(self.client, self.recorder, self.clock, d, replica_sets)
        if is_being_deleted(d):
            await sync.sync_status_only()
            return None
        await sync.check_paused_conditions()
        if (d.get("spec") or {}).get("paused"):
            await sync.sync()
            return None
        if await sync.is_scaling_event():
            await sync.sync()
            return None
        kind = util.strategy_type(d)
        if kind == util.RECREATE:
            return await rollout_recreate(sync, pod_map)
        if kind == util.ROLLING_UPDATE:
            return await rollout_rolling(sync)
        raise ValueError(f"unexpected deployment strategy type: {kind}")

    async def refuse_empty_selector(self, d: Obj) -> None:
        """An empty selector would select every pod in the namespace: say so, touch nothing."""
        self.recorder.event(d, WARNING, "SelectingAll",
                            "This deployment is selecting all pods. A non-empty selector is required.")
        status = d.setdefault("status", {})
        generation = int((d.get("metadata") or {}).get("generation") or 0)
        if int(status.get("observedGeneration") or 0) < generation:
            status["observedGeneration"] = generation
            await self.client.replace_status(DEPLOYMENTS, d)


def _selects_everything(selector: Mapping[str, Any] | None) -> bool:
    return not selector or (not selector.get("matchLabels") and not selector.get("matchExpressions"))
