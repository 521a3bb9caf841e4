"""What a slice controller last wrote, so it can tell its own echoes and a lagging cache apart.

A controller that creates an EndpointSlice and is asked to sync the same Service again before the
watch delivered that slice would see too few slices and create another one. Kubernetes'
EndpointSliceTracker prevents that: after every write the controller records the generation the
API server returned (or that it expects a deletion), and a sync whose cache has not caught up —
a slice missing, older than written, or still present after we deleted it — is refused as stale
and retried later. Event handlers use the same record to skip the events their own writes cause.

Keys are Service keys (``namespace/name``); slices are identified by UID.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from controllers.endpointslice.service import LABEL_MANAGED_BY, LABEL_SERVICE_NAME
from machinery.meta import labels_of, make_key, namespace_of, uid_of

DELETION_EXPECTED = -1


def service_key_of_slice(endpoint_slice: Mapping[str, Any]) -> str | None:
    """The ``namespace/name`` of the Service a slice's ``kubernetes.io/service-name`` label names."""
    name = labels_of(endpoint_slice).get(LABEL_SERVICE_NAME)
    return make_key(namespace_of(endpoint_slice), name) if name else None


def generation_of(obj: Mapping[str, Any]) -> int:
    return int((obj.get("metadata") or {}).get("generation") or 0)


class SliceTracker:
    def __init__(self) -> None:
        self._generations: dict[str, dict[str, int]] = {}  # service key -> slice uid -> generation we wrote

    def _for(self, endpoint_slice: Mapping[str, Any]) -> dict[str, int] | None:
        key = service_key_of_slice(endpoint_slice)
        return self._generations.get(key) if key else None

    def has(self, endpoint_slice: Mapping[str, Any]) -> bool:
        generations = self._for(endpoint_slice)
        return generations is not None and uid_of(endpoint_slice) in generations

    def should_sync(self, endpoint_slice: Mapping[str, Any]) -> bool:
        """Whether an event about this slice is news: a slice we never wrote, or changed since we did."""
        generations = self._for(endpoint_slice)
        if generations is None or uid_of(endpoint_slice) not in generations:
            return True
        return generation_of(endpoint_slice) > generations[uid_of(endpoint_slice)]

    def update(self, endpoint_slice: Mapping[str, Any]) -> None:
        """Record a slice as the API server returned it after our create or update."""
        key = service_key_of_slice(endpoint_slice)
        if key:
            self._generations.setdefault(key, {})[uid_of(endpoint_slice)] = generation_of(endpoint_slice)

    def expect_deletion(self, endpoint_slice: Mapping[str, Any]) -> None:
        key = service_key_of_slice(endpoint_slice)
        if key:
            self._generations.setdefault(key, {})[uid_of(endpoint_slice)] = DELETION_EXPECTED

    def handle_deletion(self, endpoint_slice: Mapping[str, Any]) -> bool:
        """Forget a deleted slice; False when we did not expect it to go (someone else deleted it)."""
        generations = self._for(endpoint_slice)
        if generations is None:
            return True
        generation = generations.pop(uid_of(endpoint_slice), None)
        return generation is None or generation == DELETION_EXPECTED

    def stale(self, service_key: str, cached: Iterable[Mapping[str, Any]]) -> bool:
        """Whether the cache lags behind our writes for this Service (StaleSlices)."""
        generations = self._generations.get(service_key)
        if not generations:
            return False
        seen: set[str] = set()
        for endpoint_slice in cached:
            uid = uid_of(endpoint_slice)
            seen.add(uid)
            written = generations.get(uid)
            if written is not None and (written == DELETION_EXPECTED or written > generation_of(endpoint_slice)):
                return True
        return any(g != DELETION_EXPECTED and uid not in seen for uid, g in generations.items())

    def delete_service(self, service_key: str) -> None:
        self._generations.pop(service_key, None)


SLICE_CHANGE_MIN_SYNC_DELAY = 1.0  # endpointSliceChangeMinSyncDelay: let a burst of slice events settle


class SliceEventHandlers:
    """EndpointSlice event handlers shared by the slice and the mirroring controllers: a slice they manage
    (label ``endpointslice.kubernetes.io/managed-by`` = ``MANAGED_BY``) that changed behind their back enqueues
    its Service, a little later so a burst of events settles. Needs ``self.tracker`` and ``self.queue``."""

    MANAGED_BY = ""
    tracker: SliceTracker
    queue: Any

    def on_slice_add(self, endpoint_slice: Mapping[str, Any]) -> None:
        if self._managed(endpoint_slice) and self.tracker.should_sync(endpoint_slice):
            self._enqueue_for_slice(endpoint_slice)

    def on_slice_update(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        if labels_of(old).get(LABEL_SERVICE_NAME) != labels_of(new).get(LABEL_SERVICE_NAME):
            self._enqueue_for_slice(old)
            self._enqueue_for_slice(new)
        elif self._managed(old) != self._managed(new) or (self._managed(new) and self.tracker.should_sync(new)):
            self._enqueue_for_slice(new)

    def on_slice_delete(self, endpoint_slice: Mapping[str, Any]) -> None:
        # handle_deletion is False when we did not delete it ourselves: someone else did, put it back
        if (self._managed(endpoint_slice) and self.tracker.has(endpoint_slice)
                and not self.tracker.handle_deletion(endpoint_slice)):
            self._enqueue_for_slice(endpoint_slice)

    def _managed(self, endpoint_slice: Mapping[str, Any]) -> bool:
        return labels_of(endpoint_slice).get(LABEL_MANAGED_BY) == self.MANAGED_BY

    def _enqueue_for_slice(self, endpoint_slice: Mapping[str, Any]) -> None:
        key = service_key_of_slice(endpoint_slice)
        if key:
            self.queue.add_after(key, SLICE_CHANGE_MIN_SYNC_DELAY)

