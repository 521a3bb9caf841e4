"""The JobSpec rules, shared by Jobs and by CronJobs' ``jobTemplate``.

``pkg/apis/batch/validation`` checks a JobSpec the same way wherever it appears: counters,
completion modes, pod failure and replacement policies, the restart policy a Job's pods may use
and (for a Job, not a template) the selector. Kept apart from :mod:`apiserver.registry.batch` so
each file stays readable.
"""

from __future__ import annotations

import itertools

from apiserver.registry.core.podspec import validate_pod_template
from apiserver.registry.strategy import Obj
from apiserver.registry.workload import SELECTOR_MISMATCH, go_labels, json_value, nonneg, template_labels
from machinery import errors as api
from machinery.errors import FieldError
from machinery.labels import SelectorError, selector_from_label_selector, validate_label_selector
from machinery.validation import is_qualified_name

MAX_PARALLELISM_INDEXED = 100_000
FAILURE_ACTIONS = ["Count", "FailIndex", "FailJob", "Ignore"]
CONDITION_STATUSES = ["False", "True", "Unknown"]
CONTAINER_NAME_MSG = "must be one of the container or initContainer names in the pod template"


def validate_job_spec(spec: Obj, path: str, *, require_selector: bool) -> list[FieldError]:
    """validateJobSpec (+ the selector half of ValidateJobSpec when ``require_selector``)."""
    errs: list[FieldError] = []
    for key in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
                "ttlSecondsAfterFinished", "backoffLimitPerIndex", "maxFailedIndexes"):
        errs += nonneg(spec, key, f"{path}.{key}")
    if spec.get("maxFailedIndexes") is not None and spec.get("backoffLimitPerIndex") is None:
        errs.append(api.required(f"{path}.backoffLimitPerIndex", "when maxFailedIndexes is specified"))
    mode = spec.get("completionMode")
    if spec.get("backoffLimitPerIndex") is not None and mode != "Indexed":
        errs.append(api.forbidden(f"{path}.backoffLimitPerIndex", "requires indexed completion mode"))
    if mode is not None and mode not in ("NonIndexed", "Indexed"):
        errs.append(api.not_supported(f"{path}.completionMode", mode, ["NonIndexed", "Indexed"]))
    if mode == "Indexed":
        errs += _indexed_errors(spec, path)
    elif spec.get("successPolicy") is not None:
        errs.append(api.invalid_value(f"{path}.successPolicy", json_value(spec["successPolicy"]),
                                      "requires indexed completion mode"))
    if spec.get("podFailurePolicy") is not None:
        errs += _pod_failure_policy_errors(spec, f"{path}.podFailurePolicy")
    errs += _pod_replacement_errors(spec, f"{path}.podReplacementPolicy")
    template = spec.get("template") or {}
    errs += validate_pod_template(template, f"{path}.template")
    errs += _restart_policy_errors(spec, template, f"{path}.template.spec.restartPolicy")
    if require_selector:
        errs += _selector_errors(spec, path)
    return errs


