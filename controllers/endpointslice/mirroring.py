"""The EndpointSliceMirroring controller: user-written Endpoints of selector-less Services, as EndpointSlices.

A Service without a selector gets its endpoints from whoever writes its Endpoints object; consumers
that read only EndpointSlices (kube-proxy, DNS) would miss them. This controller mirrors such an
Endpoints object (:mod:`~controllers.endpointslice.mirrorplan`) and deletes the mirrored slices
again when the Service or the Endpoints go, when the Service gains a selector, or when the
Endpoints opt out (label ``endpointslice.kubernetes.io/skip-mirror: "true"`` or the leader-election
annotation that marks an Endpoints object used as a lock). Keys are ``namespace/name`` of the
Service and Endpoints (they share the name).

Simplified relative to Kubernetes: no metrics; no batching of Endpoints updates.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from controllers.controller import Controller, ControllerContext, RetryError
from controllers.endpointslice.controller import managed_slices
from controllers.endpointslice.desired import port_key
from controllers.endpointslice.mirrorplan import (
    MAX_ENDPOINTS_PER_SUBSET,
    MIRRORING_CONTROLLER_NAME,
    desired_from_endpoints,
    plan_mirror_group,
)
from controllers.endpointslice.reconciler import SliceChanges, apply_changes, recycle
from controllers.endpointslice.service import (
    ANNOTATION_LEADER,
    LABEL_SKIP_MIRROR,
    selector_of,
)
from controllers.endpointslice.tracker import SliceEventHandlers, SliceTracker
from machinery.client import ENDPOINT_SLICES, ENDPOINTS, SERVICES
from machinery.meta import annotations_of, is_being_deleted, labels_of, split_key

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def should_mirror(endpoints: Mapping[str, Any] | None) -> bool:
    if endpoints is None:
        return False
    return labels_of(endpoints).get(LABEL_SKIP_MIRROR) != "true" and ANNOTATION_LEADER not in annotations_of(endpoints)


class EndpointSliceMirroringController(SliceEventHandlers, Controller):
    NAME = "endpointslicemirroring"
    MANAGED_BY = MIRRORING_CONTROLLER_NAME
    WORKERS = 5  # --mirroring-concurrent-service-endpoint-syncs

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.tracker = SliceTracker()
        self.services = self.informer(SERVICES)
        self.endpoints = self.informer(ENDPOINTS)
        self.slices = self.informer(ENDPOINT_SLICES)
        self.services.add_event_handler(self.on_service_add, self.on_service_update, self.on_service_add)
        self.endpoints.add_event_handler(self.on_endpoints_add, self.on_endpoints_update, self.on_endpoints_add)
        self.slices.add_event_handler(self.on_slice_add, self.on_slice_update, self.on_slice_delete)

    # --- event handlers: they only enqueue ---------------------------------------------------------

    def on_service_add(self, service: Obj) -> None:
        """Also the delete handler: only selector-less Services are mirrored."""
        if selector_of(service) is None:
            self.enqueue(service)

    def on_service_update(self, old: Obj, new: Obj) -> None:
        if (selector_of(old) is None) != (selector_of(new) is None):
            self.enqueue(new)

    def on_endpoints_add(self, endpoints: Obj) -> None:
        """Also the delete handler."""
        if should_mirror(endpoints):
            self.enqueue(endpoints)

    def on_endpoints_update(self, old: Obj, new: Obj) -> None:
        if should_mirror(old) or should_mirror(new):
            self.enqueue(new)

    # --- reconcile -------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        service = self.services.store.get(key)
        endpoints = self.endpoints.store.get(key)
        if service is None or selector_of(service) is not None or endpoints is None or not should_mirror(endpoints):
            # nothing to mirror (any more): no Service, a Service with a selector, no Endpoints, or opted out
            self.tracker.delete_service(key)
            await self.delete_mirrored(namespace, name)
            return None
        slices = [s for s in managed_slices(self.slices.store, namespace, name, MIRRORING_CONTROLLER_NAME)
                  if not is_being_deleted(s)]
        if self.tracker.stale(key, slices):
            raise RetryError("EndpointSlice informer cache is out of date")
        changes = self.plan(endpoints, slices)
        recycle(changes, lambda old: True)
        await apply_changes(self.client, self.tracker, namespace, changes,
                            allow_create=not is_being_deleted(endpoints))
        return None

    def plan(self, endpoints: Obj, slices: list[Obj]) -> SliceChanges:
        """The slice writes mirroring ``endpoints``; records events for addresses left out."""
        desired = desired_from_endpoints(endpoints)
        if desired.invalid:
            self.recorder.event(endpoints, "Warning", "InvalidIPAddress",
                                f"Skipped {desired.invalid} invalid IP addresses when mirroring to EndpointSlices")
        if desired.skipped > desired.invalid:
            self.recorder.event(endpoints, "Warning", "TooManyAddressesToMirror",
                                f"A max of {MAX_ENDPOINTS_PER_SUBSET} addresses can be mirrored to EndpointSlices "
                                f"per Endpoints subset. {desired.skipped} addresses were skipped")
        existing: dict[tuple, list[Obj]] = {}
        for endpoint_slice in slices:
            group = (endpoint_slice.get("addressType"), port_key(endpoint_slice.get("ports")))
            existing.setdefault(group, []).append(endpoint_slice)
        changes = SliceChanges()
        for group, wanted in desired.endpoints.items():
            changes.extend(plan_mirror_group(endpoints, existing.get(group, []), wanted, desired.ports[group],
                                             group[0]))
        for group, unwanted in existing.items():
            if group not in desired.endpoints:
                changes.delete += unwanted
        return changes

    async def delete_mirrored(self, namespace: str, name: str) -> None:
        """Delete every slice this controller mirrored for ``namespace/name``."""
        mirrored = managed_slices(self.slices.store, namespace, name, MIRRORING_CONTROLLER_NAME)
        if mirrored:
            log.debug("deleting %d mirrored EndpointSlices of %s/%s", len(mirrored), namespace, name)
            await apply_changes(self.client, self.tracker, namespace, SliceChanges(delete=mirrored))
