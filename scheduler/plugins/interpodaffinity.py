"""InterPodAffinity: place pods near (affinity) or away from (anti-affinity) pods with certain labels.

An affinity term selects pods by label (``labelSelector``, narrowed by ``matchLabelKeys`` /
``mismatchLabelKeys`` with the owning pod's label values) in some namespaces (``namespaces`` and/or a
``namespaceSelector``; neither means the owning pod's namespace) and names a ``topologyKey``: "near"
means "on a node with the same value of that node label".

Filter, with counts PreFilter takes once per pod over the snapshot (per ``(topologyKey, value)`` pair):

* the incoming pod's required affinity: every term's topology value on the node must host a pod that
  matches *all* terms — except for the first pod of a group (nothing matches anywhere and the pod
  matches its own terms). UNSCHEDULABLE_AND_UNRESOLVABLE "node(s) didn't match pod affinity rules";
* the incoming pod's required anti-affinity: no matching pod in the node's domain of any term.
  UNSCHEDULABLE "node(s) didn't match pod anti-affinity rules" (preemption may evict them);
* symmetry: no existing pod's required anti-affinity term may match the incoming pod within the
  node's domain. UNSCHEDULABLE "node(s) didn't satisfy existing pods anti-affinity rules".

Score sums, per topology pair, the weights of preferred terms (the incoming pod's terms matched
against existing pods, existing pods' preferred terms matched against the incoming pod, and existing
pods' required affinity terms weighted ``hardPodAffinityWeight``); anti-affinity subtracts. Each node
gets the sum over its labels, min-max normalized to 0..100.

The incoming pod's ``namespaceSelector`` is resolved into namespace names from the namespace
informer's store (namespaces not there are not selected); an existing pod's ``namespaceSelector``
is matched against the incoming pod's namespace labels (an unknown namespace has no labels).

The incoming pod's terms are matched against every pod in the cluster; those counts come from
PodTopologySpread's per-node and per-domain caches, so a cycle re-counts only the nodes the scheduler
cache changed. Existing pods' terms are parsed once per PodInfo and only pods that have terms are visited.
PreFilterExtensions (``add_pod`` / ``remove_pod``) keep the counts right in preemption dry runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from machinery import labels as lbl
from machinery.client import NAMESPACES
from machinery.meta import labels_of, name_of
from scheduler.framework import ClusterEvent, CycleState, Handle, NodeInfo, NodeScore, PodInfo, PreFilterResult, Status
from scheduler.framework.interface import MAX_NODE_SCORE
from scheduler.framework.status import error, skip, unresolvable, unschedulable
from scheduler.plugins.podtopologyspread import DomainCountCache, NodeCountCache, node_labels_of

ERR_REASON_AFFINITY = "node(s) didn't match pod affinity rules"
ERR_REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
ERR_REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
PRE_FILTER_KEY = "PreFilterInterPodAffinity"
PRE_SCORE_KEY = "PreScoreInterPodAffinity"
DEFAULT_HARD_POD_AFFINITY_WEIGHT = 1
_TERMS_CACHE = "_inter_pod_affinity_terms"  # parsed terms kept on each PodInfo (pods never change in place)

Obj = Mapping[str, Any]
Labels = Mapping[str, str]
Pair = tuple[str, str]


class AffinityTerm:
    """One parsed PodAffinityTerm."""

    __slots__ = ("namespace_selector", "namespaces", "selector", "selector_matches", "topology_key")

    def __init__(self, namespaces: frozenset[str], namespace_selector: lbl.Selector, selector: lbl.Selector,
                 topology_key: str) -> None:
        self.namespaces = namespaces
        self.namespace_selector = namespace_selector
        self.selector = selector
        self.selector_matches = selector.matches
        self.topology_key = topology_key

    @classmethod
    def parse(cls, pod: Obj, term: Obj) -> AffinityTerm:
        """Raises :class:`machinery.labels.SelectorError` for a selector that does not parse."""
        raw_selector = term.get("labelSelector")
        selector = lbl.selector_from_label_selector(raw_selector)
        if raw_selector is not None:  # what the API server merges at creation; merging twice changes nothing
            pod_labels = labels_of(pod)
            extra = [lbl.new_requirement(key, lbl.IN, [pod_labels[key]])
                     for key in term.get("matchLabelKeys") or () if key in pod_labels]
            extra += [lbl.new_requirement(key, lbl.NOT_IN, [pod_labels[key]])
                      for key in term.get("mismatchLabelKeys") or () if key in pod_labels]
            if extra:
                selector = selector.add(*extra)
        raw_ns_selector = term.get("namespaceSelector")
        names = term.get("namespaces") or ()
        if not names and raw_ns_selector is None:
            names = ((pod.get("metadata") or {}).get("namespace") or "",)
        return cls(frozenset(names), lbl.selector_from_label_selector(raw_ns_selector), selector,
                   term.get("topologyKey") or "")

    def matches(self, namespace: str, labels: Labels, namespace_labels: Labels | None) -> bool:
        """Whether a pod in ``namespace`` with ``labels`` is selected (its namespace's labels for the selector)."""
        if namespace in self.namespaces or self.namespace_selector.matches(namespace_labels):
            return self.selector_matches(labels)
        return False

    def matches_pod(self, pod_info: PodInfo, namespace_labels: Labels | None = None) -> bool:
        return self.matches(pod_info.namespace, pod_info.labels, namespace_labels)

    def with_namespaces_resolved(self, namespaces: Sequence[Obj]) -> AffinityTerm:
        """The namespace selector turned into names (mergeAffinityTermNamespacesIfNotEmpty); ``{}`` stays."""
        if self.namespace_selector.empty:
            return self
        matches = self.namespace_selector.matches
        selected = {name_of(ns) for ns in namespaces if matches(labels_of(ns))}
        return AffinityTerm(self.namespaces | selected, lbl.Selector.nothing(), self.selector, self.topology_key)


class PodTerms:
    """A pod's parsed inter-pod (anti-)affinity terms; preferred ones as (weight, term)."""

    __slots__ = ("preferred_affinity", "preferred_anti_affinity", "required_affinity", "required_anti_affinity")

    def __init__(self, required_affinity: list[AffinityTerm], required_anti_affinity: list[AffinityTerm],
                 preferred_affinity: list[tuple[int, AffinityTerm]],
                 preferred_anti_affinity: list[tuple[int, AffinityTerm]]) -> None:
        self.required_affinity = required_affinity
        self.required_anti_affinity = required_anti_affinity
        self.preferred_affinity = preferred_affinity
        self.preferred_anti_affinity = preferred_anti_affinity

    @classmethod
    def parse(cls, pod: Obj, *, strict: bool) -> PodTerms:
        """``strict`` raises SelectorError; otherwise a group of terms that does not parse is left empty
        (what kube-scheduler's PodInfo does for pods already placed)."""
        affinity = (pod.get("spec") or {}).get("affinity") or {}
        pod_affinity = affinity.get("podAffinity") or {}
        pod_anti = affinity.get("podAntiAffinity") or {}

        def required(group: Obj) -> list[AffinityTerm]:
            return [AffinityTerm.parse(pod, t) for t in group.get("requiredDuringSchedulingIgnoredDuringExecution")
                    or ()]

        def preferred(group: Obj) -> list[tuple[int, AffinityTerm]]:
            return [(int(w.get("weight") or 0), AffinityTerm.parse(pod, w.get("podAffinityTerm") or {}))
                    for w in group.get("preferredDuringSchedulingIgnoredDuringExecution") or ()]

        groups: list[Any] = []
        for build, group in ((required, pod_affinity), (required, pod_anti), (preferred, pod_affinity),
                             (preferred, pod_anti)):
            try:
                groups.append(build(group))
            except lbl.SelectorError:
                if strict:
                    raise
                groups.append([])
        return cls(*groups)

    def resolved(self, namespaces: Sequence[Obj]) -> PodTerms:
        return PodTerms([t.with_namespaces_resolved(namespaces) for t in self.required_affinity],
                        [t.with_namespaces_resolved(namespaces) for t in self.required_anti_affinity],
                        [(w, t.with_namespaces_resolved(namespaces)) for w, t in self.preferred_affinity],
                        [(w, t.with_namespaces_resolved(namespaces)) for w, t in self.preferred_anti_affinity])


_NO_TERMS = PodTerms([], [], [], [])


def pod_terms(pod_info: PodInfo) -> PodTerms:
    """An existing pod's terms, parsed once per PodInfo."""
    if not pod_info.has_affinity:
        return _NO_TERMS
    cached = pod_info.__dict__.get(_TERMS_CACHE)
    if cached is None:
        cached = pod_info.__dict__[_TERMS_CACHE] = PodTerms.parse(pod_info.pod, strict=False)
    return cached


def matches_all(terms: Sequence[AffinityTerm], namespace: str, labels: Labels) -> bool:
    """podMatchesAllAffinityTerms (terms with resolved namespaces): False for no terms."""
    if not terms:
        return False
    for term in terms:  # noqa: SIM110 - a plain loop is faster than all()
        if not term.matches(namespace, labels, None):
            return False
    return True


def _add(counts: dict[Pair, int], node_labels: Labels, key: str, delta: int) -> None:
    value = node_labels.get(key)
    if value is not None:
        pair = (key, value)
        total = counts.get(pair, 0) + delta
        if total:
            counts[pair] = total
        else:
            counts.pop(pair, None)


class _PreFilterState:
    __slots__ = ("affinity_counts", "anti_affinity_counts", "existing_anti_affinity_counts", "namespace_labels",
                 "pod_info", "self_match", "terms")

    def __init__(self, pod_info: PodInfo, terms: PodTerms, namespace_labels: Labels | None) -> None:
        self.pod_info = pod_info
        self.terms = terms
        self.namespace_labels = namespace_labels
        self.existing_anti_affinity_counts: dict[Pair, int] = {}
        self.affinity_counts: dict[Pair, int] = {}
        self.anti_affinity_counts: dict[Pair, int] = {}
        self.self_match = matches_all(terms.required_affinity, pod_info.namespace, pod_info.labels)

    def clone(self) -> _PreFilterState:
        copy = _PreFilterState.__new__(_PreFilterState)
        copy.pod_info, copy.terms, copy.namespace_labels = self.pod_info, self.terms, self.namespace_labels
        copy.self_match = self.self_match
        copy.existing_anti_affinity_counts = dict(self.existing_anti_affinity_counts)
        copy.affinity_counts = dict(self.affinity_counts)
        copy.anti_affinity_counts = dict(self.anti_affinity_counts)
        return copy

    def update_with_pod(self, other: PodInfo, node_labels: Labels, delta: int) -> None:
        """Account (delta 1) or discount (-1) a pod on a node with these labels (preemption dry runs)."""
        me = self.pod_info
        for term in pod_terms(other).required_anti_affinity:
            if term.matches(me.namespace, me.labels, self.namespace_labels):
                _add(self.existing_anti_affinity_counts, node_labels, term.topology_key, delta)
        affinity = self.terms.required_affinity
        if matches_all(affinity, other.namespace, other.labels):
            for term in affinity:
                _add(self.affinity_counts, node_labels, term.topology_key, delta)
        for term in self.terms.required_anti_affinity:
            if term.matches(other.namespace, other.labels, None):
                _add(self.anti_affinity_counts, node_labels, term.topology_key, delta)


class _PreScoreState:
    __slots__ = ("topology_score",)

    def __init__(self, topology_score: dict[str, dict[str, int]]) -> None:
        self.topology_score = topology_score


def _score_term(scores: dict[str, dict[str, int]], term: AffinityTerm, weight: int, namespace: str,
                labels: Labels, namespace_labels: Labels | None, node_labels: Labels) -> None:
    if term.matches(namespace, labels, namespace_labels):
        value = node_labels.get(term.topology_key)
        if value is not None:
            values = scores.setdefault(term.topology_key, {})
            values[value] = values.get(value, 0) + weight


class InterPodAffinity:
    NAME = "InterPodAffinity"

    def __init__(self, args: dict[str, Any] | None, handle: Handle) -> None:
        args = args or {}
        weight = args.get("hardPodAffinityWeight", DEFAULT_HARD_POD_AFFINITY_WEIGHT)
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 100:
            raise ValueError(f"InterPodAffinity args: hardPodAffinityWeight: Invalid value: {weight!r}: "
                             "not in valid range [0-100]")
        self.hard_pod_affinity_weight = weight
        self.ignore_preferred_terms_of_existing_pods = bool(args.get("ignorePreferredTermsOfExistingPods", False))
        self.handle = handle
        self._counts = NodeCountCache()
        self._domains = DomainCountCache()
        self._namespace_store = None
        if handle.informers is not None:
            self._namespace_store = handle.informers.informer(NAMESPACES).store

    # --- namespaces ---------------------------------------------------------------------------------

    def _namespaces(self) -> list[Obj]:
        return self._namespace_store.list() if self._namespace_store is not None else []

    def _namespace_labels(self, namespace: str) -> Labels | None:
        if self._namespace_store is None:
            return None
        ns = self._namespace_store.get_by_name(None, namespace)
        return labels_of(ns) if ns is not None else None

    def _incoming_terms(self, pod_info: PodInfo) -> PodTerms:
        terms = PodTerms.parse(pod_info.pod, strict=True)
        if any(not t.namespace_selector.empty for t in self._all_terms(terms)):
            return terms.resolved(self._namespaces())
        return terms

    @staticmethod
    def _all_terms(terms: PodTerms) -> list[AffinityTerm]:
        return [*terms.required_affinity, *terms.required_anti_affinity,
                *(t for _, t in terms.preferred_affinity), *(t for _, t in terms.preferred_anti_affinity)]

    # --- Filter -------------------------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod_info: PodInfo,
                   nodes: list[NodeInfo]) -> tuple[PreFilterResult | None, Status | None]:
        try:
            terms = self._incoming_terms(pod_info)
        except lbl.SelectorError as exc:
            return None, unresolvable(f"parsing pod: {exc}")
        s = _PreFilterState(pod_info, terms, self._namespace_labels(pod_info.namespace))
        self._count_existing_anti_affinity(s, self.handle.snapshot().have_pods_with_required_anti_affinity)
        if terms.required_affinity or terms.required_anti_affinity:
            self._count_incoming(s, nodes)
        elif not s.existing_anti_affinity_counts:
            return None, skip()
        state.write(PRE_FILTER_KEY, s)
        return None, None

    @staticmethod
    def _count_existing_anti_affinity(s: _PreFilterState, nodes: list[NodeInfo]) -> None:
        me, ns_labels, counts = s.pod_info, s.namespace_labels, s.existing_anti_affinity_counts
        namespace, labels = me.namespace, me.labels
        for node_info in nodes:
            node_labels = node_info.labels
            for existing in node_info.pods_with_required_anti_affinity:
                for term in pod_terms(existing).required_anti_affinity:
                    if term.matches(namespace, labels, ns_labels):
                        _add(counts, node_labels, term.topology_key, 1)

    def _domain_counts(self, terms: Sequence[AffinityTerm], topology_key: str,
                       nodes: list[NodeInfo]) -> dict[str, int]:
        """Per value of ``topology_key``: pods on nodes with that value matching every term in ``terms``
        (kept up to date across cycles by re-counting only the nodes the scheduler cache changed)."""
        signature = tuple((t.namespaces, t.namespace_selector, t.selector) for t in terms)

        def count_pods(pods: list[PodInfo]) -> int:
            return sum(1 for p in pods if matches_all(terms, p.namespace, p.labels))

        counter = self._counts.counter(signature, count_pods)
        return self._domains.totals((signature, topology_key), nodes, topology_key, (topology_key,), counter)

    def _count_incoming(self, s: _PreFilterState, nodes: list[NodeInfo]) -> None:
        """The incoming pod's required terms against every pod in the cluster."""
        affinity = s.terms.required_affinity
        for key in {t.topology_key for t in affinity}:  # a pod matching all terms counts once per term
            per_term = sum(1 for t in affinity if t.topology_key == key)
            for value, count in self._domain_counts(affinity, key, nodes).items():
                if count:
                    s.affinity_counts[(key, value)] = s.affinity_counts.get((key, value), 0) + count * per_term
        for term in s.terms.required_anti_affinity:
            for value, count in self._domain_counts((term,), term.topology_key, nodes).items():
                if count:
                    pair = (term.topology_key, value)
                    s.anti_affinity_counts[pair] = s.anti_affinity_counts.get(pair, 0) + count

    def add_pod(self, state: CycleState, pod_info: PodInfo, pod_to_add: PodInfo,
                node_info: NodeInfo) -> Status | None:
        """PreFilterExtensions.AddPod: account a pod placed on ``node_info`` (preemption dry runs)."""
        s = state.get(PRE_FILTER_KEY)
        if s is not None:
            s.update_with_pod(pod_to_add, node_info.labels, 1)
        return None

    def remove_pod(self, state: CycleState, pod_info: PodInfo, pod_to_remove: PodInfo,
                   node_info: NodeInfo) -> Status | None:
        """PreFilterExtensions.RemovePod: forget a pod evicted from ``node_info`` (preemption dry runs)."""
        s = state.get(PRE_FILTER_KEY)
        if s is not None:
            s.update_with_pod(pod_to_remove, node_info.labels, -1)
        return None

    def filter(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo) -> Status | None:
        s: _PreFilterState | None = state.get(PRE_FILTER_KEY)
        if s is None:
            return error(f"reading {PRE_FILTER_KEY!r} from cycleState: not found")
        node_labels = node_info.labels
        if s.terms.required_affinity and not self._satisfies_affinity(s, node_labels):
            return unresolvable(ERR_REASON_AFFINITY)
        anti_counts = s.anti_affinity_counts
        if anti_counts:
            for term in s.terms.required_anti_affinity:
                value = node_labels.get(term.topology_key)
                if value is not None and anti_counts.get((term.topology_key, value), 0) > 0:
                    return unschedulable(ERR_REASON_ANTI_AFFINITY)
        existing = s.existing_anti_affinity_counts
        if existing:
            if len(existing) < len(node_labels):
                for (key, value), count in existing.items():
                    if count > 0 and node_labels.get(key) == value:
                        return unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY)
            else:
                for pair in node_labels.items():
                    if existing.get(pair, 0) > 0:
                        return unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY)
        return None

    @staticmethod
    def _satisfies_affinity(s: _PreFilterState, node_labels: Labels) -> bool:
        pods_exist = True
        counts = s.affinity_counts
        for term in s.terms.required_affinity:
            value = node_labels.get(term.topology_key)
            if value is None:
                return False  # every topology label must be on the node
            if counts.get((term.topology_key, value), 0) <= 0:
                pods_exist = False
        # the first pod of a group that has affinity to itself may go anywhere with the topology labels
        return pods_exist or (not counts and s.self_match)

    # --- Score --------------------------------------------------------------------------------------

    def pre_score(self, state: CycleState, pod_info: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        if not nodes:
            return skip()
        affinity = pod_info.spec.get("affinity") or {}
        has_constraints = bool(
            ((affinity.get("podAffinity") or {}).get("preferredDuringSchedulingIgnoredDuringExecution"))
            or ((affinity.get("podAntiAffinity") or {}).get("preferredDuringSchedulingIgnoredDuringExecution")))
        if self.ignore_preferred_terms_of_existing_pods and not has_constraints:
            return skip()
        snapshot = self.handle.snapshot()
        if not has_constraints and not snapshot.have_pods_with_affinity:
            return skip()
        try:
            terms = self._incoming_terms(pod_info)
        except lbl.SelectorError as exc:
            return error(f"failed to parse pod: {exc}")
        ns_labels = self._namespace_labels(pod_info.namespace)
        scores: dict[str, dict[str, int]] = {}
        # the incoming pod's preferred terms against every pod (counted per domain, cached across cycles)
        for weighted, sign in ((terms.preferred_affinity, 1), (terms.preferred_anti_affinity, -1)):
            for weight, term in weighted:
                for value, count in self._domain_counts((term,), term.topology_key, snapshot.node_infos).items():
                    if count:
                        values = scores.setdefault(term.topology_key, {})
                        values[value] = values.get(value, 0) + sign * weight * count
        # existing pods' terms against the incoming pod
        for node_info in snapshot.have_pods_with_affinity:
            node_labels = node_labels_of(node_info)
            if node_labels:
                for existing in node_info.pods_with_affinity:
                    self._score_existing_terms(scores, pod_info, ns_labels, existing, node_labels)
        if not scores:
            return skip()
        state.write(PRE_SCORE_KEY, _PreScoreState(scores))
        return None

    def _score_existing_terms(self, scores: dict[str, dict[str, int]], pod_info: PodInfo,
                              ns_labels: Labels | None, existing: PodInfo, node_labels: Labels) -> None:
        theirs = pod_terms(existing)
        namespace, labels = pod_info.namespace, pod_info.labels
        if self.hard_pod_affinity_weight > 0:
            for term in theirs.required_affinity:
                _score_term(scores, term, self.hard_pod_affinity_weight, namespace, labels, ns_labels, node_labels)
        for weight, term in theirs.preferred_affinity:
            _score_term(scores, term, weight, namespace, labels, ns_labels, node_labels)
        for weight, term in theirs.preferred_anti_affinity:
            _score_term(scores, term, -weight, namespace, labels, ns_labels, node_labels)

    def score(self, state: CycleState, pod_info: PodInfo, node_info: NodeInfo) -> int:
        s: _PreScoreState | None = state.get(PRE_SCORE_KEY)
        if s is None:
            return 0
        node_labels = node_info.labels
        total = 0
        for key, values in s.topology_score.items():
            value = node_labels.get(key)
            if value is not None:
                total += values.get(value, 0)
        return total

    def normalize_score(self, state: CycleState, pod_info: PodInfo, scores: list[NodeScore]) -> None:
        s: _PreScoreState | None = state.get(PRE_SCORE_KEY)
        if s is None or not s.topology_score or not scores:
            return
        lowest = min(n.score for n in scores)
        spread = max(n.score for n in scores) - lowest
        for n in scores:
            n.score = int(MAX_NODE_SCORE * ((n.score - lowest) / spread)) if spread > 0 else 0

    def events_to_register(self) -> list[ClusterEvent]:
        return [ClusterEvent("Pod", "Add"), ClusterEvent("Pod", "UpdatePodLabel"), ClusterEvent("Pod", "Delete"),
                ClusterEvent("Node", "Add"), ClusterEvent("Node", "UpdateNodeLabel")]
