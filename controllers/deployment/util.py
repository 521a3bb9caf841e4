"""Pure Deployment arithmetic: template hashes, revisions, fenceposts, replica counts, conditions.

Everything here is a function of API objects (plain dicts) and nothing else — no client, no clock
(times are passed in) — so the rollout rules can be read and unit-tested on their own. They follow
kube-controller-manager's ``deployment/util`` package; the names say which helper each mirrors.

The one deliberate departure: Kubernetes hashes a pod template with ``DeepHashObject`` (a spew dump of
the Go struct), which cannot be reproduced outside Go. :func:`compute_hash` hashes a canonical JSON
of the template instead (same FNV-1a 32-bit hash, same collision-count suffix, same
``SafeEncodeString`` rendering), so names look like Kubernetes' (``web-7d9c5b8f6``) and are stable
across processes, but are not the same strings a real cluster would pick for the same template.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson

from machinery.meta import annotations_of, name_of, parse_rfc3339

Obj = dict[str, Any]

POD_TEMPLATE_HASH_LABEL = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
DEPRECATED_ROLLBACK_TO = "deprecated.deployment.rollback.to"
MAX_REVISION_HISTORY_CHARS = 2000

#: annotations a Deployment does not pass on to its ReplicaSets (the controller owns these on the RS)
ANNOTATIONS_NOT_COPIED = frozenset({
    LAST_APPLIED_ANNOTATION, REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION, DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION, DEPRECATED_ROLLBACK_TO,
})

# condition types and reasons, as kubectl and users read them
AVAILABLE = "Available"
PROGRESSING = "Progressing"
REPLICA_FAILURE = "ReplicaFailure"
MINIMUM_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
MINIMUM_REPLICAS_UNAVAILABLE = "MinimumReplicasUnavailable"
NEW_RS_REASON = "NewReplicaSetCreated"
FOUND_NEW_RS_REASON = "FoundNewReplicaSet"
NEW_RS_AVAILABLE_REASON = "NewReplicaSetAvailable"
RS_UPDATED_REASON = "ReplicaSetUpdated"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
PAUSED_REASON = "DeploymentPaused"
RESUMED_REASON = "DeploymentResumed"
FAILED_RS_CREATE_REASON = "ReplicaSetCreateError"

RECREATE = "Recreate"
ROLLING_UPDATE = "RollingUpdate"
MAX_INT32 = 2**31 - 1

_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # no vowels (no words), no 0/1/3 (look like letters)
_FNV_OFFSET, _FNV_PRIME = 0x811C9DC5, 0x01000193


# --- template hash and template equality -----------------------------------------------------------


def _fnv1a_32(data: bytes, h: int = _FNV_OFFSET) -> int:
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def safe_encode_string(text: str) -> str:
    """rand.SafeEncodeString: each character mapped into a vowel-free alphabet."""
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in text)


def _semantic(value: Any) -> Any:
    """Drop nulls and empty maps/lists, as apimachinery's Semantic.DeepEqual treats nil and empty alike."""
    if isinstance(value, Mapping):
        out = {k: _semantic(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_semantic(v) for v in value]
    return value


def canonical_json(value: Any) -> bytes:
    return orjson.dumps(_semantic(value), option=orjson.OPT_SORT_KEYS)


def compute_hash(template: Mapping[str, Any], collision_count: int | None) -> str:
    """controller.ComputeHash: FNV-1a 32 of the template (+ the collision count as 4 little-endian bytes)."""
    h = _fnv1a_32(canonical_json(template))
    if collision_count is not None:
        h = _fnv1a_32(struct.pack("<I", collision_count & 0xFFFFFFFF), h)
    return safe_encode_string(str(h))


def template_without_hash(template: Mapping[str, Any] | None) -> Any:
    """The template with the ``pod-template-hash`` label removed (a shallow rebuild; the input is untouched)."""
    template = template or {}
    meta = template.get("metadata") or {}
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != POD_TEMPLATE_HASH_LABEL}
    return {**template, "metadata": {**meta, "labels": labels}}


