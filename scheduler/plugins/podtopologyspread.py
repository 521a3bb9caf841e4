"""PodTopologySpread: spread a group of pods evenly over topology domains (zones, nodes, ...).

A constraint counts the pods its ``labelSelector`` (plus ``matchLabelKeys`` with the incoming pod's
values) selects in the pod's namespace, per value of the node label ``topologyKey``. Only *eligible*
nodes count: those carrying every constraint's topology key and, per the constraint's policies,
matching the pod's node affinity/selector (``nodeAffinityPolicy``, default Honor) and having no
untolerated NoSchedule/NoExecute taint (``nodeTaintsPolicy``, default Ignore).

``whenUnsatisfiable: DoNotSchedule`` constraints filter: placing the pod on a node must keep
``matching pods in the node's domain + (1 if the pod itself matches) - the global minimum <= maxSkew``,
where the global minimum is the smallest domain's count, or 0 while there are fewer eligible domains
than ``minDomains``. A violation is UNSCHEDULABLE "node(s) didn't match pod topology spread
constraints" (preemption may help); a node without the topology label is UNSCHEDULABLE_AND_UNRESOLVABLE
"... (missing required label)".

``ScheduleAnyway`` constraints score: a node's raw score is, per constraint, ``matching pods in its
domain * log(number of domains + 2) + maxSkew - 1``; NormalizeScore turns fewer into higher
(``100 * (max + min - score) / max``).

Pods without constraints get the cluster defaults (args ``defaultingType: System`` — hostname maxSkew 3
and zone maxSkew 5, both ScheduleAnyway — or ``List`` with ``defaultConstraints``), with a selector built
like kube-scheduler's DefaultSelector from the Services selecting the pod and its controlling ReplicaSet
or StatefulSet (read from informer stores this plugin asks the handle's informer factory for); a pod
that none of those selects gets no default constraints (ReplicationControllers are not looked up). With
System defaulting a node missing the zone label still gets hostname spreading.

Counting matching pods over every node for every pod would cost O(pods in the cluster) per cycle, so
counts are cached: per node (:class:`NodeCountCache`) and per domain (:class:`DomainCountCache`), keyed
by the question (selector, namespace, topology key, eligibility) and refreshed for the nodes whose
``generation`` or pod count changed since the last cycle — usually just the node the previous pod went to.
InterPodAffinity counts its terms' matches with the same caches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from machinery import labels as lbl
from machinery.cache import NAMESPACE_INDEX
from machinery.client import REPLICA_SETS, SERVICES, STATEFUL_SETS
from machinery.meta import controller_ref
from scheduler.framework import ClusterEvent, CycleState, Handle, NodeInfo, NodeScore, PodInfo, PreFilterResult, Status
from scheduler.framework.interface import MAX_NODE_SCORE
from scheduler.framework.status import error, skip, unresolvable, unschedulable
from scheduler.plugins.nodeaffinity import RequiredNodeAffinity
from scheduler.plugins.tainttoleration import find_untolerated_taint, node_taints, pod_tolerations

ERR_REASON_CONSTRAINTS_NOT_MATCH = "node(s) didn't match pod topology spread constraints"
ERR_REASON_NODE_LABEL_NOT_MATCH = ERR_REASON_CONSTRAINTS_NOT_MATCH + " (missing required label)"
PRE_FILTER_KEY = "PreFilterPodTopologySpread"
PRE_SCORE_KEY = "PreScorePodTopologySpread"
DO_NOT_SCHEDULE, SCHEDULE_ANYWAY = "DoNotSchedule", "ScheduleAnyway"
HONOR, IGNORE = "Honor", "Ignore"
SYSTEM_DEFAULTING, LIST_DEFAULTING = "System", "List"
LABEL_HOSTNAME = "kubernetes.io/hostname"
LABEL_TOPOLOGY_ZONE = "topology.kubernetes.io/zone"
SYSTEM_DEFAULT_CONSTRAINTS: tuple[Mapping[str, Any], ...] = (
    {"topologyKey": LABEL_HOSTNAME, "whenUnsatisfiable": SCHEDULE_ANYWAY, "maxSkew": 3},
    {"topologyKey": LABEL_TOPOLOGY_ZONE, "whenUnsatisfiable": SCHEDULE_ANYWAY, "maxSkew": 5},
)

Obj = Mapping[str, Any]
Labels = Mapping[str, str]
_EMPTY: Labels = {}


@dataclass(frozen=True, slots=True)
class Constraint:
    """One topologySpreadConstraint with its selector compiled and defaults applied."""

    max_skew: int
    topology_key: str
    selector: lbl.Selector
    min_domains: int = 1
    honor_node_affinity: bool = True
    honor_node_taints: bool = False

    @property
    def counts_nothing(self) -> bool:
        """countPodsMatchSelector: an empty selector (and one matching nothing) counts no pod."""
        return self.selector.empty or self.selector.matches_nothing


def parse_constraints(raw: Sequence[Obj], pod_labels: Labels, action: str) -> list[Constraint]:
    """The constraints with ``whenUnsatisfiable == action``; raises SelectorError for a bad selector."""
    result = []
    for c in raw:
        if c.get("whenUnsatisfiable") != action:
            continue
        selector = lbl.selector_from_label_selector(c.get("labelSelector"))
        # matchLabelKeys: what the API server merges at creation (a nil selector stays "nothing")
        extra = [lbl.new_requirement(key, lbl.IN, [pod_labels[key]])
                 for key in c.get("matchLabelKeys") or () if key in pod_labels]
        if extra:
            selector = selector.add(*extra)
        min_domains = c.get("minDomains")
        result.append(Constraint(
            max_skew=int(c.get("maxSkew") or 0), topology_key=c.get("topologyKey") or "", selector=selector,
            min_domains=int(min_domains) if min_domains is not None else 1,
            honor_node_affinity=(c.get("nodeAffinityPolicy") or HONOR) == HONOR,
            honor_node_taints=(c.get("nodeTaintsPolicy") or IGNORE) == HONOR))
    return result


def count_matching(pods: Sequence[PodInfo], matches: Callable[[Labels | None], bool], namespace: str) -> int:
    """Pods in ``namespace``, not terminating, whose labels ``matches`` accepts."""
    count = 0
    for pod_info in pods:
        if pod_info.namespace != namespace:
            continue
        meta = pod_info.pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        if matches(meta.get("labels")):
            count += 1
    return count


def node_labels_of(node_info: NodeInfo) -> Labels:
    """A node's labels without the property and helper calls (hot loops over every node)."""
    node = node_info.node
    return ((node.get("metadata") or _EMPTY).get("labels") or _EMPTY) if node is not None else _EMPTY


