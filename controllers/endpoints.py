"""The Endpoints controller: the legacy v1 Endpoints object of every Service with a selector.

For a Service ``ns/name`` it writes Endpoints ``ns/name`` listing, per unique set of resolved
ports, the selected pods' addresses — ready pods (Ready condition True) under ``addresses``, the
others under ``notReadyAddresses``, everything under ``addresses`` with publishNotReadyAddresses.
A named targetPort is resolved in each pod; a pod without such a port is left out of that port.
Pods without an IP, terminal pods and (unless publishNotReadyAddresses) terminating pods are left
out. The object carries the Service's labels (plus ``service.kubernetes.io/headless`` for headless
Services), the last-change-trigger-time annotation, and beyond 1000 addresses is truncated and
annotated ``endpoints.kubernetes.io/over-capacity: truncated``. It is written only when subsets,
labels or the capacity annotation changed, and deleted when the Service goes (Endpoints have no
owner reference in Kubernetes). Selector-less and ExternalName Services are left alone: their
Endpoints belong to the user (and are mirrored to slices by ``endpointslicemirroring``).

Simplified relative to Kubernetes: no batching period for pod updates; truncation keeps the
first addresses of each subset in proportion to its size (Kubernetes' exact rounding may differ).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controllers.controller import Controller, ControllerContext
from controllers.endpointslice.service import (
    ANNOTATION_LEADER,
    ANNOTATION_OVER_CAPACITY,
    ANNOTATION_TRIGGER_TIME,
    LABEL_HEADLESS,
    find_port,
    is_headless,
    namespace_terminating,
    pod_ip_for_service,
    pod_reference,
    pods_for_service,
    publishes_not_ready,
    selects_pods,
    service_spec,
    services_for_pod,
    services_to_update_on_pod_change,
    should_pod_be_in_endpoints,
    should_set_hostname,
)
from controllers.endpointslice.subsets import canonical_subsets, repack_subsets
from controllers.endpointslice.triggertime import TriggerTimeTracker, format_trigger_time
from controllers.podutil import is_ready
from machinery.client import ENDPOINTS, PODS, SERVICES
from machinery.errors import StatusError, is_not_found
from machinery.meta import annotations_of, deep_copy, labels_of, split_key

log = logging.getLogger(__name__)

Obj = dict[str, Any]

MAX_CAPACITY = 1000  # addresses an Endpoints object may hold before it is truncated
TRUNCATED = "truncated"


class EndpointsController(Controller):
    NAME = "endpoints"
    WORKERS = 5  # --concurrent-endpoint-syncs

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.trigger_times = TriggerTimeTracker()
        self.services = self.informer(SERVICES)
        self.pods = self.informer(PODS)
        self.endpoints = self.informer(ENDPOINTS)
        self.services.add_event_handler(self.enqueue, lambda old, new: self.enqueue(new), self.enqueue)
        self.pods.add_event_handler(self.on_pod_add, self.on_pod_update, self.on_pod_add)
        self.endpoints.add_event_handler(on_delete=self.enqueue)  # recreate what someone deleted

    async def run(self, workers: int | None = None) -> None:
        """Like every controller, plus one look at the Endpoints that were there before we started."""
        try:
            await asyncio.gather(*(i.wait_for_sync() for i in self._watched))
        except BaseException:
            self.queue.shutdown()
            raise
        self.enqueue_leftover_endpoints()
        await super().run(workers)

    # --- event handlers: they only enqueue ---------------------------------------------------------

    def on_pod_add(self, pod: Obj) -> None:
        """Also the delete handler."""
        for key in services_for_pod(self.services.store, pod):
            self.queue.add(key)

    def on_pod_update(self, old: Obj, new: Obj) -> None:
        for key in services_to_update_on_pod_change(self.services.store, old, new):
            self.queue.add(key)

    def enqueue_leftover_endpoints(self) -> None:
        """checkLeftoverEndpoints: at start, look at every Endpoints object once, so that those whose
        Service was deleted while no controller ran are deleted too (leader-election locks excepted)."""
        for endpoints in self.endpoints.store.list():
            if ANNOTATION_LEADER not in annotations_of(endpoints):
                self.enqueue(endpoints)

    # --- reconcile -------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        service = self.services.store.get(key)
        if service is None:
            self.trigger_times.forget(key)
            await self._delete_endpoints(namespace, name)
            return None
        if not selects_pods(service):
            return None  # user-managed Endpoints
        pods = pods_for_service(self.pods.store, service)
        trigger = self.trigger_times.compute(key, service, pods)
        subsets = endpoint_subsets(service, pods)
        current = self.endpoints.store.get(key)
        desired = desired_endpoints(service, current, subsets, trigger)
        if desired is None:
            return None
        try:
            if current is None:
                await self.client.create(ENDPOINTS, desired, namespace)
            else:
                await self.client.replace(ENDPOINTS, desired)
        except StatusError as err:
            if current is None and namespace_terminating(err):
                return None
            reason, verb = ("FailedToCreateEndpoint", "create") if current is None else \
                ("FailedToUpdateEndpoint", "update")
            self.recorder.event(desired, "Warning", reason, f"Failed to {verb} endpoint {key}: {err.message}")
            raise
        return None

    async def _delete_endpoints(self, namespace: str, name: str) -> None:
        try:
            await self.client.delete(ENDPOINTS, name, namespace)
        except StatusError as err:
            if not is_not_found(err):
                raise


# --- what the Endpoints should say -------------------------------------------------------------------


def endpoint_subsets(service: Mapping[str, Any], pods: list[Obj]) -> list[Obj]:
    """The repacked subsets for ``service`` and its selected ``pods``."""
    publish = publishes_not_ready(service)
    ports = service_spec(service).get("ports") or []
    pieces: list[Obj] = []
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, include_terminating=publish):
            continue
        address = endpoint_address(service, pod)
        if address is None:
            continue
        field = "addresses" if publish or is_ready(pod) else "notReadyAddresses"
        if not ports:
            if is_headless(service):
                pieces.append({field: [address]})  # a headless Service may have no ports at all
            continue
        for service_port in ports:
            number = find_port(pod, service_port)
            if number is not None:
                pieces.append({field: [address], "ports": [endpoint_port(service_port, number)]})
    return repack_subsets(pieces)


def endpoint_address(service: Mapping[str, Any], pod: Mapping[str, Any]) -> Obj | None:
    """The pod as an EndpointAddress (the pod IP of the Service's family), or None without such an IP."""
    ip = pod_ip_for_service(service, pod)
    if ip is None:
        return None
    address: Obj = {"ip": ip}
    if should_set_hostname(pod, service):
        address["hostname"] = (pod.get("spec") or {})["hostname"]
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        address["nodeName"] = node
    address["targetRef"] = pod_reference(pod)
    return address


def endpoint_port(service_port: Mapping[str, Any], number: int) -> Obj:
    port: Obj = {"port": number, "protocol": service_port.get("protocol") or "TCP"}
    if service_port.get("name"):
        port["name"] = service_port["name"]
    if service_port.get("appProtocol"):
        port["appProtocol"] = service_port["appProtocol"]
    return port


def desired_endpoints(service: Mapping[str, Any], current: Mapping[str, Any] | None, subsets: list[Obj],
                      trigger: datetime | None) -> Obj | None:
    """The Endpoints object to write, or None when ``current`` already says it all.

    Only subsets, labels and the over-capacity annotation decide whether to write; the trigger time
    annotation rides along with a write but never causes one.
    """
    truncated = truncate(subsets)
    labels = dict(labels_of(service))
    if is_headless(service):
        labels[LABEL_HEADLESS] = ""
    if current is not None and canonical_subsets(current.get("subsets")) == truncated \
            and dict(labels_of(current)) == labels \
            and annotations_of(current).get(ANNOTATION_OVER_CAPACITY) == (TRUNCATED if truncated is not subsets
                                                                           else None):
        return None
    desired: Obj = deep_copy(dict(current)) if current is not None else {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": service["metadata"]["name"], "namespace": service["metadata"]["namespace"]}}
    desired.setdefault("apiVersion", "v1")
    desired.setdefault("kind", "Endpoints")
    meta = desired["metadata"]
    meta["labels"] = labels
    annotations = dict(meta.get("annotations") or {})
    annotations.pop(ANNOTATION_TRIGGER_TIME, None)
    annotations.pop(ANNOTATION_OVER_CAPACITY, None)
    if trigger is not None:
        annotations[ANNOTATION_TRIGGER_TIME] = format_trigger_time(trigger)
    if truncated is not subsets:
        annotations[ANNOTATION_OVER_CAPACITY] = TRUNCATED
    meta["annotations"] = annotations
    if not labels:
        meta.pop("labels")
    if not annotations:
        meta.pop("annotations")
    desired["subsets"] = truncated
    return desired


def truncate(subsets: list[Obj]) -> list[Obj]:
    """At most MAX_CAPACITY addresses, ready ones first, each subset keeping its share (truncateEndpoints).

    Returns ``subsets`` itself when nothing had to go, a truncated copy otherwise.
    """
    ready_total = sum(len(s.get("addresses") or ()) for s in subsets)
    not_ready_total = sum(len(s.get("notReadyAddresses") or ()) for s in subsets)
    if ready_total + not_ready_total <= MAX_CAPACITY:
        return subsets
    ready_budget = min(ready_total, MAX_CAPACITY)
    budgets = {"addresses": (ready_total, ready_budget),
               "notReadyAddresses": (not_ready_total, MAX_CAPACITY - ready_budget)}
    result = deep_copy(subsets)
    for field, (total, budget) in budgets.items():
        left = budget
        for subset in result:
            addresses = subset.get(field) or []
            if not addresses:
                continue
            keep = min(len(addresses), left, -(-len(addresses) * budget // total))  # ceil of the share
            left -= keep
            if keep:
                subset[field] = addresses[:keep]
            else:
                subset.pop(field)
    return [s for s in result if s.get("addresses") or s.get("notReadyAddresses")]