def _indexed_errors(spec: Obj, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    completions, parallelism = spec.get("completions"), spec.get("parallelism")
    if completions is None:
        errs.append(api.required(f"{path}.completions", "when completion mode is Indexed"))
    if isinstance(parallelism, int) and parallelism > MAX_PARALLELISM_INDEXED:
        errs.append(api.invalid_value(f"{path}.parallelism", parallelism,
                                      f"must be less than or equal to {MAX_PARALLELISM_INDEXED} "
                                      "when completion mode is Indexed"))
    max_failed = spec.get("maxFailedIndexes")
    if isinstance(completions, int) and isinstance(max_failed, int) and max_failed > completions:
        errs.append(api.invalid_value(f"{path}.maxFailedIndexes", max_failed,
                                      "must be less than or equal to completions"))
    return errs


def _restart_policy_errors(spec: Obj, template: Obj, path: str) -> list[FieldError]:
    policy = (template.get("spec") or {}).get("restartPolicy") or ""
    if policy in ("", "Always"):
        return [api.required(path, 'valid values: "OnFailure", "Never"')]
    if policy not in ("OnFailure", "Never"):
        return [api.not_supported(path, policy, ["OnFailure", "Never"])]
    if spec.get("podFailurePolicy") is not None and policy != "Never":
        return [api.invalid_value(path, policy,
                                  'only "Never" is supported when podFailurePolicy is specified')]
    return []


def _selector_errors(spec: Obj, path: str) -> list[FieldError]:
    selector = spec.get("selector")
    if selector is None:
        return [api.required(f"{path}.selector")]
    errs = validate_label_selector(selector, f"{path}.selector")
    try:
        compiled = selector_from_label_selector(selector)
    except (SelectorError, ValueError):
        return errs
    labels = template_labels(spec.get("template"))
    if not compiled.matches(labels or {}):
        errs.append(api.invalid_value(f"{path}.template.metadata.labels", go_labels(labels),
                                      SELECTOR_MISMATCH))
    return errs


def _pod_replacement_errors(spec: Obj, path: str) -> list[FieldError]:
    policy = spec.get("podReplacementPolicy")
    if policy is None:
        return []
    if spec.get("podFailurePolicy") is not None:
        return [] if policy == "Failed" else [api.not_supported(path, policy, ["Failed"])]
    if policy not in ("Failed", "TerminatingOrFailed"):
        return [api.not_supported(path, policy, ["Failed", "TerminatingOrFailed"])]
    return []


def _too_many(path: str, actual: int, limit: int) -> FieldError:
    return FieldError(api.TOO_MANY, path, f"{actual}: must have at most {limit} items")


def _pod_failure_policy_errors(spec: Obj, path: str) -> list[FieldError]:
    rules = (spec.get("podFailurePolicy") or {}).get("rules") or []
    errs = [_too_many(f"{path}.rules", len(rules), 20)] if len(rules) > 20 else []
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    all_containers = (pod_spec.get("containers") or []) + (pod_spec.get("initContainers") or [])
    containers = {(c or {}).get("name") for c in all_containers}
    for i, rule in enumerate(rules):
        rule_path = f"{path}.rules[{i}]"
        action = (rule or {}).get("action") or ""
        if action == "FailIndex" and spec.get("backoffLimitPerIndex") is None:
            errs.append(api.invalid_value(f"{rule_path}.action", action,
                                          "requires the backoffLimitPerIndex to be set"))
        if action not in FAILURE_ACTIONS:
            errs.append(api.not_supported(f"{rule_path}.action", action, FAILURE_ACTIONS))
        on_exit, on_conditions = (rule or {}).get("onExitCodes"), (rule or {}).get("onPodConditions") or []
        if on_exit is not None:
            errs += _on_exit_codes_errors(on_exit, f"{rule_path}.onExitCodes", containers)
        if len(on_conditions) > 20:
            errs.append(_too_many(f"{rule_path}.onPodConditions", len(on_conditions), 20))
        else:
            for j, pattern in enumerate(on_conditions):
                pattern_path = f"{rule_path}.onPodConditions[{j}]"
                kind = (pattern or {}).get("type") or ""
                errs += [api.invalid_value(f"{pattern_path}.type", kind, m) for m in is_qualified_name(kind)]
                status = (pattern or {}).get("status") or ""
                if status not in CONDITION_STATUSES:
                    errs.append(api.not_supported(f"{pattern_path}.status", status, CONDITION_STATUSES))
        if on_exit is not None and on_conditions:
            errs.append(FieldError(api.INVALID, rule_path,
                                   "specifying both OnExitCodes and OnPodConditions is not supported"))
        if on_exit is None and not on_conditions:
            errs.append(FieldError(api.INVALID, rule_path,
                                   "specifying one of OnExitCodes and OnPodConditions is required"))
    return errs


def _on_exit_codes_errors(on_exit: Obj, path: str, containers: set) -> list[FieldError]:
    errs: list[FieldError] = []
    operator = on_exit.get("operator") or ""
    if operator not in ("In", "NotIn"):
        errs.append(api.not_supported(f"{path}.operator", operator, ["In", "NotIn"]))
    name = on_exit.get("containerName")
    if name is not None and name not in containers:
        errs.append(api.invalid_value(f"{path}.containerName", name, CONTAINER_NAME_MSG))
    values = on_exit.get("values") or []
    if not values:
        return [*errs, api.invalid_value(f"{path}.values", json_value(values),
                                         "at least one value is required")]
    if len(values) > 255:
        return [*errs, _too_many(f"{path}.values", len(values), 255)]
    seen: set[int] = set()
    for j, value in enumerate(values):
        if operator == "In" and value == 0:
            errs.append(api.invalid_value(f"{path}.values[{j}]", value, "must not be 0 for the In operator"))
        if value in seen:
            errs.append(api.duplicate(f"{path}.values[{j}]", value))
        seen.add(value)
    if any(a > b for a, b in itertools.pairwise(values)):
        errs.append(api.invalid_value(f"{path}.values", json_value(values), "must be ordered"))
    return errs
