"""Pure StatefulSet rules: ordinals and identities, claims, revisions, health and status.

Everything here is a function of API objects (plain dicts) — no client, no clock (times are passed
in) — following kube-controller-manager's ``statefulset/stateful_set_utils.go``. A pod's identity is
its ordinal: the name ``<set>-<ordinal>``, the labels ``statefulset.kubernetes.io/pod-name`` and
``apps.kubernetes.io/pod-index``, ``spec.hostname`` (= the pod name) and ``spec.subdomain``
(= ``spec.serviceName``); its storage is one claim ``<template>-<set>-<ordinal>`` per
volumeClaimTemplate, mounted as the template's volume name.

A ControllerRevision holds the set's pod template as a strategic merge patch
(``{"spec": {"template": {..., "$patch": "replace"}}}``), is named ``<set>-<hash>`` and pods carry
that name in ``controller-revision-hash``. As in :mod:`controllers.deployment.util` the hash is FNV-1a
of a canonical JSON of the data (plus the collision count), not of Go's byte encoding, so the
names look like Kubernetes' but are not the same strings.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from controllers.deployment.util import _fnv1a_32, canonical_json, safe_encode_string
from controllers.podutil import is_available, is_ready, is_terminating
from machinery.meta import deep_copy, labels_of, name_of

Obj = dict[str, Any]

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"
HASH_LABEL = "controller.kubernetes.io/hash"
MAX_REVISION_PREFIX = 223

ORDERED_READY = "OrderedReady"
PARALLEL = "Parallel"
ROLLING_UPDATE = "RollingUpdate"
ON_DELETE = "OnDelete"
RETAIN = "Retain"
DELETE = "Delete"

_NAME_RE = re.compile(r"^(.*)-([0-9]+)$")


# --- spec accessors ----------------------------------------------------------------------------------


def spec_replicas(sts: Mapping[str, Any]) -> int:
    value = (sts.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def start_ordinal(sts: Mapping[str, Any]) -> int:
    return int(((sts.get("spec") or {}).get("ordinals") or {}).get("start") or 0)


def pod_management(sts: Mapping[str, Any]) -> str:
    return (sts.get("spec") or {}).get("podManagementPolicy") or ORDERED_READY


def strategy_type(sts: Mapping[str, Any]) -> str:
    return ((sts.get("spec") or {}).get("updateStrategy") or {}).get("type") or ROLLING_UPDATE


def partition(sts: Mapping[str, Any]) -> int:
    rolling = ((sts.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
    return int(rolling.get("partition") or 0)


def min_ready_seconds(sts: Mapping[str, Any]) -> int:
    return int((sts.get("spec") or {}).get("minReadySeconds") or 0)


def retention(sts: Mapping[str, Any], when: str) -> str:
    """``whenDeleted`` / ``whenScaled`` of persistentVolumeClaimRetentionPolicy (Retain by default)."""
    return ((sts.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}).get(when) or RETAIN


def revision_history_limit(sts: Mapping[str, Any]) -> int:
    value = (sts.get("spec") or {}).get("revisionHistoryLimit")
    return 10 if value is None else int(value)


# --- identity ----------------------------------------------------------------------------------------


def pod_name(sts: Mapping[str, Any], ordinal: int) -> str:
    return f"{name_of(sts)}-{ordinal}"


def parent_and_ordinal(pod: Mapping[str, Any]) -> tuple[str, int]:
    """``("web", 2)`` for ``web-2``; ``("", -1)`` for a name that is not ``<parent>-<ordinal>``."""
    match = _NAME_RE.match(name_of(pod))
    return (match.group(1), int(match.group(2))) if match else ("", -1)


def ordinal_of(pod: Mapping[str, Any]) -> int:
    return parent_and_ordinal(pod)[1]


def is_member_of(sts: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    return parent_and_ordinal(pod)[0] == name_of(sts)


def claim_name(template: Mapping[str, Any], sts: Mapping[str, Any], ordinal: int) -> str:
    return f"{name_of(template)}-{name_of(sts)}-{ordinal}"


def claim_templates(sts: Mapping[str, Any]) -> list[Obj]:
    return [t for t in (sts.get("spec") or {}).get("volumeClaimTemplates") or [] if name_of(t)]


def identity_matches(sts: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    """Name and the pod-name/pod-index labels are those of the pod's ordinal. Hostname and subdomain are set
    when the pod is created and are immutable, so (as Kubernetes) they are not part of the check."""
    ordinal = ordinal_of(pod)
    labels = labels_of(pod)
    return (ordinal >= 0 and is_member_of(sts, pod)
            and labels.get(POD_NAME_LABEL) == name_of(pod)
            and labels.get(POD_INDEX_LABEL) == str(ordinal))


def set_identity_labels(pod: Obj, ordinal: int) -> None:
    """The identity labels of ``ordinal`` (changed in place): what may be repaired on an existing pod."""
    meta = pod.setdefault("metadata", {})
    labels = meta.setdefault("labels", {})
    labels[POD_NAME_LABEL] = meta.get("name", "")
    labels[POD_INDEX_LABEL] = str(ordinal)


def set_identity(sts: Mapping[str, Any], pod: Obj, ordinal: int) -> None:
    """Give ``pod`` (changed in place) the identity of ``ordinal``."""
    meta = pod.setdefault("metadata", {})
    meta["name"] = pod_name(sts, ordinal)
    set_identity_labels(pod, ordinal)
    spec = pod.setdefault("spec", {})
    spec["hostname"] = meta["name"]
    service = (sts.get("spec") or {}).get("serviceName")
    if service:
        spec["subdomain"] = service
    else:
        spec.pop("subdomain", None)


def set_storage(sts: Mapping[str, Any], pod: Obj, ordinal: int) -> None:
    """Each claim template becomes a volume of that name using the ordinal's claim (replacing a template volume)."""
    templates = claim_templates(sts)
    if not templates:
        return
    spec = pod.setdefault("spec", {})
    names = {name_of(t) for t in templates}
    volumes = [v for v in spec.get("volumes") or [] if v.get("name") not in names]
    volumes += [{"name": name_of(t), "persistentVolumeClaim": {"claimName": claim_name(t, sts, ordinal)}}
                for t in templates]
    spec["volumes"] = volumes