class NodeCountCache:
    """Per-node counts of matching pods, remembered until the scheduler cache changes the node.

    Consecutive pods of one workload ask the same question (how many pods with these labels on each
    node?) of a thousand nodes of which only the last-used one changed; the answer is kept per question
    ``key`` and per NodeInfo, and recomputed when the node's ``generation`` (bumped by the scheduler
    cache on every pod or node change) or its pod count differs. A NodeInfo that is not the cached object
    (a preemption clone) is simply counted.
    """

    def __init__(self, max_keys: int = 128) -> None:
        self.max_keys = max_keys
        self._by_key: dict[Hashable, dict[int, tuple[NodeInfo, int, int, int]]] = {}  # least recently used first

    def counter(self, key: Hashable, count_pods: Callable[[list[PodInfo]], int]) -> Callable[[NodeInfo], int]:
        per_node = self._by_key.pop(key, None)
        if per_node is None:
            per_node = {}
            if len(self._by_key) >= self.max_keys:
                del self._by_key[next(iter(self._by_key))]
        self._by_key[key] = per_node

        def count(node_info: NodeInfo) -> int:
            pods = node_info.pods
            if not pods:
                return 0
            cached = per_node.get(id(node_info))
            if (cached is not None and cached[0] is node_info and cached[1] == node_info.generation
                    and cached[2] == len(pods)):
                return cached[3]
            value = count_pods(pods)
            per_node[id(node_info)] = (node_info, node_info.generation, len(pods), value)
            return value

        return count


