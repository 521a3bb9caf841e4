"""Pure DaemonSet rules: which nodes get a daemon pod, what that pod looks like, and the status counts.

Everything here is a function of API objects (plain dicts), so the placement and rollout rules can be
unit-tested on their own. They follow kube-controller-manager's ``daemon`` and ``daemon/util`` packages:

- :func:`node_should_run_daemon_pod` is ``NodeShouldRunDaemonPod``: a node must match the template's
  ``nodeName`` (when set), ``nodeSelector`` and required node affinity; the node's ``NoSchedule`` and
  ``NoExecute`` taints must be tolerated for a new pod (*should run*), only its ``NoExecute`` taints
  for an existing one to stay (*should continue running*). The automatic daemon tolerations
  (:data:`DAEMON_TOLERATIONS`) are added before judging, as ``NewPod`` does.
- :func:`pod_template_for` is ``CreatePodTemplate`` + ``ReplaceDaemonSetPodNodeNameNodeAffinity``: the
  template with the tolerations, the ``controller-revision-hash`` and ``pod-template-generation`` labels,
  and required node affinity pinning ``metadata.name`` to one node, so the scheduler binds it there.
- :func:`revision_hash` hashes the template like the Deployment's pod-template-hash (FNV-1a 32 of a
  canonical JSON, see :mod:`controllers.deployment.util`): stable, Kubernetes-shaped, not byte-identical.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from controllers.deployment.util import canonical_json, compute_hash
from controllers.podutil import is_available, is_ready
from machinery.meta import deep_copy, is_being_deleted, labels_of, name_of, parse_rfc3339
from machinery.nodeaffinity import OBJECT_NAME_FIELD, compile_node_selector, node_selector_matches
from machinery.taints import DO_NOT_SCHEDULE_EFFECTS, NO_EXECUTE, NO_SCHEDULE, find_untolerated_taint

Obj = dict[str, Any]

REVISION_HASH_LABEL = "controller-revision-hash"
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
ROLLING_UPDATE, ON_DELETE = "RollingUpdate", "OnDelete"
DEFAULT_REVISION_HISTORY_LIMIT = 10

#: AddOrUpdateDaemonPodTolerations: daemons survive the conditions that make other pods leave a node
DAEMON_TOLERATIONS: tuple[Obj, ...] = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": NO_EXECUTE},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": NO_EXECUTE},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": NO_SCHEDULE},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": NO_SCHEDULE},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": NO_SCHEDULE},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": NO_SCHEDULE},
)
#: added only to hostNetwork daemons (they do not need the pod network)
NETWORK_UNAVAILABLE_TOLERATION: Obj = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
                                       "effect": NO_SCHEDULE}


# --- tolerations and node eligibility -------------------------------------------------------------


def _same_toleration(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Toleration.MatchToleration: same key, operator, value and effect (tolerationSeconds may differ)."""
    return all((a.get(f) or "") == (b.get(f) or "") for f in ("key", "operator", "value", "effect"))


def add_daemon_tolerations(pod_spec: Obj) -> Obj:
    """Add (or replace the matching) automatic daemon tolerations in ``pod_spec`` (changed in place)."""
    wanted = list(DAEMON_TOLERATIONS)
    if pod_spec.get("hostNetwork"):
        wanted.append(NETWORK_UNAVAILABLE_TOLERATION)
    tolerations = list(pod_spec.get("tolerations") or [])
    for toleration in wanted:
        tolerations = [t for t in tolerations if not _same_toleration(t, toleration)] + [dict(toleration)]
    pod_spec["tolerations"] = tolerations
    return pod_spec


def _template_spec(ds: Mapping[str, Any]) -> Obj:
    return (((ds.get("spec") or {}).get("template") or {}).get("spec")) or {}


def node_should_run_daemon_pod(node: Mapping[str, Any], ds: Mapping[str, Any]) -> tuple[bool, bool]:
    """(should_run, should_continue_running) for ``ds`` on ``node`` (NodeShouldRunDaemonPod)."""
    spec = _template_spec(ds)
    if spec.get("nodeName") and spec["nodeName"] != name_of(node):
        return False, False
    if not fits_node_affinity(spec, node):
        return False, False
    tolerations = add_daemon_tolerations(deep_copy(spec)).get("tolerations") or []
    taints = (node.get("spec") or {}).get("taints") or []
    if find_untolerated_taint(taints, tolerations, DO_NOT_SCHEDULE_EFFECTS) is None:
        return True, True
    return False, find_untolerated_taint(taints, tolerations, frozenset({NO_EXECUTE})) is None


