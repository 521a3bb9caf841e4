"""Pods from templates: how every workload controller turns its pod template into a pod object.

One place builds a pod from a ``PodTemplateSpec`` for an owner (labels, annotations and finalizers
of the template; ``generateName`` ``<owner>-``; the owner as controller ownerReference with
``blockOwnerDeletion``), so ReplicaSets, Jobs, DaemonSets and StatefulSets all create the pods
Kubernetes would.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from machinery.client import Resource
from machinery.meta import deep_copy, name_of, namespace_of, new_controller_ref

Obj = dict[str, Any]

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
    for field in ("annotations", "finalizers"):
        if tmeta.get(field):
            meta[field] = deep_copy(tmeta[field])
    meta["ownerReferences"] = [new_controller_ref(owner, api_version=owner_resource.api_version,
                                                  kind=owner_resource.kind)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": deep_copy(template.get("spec") or {})}
