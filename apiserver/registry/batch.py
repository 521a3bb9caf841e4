"""Strategies for batch/v1: Jobs and CronJobs.

A Job's selector is normally not written by the user: the server generates one from the Job's uid
and stamps the matching labels onto the pod template, so that two Jobs of the same name never
adopt each other's pods. Defaults (batch/v1 ``SetDefaults_Job``/``SetDefaults_CronJob``) and the
rules of ``pkg/apis/batch/validation`` — restart policies, pod failure policies, the schedule and
time zone of a CronJob, what may change on update — are reproduced here with Kubernetes' paths and
messages. The schedule grammar itself lives in :mod:`machinery.cron`, shared with the controller.
"""

from __future__ import annotations

import copy
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apiserver.registry.builtin import register
from apiserver.registry.jobspec import validate_job_spec
from apiserver.registry.strategy import Obj
from apiserver.registry.workload import (
    WorkloadStrategy,
    child,
    default_template,
    go_selector,
    json_value,
    nonneg,
    semantic,
    set_default,
    status_counters,
    template_labels,
)
from machinery import errors as api
from machinery.cron import CronError, parse_cron
from machinery.errors import FieldError
from machinery.labels import SelectorError, selector_from_label_selector
from machinery.validation import is_dns1123_label

MAX_INT32 = 2**31 - 1
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_JOB_NAME_LABEL = "job-name"
CRONJOB_NAME_MAX = 52  # the controller appends an 11-character "-<minutes>" suffix; job names stop at 63


def generate_selector(job: Obj) -> None:
    """Stamp the uid/name labels on the template and select on the uid (generateSelector).

    Needs ``metadata.uid``: the generic store must fill system fields before prepare_for_create.
    Labels the user already set are kept (validation then rejects a mismatching uid).
    """
    meta = job.get("metadata") or {}
    uid, name = meta.get("uid") or "", meta.get("name") or ""
    spec = child(job, "spec")
    labels = child(child(child(spec, "template"), "metadata"), "labels")
    for key in (LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL):
        labels.setdefault(key, name)
    for key in (LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL):
        labels.setdefault(key, uid)
    child(child(spec, "selector"), "matchLabels").setdefault(CONTROLLER_UID_LABEL, uid)


# --- Jobs ------------------------------------------------------------------------------------------


