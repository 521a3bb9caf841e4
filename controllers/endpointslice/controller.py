"""The EndpointSlice controller: discovery.k8s.io/v1 EndpointSlices for every Service with a selector.

For each address type the Service supports it groups the selected pods' endpoints by their
resolved port set and keeps slices of at most ``MAX_ENDPOINTS_PER_SLICE`` endpoints for each group
(:mod:`~controllers.endpointslice.reconciler`), labelled ``kubernetes.io/service-name`` and
``endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`` and controlled by the
Service (the garbage collector removes them with it). A Service without endpoints keeps one empty
placeholder slice, as in Kubernetes. Terminating pods stay in as ``terminating`` (``serving`` from
their Ready condition); pods whose Node is not in the cache are skipped and the Service retried,
unless it publishes not-ready addresses.

Simplified relative to Kubernetes: no topology hints / traffic distribution, no batching period
for pod updates, no metrics; a Service whose pods reference a missing Node is retried without the
``FailedToUpdateEndpointSlices`` event.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from controllers.controller import Controller, ControllerContext, RetryError
from controllers.endpointslice.desired import (
    CONTROLLER_NAME,
    MAX_ENDPOINTS_PER_SLICE,
    EndpointKey,
    PortKey,
    address_types_for_service,
    endpoint_key,
    endpoint_ports,
    is_placeholder_for,
    new_slice,
    owned_by,
    pod_to_endpoint,
    port_key,
    slice_labels,
)
from controllers.endpointslice.reconciler import SliceChanges, apply_changes, plan_port_mapping, recycle
from controllers.endpointslice.service import (
    ANNOTATION_TRIGGER_TIME,
    LABEL_MANAGED_BY,
    LABEL_SERVICE_NAME,
    LABEL_ZONE,
    pods_for_service,
    publishes_not_ready,
    selects_pods,
    services_for_pod,
    services_to_update_on_pod_change,
    should_pod_be_in_endpoints,
)
from controllers.endpointslice.tracker import SliceEventHandlers, SliceTracker
from controllers.endpointslice.triggertime import TriggerTimeTracker, format_trigger_time
from machinery.cache import LABEL_INDEX, NODE_NAME_INDEX, Indexer
from machinery.client import ENDPOINT_SLICES, NODES, PODS, SERVICES
from machinery.errors import StatusError
from machinery.meta import is_being_deleted, labels_of, name_of, namespace_of, split_key

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def managed_slices(slices: Indexer, namespace: str, service_name: str, controller_name: str) -> list[Obj]:
    """The cached slices labelled for this Service and managed by ``controller_name``."""
    return [s for s in slices.by_index(LABEL_INDEX, f"{LABEL_SERVICE_NAME}={service_name}")
            if namespace_of(s) == namespace and labels_of(s).get(LABEL_MANAGED_BY) == controller_name]


class EndpointSliceController(SliceEventHandlers, Controller):
    NAME = "endpointslice"
    MANAGED_BY = CONTROLLER_NAME
    WORKERS = 5  # --concurrent-service-endpoint-syncs

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.tracker = SliceTracker()
        self.trigger_times = TriggerTimeTracker()
        self.services = self.informer(SERVICES)
        self.pods = self.informer(PODS)
        self.nodes = self.informer(NODES)
        self.slices = self.informer(ENDPOINT_SLICES)
        self.services.add_event_handler(self.enqueue, lambda old, new: self.enqueue(new), self.enqueue)
        self.pods.add_event_handler(self.on_pod_add, self.on_pod_update, self.on_pod_add)
        self.nodes.add_event_handler(self.on_node_change, self.on_node_update, self.on_node_change)
        self.slices.add_event_handler(self.on_slice_add, self.on_slice_update, self.on_slice_delete)

    # --- event handlers: they only enqueue ---------------------------------------------------------

    def on_pod_add(self, pod: Obj) -> None:
        """Also the delete handler: the pod's Services lose (or gain) an endpoint."""
        for key in services_for_pod(self.services.store, pod):
            self.queue.add(key)

    def on_pod_update(self, old: Obj, new: Obj) -> None:
        for key in services_to_update_on_pod_change(self.services.store, old, new):
            self.queue.add(key)

    def on_node_change(self, node: Obj) -> None:
        """A Node appearing or going changes whether its pods can be published (and their zone)."""
        for pod in self.pods.store.by_index(NODE_NAME_INDEX, name_of(node)):
            self.on_pod_add(pod)

    def on_node_update(self, old: Obj, new: Obj) -> None:
        if labels_of(old).get(LABEL_ZONE) != labels_of(new).get(LABEL_ZONE):
            self.on_node_change(new)

    # --- reconcile -------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        service = self.services.store.get(key)
        if service is None:
            self.trigger_times.forget(key)
            self.tracker.delete_service(key)
            return None  # the garbage collector deletes the slices the Service controlled
        if not selects_pods(service):
            return None
        pods = pods_for_service(self.pods.store, service)
        slices = [s for s in managed_slices(self.slices.store, namespace, name, CONTROLLER_NAME)
                  if not is_being_deleted(s)]
        if self.tracker.stale(key, slices):
            raise RetryError("EndpointSlice informer cache is out of date")
        trigger = self.trigger_times.compute(key, service, pods)
        changes = SliceChanges()
        supported = address_types_for_service(service)
        changes.delete += [s for s in slices if s.get("addressType") not in supported]
        skipped: list[str] = []
        for address_type in supported:
            existing = [s for s in slices if s.get("addressType") == address_type]
            changes.extend(self.plan_address_type(service, pods, existing, address_type, skipped))
        recycle(changes, lambda old: owned_by(old, service))
        _annotate(changes, trigger)
        try:
            await apply_changes(self.client, self.tracker, namespace, changes,
                                allow_create=not is_being_deleted(service))
        except StatusError as err:
            self.recorder.event(service, "Warning", "FailedToUpdateEndpointSlices",
                                f"Error updating Endpoint Slices for Service {key}: {err.message}")
            raise
        if skipped:
            raise RetryError(f"skipped pods {', '.join(skipped)} for Service {key}: Node not found")
        return None

    def plan_address_type(self, service: Obj, pods: list[Obj], existing: list[Obj], address_type: str,
                          skipped: list[str]) -> SliceChanges:
        """reconcileByAddressType: the writes for one address type (names of skipped pods go to ``skipped``)."""
        changes = SliceChanges()
        by_ports: dict[PortKey, list[Obj]] = {}
        for endpoint_slice in existing:
            if owned_by(endpoint_slice, service):
                by_ports.setdefault(port_key(endpoint_slice.get("ports")), []).append(endpoint_slice)
            else:
                changes.delete.append(endpoint_slice)  # left over from an older Service of the same name
        desired = self.desired_endpoints(service, pods, address_type, skipped)
        labels = slice_labels(service, CONTROLLER_NAME)
        for key, (ports, endpoints) in desired.items():
            changes.extend(plan_port_mapping(by_ports.get(key, []), endpoints,
                                             lambda p=ports: new_slice(service, p, address_type),
                                             labels, MAX_ENDPOINTS_PER_SLICE))
        for key, unwanted in by_ports.items():
            if key not in desired:
                changes.delete += unwanted
        if len(changes.delete) == len(existing) and not changes.create:
            # no slice would be left: keep (or create) the empty placeholder
            if len(changes.delete) == 1 and is_placeholder_for(changes.delete[0], service, address_type):
                changes.delete.clear()
            else:
                changes.create.append(new_slice(service, [], address_type))
        return changes

    def desired_endpoints(self, service: Obj, pods: list[Obj], address_type: str,
                          skipped: list[str]) -> dict[PortKey, tuple[list[Obj], dict[EndpointKey, Obj]]]:
        """Port set -> (its ports, the endpoints having exactly those ports) for one address type."""
        desired: dict[PortKey, tuple[list[Obj], dict[EndpointKey, Obj]]] = {}
        for pod in pods:
            if not should_pod_be_in_endpoints(pod, include_terminating=True):
                continue
            ports = endpoint_ports(service, pod)
            _, endpoints = desired.setdefault(port_key(ports), (ports, {}))
            node = self.nodes.store.get_by_name(None, (pod.get("spec") or {}).get("nodeName") or "")
            if node is None and not publishes_not_ready(service):
                if name_of(pod) not in skipped:
                    skipped.append(name_of(pod))
                continue
            endpoint = pod_to_endpoint(pod, node, service, address_type)
            if endpoint["addresses"]:
                endpoints.setdefault(endpoint_key(endpoint), endpoint)
        return desired


def _annotate(changes: SliceChanges, trigger: datetime | None) -> None:
    """Set (or clear) the last-change-trigger-time annotation on every slice about to be written."""
    for endpoint_slice in (*changes.create, *changes.update):
        annotations = endpoint_slice.setdefault("metadata", {}).setdefault("annotations", {})
        if trigger is not None:
            annotations[ANNOTATION_TRIGGER_TIME] = format_trigger_time(trigger)
        else:
            annotations.pop(ANNOTATION_TRIGGER_TIME, None)
        if not annotations:
            del endpoint_slice["metadata"]["annotations"]
