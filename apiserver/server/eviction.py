"""Evictions honour PodDisruptionBudgets: 429 when a budget allows no more disruptions.

The disruption controller keeps ``status.disruptionsAllowed`` current; an eviction consumes one
allowed disruption (recorded in ``status.disruptedPods``) before the pod is deleted, as
kube-apiserver does, so two concurrent evictions cannot both use the last one. The 429 carries no
Retry-After (kubectl drain then says "will retry after 5s" and retries on its own schedule) and a
DisruptionBudget cause saying how many healthy pods the budget needs. A Running pod that is not Ready
is evicted without consuming anything when the budget's ``unhealthyPodEvictionPolicy`` allows it:
always for AlwaysAllow, and for IfHealthyBudget (the default) while the budget is satisfied.
"""

from __future__ import annotations

from apiserver.registry.options import ListOptions, WriteOptions
from machinery import errors as api
from machinery.labels import selector_from_label_selector
from machinery.meta import now_rfc3339


async def check_disruption_budgets(registry, pod: dict, dry_run: bool) -> None:
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Pending") or \
            pod["metadata"].get("deletionTimestamp"):
        return  # terminal, not yet running, or already terminating: no budget to consult
    pdbs = registry.get("policy", "v1", "poddisruptionbudgets")
    if pdbs is None:
        return
    namespace = pod["metadata"]["namespace"]
    labels = pod["metadata"].get("labels") or {}
    matching = [
        pdb for pdb in (await pdbs.list(namespace, ListOptions())).items
        if (pdb.get("spec") or {}).get("selector") is not None
        and selector_from_label_selector(pdb["spec"]["selector"]).matches(labels)
    ]
    if not matching:
        return
    if len(matching) > 1:
        raise api.StatusError(500, "InternalError",
                              "This pod has more than one PodDisruptionBudget, which the eviction subresource "
                              "does not support.")
    pdb = matching[0]
    name = pdb["metadata"]["name"]
    if _unhealthy_may_go(pod, pdb):
        return

    def consume(current: dict | None) -> dict:
        if current is None:
            raise api.not_found("poddisruptionbudgets", name, "policy")
        status = current.setdefault("status", {})
        if status.get("observedGeneration", 0) < current["metadata"].get("generation", 1):
            raise _budget_violation(f"The disruption budget {name} is still being processed by the server.")
        if status.get("disruptionsAllowed", 0) <= 0:
            raise _budget_violation(f"The disruption budget {name} needs {status.get('desiredHealthy', 0)} healthy "
                                    f"pods and has {status.get('currentHealthy', 0)} currently")
        status["disruptionsAllowed"] -= 1
        disrupted = status.setdefault("disruptedPods", {})
        disrupted[pod["metadata"]["name"]] = now_rfc3339()
        return current

    await pdbs.update(namespace, name, consume, WriteOptions(dry_run=dry_run), subresource="status")


def _budget_violation(cause: str) -> api.StatusError:
    err = api.StatusError(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.",
                          {"causes": [{"reason": "DisruptionBudget", "message": cause}]})
    return err


def _unhealthy_may_go(pod: dict, pdb: dict) -> bool:
    """A Running pod that is not Ready, under a policy that lets it go without using the budget."""
    status = pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    if status.get("phase") != "Running" or ready:
        return False
    policy = (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") or "IfHealthyBudget"
    if policy == "AlwaysAllow":
        return True
    budget = pdb.get("status") or {}
    desired = budget.get("desiredHealthy", 0)
    return desired > 0 and budget.get("currentHealthy", 0) >= desired