class _Domains:
    """One question's answer over a node list: each node's (domain, matching pods) and the domain sums."""

    __slots__ = ("contributions", "members", "nodes", "signature", "totals")

    def __init__(self, nodes: list[NodeInfo]) -> None:
        self.nodes = nodes
        self.signature: list[tuple[NodeInfo, int, int]] = []
        self.contributions: list[tuple[str, int] | None] = []
        self.members: dict[str, int] = {}  # eligible nodes per domain (a domain with no matching pod still counts)
        self.totals: dict[str, int] = {}

    def add(self, contribution: tuple[str, int] | None, sign: int) -> None:
        if contribution is None:
            return
        value, count = contribution
        members = self.members.get(value, 0) + sign
        if members:
            self.members[value] = members
            self.totals[value] = self.totals.get(value, 0) + sign * count
        else:
            del self.members[value]
            del self.totals[value]


class DomainCountCache:
    """Matching pods per topology domain over every node, kept up to date by re-counting changed nodes only.

    The scheduler hands every cycle the same node list, and between two pods usually one node changed
    (the previous pod was assumed there). Comparing each node's (object, generation, pod count) with
    the last cycle finds the changed ones; only they are counted again. Any other list is counted in full.
    """

    def __init__(self, max_keys: int = 128) -> None:
        self.max_keys = max_keys
        self._entries: dict[Hashable, _Domains] = {}  # least recently used first

    def totals(self, key: Hashable, nodes: list[NodeInfo], topology_key: str, required_keys: Sequence[str] | None,
               counter: Callable[[NodeInfo], int],
               include: Callable[[NodeInfo, Labels], bool] | None = None) -> dict[str, int]:
        """Domain -> matching pods, over nodes that have every ``required_keys`` label (None: any node, with
        a missing ``topology_key`` label read as "") and that ``include`` accepts. ``key`` must identify
        the question: the counter's pods, the topology key, the required keys and what ``include`` checks."""

        def contribution(node_info: NodeInfo) -> tuple[str, int] | None:
            node_labels = node_labels_of(node_info)
            if required_keys is not None and not _has_all_keys(node_labels, required_keys):
                return None
            if include is not None and not include(node_info, node_labels):
                return None
            return node_labels.get(topology_key, ""), counter(node_info)

        signature = [(n, n.generation, len(n.pods)) for n in nodes]
        entry = self._entries.pop(key, None)
        if entry is None and len(self._entries) >= self.max_keys:
            del self._entries[next(iter(self._entries))]
        if entry is None or entry.nodes is not nodes or len(entry.signature) != len(signature):
            entry = _Domains(nodes)
            entry.contributions = [contribution(n) for n in nodes]
            for item in entry.contributions:
                entry.add(item, 1)
        elif entry.signature != signature:
            for i, (old, new) in enumerate(zip(entry.signature, signature, strict=True)):
                if old != new:
                    entry.add(entry.contributions[i], -1)
                    entry.contributions[i] = contribution(new[0])
                    entry.add(entry.contributions[i], 1)
        entry.signature = signature
        self._entries[key] = entry
        return entry.totals


def _has_all_keys(node_labels: Labels, keys: Sequence[str]) -> bool:
    for key in keys:  # noqa: SIM110 - a plain loop is faster than all()
        if key not in node_labels:
            return False
    return True