def fits_node_affinity(pod_spec: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """The pod spec's nodeSelector AND its required node affinity match ``node``."""
    labels = labels_of(node)
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    return required is None or node_selector_matches(compile_node_selector(required), labels, name_of(node))


# --- pods ------------------------------------------------------------------------------------------


def pin_to_node(affinity: Obj | None, node_name: str) -> Obj:
    """ReplaceDaemonSetPodNodeNameNodeAffinity: required node affinity becomes ``metadata.name In [node]``.

    The other required terms were already checked by the controller, so they are replaced; preferred
    terms and pod (anti-)affinity are kept.
    """
    affinity = dict(affinity or {})
    node_affinity = dict(affinity.get("nodeAffinity") or {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": OBJECT_NAME_FIELD, "operator": "In", "values": [node_name]}]}]}
    affinity["nodeAffinity"] = node_affinity
    return affinity


def pod_template_for(ds: Mapping[str, Any], hash_: str, node_name: str) -> Obj:
    """The pod template of ``ds``'s daemon pod for ``node_name`` (CreatePodTemplate, then pinned)."""
    template = deep_copy((ds.get("spec") or {}).get("template") or {})
    meta = template.setdefault("metadata", {})
    labels = meta.setdefault("labels", {})
    labels[TEMPLATE_GENERATION_LABEL] = str((ds.get("metadata") or {}).get("generation") or 0)
    if hash_:
        labels[REVISION_HASH_LABEL] = hash_
    spec = add_daemon_tolerations(template.setdefault("spec", {}))
    spec["affinity"] = pin_to_node(spec.get("affinity"), node_name)
    return template


def target_node_name(pod: Mapping[str, Any]) -> str:
    """util.GetTargetNodeName: spec.nodeName, else the node the pod's required affinity pins it to."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = ((((spec.get("affinity") or {}).get("nodeAffinity") or {})
                 .get("requiredDuringSchedulingIgnoredDuringExecution")) or {})
    for term in required.get("nodeSelectorTerms") or ():
        for expr in term.get("matchFields") or ():
            if expr.get("key") == OBJECT_NAME_FIELD and expr.get("operator") == "In" and expr.get("values"):
                return expr["values"][0]
    return ""


def by_creation(pods: Iterable[Mapping[str, Any]]) -> list[Any]:
    """podByCreationTimestampAndPhase: running pods first, then the oldest first, then by name."""
    def rank(pod: Mapping[str, Any]) -> tuple:
        stamp = (pod.get("metadata") or {}).get("creationTimestamp")
        phase = (pod.get("status") or {}).get("phase")
        return (0 if phase == "Running" else 1, parse_rfc3339(stamp).timestamp() if stamp else 0.0, name_of(pod))
    return sorted(pods, key=rank)


def is_pod_updated(pod: Mapping[str, Any], hash_: str) -> bool:
    return bool(hash_) and labels_of(pod).get(REVISION_HASH_LABEL) == hash_


def split_by_hash(pods: Sequence[Mapping[str, Any]], hash_: str) -> tuple[Any, Any, bool]:
    """findUpdatedPodsOnNode: (new pod, old pod, ok) of one node's live pods; not ok when there are several."""
    new_pod = old_pod = None
    for pod in pods:
        if is_being_deleted(pod):
            continue
        if is_pod_updated(pod, hash_):
            if new_pod is not None:
                return None, None, False
            new_pod = pod
        else:
            if old_pod is not None:
                return None, None, False
            old_pod = pod
    return new_pod, old_pod, True


# --- revisions -------------------------------------------------------------------------------------


def revision_hash(ds: Mapping[str, Any]) -> str:
    return compute_hash((ds.get("spec") or {}).get("template") or {}, (ds.get("status") or {}).get("collisionCount"))


def revision_data(ds: Mapping[str, Any]) -> Obj:
    """The ControllerRevision ``data`` of ``ds``: its template as a replacing strategic-merge patch (getPatch)."""
    template = deep_copy((ds.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def revision_matches(revision: Mapping[str, Any], ds: Mapping[str, Any]) -> bool:
    """Whether ``revision`` records ``ds``'s current template (daemon Match)."""
    return canonical_json(revision.get("data") or {}) == canonical_json(revision_data(ds))


def revision_name(ds: Mapping[str, Any], hash_: str) -> str:
    """ControllerRevisionName: ``<ds>-<hash>``, the prefix cut so the name stays a valid object name."""
    return f"{name_of(ds)[:223]}-{hash_}"


# --- rollout arithmetic and status ---------------------------------------------------------------


def strategy_type(ds: Mapping[str, Any]) -> str:
    return (((ds.get("spec") or {}).get("updateStrategy") or {}).get("type")) or ROLLING_UPDATE


def _scaled(value: Any, total: int, round_up: bool) -> int:
    if value is None:
        return 0
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def surge_and_unavailable(ds: Mapping[str, Any], desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) against ``desired`` nodes (surge rounds up, unavailable down; never both 0)."""
    rolling = (((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate")) or {}
    surge = _scaled(rolling.get("maxSurge"), desired, True)
    unavailable = _scaled(rolling.get("maxUnavailable", 1), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def allows_surge(ds: Mapping[str, Any]) -> bool:
    """util.AllowsSurge: a RollingUpdate whose maxSurge is not zero (any non-zero percentage counts)."""
    rolling = (((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate")) or {}
    return strategy_type(ds) == ROLLING_UPDATE and _scaled(rolling.get("maxSurge"), 1, True) != 0


def calculate_status(ds: Mapping[str, Any], nodes: Iterable[Mapping[str, Any]],
                     node_to_pods: Mapping[str, list[Any]], hash_: str, now: datetime) -> Obj:
    """updateDaemonSetStatus' counts over every node (the oldest live pod of a node is the one judged)."""
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    desired = current = misscheduled = ready = available = updated = 0
    for node in nodes:
        should_run, _ = node_should_run_daemon_pod(node, ds)
        pods = node_to_pods.get(name_of(node)) or []
        if not should_run:
            misscheduled += 1 if pods else 0
            continue
        desired += 1
        if not pods:
            continue
        current += 1
        pod = by_creation(pods)[0]
        if is_ready(pod):
            ready += 1
            available += 1 if is_available(pod, min_ready, now) else 0
        updated += 1 if is_pod_updated(pod, hash_) else 0
    status: Obj = dict(ds.get("status") or {})
    status.update({
        "observedGeneration": (ds.get("metadata") or {}).get("generation", 0),
        "currentNumberScheduled": current, "numberMisscheduled": misscheduled,
        "desiredNumberScheduled": desired, "numberReady": ready, "updatedNumberScheduled": updated,
        "numberAvailable": available, "numberUnavailable": desired - available,
    })
    return status