@register("batch", "jobs")
class JobStrategy(WorkloadStrategy):
    selectable_fields = ("status.successful",)

    def default(self, obj: Obj) -> None:
        spec = child(obj, "spec")
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec["completions"] = 1
            spec["parallelism"] = 1
        set_default(spec, "parallelism", 1)
        set_default(spec, "backoffLimit", MAX_INT32 if spec.get("backoffLimitPerIndex") is not None else 6)
        labels = template_labels(spec.get("template"))
        meta = child(obj, "metadata")
        if labels is not None and not meta.get("labels"):
            meta["labels"] = dict(labels)
        set_default(spec, "completionMode", "NonIndexed")
        set_default(spec, "suspend", False)
        failure_policy = spec.get("podFailurePolicy")
        for rule in (failure_policy or {}).get("rules") or []:
            for pattern in (rule or {}).get("onPodConditions") or []:
                if isinstance(pattern, dict) and not pattern.get("status"):
                    pattern["status"] = "True"
        replacement = "Failed" if failure_policy is not None else "TerminatingOrFailed"
        set_default(spec, "podReplacementPolicy", replacement)
        set_default(spec, "manualSelector", False)
        default_template(spec)

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        if not (obj.get("spec") or {}).get("manualSelector"):
            generate_selector(obj)

    def field_values(self, obj: Obj) -> dict[str, str]:
        fields = super().field_values(obj)
        fields["status.successful"] = str((obj.get("status") or {}).get("succeeded") or 0)
        return fields

    def validate(self, obj: Obj) -> list[FieldError]:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        errs: list[FieldError] = []
        completions = spec.get("completions")
        if spec.get("completionMode") == "Indexed" and isinstance(completions, int) and completions > 0:
            hostname = f"{meta.get('name') or ''}-{completions - 1}"
            if is_dns1123_label(hostname):
                errs.append(api.invalid_value(
                    "metadata.name", meta.get("name") or "",
                    f"will not able to create pod with invalid DNS label: {hostname}"))
        if not spec.get("manualSelector"):
            errs += _generated_selector_errors(obj)
        return errs + validate_job_spec(spec, "spec", require_selector=True)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        errs = validate_job_spec(spec, "spec", require_selector=True)
        if not _elastic_indexed(spec, old_spec):
            errs += _immutable(spec, old_spec, "completions")
        for key in ("selector", "completionMode", "podFailurePolicy", "backoffLimitPerIndex", "managedBy",
                    "successPolicy", "podReplacementPolicy"):
            errs += _immutable(spec, old_spec, key)
        return errs + _template_update_errors(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        counters = ("active", "succeeded", "failed", "ready", "terminating")
        return status_counters(new.get("status") or {}, counters)


def _generated_selector_errors(job: Obj) -> list[FieldError]:
    uid = (job.get("metadata") or {}).get("uid") or ""
    if not uid:
        return [api.required("metadata.uid")]
    selector = (job.get("spec") or {}).get("selector")
    try:
        compiled = selector_from_label_selector(selector)
    except (SelectorError, ValueError):
        return []
    expected = {CONTROLLER_UID_LABEL: uid, LEGACY_CONTROLLER_UID_LABEL: uid}
    if selector is None or compiled.empty or not compiled.matches(expected):
        return [api.invalid_value("spec.selector", go_selector(selector), "`selector` not auto-generated")]
    return []


def _elastic_indexed(spec: Obj, old_spec: Obj) -> bool:
    """Indexed Jobs may change completions together with parallelism (ElasticIndexedJob)."""
    return (spec.get("completionMode") == "Indexed" and spec.get("completions") == spec.get("parallelism")
            and old_spec.get("completions") == old_spec.get("parallelism"))


def _immutable(spec: Obj, old_spec: Obj, key: str) -> list[FieldError]:
    new_value, old_value = spec.get(key), old_spec.get(key)
    if semantic(new_value) == semantic(old_value):
        return []
    shown = go_selector(new_value) if key == "selector" else (
        json_value(new_value) if isinstance(new_value, dict | list) else new_value)
    return [api.invalid_value(f"spec.{key}", shown, "field is immutable")]


def _template_update_errors(new: Obj, old: Obj) -> list[FieldError]:
    """The template is immutable, except scheduling directives of a suspended, never-started Job."""
    template = (new.get("spec") or {}).get("template") or {}
    old_template = copy.deepcopy((old.get("spec") or {}).get("template") or {})
    if (old.get("spec") or {}).get("suspend") and not (old.get("status") or {}).get("startTime"):
        pod_spec, old_pod_spec = template.get("spec") or {}, child(old_template, "spec")
        for key in ("nodeSelector", "tolerations", "schedulingGates"):
            old_pod_spec[key] = pod_spec.get(key)
        affinity, old_affinity = pod_spec.get("affinity"), old_pod_spec.get("affinity")
        if affinity is None and old_affinity is not None:
            old_affinity = {k: v for k, v in old_affinity.items() if k != "nodeAffinity"}
            old_pod_spec["affinity"] = old_affinity or None
        elif affinity is not None:
            old_pod_spec["affinity"] = {**(old_affinity or {}), "nodeAffinity": affinity.get("nodeAffinity")}
        old_meta, meta = child(old_template, "metadata"), template.get("metadata") or {}
        old_meta["labels"], old_meta["annotations"] = meta.get("labels"), meta.get("annotations")
    if semantic(template) == semantic(old_template):
        return []
    return [api.invalid_value("spec.template", json_value(template), "field is immutable")]


# --- CronJobs --------------------------------------------------------------------------------------

_TIME_ZONE_PART = re.compile(r"[A-Za-z.\-_0-9+]{1,14}")


@register("batch", "cronjobs")
class CronJobStrategy(WorkloadStrategy):
    def default(self, obj: Obj) -> None:
        spec = child(obj, "spec")
        set_default(spec, "concurrencyPolicy", "Allow")
        set_default(spec, "suspend", False)
        set_default(spec, "successfulJobsHistoryLimit", 3)
        set_default(spec, "failedJobsHistoryLimit", 1)
        job_template = spec.get("jobTemplate")
        if isinstance(job_template, dict) and isinstance(job_template.get("spec"), dict):
            default_template(job_template["spec"])

    def validate(self, obj: Obj) -> list[FieldError]:
        name = (obj.get("metadata") or {}).get("name") or ""
        errs = validate_cronjob_spec(obj.get("spec") or {}, None)
        if len(name) > CRONJOB_NAME_MAX:
            errs.append(api.invalid_value("metadata.name", name,
                                          f"must be no more than {CRONJOB_NAME_MAX} characters"))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        # the 52-character limit is not re-checked, so older long-named CronJobs stay editable
        return validate_cronjob_spec(new.get("spec") or {}, old.get("spec") or {})


def validate_cronjob_spec(spec: Obj, old_spec: Obj | None) -> list[FieldError]:
    errs: list[FieldError] = []
    schedule = spec.get("schedule") or ""
    time_zone = spec.get("timeZone")
    if not schedule:
        errs.append(api.required("spec.schedule"))
    else:
        errs += _schedule_errors(schedule, "TZ" in ((old_spec or {}).get("schedule") or ""), time_zone)
    errs += nonneg(spec, "startingDeadlineSeconds", "spec.startingDeadlineSeconds")
    if old_spec is None or old_spec.get("timeZone") != time_zone:
        errs += _time_zone_errors(time_zone)
    policy = spec.get("concurrencyPolicy") or ""
    if not policy:
        errs.append(api.required("spec.concurrencyPolicy"))
    elif policy not in ("Allow", "Forbid", "Replace"):
        errs.append(api.not_supported("spec.concurrencyPolicy", policy, ["Allow", "Forbid", "Replace"]))
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    errs += validate_job_spec(job_spec, "spec.jobTemplate.spec", require_selector=False)
    if job_spec.get("selector") is not None:
        errs.append(api.invalid_value("spec.jobTemplate.spec.selector", go_selector(job_spec["selector"]),
                                      "`selector` will be auto-generated"))
    if job_spec.get("manualSelector"):
        errs.append(api.not_supported("spec.jobTemplate.spec.manualSelector", True, ["nil", "false"]))
    for key in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        errs += nonneg(spec, key, f"spec.{key}")
    return errs


def _schedule_errors(schedule: str, allow_tz: bool, time_zone: str | None) -> list[FieldError]:
    errs: list[FieldError] = []
    try:
        parse_cron(schedule)
    except CronError as err:
        errs.append(api.invalid_value("spec.schedule", schedule, str(err)))
    if allow_tz and "TZ" in schedule and time_zone is not None:
        errs.append(api.invalid_value("spec.schedule", schedule,
                                      "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
    elif not allow_tz and "TZ" in schedule:
        errs.append(api.invalid_value("spec.schedule", schedule,
                                      "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
    return errs


def _time_zone_errors(time_zone: str | None) -> list[FieldError]:
    path = "spec.timeZone"
    if time_zone is None:
        return []
    if not time_zone:
        return [api.invalid_value(path, time_zone, "timeZone must be nil or non-empty string")]
    for part in time_zone.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TIME_ZONE_PART.fullmatch(part):
            return [api.invalid_value(path, time_zone, f"unknown time zone {time_zone}")]
    if time_zone.lower() == "local":
        return [api.invalid_value(path, time_zone,
                                  "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones")]
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "America" is a directory, a huge name
        return [api.invalid_value(path, time_zone, f"unknown time zone {time_zone}")]
    return []