class _NodeEligibility:
    """nodeAffinityPolicy / nodeTaintsPolicy for one incoming pod, computed once."""

    __slots__ = ("affinity_key", "required", "tolerations", "tolerations_key")

    def __init__(self, pod_info: PodInfo) -> None:
        required = RequiredNodeAffinity(pod_info.pod)
        self.required = None if required.empty else required
        self.tolerations = pod_tolerations(pod_info)
        spec = pod_info.spec
        # what the verdicts depend on, as cache keys (pods of one workload share them)
        self.affinity_key = repr((spec.get("nodeSelector"), (spec.get("affinity") or {}).get("nodeAffinity")))
        self.tolerations_key = repr(self.tolerations)

    def needed(self, c: Constraint) -> bool:
        """Whether some node may be left out of ``c``'s counts for this pod."""
        return (c.honor_node_affinity and self.required is not None) or c.honor_node_taints

    def key(self, c: Constraint) -> tuple[str | None, str | None]:
        return (self.affinity_key if c.honor_node_affinity and self.required is not None else None,
                self.tolerations_key if c.honor_node_taints else None)

    def includes(self, c: Constraint, node_info: NodeInfo, node_labels: Labels) -> bool:
        if c.honor_node_affinity and self.required is not None and \
                not self.required.matches(node_labels, node_info.name):
            return False
        return not (c.honor_node_taints and find_untolerated_taint(node_taints(node_info), self.tolerations))


class _PreFilterState:
    __slots__ = ("constraints", "counts", "keys", "min_match", "self_match")

    def __init__(self, constraints: list[Constraint], counts: list[dict[str, int]], self_match: list[int]) -> None:
        self.constraints = constraints
        self.keys = [c.topology_key for c in constraints]
        self.counts = counts
        self.self_match = self_match
        self.min_match = [self._min(i) for i in range(len(constraints))]

    def _min(self, i: int) -> int:
        counts = self.counts[i]
        if len(counts) < self.constraints[i].min_domains:
            return 0  # fewer eligible domains than minDomains: the global minimum is 0
        return min(counts.values(), default=0)

    def update(self, i: int, value: str, delta: int) -> None:
        self.counts[i][value] = self.counts[i].get(value, 0) + delta
        self.min_match[i] = self._min(i)

    def clone(self) -> _PreFilterState:
        return _PreFilterState(self.constraints, [dict(c) for c in self.counts], self.self_match)


_Row = tuple[str, float, int, "Callable[[NodeInfo], int] | None", dict[str, int]]


class _PreScoreState:
    """Per constraint a row (topology key, weight, maxSkew - 1, per-node counter or None, counts per domain);
    the filtered nodes' raw scores are worked out in PreScore (by NodeInfo id), Score only looks them up."""

    __slots__ = ("constraints", "ignored_nodes", "raw_scores", "rows")

    def __init__(self, constraints: list[Constraint], ignored_nodes: set[str], rows: list[_Row]) -> None:
        self.constraints = constraints
        self.ignored_nodes = ignored_nodes
        self.rows = rows
        self.raw_scores: dict[int, int] = {}


def _raw_score(rows: list[_Row], node_info: NodeInfo) -> int:
    node_labels = node_labels_of(node_info)
    total = 0.0
    for key, weight, base, counter, counts in rows:
        value = node_labels.get(key)
        if value is not None:
            matching = counter(node_info) if counter is not None else counts.get(value, 0)
            total += matching * weight + base
    return math.floor(total + 0.5)  # Go's math.Round for a non-negative number


def _normalizing_weight(size: int) -> float:
    """Domains count less the more there are, so small topologies are not watered down (log(size + 2))."""
    return math.log(size + 2)


def _validate_default_constraints(raw: Sequence[Obj]) -> None:
    seen: set[tuple[str, str]] = set()
    for i, c in enumerate(raw):
        where = f"defaultConstraints[{i}]"
        if int(c.get("maxSkew") or 0) <= 0:
            raise ValueError(f"{where}.maxSkew: Invalid value: {c.get('maxSkew')!r}: must be greater than zero")
        if not c.get("topologyKey"):
            raise ValueError(f"{where}.topologyKey: Required value: can not be empty")
        when = c.get("whenUnsatisfiable")
        if when not in (DO_NOT_SCHEDULE, SCHEDULE_ANYWAY):
            raise ValueError(f'{where}.whenUnsatisfiable: Unsupported value: {when!r}: supported values: '
                             f'"{DO_NOT_SCHEDULE}", "{SCHEDULE_ANYWAY}"')
        if c.get("labelSelector") is not None:
            raise ValueError(f"{where}.labelSelector: Forbidden: constraint must not define a selector, "
                             "as they deduced for each pod")
        pair = (c["topologyKey"], when)
        if pair in seen:
            raise ValueError(f"{where}: Duplicate value: {{{pair[0]!r}, {pair[1]!r}}}")
        seen.add(pair)