def equal_ignore_hash(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """EqualIgnoreHash: the same pod template once the pod-template-hash label is ignored."""
    return canonical_json(template_without_hash(a)) == canonical_json(template_without_hash(b))


# --- small accessors -------------------------------------------------------------------------------


def spec_replicas(obj: Mapping[str, Any]) -> int:
    """``spec.replicas`` (1 when unset, the API default)."""
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def status_int(obj: Mapping[str, Any], field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)



def progress_deadline(d: Mapping[str, Any]) -> int | None:
    """spec.progressDeadlineSeconds when one applies (HasProgressDeadline: set and not MaxInt32)."""
    value = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return None if value is None or value == MAX_INT32 else int(value)


def revision_history_limit(d: Mapping[str, Any]) -> int | None:
    value = (d.get("spec") or {}).get("revisionHistoryLimit")
    return None if value is None or value == MAX_INT32 else int(value)


def strategy_type(d: Mapping[str, Any]) -> str:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type") or ROLLING_UPDATE


def revision_of(rs: Mapping[str, Any]) -> int:
    """The RS's revision annotation (0 when missing or not a number, as the sorters treat it)."""
    try:
        return int(annotations_of(rs).get(REVISION_ANNOTATION, "0"))
    except ValueError:
        return 0


def max_revision(replica_sets: Iterable[Mapping[str, Any]]) -> int:
    return max((revision_of(rs) for rs in replica_sets), default=0)


def _int_annotation(rs: Mapping[str, Any], key: str) -> int | None:
    try:
        return int(annotations_of(rs)[key])
    except (KeyError, ValueError):
        return None


def desired_replicas_annotation(rs: Mapping[str, Any]) -> int | None:
    return _int_annotation(rs, DESIRED_REPLICAS_ANNOTATION)


def max_replicas_annotation(rs: Mapping[str, Any]) -> int | None:
    return _int_annotation(rs, MAX_REPLICAS_ANNOTATION)


# --- ordering --------------------------------------------------------------------------------------


def _created(rs: Mapping[str, Any]) -> datetime | None:
    stamp = (rs.get("metadata") or {}).get("creationTimestamp")
    return parse_rfc3339(stamp) if stamp else None


def by_creation(rs: Mapping[str, Any]) -> tuple:
    """ReplicaSetsByCreationTimestamp: older first, ties by name."""
    created = _created(rs)
    return (created.timestamp() if created else 0.0, name_of(rs))


def by_revision(rs: Mapping[str, Any]) -> tuple:
    """ReplicaSetsByRevision: lower revision first, ties by creation."""
    return (revision_of(rs), *by_creation(rs))


def sorted_by_size_older(replica_sets: Iterable[Obj]) -> list[Obj]:
    """ReplicaSetsBySizeOlder: larger first; equal sizes older first (scale-down order)."""
    return sorted(sorted(replica_sets, key=by_creation), key=spec_replicas, reverse=True)


def sorted_by_size_newer(replica_sets: Iterable[Obj]) -> list[Obj]:
    """ReplicaSetsBySizeNewer: larger first; equal sizes newer first (scale-up order)."""
    return sorted(sorted(replica_sets, key=by_creation, reverse=True), key=spec_replicas, reverse=True)


# --- finding the new and old ReplicaSets -----------------------------------------------------------


def find_new_replica_set(d: Mapping[str, Any], replica_sets: Iterable[Obj]) -> Obj | None:
    """FindNewReplicaSet: the oldest RS whose template equals the deployment's, ignoring the hash label."""
    template = (d.get("spec") or {}).get("template")
    for rs in sorted(replica_sets, key=by_creation):
        if equal_ignore_hash((rs.get("spec") or {}).get("template"), template):
            return rs
    return None


def find_old_replica_sets(d: Mapping[str, Any], replica_sets: Iterable[Obj]) -> list[Obj]:
    """FindOldReplicaSets' second result: every RS that is not the new one."""
    replica_sets = list(replica_sets)
    new = find_new_replica_set(d, replica_sets)
    new_uid = (new or {}).get("metadata", {}).get("uid")
    return [rs for rs in replica_sets if new is None or rs["metadata"].get("uid") != new_uid]


def active(replica_sets: Iterable[Obj | None]) -> list[Obj]:
    """FilterActiveReplicaSets: those asked to run at least one pod."""
    return [rs for rs in replica_sets if rs is not None and spec_replicas(rs) > 0]


def find_active_or_latest(new_rs: Obj | None, old_rss: list[Obj]) -> Obj | None:
    """FindActiveOrLatest: the only active RS, or the newest one when none is active; None otherwise."""
    if new_rs is None and not old_rss:
        return None
    newest_first = sorted(old_rss, key=by_creation, reverse=True)
    running = active([*newest_first, new_rs])
    if not running:
        return new_rs if new_rs is not None else newest_first[0]
    return running[0] if len(running) == 1 else None


# --- replica counts --------------------------------------------------------------------------------


def replica_count(replica_sets: Iterable[Obj | None]) -> int:
    """GetReplicaCountForReplicaSets: the sum of spec.replicas."""
    return sum(spec_replicas(rs) for rs in replica_sets if rs is not None)


def actual_replica_count(replica_sets: Iterable[Obj | None]) -> int:
    return sum(status_int(rs, "replicas") for rs in replica_sets if rs is not None)


def ready_replica_count(replica_sets: Iterable[Obj | None]) -> int:
    return sum(status_int(rs, "readyReplicas") for rs in replica_sets if rs is not None)


def available_replica_count(replica_sets: Iterable[Obj | None]) -> int:
    return sum(status_int(rs, "availableReplicas") for rs in replica_sets if rs is not None)


def terminating_replica_count(replica_sets: Iterable[Obj | None]) -> int | None:
    """The sum of status.terminatingReplicas, or None when no ReplicaSet reports the field.

    Kubernetes gives None as soon as one RS lacks it; kubemini's ReplicaSet controller omits the field
    when it is 0 (as it omits every zero counter), so a missing field counts as 0 here.
    """
    found, total = False, 0
    for rs in replica_sets:
        if rs is None:
            continue
        value = (rs.get("status") or {}).get("terminatingReplicas")
        if value is not None:
            found, total = True, total + int(value)
    return total if found else None


# --- maxSurge / maxUnavailable ---------------------------------------------------------------------


def scaled_value(value: int | str | None, total: int, *, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: an int as is, ``"25%"`` of ``total`` rounded up or down."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    if not isinstance(value, str) or not value.endswith("%"):
        raise ValueError(f"invalid value for IntOrString: invalid type: string is not a percentage: {value!r}")
    percent = int(value[:-1])
    return math.ceil(percent * total / 100) if round_up else (percent * total) // 100


def resolve_fenceposts(max_surge: int | str | None, max_unavailable: int | str | None,
                       desired: int) -> tuple[int, int]:
    """ResolveFenceposts: surge rounds up, unavailability down; both 0 means unavailable 1."""
    surge = scaled_value(max_surge, desired, round_up=True)
    unavailable = scaled_value(max_unavailable, desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # rounding can make both 0; validation forbids only the explicit case
    return surge, unavailable


def _rolling(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}


def max_surge(d: Mapping[str, Any]) -> int:
    if strategy_type(d) != ROLLING_UPDATE:
        return 0
    rolling = _rolling(d)
    try:
        return resolve_fenceposts(rolling.get("maxSurge"), rolling.get("maxUnavailable"), spec_replicas(d))[0]
    except ValueError:
        return 0


def max_unavailable(d: Mapping[str, Any]) -> int:
    replicas = spec_replicas(d)
    if strategy_type(d) != ROLLING_UPDATE or replicas == 0:
        return 0
    rolling = _rolling(d)
    try:
        unavailable = resolve_fenceposts(rolling.get("maxSurge"), rolling.get("maxUnavailable"), replicas)[1]
    except ValueError:
        return 0
    return min(unavailable, replicas)


def new_rs_new_replicas(d: Mapping[str, Any], all_rss: Iterable[Obj | None], new_rs: Obj) -> int:
    """NewRSNewReplicas: how big the new RS may be now (RollingUpdate: within maxSurge; Recreate: all)."""
    replicas = spec_replicas(d)
    kind = strategy_type(d)
    if kind == RECREATE:
        return replicas
    if kind != ROLLING_UPDATE:
        raise ValueError(f"deployment type {kind} isn't supported")
    surge = scaled_value(_rolling(d).get("maxSurge"), replicas, round_up=True)
    current = replica_count(all_rss)
    max_total = replicas + surge
    if current >= max_total:
        return spec_replicas(new_rs)
    scale_up = min(max_total - current, replicas - spec_replicas(new_rs))
    return spec_replicas(new_rs) + scale_up


def is_saturated(d: Mapping[str, Any], rs: Obj | None) -> bool:
    """IsSaturated: the RS runs all the deployment's replicas, all of them available."""
    if rs is None:
        return False
    desired = desired_replicas_annotation(rs)
    replicas = spec_replicas(d)
    return (desired == replicas and spec_replicas(rs) == replicas
            and status_int(rs, "availableReplicas") == replicas)


def _round_ratio(numerator: int, denominator: int) -> int:
    """integer.RoundToInt32(n / d) for n ≥ 0, d > 0: halves round up (math.Round, not Python's round())."""
    return (2 * numerator + denominator) // (2 * denominator)


def replica_set_fraction(rs: Obj, d: Mapping[str, Any]) -> int:
    """getReplicaSetFraction: how many replicas ``rs`` gains (or loses) if scaled in proportion."""
    replicas = spec_replicas(d)
    if replicas == 0:
        return -spec_replicas(rs)
    max_now = replicas + max_surge(d)
    max_before = max_replicas_annotation(rs)
    if not max_before:
        max_before = status_int(d, "replicas")  # annotation lost: the deployment's last known size
        if max_before == 0:
            return 0
    return _round_ratio(spec_replicas(rs) * max_now, max_before) - spec_replicas(rs)


def replica_set_proportion(rs: Obj, d: Mapping[str, Any], to_add: int, added: int) -> int:
    """GetReplicaSetProportion: this RS's share of ``to_add``, never exceeding what is left."""
    if spec_replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = replica_set_fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


# --- annotations -----------------------------------------------------------------------------------


def replicas_annotations_need_update(rs: Mapping[str, Any], desired: int, max_replicas: int) -> bool:
    ann = annotations_of(rs)
    return ann.get(DESIRED_REPLICAS_ANNOTATION) != str(desired) or ann.get(MAX_REPLICAS_ANNOTATION) != str(max_replicas)


def set_replicas_annotations(rs: Obj, desired: int, max_replicas: int) -> bool:
    """SetReplicasAnnotations on a private copy; True when something changed."""
    ann = rs.setdefault("metadata", {}).setdefault("annotations", {})
    changed = False
    for key, value in ((DESIRED_REPLICAS_ANNOTATION, str(desired)), (MAX_REPLICAS_ANNOTATION, str(max_replicas))):
        if ann.get(key) != value:
            ann[key] = value
            changed = True
    return changed


def copy_deployment_annotations(d: Mapping[str, Any], rs: Obj) -> bool:
    """copyDeploymentAnnotationsToReplicaSet: the deployment's annotations, minus the controller's own."""
    ann = rs.setdefault("metadata", {}).setdefault("annotations", {})
    changed = False
    for key, value in annotations_of(d).items():
        if key in ANNOTATIONS_NOT_COPIED or ann.get(key) == value:
            continue
        ann[key] = value
        changed = True
    return changed


def set_new_replica_set_annotations(d: Mapping[str, Any], rs: Obj, new_revision: int, *, exists: bool) -> bool:
    """SetNewReplicaSetAnnotations on a private copy of the new RS; True when something changed.

    The RS gets the deployment's annotations and, unless it already has a higher one, ``new_revision``.
    An RS that had a revision and gets a new one is being rolled back to: its previous revisions are
    kept, comma-separated, in ``revision-history`` (at most 2000 characters, oldest dropped first).
    A new RS also gets the desired/max replicas annotations.
    """
    changed = copy_deployment_annotations(d, rs)
    ann = rs["metadata"]["annotations"]
    old_text = ann.get(REVISION_ANNOTATION)
    try:
        old_revision = int(old_text) if old_text else 0
    except ValueError:
        return False
    if old_revision < new_revision:
        ann[REVISION_ANNOTATION] = str(new_revision)
        changed = True
        if old_text is not None:
            _append_revision_history(ann, old_text)
    if not exists and set_replicas_annotations(rs, spec_replicas(d), spec_replicas(d) + max_surge(d)):
        changed = True
    return changed


def _append_revision_history(ann: dict[str, str], old_revision: str) -> None:
    history = ann.get(REVISION_HISTORY_ANNOTATION, "")
    if not history:
        ann[REVISION_HISTORY_ANNOTATION] = old_revision
        return
    revisions = history.split(",")
    total = len(history) + len(old_revision) + 1
    start = 0
    while total > MAX_REVISION_HISTORY_CHARS and start < len(revisions):
        total -= len(revisions[start]) + 1
        start += 1
    if total <= MAX_REVISION_HISTORY_CHARS:
        ann[REVISION_HISTORY_ANNOTATION] = ",".join([*revisions[start:], old_revision])


def set_deployment_revision(d: Obj, revision: str) -> bool:
    """SetDeploymentRevision on the controller's private copy; True when it changed."""
    ann = d.setdefault("metadata", {}).setdefault("annotations", {})
    if ann.get(REVISION_ANNOTATION) == revision:
        return False
    ann[REVISION_ANNOTATION] = revision
    return True


# --- conditions ------------------------------------------------------------------------------------


def get_condition(status: Mapping[str, Any], kind: str) -> Obj | None:
    for cond in status.get("conditions") or ():
        if cond.get("type") == kind:
            return cond
    return None


def new_condition(kind: str, status: str, reason: str, message: str, now: str) -> Obj:
    """NewDeploymentCondition: both times set to ``now`` (an RFC 3339 string)."""
    return {"type": kind, "status": status, "lastUpdateTime": now, "lastTransitionTime": now,
            "reason": reason, "message": message}


def set_condition(status: Obj, cond: Obj) -> None:
    """SetDeploymentCondition: no change for the same status and reason; a transition time is kept
    while the status stays the same; the condition moves to the end of the list."""
    current = get_condition(status, cond["type"])
    if current is not None and current.get("status") == cond["status"] and current.get("reason") == cond["reason"]:
        return
    if current is not None and current.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime")}
    status["conditions"] = [*(c for c in status.get("conditions") or () if c.get("type") != cond["type"]), cond]


def remove_condition(status: Obj, kind: str) -> None:
    conditions = [c for c in status.get("conditions") or () if c.get("type") != kind]
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)
