"""The namespace controller: empty a deleted namespace, then let the API server remove it.

``kubectl delete namespace x`` only marks the namespace (``deletionTimestamp``, ``status.phase:
Terminating``); the API server keeps it while ``spec.finalizers`` holds ``kubernetes``. This
controller (kube-controller-manager's ``namespace`` controller, v1.35) does the rest, for every
terminating namespace:

1. discovers every namespaced resource that supports ``list`` and ``delete`` (aggregated discovery);
2. for each, deletes the whole collection (``deletecollection``; or list and delete each object when
   the resource has no ``deletecollection``) with propagation ``Background``, then lists again to
   see what remains — pods in graceful termination, objects held by finalizers;
3. reports the outcome as the five ``NamespaceDeletion…``/``Namespace…Remaining`` status
   conditions (written through ``namespaces/x/status`` only when they changed);
4. while content remains, looks again after an estimate (``estimate // 2 + 1`` seconds, as
   Kubernetes does); once nothing remains, removes ``kubernetes`` from ``spec.finalizers`` through
   ``namespaces/x/finalize`` — the API server then deletes the namespace (when its
   ``metadata.finalizers`` are empty too).

Estimates: pods — the largest ``terminationGracePeriodSeconds`` of the unfinished pods minus the
time since the namespace was deleted (Kubernetes' rule); objects held by finalizers —
:data:`FINALIZER_ESTIMATE_SECONDS`. Pods still present once their estimate has run out (a pod bound
to a node whose kubelet never confirms the deletion) are, as in Kubernetes, a content-deletion
failure retried with the queue's backoff: the namespace stays Terminating until they are gone.

Simplified relative to Kubernetes: namespace events are processed after :data:`DELETION_DELAY`
(1 s; Kubernetes waits 5 s so that every API server's admission has seen the deletion), objects
with finalizers are looked at again after 2 s (Kubernetes: 15 s), objects are read whole rather
than as metadata-only lists, and a malformed group/version in discovery skips only that
group/version (Kubernetes drops the whole resource list).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from controllers.controller import Controller, ControllerContext, RetryError
from machinery.client import NAMESPACES, PODS, Resource
from machinery.client.resources import resources_from_discovery
from machinery.errors import StatusError, is_conflict, is_not_found
from machinery.meta import deep_copy, format_rfc3339, name_of, parse_rfc3339

log = logging.getLogger(__name__)

Obj = dict[str, Any]

FINALIZER_KUBERNETES = "kubernetes"
DELETION_DELAY = 1.0  # seconds between a namespace event and its processing (Kubernetes: 5 s)
FINALIZER_ESTIMATE_SECONDS = 2  # how long objects held by finalizers are given (Kubernetes: 15 s)
FINALIZE_ATTEMPTS = 5
DISCOVERY_ACCEPT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
DISCOVERY_PATHS = ("/api", "/apis")
FINISHED_POD_PHASES = ("Succeeded", "Failed")

# The namespace status conditions, in the order Kubernetes writes them, with the reason and message
# each carries when all is well (status "False") and the reason when the problem exists ("True").
DISCOVERY_FAILURE = "NamespaceDeletionDiscoveryFailure"
PARSING_FAILURE = "NamespaceDeletionGroupVersionParsingFailure"
CONTENT_FAILURE = "NamespaceDeletionContentFailure"
CONTENT_REMAINING = "NamespaceContentRemaining"
FINALIZERS_REMAINING = "NamespaceFinalizersRemaining"
CONDITION_TYPES = (DISCOVERY_FAILURE, PARSING_FAILURE, CONTENT_FAILURE, CONTENT_REMAINING, FINALIZERS_REMAINING)
OKAY = {
    DISCOVERY_FAILURE: ("ResourcesDiscovered", "All resources successfully discovered"),
    PARSING_FAILURE: ("ParsedGroupVersions", "All legacy kube types successfully parsed"),
    CONTENT_FAILURE: ("ContentDeleted", "All content successfully deleted, may be waiting on finalization"),
    CONTENT_REMAINING: ("ContentRemoved", "All content successfully removed"),
    FINALIZERS_REMAINING: ("ContentHasNoFinalizers", "All content-preserving finalizers finished"),
}
FAILED_REASONS = {
    DISCOVERY_FAILURE: "DiscoveryFailed",
    PARSING_FAILURE: "GroupVersionParsingFailed",
    CONTENT_FAILURE: "ContentDeletionFailed",
    CONTENT_REMAINING: "SomeResourcesRemain",
    FINALIZERS_REMAINING: "SomeFinalizersRemain",
}


@dataclass
class ContentReport:
    """What one pass over a terminating namespace's content found (Kubernetes' deleteAllContent)."""

    estimate: int = 0  # seconds until what remains should be gone; 0 = nothing is expected to remain
    remaining: Counter[str] = field(default_factory=Counter)  # "pods." / "deployments.apps" → instances
    finalizers: Counter[str] = field(default_factory=Counter)  # finalizer → instances it holds
    discovery_failure: str = ""
    parsing_failures: list[str] = field(default_factory=list)
    content_errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.discovery_failure or self.parsing_failures or self.content_errors)

    def failure_message(self) -> str:
        return _aggregate([self.discovery_failure, *self.parsing_failures, *self.content_errors])


class NamespaceDeletionError(RetryError):
    """A pass could not delete everything it should have (retried with the queue's backoff)."""


@dataclass
class _Outcome:
    """One resource's share of a pass (Kubernetes' gvrDeletionMetadata)."""

    estimate: int = 0
    remaining: int = 0
    finalizers: Counter[str] = field(default_factory=Counter)


class NamespaceController(Controller):
    NAME = "namespace"
    WORKERS = 10  # --concurrent-namespace-syncs

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.namespaces = self.informer(NAMESPACES)
        self.namespaces.add_event_handler(self.on_namespace_add, self.on_namespace_update)

    # --- event handlers: only namespaces being deleted matter ----------------------------------------

    def on_namespace_add(self, namespace: Obj) -> None:
        if (namespace.get("metadata") or {}).get("deletionTimestamp"):
            self.queue.add_after(name_of(namespace), DELETION_DELAY)

    def on_namespace_update(self, old: Obj, new: Obj) -> None:
        self.on_namespace_add(new)

    # --- reconcile ----------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        """Delete the content of a terminating namespace; finalize it once nothing remains."""
        try:
            namespace = await self.client.get(NAMESPACES, key)  # fresh: the cache may lag the deletion
        except StatusError as err:
            if is_not_found(err):
                return None
            raise
        meta = namespace.get("metadata") or {}
        if not meta.get("deletionTimestamp"):
            return None
        namespace = await self.ensure_terminating(namespace)
        if FINALIZER_KUBERNETES not in _spec_finalizers(namespace):
            return None  # already finalized: the API server removes it once metadata.finalizers are done
        report = await self.delete_all_content(namespace)
        namespace = await self.update_conditions(namespace, report)
        if report.failed:
            raise NamespaceDeletionError(f"namespace {key}: {report.failure_message()}")
        if report.estimate > 0:
            log.debug("namespace %s: content remaining, looking again in %ds", key, report.estimate // 2 + 1)
            return report.estimate // 2 + 1
        await self.finalize(namespace)
        return None

    async def ensure_terminating(self, namespace: Obj) -> Obj:
        """The API server sets phase Terminating when it marks the namespace; make sure of it."""
        if (namespace.get("status") or {}).get("phase") == "Terminating":
            return namespace
        updated = deep_copy(namespace)
        updated.setdefault("status", {})["phase"] = "Terminating"
        return await self.client.replace_status(NAMESPACES, updated)

    # --- content ------------------------------------------------------------------------------------

    async def delete_all_content(self, namespace: Obj) -> ContentReport:
        """One pass: delete every deletable namespaced resource's objects and count what remains."""
        report = ContentReport()
        resources = await self.discover(report)
        name = name_of(namespace)
        deleted_at = parse_rfc3339(namespace["metadata"]["deletionTimestamp"])
        elapsed = max(0, int((self.clock.now() - deleted_at).total_seconds()))
        for resource in resources:
            try:
                outcome = await self.delete_content_of(resource, name, elapsed)
            except _ContentError as err:
                report.content_errors.append(str(err))
                outcome = err.outcome
            report.estimate = max(report.estimate, outcome.estimate)
            if outcome.remaining:
                report.remaining[f"{resource.plural}.{resource.group}"] += outcome.remaining
                report.finalizers.update(outcome.finalizers)
        return report

    async def discover(self, report: ContentReport) -> list[Resource]:
        """The namespaced resources supporting list and delete (failures are noted in ``report``)."""
        groups: list[Mapping[str, Any]] = []
        failures: list[str] = []
        for path in DISCOVERY_PATHS:
            try:
                document = await self.client.get_json(path, accept=DISCOVERY_ACCEPT)
            except StatusError as err:
                failures.append(f"{path}: {err.message}")
                continue
            for group in document.get("items") or []:
                stale = _stale_preferred_version(group)
                if stale:
                    failures.append(f"{stale}: stale GroupVersion discovery: {stale}")
                else:
                    groups.append(group)
        if failures:
            report.discovery_failure = (f"Discovery failed for some groups, {len(failures)} failing: unable to "
                                        f"retrieve the complete list of server APIs: {', '.join(failures)}")
        deletable = []
        for resource in resources_from_discovery(groups):
            if not resource.namespaced or not {"list", "delete"} <= resource.verbs:
                continue
            if not resource.version or "/" in resource.version or "/" in resource.group:
                report.parsing_failures.append(f"unexpected GroupVersion string: {resource.api_version}")
                continue
            deletable.append(resource)
        return deletable

    async def delete_content_of(self, resource: Resource, namespace: str, elapsed: int) -> _Outcome:
        """Delete ``resource``'s objects in ``namespace`` and say what remains and for how long."""
        estimate = 0
        try:
            if (resource.group, resource.plural) == ("", "pods"):
                estimate = await self.estimate_pod_termination(namespace, elapsed)
            if "deletecollection" in resource.verbs:
                await self.client.delete_collection(resource, namespace, propagation_policy="Background")
            else:
                await self.delete_each(resource, namespace)
            left = (await self.client.list_all(resource, namespace)).get("items") or []
        except StatusError as err:
            raise _ContentError(err.message, _Outcome(estimate=estimate)) from err
        if not left:
            return _Outcome()
        finalizers = Counter(f for obj in left for f in (obj.get("metadata") or {}).get("finalizers") or ())
        if estimate:
            return _Outcome(estimate, len(left), finalizers)
        if finalizers:
            return _Outcome(FINALIZER_ESTIMATE_SECONDS, len(left), finalizers)
        raise _ContentError(f"unexpected items still remain in namespace: {namespace} for gvr: {_gvr(resource)}",
                            _Outcome(remaining=len(left)))

    async def delete_each(self, resource: Resource, namespace: str) -> None:
        """For resources without deletecollection: list, then delete one by one (gone already is fine)."""
        for obj in (await self.client.list_all(resource, namespace)).get("items") or []:
            try:
                await self.client.delete(resource, name_of(obj), namespace, propagation_policy="Background")
            except StatusError as err:
                if not is_not_found(err):
                    raise

    async def estimate_pod_termination(self, namespace: str, elapsed: int) -> int:
        """Seconds the unfinished pods may still take: their largest grace period minus time already spent."""
        pods = (await self.client.list_all(PODS, namespace)).get("items") or []
        grace = 0
        for pod in pods:
            if (pod.get("status") or {}).get("phase") in FINISHED_POD_PHASES:
                continue
            period = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
            if isinstance(period, int) and period > grace:
                grace = period
        return max(0, grace - elapsed)

    # --- status and finalize ------------------------------------------------------------------------

    async def update_conditions(self, namespace: Obj, report: ContentReport) -> Obj:
        """Write the deletion conditions through the status subresource, only when they changed."""
        existing = (namespace.get("status") or {}).get("conditions") or []
        merged, changed = merge_conditions(existing, desired_conditions(report),
                                           format_rfc3339(self.clock.now()))
        if not changed:
            return namespace
        updated = deep_copy(namespace)
        updated.setdefault("status", {})["conditions"] = merged
        try:
            return await self.client.replace_status(NAMESPACES, updated)
        except StatusError as err:
            # as Kubernetes: a lost status write is not worth failing the pass; the next pass rewrites it
            log.info("namespace %s: could not update status conditions: %s", name_of(namespace), err)
            return namespace

    async def finalize(self, namespace: Obj) -> None:
        """Remove ``kubernetes`` from spec.finalizers via namespaces/x/finalize (re-read on conflict)."""
        for attempt in range(FINALIZE_ATTEMPTS):
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": deep_copy(namespace["metadata"]),
                    "spec": {"finalizers": sorted({f for f in _spec_finalizers(namespace)
                                                   if f != FINALIZER_KUBERNETES})}}
            try:
                await self.client.replace(NAMESPACES, body, subresource="finalize")
                return
            except StatusError as err:
                if is_not_found(err):
                    return
                if not is_conflict(err) or attempt == FINALIZE_ATTEMPTS - 1:
                    raise
            try:
                namespace = await self.client.get(NAMESPACES, name_of(namespace))
            except StatusError as err:
                if is_not_found(err):
                    return
                raise


class _ContentError(Exception):
    """Deleting one resource's content failed; carries what was learned anyway."""

    def __init__(self, message: str, outcome: _Outcome) -> None:
        super().__init__(message)
        self.outcome = outcome


# --- conditions (pure) ---------------------------------------------------------------------------------


def desired_conditions(report: ContentReport) -> dict[str, tuple[str, str, str]]:
    """Condition type → (status, reason, message) for the outcome of one pass."""
    problems: dict[str, str] = {}
    if report.discovery_failure:
        problems[DISCOVERY_FAILURE] = report.discovery_failure
    if report.parsing_failures:
        problems[PARSING_FAILURE] = _aggregate(report.parsing_failures)
    if report.content_errors:
        problems[CONTENT_FAILURE] = (f"Failed to delete all resource types, {len(report.content_errors)} remaining: "
                                     f"{_aggregate(report.content_errors)}")
    remaining = sorted(f"{res} has {n} resource instances" for res, n in report.remaining.items() if n)
    if remaining:
        problems[CONTENT_REMAINING] = f"Some resources are remaining: {', '.join(remaining)}"
    held = sorted(f"{fin} in {n} resource instances" for fin, n in report.finalizers.items() if n)
    if held:
        problems[FINALIZERS_REMAINING] = f"Some content in the namespace has finalizers remaining: {', '.join(held)}"
    desired = {}
    for kind in CONDITION_TYPES:
        if kind in problems:
            desired[kind] = ("True", FAILED_REASONS[kind], problems[kind])
        else:
            desired[kind] = ("False", *OKAY[kind])
    return desired


def merge_conditions(existing: Iterable[Mapping[str, Any]], desired: Mapping[str, tuple[str, str, str]],
                     now: str) -> tuple[list[Obj], bool]:
    """The namespace's conditions with ``desired`` applied, and whether anything changed.

    Other condition types are kept; lastTransitionTime moves only when a condition's status does.
    """
    merged = [dict(c) for c in existing]
    by_type = {c.get("type"): c for c in merged}
    changed = False
    for kind, (status, reason, message) in desired.items():
        current = by_type.get(kind)
        if current is None:
            merged.append({"type": kind, "status": status, "lastTransitionTime": now, "reason": reason,
                           "message": message})
            changed = True
        elif (current.get("status"), current.get("reason"), current.get("message")) != (status, reason, message):
            if current.get("status") != status:
                current["lastTransitionTime"] = now
            current.update(status=status, reason=reason, message=message)
            changed = True
    return merged, changed


# --- helpers -------------------------------------------------------------------------------------------


def _spec_finalizers(namespace: Mapping[str, Any]) -> list[str]:
    return list((namespace.get("spec") or {}).get("finalizers") or [])


def _stale_preferred_version(group: Mapping[str, Any]) -> str:
    """``group/version`` when the group's preferred version is stale in discovery, else ''."""
    versions = group.get("versions") or []
    if not versions or versions[0].get("freshness", "Current") != "Stale":
        return ""
    name = (group.get("metadata") or {}).get("name") or ""
    version = versions[0].get("version") or ""
    return f"{name}/{version}" if name else version


def _gvr(resource: Resource) -> str:
    """How Go prints a GroupVersionResource: ``apps/v1, Resource=deployments``, ``/v1, Resource=pods``."""
    return f"{resource.group}/{resource.version}, Resource={resource.plural}"


def _aggregate(messages: Iterable[str]) -> str:
    """Like apimachinery's aggregate error: one message as is, several as ``[a, b]`` (duplicates once)."""
    unique = list(dict.fromkeys(m for m in messages if m))
    return unique[0] if len(unique) == 1 else f"[{', '.join(unique)}]"


