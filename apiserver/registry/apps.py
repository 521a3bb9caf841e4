"""Strategies for apps/v1: Deployments, ReplicaSets, StatefulSets, DaemonSets, ControllerRevisions.

Kubernetes fills these objects with defaults in code (apps/v1 ``SetDefaults_*``) and checks them
in ``pkg/apis/apps/validation``; clients depend on both (``kubectl rollout`` reads the defaulted
strategy, Helm upgrades trip on the immutable selector). This module reproduces the defaults and
the rules with Kubernetes' field paths and messages; the pod template itself is defaulted and
validated by :mod:`apiserver.registry.core.podspec`, the shared selector/int-or-percent/counter
rules live in :mod:`apiserver.registry.workload`.
"""

from __future__ import annotations

from apiserver.registry.builtin import register
from apiserver.registry.core.podspec import validate_pod_template
from apiserver.registry.strategy import Obj, Strategy
from apiserver.registry.workload import (
    NOT_MORE_THAN,
    WorkloadStrategy,
    check_always_restart,
    check_template_labels,
    child,
    collision_count_decrement,
    default_template,
    go_int_or_string,
    go_selector,
    immutable_selector,
    int_or_percent_value,
    json_value,
    nonneg,
    not_above,
    percent_of,
    semantic,
    set_default,
    status_counters,
    validate_int_or_percent,
    validate_selector,
)
from machinery import errors as api
from machinery.errors import FieldError
from machinery.validation import is_dns1123_label

ABOVE_READY = "cannot be greater than readyReplicas"


def _replica_template_errors(spec: Obj, kind_word: str, kind: str) -> list[FieldError]:
    """ValidateReplicaSetSpec's selector/template half, shared by Deployments and ReplicaSets."""
    errs, compiled = validate_selector(spec, "spec", kind_word)
    if compiled is None:
        errs.append(api.invalid_value("spec.selector", go_selector(spec.get("selector")),
                                      "invalid label selector"))
        return errs
    template = spec.get("template")
    if template is None:
        return [*errs, api.required("spec.template")]
    errs += check_template_labels(compiled, template, "spec.template")
    errs += validate_pod_template(template, "spec.template")
    errs += check_always_restart(template, "spec.template", kind)
    return errs


