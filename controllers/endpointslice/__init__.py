"""EndpointSlices (discovery.k8s.io/v1): the slice controller for Services with selectors and the
mirroring controller for selector-less Services' user-written Endpoints.

Modules: :mod:`.service` (Service/pod facts shared with the Endpoints controller), :mod:`.desired`
(pod → endpoint, slice shapes), :mod:`.reconciler` (existing + desired → writes),
:mod:`.tracker` (our own writes vs. a lagging cache), :mod:`.triggertime` (the last-change-trigger-time
annotation), :mod:`.subsets` (canonical Endpoints subsets), :mod:`.controller` and
:mod:`.mirroring` (the two controllers), :mod:`.mirrorplan` (what mirroring means).
"""

from controllers.endpointslice.controller import EndpointSliceController
from controllers.endpointslice.mirroring import EndpointSliceMirroringController

__all__ = ["EndpointSliceController", "EndpointSliceMirroringController"]