def new_claim(sts: Mapping[str, Any], template: Mapping[str, Any], ordinal: int) -> Obj:
    """The PersistentVolumeClaim object for one template and ordinal (labels: template's + the selector's)."""
    meta: Obj = {"name": claim_name(template, sts, ordinal), "namespace": (sts.get("metadata") or {}).get("namespace")}
    tmeta = template.get("metadata") or {}
    match_labels = ((sts.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    labels = {**(tmeta.get("labels") or {}), **match_labels}
    if labels:
        meta["labels"] = labels
    if tmeta.get("annotations"):
        meta["annotations"] = deep_copy(tmeta["annotations"])
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta,
            "spec": deep_copy(template.get("spec") or {})}


# --- revisions ---------------------------------------------------------------------------------------


def revision_data(sts: Mapping[str, Any]) -> Obj:
    """getPatch: the set's template as a strategic merge patch that replaces the whole template."""
    template = deep_copy((sts.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def template_of_revision(revision: Mapping[str, Any]) -> Obj:
    template = deep_copy(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def revision_hash(data: Mapping[str, Any], collision_count: int | None) -> str:
    h = _fnv1a_32(canonical_json(data))
    if collision_count:
        h = _fnv1a_32(struct.pack("<I", collision_count & 0xFFFFFFFF), h)
    return safe_encode_string(str(h))


def revision_number(revision: Mapping[str, Any]) -> int:
    return int(revision.get("revision") or 0)


def sorted_revisions(revisions: Iterable[Obj]) -> list[Obj]:
    """Oldest first: by revision number, then creation time, then name."""
    return sorted(revisions, key=lambda r: (revision_number(r), (r.get("metadata") or {}).get(
        "creationTimestamp") or "", name_of(r)))


def equal_revision(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return canonical_json(a.get("data")) == canonical_json(b.get("data"))


def pod_revision(pod: Mapping[str, Any]) -> str:
    return labels_of(pod).get(REVISION_LABEL, "")


# --- health ------------------------------------------------------------------------------------------


def is_created(pod: Mapping[str, Any] | None) -> bool:
    return pod is not None


def is_running_and_ready(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and is_ready(pod)


def is_running_and_available(pod: Mapping[str, Any], min_ready: int, now: datetime) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and is_available(pod, min_ready, now)


def is_healthy(pod: Mapping[str, Any], min_ready: int, now: datetime) -> bool:
    """Running, available for minReadySeconds and not terminating (what OrderedReady waits for)."""
    return is_running_and_available(pod, min_ready, now) and not is_terminating(pod)


def is_finished(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")


# --- status ------------------------------------------------------------------------------------------


def calculate_status(sts: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], current: str, update: str,
                     collision_count: int, now: datetime) -> Obj:
    """The status Kubernetes writes: counts over the set's pods plus the revisions (rolled over when complete)."""
    min_ready = min_ready_seconds(sts)
    status: Obj = {"observedGeneration": (sts.get("metadata") or {}).get("generation", 0), "replicas": 0,
                   "readyReplicas": 0, "availableReplicas": 0, "currentReplicas": 0, "updatedReplicas": 0,
                   "currentRevision": current, "updateRevision": update, "collisionCount": collision_count}
    for pod in pods:
        status["replicas"] += 1
        if is_running_and_ready(pod):
            status["readyReplicas"] += 1
            if is_running_and_available(pod, min_ready, now):
                status["availableReplicas"] += 1
        if not is_terminating(pod):
            revision = pod_revision(pod)
            status["currentReplicas"] += revision == current
            status["updatedReplicas"] += revision == update
    if (strategy_type(sts) == ROLLING_UPDATE and status["updatedReplicas"] == status["replicas"]
            and status["readyReplicas"] == status["replicas"]):
        status["currentRevision"], status["currentReplicas"] = update, status["updatedReplicas"]
    old_conditions = (sts.get("status") or {}).get("conditions")
    if old_conditions:
        status["conditions"] = old_conditions
    return status