class PodTopologySpread:
    NAME = "PodTopologySpread"

    def __init__(self, args: dict[str, Any] | None, handle: Handle) -> None:
        args = args or {}
        defaulting = args.get("defaultingType") or SYSTEM_DEFAULTING
        raw = list(args.get("defaultConstraints") or ())
        if defaulting == SYSTEM_DEFAULTING:
            if raw:
                raise ValueError('PodTopologySpread args: defaultConstraints: Invalid value: when .defaultingType '
                                 'is "System", .defaultConstraints must be empty')
            raw = list(SYSTEM_DEFAULT_CONSTRAINTS)
        elif defaulting == LIST_DEFAULTING:
            try:
                _validate_default_constraints(raw)
            except ValueError as exc:
                raise ValueError(f"PodTopologySpread args: {exc}") from None
        else:
            raise ValueError(f'PodTopologySpread args: defaultingType: Unsupported value: {defaulting!r}: '
                             f'supported values: "{LIST_DEFAULTING}", "{SYSTEM_DEFAULTING}"')
        self.default_constraints: list[Obj] = raw
        self.system_defaulted = defaulting == SYSTEM_DEFAULTING
        self.handle = handle
        self._services = self._replica_sets = self._stateful_sets = None
        if raw and handle.informers is not None:
            self._services = handle.informers.informer(SERVICES).store
            self._replica_sets = handle.informers.informer(REPLICA_SETS).store
            self._stateful_sets = handle.informers.informer(STATEFUL_SETS).store
        self._counts = NodeCountCache()
        self._domains = DomainCountCache()
        self._owner_selectors: dict[str, tuple[Obj, lbl.Selector]] = {}

    # --- constraints --------------------------------------------------------------------------------

    def _constraints(self, pod_info: PodInfo, action: str) -> list[Constraint]:
        raw = pod_info.spec.get("topologySpreadConstraints")
        if raw:
            return parse_constraints(raw, pod_info.labels, action)
        constraints = parse_constraints(self.default_constraints, pod_info.labels, action)
        if not constraints:
            return []
        selector = self.default_selector(pod_info)
        if selector.empty:
            return []
        return [Constraint(c.max_skew, c.topology_key, selector, c.min_domains, c.honor_node_affinity,
                           c.honor_node_taints) for c in constraints]

    def default_selector(self, pod_info: PodInfo) -> lbl.Selector:
        """helper.DefaultSelector: the selectors of the Services, ReplicaSet or StatefulSet owning the pod."""
        pod_labels = pod_info.labels
        merged: dict[str, str] = {}
        if self._services is not None:
            for service in self._services.by_index(NAMESPACE_INDEX, pod_info.namespace):
                wanted = (service.get("spec") or {}).get("selector")
                if wanted is None:  # a Service without a selector selects nothing
                    continue
                if all(pod_labels.get(k) == v for k, v in wanted.items()):
                    merged.update(wanted)
        try:
            selector = lbl.selector_from_set(merged)
        except lbl.SelectorError:
            selector = lbl.Selector.everything()
        owner = controller_ref(pod_info.pod)
        if owner is None:
            return selector
        store = None
        if owner.get("apiVersion") == "apps/v1":
            store = {"ReplicaSet": self._replica_sets, "StatefulSet": self._stateful_sets}.get(owner.get("kind"))
        if store is None:
            return selector
        controller = store.get_by_name(pod_info.namespace, owner.get("name") or "")
        if controller is None:
            return selector
        owner_selector = self._owner_selector(controller)
        if owner_selector is None:
            return selector
        return selector.add(*owner_selector.requirements)

    def _owner_selector(self, controller: Obj) -> lbl.Selector | None:
        uid = (controller.get("metadata") or {}).get("uid") or ""
        cached = self._owner_selectors.get(uid)
        if cached is not None and cached[0] is controller:
            return cached[1]
        try:
            selector = lbl.selector_from_label_selector((controller.get("spec") or {}).get("selector"))
        except lbl.SelectorError:
            return None
        if selector.matches_nothing:
            return None
        if len(self._owner_selectors) > 4096:
            self._owner_selectors.clear()
        self._owner_selectors[uid] = (controller, selector)
        return selector

    # --- counting -----------------------------------------------------------------------------------

    def _node_counter(self, c: Constraint, namespace: str) -> Callable[[NodeInfo], int]:
        """Matching pods on one node (cached per node between scheduler-cache changes)."""
        if c.counts_nothing:
            return lambda _node_info: 0
        matches = c.selector.matches
        return self._counts.counter((str(c.selector), namespace),
                                    lambda pods: count_matching(pods, matches, namespace))

    def _domain_counts(self, pod_info: PodInfo, c: Constraint, counter: Callable[[NodeInfo], int],
                       nodes: list[NodeInfo], required_keys: list[str] | None,
                       eligibility: _NodeEligibility) -> dict[str, int]:
        """Matching pods per domain of ``c`` over the eligible nodes (a fresh dict the caller may change)."""
        key = (str(c.selector), pod_info.namespace, c.topology_key,
               None if required_keys is None else tuple(required_keys), eligibility.key(c))
        include = (lambda node_info, node_labels: eligibility.includes(c, node_info, node_labels)) \
            if eligibility.needed(c) else None
        return dict(self._domains.totals(key, nodes, c.topology_key, required_keys, counter, include))

    # --- Filter -------------------------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod_info: PodInfo,
                   nodes: list[NodeInfo]) -> tuple[PreFilterResult | None, Status | None]:
        try:
            constraints = self._constraints(pod_info, DO_NOT_SCHEDULE)
        except lbl.SelectorError as exc:
            return None, error(f"get constraints from pod: {exc}")
        if not constraints:
            return None, skip()
        keys = [c.topology_key for c in constraints]
        eligibility = _NodeEligibility(pod_info)
        counts = [self._domain_counts(pod_info, c, self._node_counter(c, pod_info.namespace), nodes, keys,
                                      eligibility) for c in constraints]
        pod_labels = pod_info.labels
        self_match = [1 if c.selector.matches(pod_labels) else 0 for c in constraints]
        state.write(PRE_FILTER_KEY, _PreFilterState(constraints, counts, self_match))
        return None, None

    def filter(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo) -> Status | None:
        s: _PreFilterState | None = state.get(PRE_FILTER_KEY)
        if s is None:
            return error(f"reading {PRE_FILTER_KEY!r} from cycleState: not found")
        node_labels = node_info.labels
        for i, c in enumerate(s.constraints):
            value = node_labels.get(c.topology_key)
            if value is None:
                return unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH)
            if s.counts[i].get(value, 0) + s.self_match[i] - s.min_match[i] > c.max_skew:
                return unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH)
        return None

    def _update_with_pod(self, state: CycleState, pod_info: PodInfo, other: PodInfo, node_info: NodeInfo,
                         delta: int) -> None:
        s: _PreFilterState | None = state.get(PRE_FILTER_KEY)
        if s is None or other.namespace != pod_info.namespace or node_info.node is None:
            return
        node_labels = node_info.labels
        if not _has_all_keys(node_labels, s.keys):
            return
        eligibility = _NodeEligibility(pod_info)
        other_labels = other.labels
        for i, c in enumerate(s.constraints):
            if c.selector.matches(other_labels) and eligibility.includes(c, node_info, node_labels):
                s.update(i, node_labels[c.topology_key], delta)

    def add_pod(self, state: CycleState, pod_info: PodInfo, pod_to_add: PodInfo,
                node_info: NodeInfo) -> Status | None:
        """PreFilterExtensions.AddPod: count a pod placed on ``node_info`` (preemption dry runs)."""
        self._update_with_pod(state, pod_info, pod_to_add, node_info, 1)
        return None

    def remove_pod(self, state: CycleState, pod_info: PodInfo, pod_to_remove: PodInfo,
                   node_info: NodeInfo) -> Status | None:
        """PreFilterExtensions.RemovePod: stop counting a pod evicted from ``node_info``."""
        self._update_with_pod(state, pod_info, pod_to_remove, node_info, -1)
        return None

    # --- Score --------------------------------------------------------------------------------------

    def pre_score(self, state: CycleState, pod_info: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        all_nodes = self.handle.snapshot().node_infos
        if not all_nodes:
            return skip()
        try:
            constraints = self._constraints(pod_info, SCHEDULE_ANYWAY)
        except lbl.SelectorError as exc:
            return error(f"calculating preScoreState: {exc}")
        if not constraints:
            return skip()
        # only custom constraints need every topology label: nodes without a zone still spread by hostname
        require_all = bool(pod_info.spec.get("topologySpreadConstraints")) or not self.system_defaulted
        keys = [c.topology_key for c in constraints]
        domain_wide = [i for i, key in enumerate(keys) if key != LABEL_HOSTNAME]  # hostname: counted in Score
        counts: list[dict[str, int]] = [{} for _ in constraints]
        ignored: set[str] = set()
        for node_info in nodes:
            node_labels = node_labels_of(node_info)
            if require_all and not _has_all_keys(node_labels, keys):
                ignored.add(node_info.name)
                continue
            for i in domain_wide:
                counts[i].setdefault(node_labels.get(keys[i], ""), 0)
        counters = [self._node_counter(c, pod_info.namespace) for c in constraints]
        eligibility = _NodeEligibility(pod_info)
        for i in domain_wide:  # every eligible node's pods, for the domains the filtered nodes are in
            totals = self._domain_counts(pod_info, constraints[i], counters[i], all_nodes,
                                         keys if require_all else None, eligibility)
            counts[i] = {value: totals.get(value, 0) for value in counts[i]}
        rows = []
        for i, c in enumerate(constraints):
            hostname = c.topology_key == LABEL_HOSTNAME
            size = len(nodes) - len(ignored) if hostname else len(counts[i])
            rows.append((c.topology_key, _normalizing_weight(size), c.max_skew - 1,
                         counters[i] if hostname else None, counts[i]))
        s = _PreScoreState(constraints, ignored, rows)
        s.raw_scores = {id(n): 0 if ignored and n.name in ignored else _raw_score(rows, n) for n in nodes}
        state.write(PRE_SCORE_KEY, s)
        return None

    def score(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo) -> int:
        s: _PreScoreState | None = state.get(PRE_SCORE_KEY)
        if s is None:
            return 0
        raw = s.raw_scores.get(id(node_info))
        if raw is not None:
            return raw
        return 0 if node_info.name in s.ignored_nodes else _raw_score(s.rows, node_info)

    def normalize_score(self, state: CycleState, pod_info: PodInfo, scores: list[NodeScore]) -> None:
        s: _PreScoreState | None = state.get(PRE_SCORE_KEY)
        if s is None:
            return
        ignored = s.ignored_nodes
        valid = [n.score for n in scores if n.name not in ignored]
        lowest, highest = (min(valid), max(max(valid), 0)) if valid else (0, 0)
        for n in scores:
            if n.name in ignored:
                n.score = 0
            elif highest == 0:
                n.score = MAX_NODE_SCORE
            else:
                n.score = MAX_NODE_SCORE * (highest + lowest - n.score) // highest

    def events_to_register(self) -> list[ClusterEvent]:
        return [ClusterEvent("Pod", "Add"), ClusterEvent("Pod", "UpdatePodLabel"), ClusterEvent("Pod", "Delete"),
                ClusterEvent("Node", "Add"), ClusterEvent("Node", "Delete"), ClusterEvent("Node", "UpdateNodeLabel"),
                ClusterEvent("Node", "UpdateNodeTaint")]
