"""``kubectl get`` columns of the workload kinds: apps/v1 and batch/v1.

Deployments, ReplicaSets, StatefulSets, DaemonSets, ControllerRevisions, Jobs and CronJobs share
their wide columns (the pod template's containers and images, the selector) and the ``ready/desired``
style of cell; Jobs add the status precedence and completion/duration cells of ``printJob``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from apiserver.registry.humanize import human_duration, parse_time, since
from apiserver.registry.printers.base import (
    NONE,
    UNSET,
    Printer,
    age_cell,
    age_col,
    col,
    int_or_zero,
    name_cell,
    name_col,
    wide,
)
from apiserver.registry.printers.selectors import (
    InvalidSelector,
    format_label_selector,
    format_labels,
    selector_string,
)

_CONTAINERS_DOC = "Names of each container in the template."
_IMAGES_DOC = "Images referenced by each container in the template."


def _containers(template: dict | None) -> tuple[str, str]:
    """``layoutContainerCells`` of a pod template: comma-joined container names and images."""
    spec = ((template or {}).get("spec") or {})
    containers = spec.get("containers") or ()
    return (
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
    )


def _cond_true(conditions: Iterable[dict] | None, type_: str) -> bool:
    """True when the first condition of ``type_`` has status True (``hasJobCondition``)."""
    for cond in conditions or ():
        if cond.get("type") == type_:
            return cond.get("status") == "True"
    return False


# --- apps/v1 --------------------------------------------------------------------------------

_WORKLOAD_WIDE = [wide("Containers", _CONTAINERS_DOC), wide("Images", _IMAGES_DOC)]

DEPLOYMENT_COLUMNS = [
    name_col(),
    col("Ready", "Number of the pod with ready state"),
    col("Up-to-date", "Total number of non-terminated pods targeted by this deployment that have the "
                      "desired template spec."),
    col("Available", "Total number of available pods (ready for at least minReadySeconds) targeted by "
                     "this deployment."),
    age_col(),
    *_WORKLOAD_WIDE,
    wide("Selector", "Label selector for pods."),
]


def _replicas(spec: dict) -> int:
    value = spec.get("replicas")
    return value if isinstance(value, int) else 1  # the API defaults replicas to 1


def _deployment_row(d: dict, now: datetime) -> list:
    spec = d.get("spec") or {}
    status = d.get("status") or {}
    try:
        selector = selector_string(spec.get("selector"))
    except InvalidSelector:
        selector = "<invalid>"
    names, images = _containers(spec.get("template"))
    ready = f"{int_or_zero(status.get('readyReplicas'))}/{_replicas(spec)}"
    return [
        name_cell(d), ready, int_or_zero(status.get("updatedReplicas")), int_or_zero(status.get("availableReplicas")),
        age_cell(d, now), names, images, selector,
    ]


REPLICASET_COLUMNS = [
    name_col(),
    col("Desired", "Replicas is the number of desired pods.", "integer"),
    col("Current", "Replicas is the most recently observed number of non-terminating pods.", "integer"),
    col("Ready", "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.",
        "integer"),
    age_col(),
    *_WORKLOAD_WIDE,
    wide("Selector", "Selector is a label query over pods that should match the replica count."),
]


def _replicaset_row(rs: dict, now: datetime) -> list:
    spec = rs.get("spec") or {}
    status = rs.get("status") or {}
    names, images = _containers(spec.get("template"))
    return [
        name_cell(rs), _replicas(spec), int_or_zero(status.get("replicas")), int_or_zero(status.get("readyReplicas")),
        age_cell(rs, now), names, images, format_label_selector(spec.get("selector")),
    ]


STATEFULSET_COLUMNS = [name_col(), col("Ready", "Number of the pod with ready state"), age_col(),
                       *_WORKLOAD_WIDE]


def _statefulset_row(sts: dict, now: datetime) -> list:
    spec = sts.get("spec") or {}
    names, images = _containers(spec.get("template"))
    ready = int_or_zero((sts.get("status") or {}).get("readyReplicas"))
    return [name_cell(sts), f"{ready}/{_replicas(spec)}", age_cell(sts, now), names, images]


DAEMONSET_COLUMNS = [
    name_col(),
    col("Desired", "The total number of nodes that should be running the daemon pod.", "integer"),
    col("Current", "The number of nodes that are running at least 1 daemon pod and are supposed to run "
                   "the daemon pod.", "integer"),
    col("Ready", "The number of nodes that should be running the daemon pod and have one or more of the "
                 "daemon pod running with a Ready Condition.", "integer"),
    col("Up-to-date", "The total number of nodes that are running updated daemon pod", "integer"),
    col("Available", "The number of nodes that should be running the daemon pod and have one or more of "
                     "the daemon pod running and available.", "integer"),
    col("Node Selector", "NodeSelector is a selector which must be true for the pod to fit on a node."),
    age_col(),
    *_WORKLOAD_WIDE,
    wide("Selector", "A label query over pods that are managed by the daemon set."),
]


def _daemonset_row(ds: dict, now: datetime) -> list:
    spec = ds.get("spec") or {}
    status = ds.get("status") or {}
    template = spec.get("template") or {}
    names, images = _containers(template)
    return [
        name_cell(ds), int_or_zero(status.get("desiredNumberScheduled")),
        int_or_zero(status.get("currentNumberScheduled")), int_or_zero(status.get("numberReady")),
        int_or_zero(status.get("updatedNumberScheduled")), int_or_zero(status.get("numberAvailable")),
        format_labels((template.get("spec") or {}).get("nodeSelector")),
        age_cell(ds, now), names, images, format_label_selector(spec.get("selector")),
    ]


CONTROLLERREVISION_COLUMNS = [
    name_col(),
    col("Controller", "Controller of the object"),
    col("Revision", "Revision indicates the revision of the state represented by Data."),
    age_col(),
]


def controller_name(owner_refs: Iterable[dict] | None) -> str:
    """``statefulset.apps/web`` for the controlling owner reference, ``<none>`` without one."""
    for ref in owner_refs or ():
        if ref.get("controller"):
            api_version = ref.get("apiVersion") or ""
            group = api_version.split("/", 1)[0] if "/" in api_version else ""
            kind = ref.get("kind") or ""
            name = ref.get("name") or ""
            if not kind and not group:
                return name
            group_kind = f"{kind}.{group}" if group else kind
            return f"{group_kind.lower()}/{name}"
    return NONE


def _controllerrevision_row(cr: dict, now: datetime) -> list:
    owners = (cr.get("metadata") or {}).get("ownerReferences")
    return [name_cell(cr), controller_name(owners), int_or_zero(cr.get("revision")), age_cell(cr, now)]


# --- batch/v1 -------------------------------------------------------------------------------

JOB_COLUMNS = [
    name_col(),
    col("Status", "Status of the job."),
    col("Completions", "The number of pods which reached phase Succeeded."),
    col("Duration", "Time required to complete the job."),
    age_col(),
    *_WORKLOAD_WIDE,
    wide("Selector", "A label query over pods that should match the pod count."),
]


def job_status(job: dict) -> str:
    """Complete / Failed / Terminating / Suspended / FailureTarget / Running, in that precedence."""
    conditions = (job.get("status") or {}).get("conditions")
    if _cond_true(conditions, "Complete"):
        return "Complete"
    if _cond_true(conditions, "Failed"):
        return "Failed"
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    if _cond_true(conditions, "Suspended"):
        return "Suspended"
    if _cond_true(conditions, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def _job_row(job: dict, now: datetime) -> list:
    spec = job.get("spec") or {}
    status = job.get("status") or {}
    succeeded = int_or_zero(status.get("succeeded"))
    completions = spec.get("completions")
    if isinstance(completions, int):
        completions_cell = f"{succeeded}/{completions}"
    else:
        parallelism = int_or_zero(spec.get("parallelism"))
        completions_cell = f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"
    start = parse_time(status.get("startTime"))
    duration = ""
    if start is not None:
        end = parse_time(status.get("completionTime"))
        duration = human_duration((end or now) - start)
    names, images = _containers(spec.get("template"))
    return [
        name_cell(job), job_status(job), completions_cell, duration, age_cell(job, now), names, images,
        format_label_selector(spec.get("selector")),
    ]


CRONJOB_COLUMNS = [
    name_col(),
    col("Schedule", "The schedule in Cron format."),
    col("Timezone", "The time zone name for the given schedule."),
    col("Suspend", "This flag tells the controller to suspend subsequent executions.", "boolean"),
    col("Active", "A list of pointers to currently running jobs.", "integer"),
    col("Last Schedule", "Information when was the last time the job was successfully scheduled."),
    age_col(),
    *_WORKLOAD_WIDE,
    wide("Selector", "A label query over pods that should match the pod count."),
]


def _bool_ptr(value: Any) -> str:
    if value is None:
        return UNSET
    return "True" if value else "False"


def _cronjob_row(cj: dict, now: datetime) -> list:
    spec = cj.get("spec") or {}
    status = cj.get("status") or {}
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    last = status.get("lastScheduleTime")
    names, images = _containers(job_spec.get("template"))
    return [
        name_cell(cj), spec.get("schedule", ""), spec.get("timeZone") or NONE, _bool_ptr(spec.get("suspend")),
        len(status.get("active") or ()), since(last, now) if last else NONE, age_cell(cj, now), names, images,
        format_label_selector(job_spec.get("selector")),
    ]


PRINTERS = {
    ("apps", "Deployment"): Printer(DEPLOYMENT_COLUMNS, _deployment_row),
    ("apps", "ReplicaSet"): Printer(REPLICASET_COLUMNS, _replicaset_row),
    ("apps", "StatefulSet"): Printer(STATEFULSET_COLUMNS, _statefulset_row),
    ("apps", "DaemonSet"): Printer(DAEMONSET_COLUMNS, _daemonset_row),
    ("apps", "ControllerRevision"): Printer(CONTROLLERREVISION_COLUMNS, _controllerrevision_row),
    ("batch", "Job"): Printer(JOB_COLUMNS, _job_row),
    ("batch", "CronJob"): Printer(CRONJOB_COLUMNS, _cronjob_row),
}