def _default_rolling_update(strategy: Obj, *, max_unavailable: int | str, max_surge: int | str) -> None:
    """A Deployment's or DaemonSet's update strategy: RollingUpdate unless set, and then the
    rollingUpdate parameters it lacks. Idempotent."""
    set_default(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = child(strategy, "rollingUpdate")
        set_default(rolling, "maxUnavailable", max_unavailable)
        set_default(rolling, "maxSurge", max_surge)


# --- Deployments and ReplicaSets -------------------------------------------------------------------


@register("apps", "deployments")
class DeploymentStrategy(WorkloadStrategy):
    def default(self, obj: Obj) -> None:
        spec = child(obj, "spec")
        set_default(spec, "replicas", 1)
        _default_rolling_update(child(spec, "strategy"), max_unavailable="25%", max_surge="25%")
        set_default(spec, "revisionHistoryLimit", 10)
        set_default(spec, "progressDeadlineSeconds", 600)
        default_template(spec)

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        # annotations are copied onto the ReplicaSets, so Kubernetes counts their changes too
        new_ann = (new.get("metadata") or {}).get("annotations") or {}
        old_ann = (old.get("metadata") or {}).get("annotations") or {}
        return super().spec_changed(new, old) or new_ann != old_ann

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec") or {}
        errs = nonneg(spec, "replicas", "spec.replicas")
        errs += _replica_template_errors(spec, "deployment", "ReplicaSet")
        errs += _deployment_strategy_errors(spec.get("strategy") or {})
        errs += nonneg(spec, "minReadySeconds", "spec.minReadySeconds")
        errs += nonneg(spec, "revisionHistoryLimit", "spec.revisionHistoryLimit")
        deadline = spec.get("progressDeadlineSeconds")
        if deadline is not None:
            errs += nonneg(spec, "progressDeadlineSeconds", "spec.progressDeadlineSeconds")
            if deadline <= (spec.get("minReadySeconds") or 0):
                errs.append(api.invalid_value("spec.progressDeadlineSeconds", deadline,
                                              "must be greater than minReadySeconds"))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + immutable_selector(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status = new.get("status") or {}
        errs = status_counters(status, ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas",
                                        "availableReplicas", "unavailableReplicas", "terminatingReplicas",
                                        "collisionCount"))
        for name in ("updatedReplicas", "readyReplicas", "availableReplicas"):
            errs += not_above(status, name, "replicas", NOT_MORE_THAN)
        errs += not_above(status, "availableReplicas", "readyReplicas", ABOVE_READY)
        return errs + collision_count_decrement(new, old)


def _deployment_strategy_errors(strategy: Obj) -> list[FieldError]:
    kind, rolling = strategy.get("type"), strategy.get("rollingUpdate")
    path = "spec.strategy"
    if kind == "Recreate":
        if rolling is not None:
            return [api.forbidden(f"{path}.rollingUpdate",
                                  "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if kind != "RollingUpdate":
        return [api.not_supported(path, json_value(strategy), ["Recreate", "RollingUpdate"])]
    if rolling is None:
        return [api.required(f"{path}.rollingUpdate", "this should be defaulted and never be nil")]
    unavailable, surge = rolling.get("maxUnavailable", 0), rolling.get("maxSurge", 0)
    errs = validate_int_or_percent(unavailable, f"{path}.rollingUpdate.maxUnavailable", max_100=False)
    errs += validate_int_or_percent(surge, f"{path}.rollingUpdate.maxSurge", max_100=False)
    if int_or_percent_value(unavailable) == 0 and int_or_percent_value(surge) == 0:
        errs.append(api.invalid_value(f"{path}.rollingUpdate.maxUnavailable", go_int_or_string(unavailable),
                                      "may not be 0 when `maxSurge` is 0"))
    if (percent_of(unavailable) or 0) > 100:
        errs.append(api.invalid_value(f"{path}.rollingUpdate.maxUnavailable", go_int_or_string(unavailable),
                                      "must not be greater than 100%"))
    return errs


@register("apps", "replicasets")
class ReplicaSetStrategy(WorkloadStrategy):
    zero_status = {"replicas": 0}
    selectable_fields = ("status.replicas",)

    def default(self, obj: Obj) -> None:
        spec = child(obj, "spec")
        set_default(spec, "replicas", 1)
        default_template(spec)

    def field_values(self, obj: Obj) -> dict[str, str]:
        fields = super().field_values(obj)
        fields["status.replicas"] = str((obj.get("status") or {}).get("replicas") or 0)
        return fields

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec") or {}
        errs = nonneg(spec, "replicas", "spec.replicas")
        errs += nonneg(spec, "minReadySeconds", "spec.minReadySeconds")
        return errs + _replica_template_errors(spec, "deployment", "ReplicaSet")

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + immutable_selector(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status = new.get("status") or {}
        errs = status_counters(status, ("replicas", "fullyLabeledReplicas", "readyReplicas",
                                        "availableReplicas", "terminatingReplicas", "observedGeneration"))
        for name in ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"):
            errs += not_above(status, name, "replicas", NOT_MORE_THAN)
        return errs + not_above(status, "availableReplicas", "readyReplicas", ABOVE_READY)


# --- DaemonSets ------------------------------------------------------------------------------------


@register("apps", "daemonsets")
class DaemonSetStrategy(WorkloadStrategy):
    zero_status = {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                   "numberReady": 0}

    def default(self, obj: Obj) -> None:
        spec = child(obj, "spec")
        _default_rolling_update(child(spec, "updateStrategy"), max_unavailable=1, max_surge=0)
        set_default(spec, "revisionHistoryLimit", 10)
        default_template(spec)

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec") or {}
        errs, compiled = validate_selector(spec, "spec", "daemonset")
        template = spec.get("template") or {}
        errs += check_template_labels(compiled, template, "spec.template")
        errs += validate_pod_template(template, "spec.template")
        errs += check_always_restart(template, "spec.template", "DaemonSet")
        errs += nonneg(spec, "minReadySeconds", "spec.minReadySeconds")
        errs += _daemonset_strategy_errors(spec.get("updateStrategy") or {})
        return errs + nonneg(spec, "revisionHistoryLimit", "spec.revisionHistoryLimit")

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + immutable_selector(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = status_counters(new.get("status") or {}, (
            "currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady",
            "observedGeneration", "updatedNumberScheduled", "numberAvailable", "numberUnavailable",
            "collisionCount"))
        return errs + collision_count_decrement(new, old)


def _daemonset_strategy_errors(strategy: Obj) -> list[FieldError]:
    path = "spec.updateStrategy"
    kind = strategy.get("type")
    if kind == "OnDelete":
        return []
    if kind != "RollingUpdate":
        return [api.not_supported(path, json_value(strategy), ["RollingUpdate", "OnDelete"])]
    rolling = strategy.get("rollingUpdate")
    if rolling is None:
        return [api.required(f"{path}.rollingUpdate")]
    path += ".rollingUpdate"
    unavailable, surge = rolling.get("maxUnavailable", 0), rolling.get("maxSurge", 0)
    errs = validate_int_or_percent(unavailable, f"{path}.maxUnavailable")
    errs += validate_int_or_percent(surge, f"{path}.maxSurge")
    has_unavailable, has_surge = int_or_percent_value(unavailable) != 0, int_or_percent_value(surge) != 0
    if has_unavailable and has_surge:
        errs.append(api.invalid_value(f"{path}.maxSurge", go_int_or_string(surge),
                                      "may not be set when maxUnavailable is non-zero"))
    elif not has_unavailable and not has_surge:
        errs.append(api.required(f"{path}.maxUnavailable", "cannot be 0 when maxSurge is 0"))
    return errs


# --- StatefulSets ----------------------------------------------------------------------------------

_STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "revisionHistoryLimit",
                "persistentVolumeClaimRetentionPolicy", "minReadySeconds")
_STS_FORBIDDEN = ("updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
                  "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
                  "'minReadySeconds' are forbidden")


@register("apps", "statefulsets")
class StatefulSetStrategy(WorkloadStrategy):
    name_rule = "label"  # pods are named <set>-<ordinal> and used as hostnames
    zero_status = {"replicas": 0, "availableReplicas": 0}

    def default(self, obj: Obj) -> None:
        spec = child(obj, "spec")
        set_default(spec, "podManagementPolicy", "OrderedReady")
        strategy = child(spec, "updateStrategy")
        if not strategy.get("type"):
            strategy["type"] = "RollingUpdate"
            child(strategy, "rollingUpdate")
        if strategy["type"] == "RollingUpdate" and isinstance(strategy.get("rollingUpdate"), dict):
            set_default(strategy["rollingUpdate"], "partition", 0)
        retention = child(spec, "persistentVolumeClaimRetentionPolicy")
        set_default(retention, "whenDeleted", "Retain")
        set_default(retention, "whenScaled", "Retain")
        set_default(spec, "replicas", 1)
        set_default(spec, "revisionHistoryLimit", 10)
        default_template(spec)
        for claim in spec.get("volumeClaimTemplates") or []:
            if isinstance(claim, dict):
                set_default(child(claim, "spec"), "volumeMode", "Filesystem")
                set_default(child(claim, "status"), "phase", "Pending")

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec") or {}
        errs = _sts_policy_errors(spec)
        for key in ("replicas", "minReadySeconds", "revisionHistoryLimit"):
            errs += nonneg(spec, key, f"spec.{key}")
        errs += nonneg(spec.get("ordinals") or {}, "start", "spec.ordinals.start")
        service = spec.get("serviceName") or ""
        if service:
            errs += [api.invalid_value("spec.serviceName", service, m) for m in is_dns1123_label(service)]
        selector_errs, compiled = validate_selector(spec, "spec", "statefulset")
        errs += selector_errs
        template = spec.get("template") or {}
        if compiled is None:
            errs.append(api.invalid_value("spec.selector", go_selector(spec.get("selector")), ""))
        else:
            errs += check_template_labels(compiled, template, "spec.template")
        errs += validate_pod_template(_with_claim_volumes(template, spec), "spec.template")
        return errs + check_always_restart(template, "spec.template", "StatefulSet")

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        new_rest = {k: v for k, v in (new.get("spec") or {}).items() if k not in _STS_MUTABLE}
        old_rest = {k: v for k, v in (old.get("spec") or {}).items() if k not in _STS_MUTABLE}
        if semantic(new_rest) != semantic(old_rest):
            errs.append(api.forbidden("spec", _STS_FORBIDDEN))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status = new.get("status") or {}
        errs = status_counters(status, ("replicas", "readyReplicas", "currentReplicas", "updatedReplicas",
                                        "availableReplicas", "observedGeneration", "collisionCount"))
        for name in ("readyReplicas", "currentReplicas", "updatedReplicas", "availableReplicas"):
            errs += not_above(status, name, "replicas", NOT_MORE_THAN)
        errs += not_above(status, "availableReplicas", "readyReplicas",
                          "cannot be greater than status.readyReplicas")
        return errs + collision_count_decrement(new, old)


def _sts_policy_errors(spec: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    policy = spec.get("podManagementPolicy") or ""
    if not policy:
        errs.append(api.required("spec.podManagementPolicy"))
    elif policy not in ("OrderedReady", "Parallel"):
        errs.append(api.invalid_value("spec.podManagementPolicy", policy,
                                      "must be 'OrderedReady' or 'Parallel'"))
    strategy = spec.get("updateStrategy") or {}
    kind, rolling = strategy.get("type") or "", strategy.get("rollingUpdate")
    path = "spec.updateStrategy"
    if not kind:
        errs.append(api.required(path))
    elif kind == "OnDelete" and rolling is not None:
        errs.append(api.invalid_value(f"{path}.rollingUpdate", json_value(rolling),
                                      "only allowed for updateStrategy 'RollingUpdate'"))
    elif kind == "RollingUpdate" and rolling is not None:
        errs += nonneg(rolling, "partition", f"{path}.rollingUpdate.partition")
        unavailable = rolling.get("maxUnavailable")
        if unavailable is not None:
            errs += validate_int_or_percent(unavailable, f"{path}.rollingUpdate.maxUnavailable")
            if int_or_percent_value(unavailable) == 0:
                errs.append(api.invalid_value(f"{path}.rollingUpdate.maxUnavailable",
                                              go_int_or_string(unavailable), "cannot be 0"))
    elif kind not in ("OnDelete", "RollingUpdate"):
        errs.append(api.invalid_value(path, json_value(strategy), "must be 'RollingUpdate' or 'OnDelete'"))
    retention = spec.get("persistentVolumeClaimRetentionPolicy")
    if retention is not None:
        for key in ("whenDeleted", "whenScaled"):
            if retention.get(key) not in ("Retain", "Delete"):
                errs.append(api.not_supported(f"spec.persistentVolumeClaimRetentionPolicy.{key}",
                                              retention.get(key) or "", ["Retain", "Delete"]))
    return errs


def _with_claim_volumes(template: Obj, spec: Obj) -> Obj:
    """The template as its pods will look: each volumeClaimTemplate becomes a PVC volume.

    Kubernetes skips pod-spec validation for StatefulSets because mounts of claim volumes would
    look dangling; adding the volumes the controller adds lets us validate the rest.
    """
    claims = [((c or {}).get("metadata") or {}).get("name") for c in spec.get("volumeClaimTemplates") or []]
    claims = [name for name in claims if name]
    if not claims or not isinstance(template.get("spec"), dict):
        return template
    pod_spec = dict(template["spec"])
    kept = [v for v in pod_spec.get("volumes") or [] if (v or {}).get("name") not in claims]
    pod_spec["volumes"] = kept + [{"name": n, "persistentVolumeClaim": {"claimName": n}} for n in claims]
    return {**template, "spec": pod_spec}


# --- ControllerRevisions ---------------------------------------------------------------------------


@register("apps", "controllerrevisions")
class ControllerRevisionStrategy(Strategy):
    def validate(self, obj: Obj) -> list[FieldError]:
        errs = [] if obj.get("data") is not None else [api.required("data", "data is mandatory")]
        return errs + nonneg(obj, "revision", "revision")

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        if new.get("data") != old.get("data"):
            errs.append(api.invalid_value("data", json_value(new.get("data")), "field is immutable"))
        return errs
