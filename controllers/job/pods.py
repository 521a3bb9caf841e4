"""Job pods: building them from the template, and the plans for which to create or delete.

A Job's pod carries the tracking finalizer (so a finished pod cannot vanish before the Job counted
it), the owner reference with ``controller: true`` and the labels the API server put on the
template (``batch.kubernetes.io/controller-uid``, ``batch.kubernetes.io/job-name`` and their legacy
forms). In Indexed mode it also gets its index as annotation and label, the hostname
``<job>-<index>`` and the ``JOB_COMPLETION_INDEX`` environment variable, as Kubernetes adds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controllers.job.util import (
    COMPLETION_INDEX,
    CONTROLLER_UID_LABEL,
    JOB_NAME_LABEL,
    LEGACY_CONTROLLER_UID_LABEL,
    LEGACY_JOB_NAME_LABEL,
    TRACKING_FINALIZER,
    completion_index,
)
from controllers.podcontrol import MAX_GENERATE_NAME_PREFIX, pod_from_template
from controllers.podutil import deletion_order
from machinery.client import JOBS
from machinery.meta import name_of, uid_of

Obj = dict[str, Any]


def new_job_pod(job: Mapping[str, Any], index: int | None = None) -> Obj:
    """A pod (not yet created) for ``job``; ``index`` for Indexed Jobs."""
    template = (job.get("spec") or {}).get("template") or {}
    labels = {LEGACY_CONTROLLER_UID_LABEL: uid_of(job), CONTROLLER_UID_LABEL: uid_of(job),
              LEGACY_JOB_NAME_LABEL: name_of(job), JOB_NAME_LABEL: name_of(job)}
    template_labels = (template.get("metadata") or {}).get("labels") or {}
    extra = {k: v for k, v in labels.items() if k not in template_labels}
    if index is not None:
        extra[COMPLETION_INDEX] = str(index)
    pod = pod_from_template(template, job, JOBS, extra_labels=extra)
    meta = pod["metadata"]
    meta["finalizers"] = [*(meta.get("finalizers") or []), TRACKING_FINALIZER]
    if index is not None:
        meta["generateName"] = f"{name_of(job)}-{index}-"[:MAX_GENERATE_NAME_PREFIX]
        meta["annotations"] = {**(meta.get("annotations") or {}), COMPLETION_INDEX: str(index)}
        spec = pod["spec"]
        spec.setdefault("hostname", f"{name_of(job)}-{index}")
        for key in ("initContainers", "containers"):
            for container in spec.get(key) or ():
                _add_index_env(container)
    return pod


def _add_index_env(container: Obj) -> None:
    env = container.setdefault("env", [])
    if any(e.get("name") == "JOB_COMPLETION_INDEX" for e in env):
        return
    env.append({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
        "apiVersion": "v1", "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}})


def non_indexed_plan(active: list[Obj], want: int, can_create: int) -> tuple[int, list[Obj]]:
    """(pods to create, pods to delete) to move ``len(active)`` towards ``want``."""
    diff = want - len(active)
    if diff > 0:
        return min(diff, max(can_create, 0)), []
    return 0, deletion_order(active)[:-diff] if diff < 0 else []


def indexed_plan(active: list[Obj], completions: int, parallelism: int, completed: set[int],
                 can_create: int) -> tuple[list[int], list[Obj]]:
    """(indexes to create, pods to delete) for an Indexed Job.

    Pods without a valid index, for an index already completed or duplicating another active pod's index
    are deleted; then the lowest missing indexes are created, up to parallelism active pods; above
    parallelism the pods with the highest indexes go.
    """
    delete: list[Obj] = []
    kept: dict[int, Obj] = {}
    for pod in sorted(active, key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or ""):
        index = completion_index(pod)
        if index is None or index >= completions or index in completed or index in kept:
            delete.append(pod)
        else:
            kept[index] = pod
    excess = len(kept) - parallelism
    if excess > 0:
        for index in sorted(kept, reverse=True)[:excess]:
            delete.append(kept.pop(index))
    room = min(parallelism - len(kept), max(can_create, 0))
    missing = [i for i in range(completions) if i not in completed and i not in kept]
    return missing[:max(room, 0)], delete
