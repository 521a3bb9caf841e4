"""Pods from templates: how every workload controller turns its pod template into a pod object.

One place builds a pod from a ``PodTemplateSpec`` for an owner (labels, annotations and finalizers
of the template; ``generateName`` ``<owner>-``; the owner as controller ownerReference with
``blockOwnerDeletion``), so ReplicaSets, Jobs, DaemonSets and StatefulSets all create the pods
Kubernetes would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from machinery.client import Resource
from machinery.meta import deep_copy, name_of, namespace_of, new_controller_ref

Obj = dict[str, Any]
T = TypeVar("T")

MAX_GENERATE_NAME_PREFIX = 58  # 63 minus the 5 random characters the API server appends


def pod_from_template(template: Mapping[str, Any], owner: Mapping[str, Any], owner_resource: Resource, *,
                      name: str | None = None, extra_labels: Mapping[str, str] | None = None) -> Obj:
    """A new pod object (not yet created) from ``template`` owned by ``owner``."""
    tmeta = template.get("metadata") or {}
    meta: Obj = {"namespace": namespace_of(owner)}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = f"{name_of(owner)}-"[:MAX_GENERATE_NAME_PREFIX]
    labels = {**(tmeta.get("labels") or {}), **(extra_labels or {})}
    if labels:
        meta["labels"] = labels
    for key in ("annotations", "finalizers"):
        if tmeta.get(key):
            meta[key] = deep_copy(tmeta[key])
    meta["ownerReferences"] = [new_controller_ref(owner, api_version=owner_resource.api_version,
                                                  kind=owner_resource.kind)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": deep_copy(template.get("spec") or {})}


@dataclass
class BatchOutcome:
    created: list[Obj] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    skipped: int = 0  # items never tried because an earlier batch failed


async def create_in_batches(items: Sequence[T], create: Callable[[T], Awaitable[Obj]]) -> BatchOutcome:
    """Slow start, as Kubernetes' controllers create pods: batches of 1, 2, 4, … of ``create(item)``,
    stopping after the first batch with a failure, so a quota or an admission error costs a few requests
    rather than hundreds."""
    outcome, done, batch = BatchOutcome(), 0, 1
    while done < len(items) and not outcome.errors:
        results = await asyncio.gather(*(create(item) for item in items[done:done + batch]),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                outcome.errors.append(result)
            else:
                outcome.created.append(result)
        done += len(results)
        batch *= 2
    outcome.skipped = len(items) - done
    return outcome

