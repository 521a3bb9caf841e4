"""The ``/scale`` subresource of Deployments, ReplicaSets and StatefulSets, as pure functions.

``kubectl scale`` and autoscalers never touch a workload directly: they read and write an
``autoscaling/v1`` Scale that mirrors the object's replica count. The HTTP layer turns the stored
object into a Scale with :func:`scale_of` and, on PUT/PATCH, folds the client's Scale back into the
object with :func:`apply_scale` before the ordinary update path stores it (so defaulting,
validation, generation and resourceVersion checks stay in one place).
"""

from __future__ import annotations

import copy
from typing import Any

from machinery import errors as api
from machinery.labels import format_label_selector

Obj = dict[str, Any]

_RESOURCES = {"Deployment": "deployments", "ReplicaSet": "replicasets", "StatefulSet": "statefulsets"}


def scale_of(obj: Obj, selector_string: str | None = None) -> Obj:
    """The autoscaling/v1 Scale for a workload object. Must not mutate ``obj``.

    ``selector_string`` overrides the selector rendered from ``spec.selector`` (callers that already
    hold it pass it in). As in Kubernetes, ``spec.replicas`` is omitted when it is 0 (omitempty)
    and ``status.replicas`` is always present.
    """
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if selector_string is None:
        selector_string = format_label_selector(spec.get("selector"))
    scale_meta = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                  if meta.get(k) is not None}
    replicas = spec.get("replicas") or 0
    scale_status: Obj = {"replicas": status.get("replicas") or 0}
    if selector_string:
        scale_status["selector"] = selector_string
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": replicas} if replicas else {},
        "status": scale_status,
    }


def apply_scale(obj: Obj, scale: Obj) -> Obj:
    """A copy of ``obj`` with ``spec.replicas`` taken from ``scale``. Must not mutate either.

    Raises 422 Invalid (on the Scale kind) for a negative or non-integer replica count, and
    409 Conflict when the Scale carries a resourceVersion other than the object's. A Scale without
    ``spec.replicas`` means 0, exactly as the Go type's omitempty int32 does.
    """
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    replicas = (scale.get("spec") or {}).get("replicas", 0)
    if replicas is None:
        replicas = 0
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise api.invalid("Scale", (scale.get("metadata") or {}).get("name") or name, [
            api.invalid_value("spec.replicas", replicas, "must be an integer")], "autoscaling")
    if replicas < 0:
        raise api.invalid("Scale", (scale.get("metadata") or {}).get("name") or name, [
            api.invalid_value("spec.replicas", replicas, "must be greater than or equal to 0")],
            "autoscaling")
    wanted_rv = (scale.get("metadata") or {}).get("resourceVersion")
    if wanted_rv and wanted_rv != meta.get("resourceVersion"):
        resource = _RESOURCES.get(obj.get("kind", ""), (obj.get("kind") or "").lower() + "s")
        group = (obj.get("apiVersion") or "").rpartition("/")[0]
        raise api.conflict(resource, name, api.OBJECT_MODIFIED, group)
    updated = copy.deepcopy(obj)
    updated.setdefault("spec", {})["replicas"] = replicas
    return updated
