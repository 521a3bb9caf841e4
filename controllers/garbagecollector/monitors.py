"""Which resources the garbage collector watches, and how it turns an ownerReference's kind into a URL.

The collector cannot know its resources up front: any list+watch+delete resource may hold objects
with ownerReferences, custom resources included. :func:`discover` reads the aggregated discovery
documents (``/api`` and ``/apis``); :func:`deletable_resources` keeps what Kubernetes' GC monitors
(verbs list, watch and delete; not the ignored events); :class:`RestMapper` maps
(apiVersion, kind) → :class:`Resource` for the live GETs, DELETEs and PATCHes; :class:`Monitors`
keeps one informer per deletable resource feeding the :class:`DependencyGraph`, starting informers
for new resources and stopping those of resources that disappeared.

Simplifications relative to Kubernetes: informers hold whole objects (the shared informer of a
resource is reused when another controller has one), not metadata-only projections; the mapper knows
each group's preferred version only (an ownerReference's apiVersion selects the group; the object is
read at the preferred version, which carries the same metadata).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from controllers.garbagecollector.graph import DependencyGraph, ObjectReference
from machinery.client import resources as builtin
from machinery.client.resources import Resource, resources_from_discovery
from machinery.client.rest import ApiClient

log = logging.getLogger(__name__)

DISCOVERY_ACCEPT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
REQUIRED_VERBS = frozenset({"list", "watch", "delete"})
# kube-controller-manager's default --garbage-collector ignored resources: (group, plural)
DEFAULT_IGNORED_RESOURCES: frozenset[tuple[str, str]] = frozenset({("", "events"), ("events.k8s.io", "events")})
BUILTIN_RESOURCES: tuple[Resource, ...] = tuple(
    value for value in vars(builtin).values() if isinstance(value, Resource))


class UnknownKind(LookupError):
    """No resource serves this (group, kind): the server does not know it (yet)."""


class RestMapper:
    """(group, kind) → the resource serving it, from a discovery result."""

    def __init__(self, resources: Iterable[Resource]) -> None:
        self._by_kind: dict[tuple[str, str], Resource] = {}
        for resource in resources:
            if resource.kind and "/" not in resource.plural:
                self._by_kind.setdefault((resource.group, resource.kind), resource)

    def resource_for(self, api_version: str, kind: str) -> Resource:
        group = api_version.rpartition("/")[0]
        try:
            return self._by_kind[(group, kind)]
        except KeyError:
            raise UnknownKind(f"no resource for kind {kind!r} in {api_version!r}") from None

    def resource_of(self, ref: ObjectReference) -> Resource:
        return self.resource_for(ref.api_version, ref.kind)


async def discover(client: ApiClient) -> list[Resource]:
    """Every resource the server serves (preferred versions), from aggregated discovery."""
    groups: list[Mapping[str, Any]] = []
    for path in ("/api", "/apis"):
        document = await client.get_json(path, accept=DISCOVERY_ACCEPT)
        groups.extend(document.get("items") or [])
    return resources_from_discovery(groups)


def deletable_resources(resources: Iterable[Resource],
                        ignored: Iterable[tuple[str, str]] = DEFAULT_IGNORED_RESOURCES) -> set[Resource]:
    """The resources the collector monitors: list, watch and delete supported, not ignored."""
    skip = set(ignored)
    return {r for r in resources
            if r.verbs >= REQUIRED_VERBS and (r.group, r.plural) not in skip and "/" not in r.plural}


class InformerFactory(Protocol):
    """What :class:`Monitors` needs of :class:`machinery.informer.SharedInformerFactory`."""

    def informer(self, resource: Resource) -> Any: ...

    def informers(self) -> list[Any]: ...

    def start(self) -> None: ...

    async def stop(self, resource: Resource | None = None) -> None: ...


class _Monitor:
    """Forwards one informer's events to the graph while active (informer handlers cannot be removed)."""

    def __init__(self, resource: Resource, informer: Any, graph: DependencyGraph, owned: bool) -> None:
        self.resource = resource
        self.informer = informer
        self.graph = graph
        self.owned = owned  # started by the collector (no other controller shares it): stopped with it
        self.active = True

    def on_add(self, obj: dict) -> None:
        if self.active:
            self.graph.observe(obj, self.resource)

    def on_update(self, old: dict, new: dict) -> None:
        if self.active:
            self.graph.observe(new, self.resource, old)

    def on_delete(self, obj: dict) -> None:
        if self.active:
            self.graph.observe_delete(obj, self.resource)


class Monitors:
    """One informer per monitored resource, feeding ``graph``."""

    def __init__(self, factory: InformerFactory, graph: DependencyGraph) -> None:
        self.factory = factory
        self.graph = graph
        self._monitors: dict[Resource, _Monitor] = {}

    def resources(self) -> set[Resource]:
        return set(self._monitors)

    async def sync(self, wanted: Iterable[Resource]) -> tuple[list[Resource], list[Resource]]:
        """Monitor exactly ``wanted``: start informers for new resources, stop those no longer served.

        Returns (added, removed)."""
        wanted = set(wanted)
        removed = [r for r in self._monitors if r not in wanted]
        for resource in removed:
            await self._stop(self._monitors.pop(resource))
        added = [r for r in wanted if r not in self._monitors]
        shared = {informer.resource for informer in self.factory.informers()}
        for resource in sorted(added, key=lambda r: (r.group, r.plural)):
            informer = self.factory.informer(resource)
            monitor = _Monitor(resource, informer, self.graph, owned=resource not in shared)
            informer.add_event_handler(monitor.on_add, monitor.on_update, monitor.on_delete)
            self._monitors[resource] = monitor
        if added:
            self.factory.start()
        return added, removed

    def has_synced(self) -> bool:
        return all(m.informer.has_synced() for m in self._monitors.values())

    def unsynced(self) -> list[Resource]:
        return [r for r, m in self._monitors.items() if not m.informer.has_synced()]

    async def wait_for_sync(self) -> None:
        await asyncio.gather(*(m.informer.wait_for_sync() for m in self._monitors.values()))

    async def stop(self) -> None:
        """Stop forwarding events; stop the informers nobody else uses."""
        monitors, self._monitors = list(self._monitors.values()), {}
        for monitor in monitors:
            await self._stop(monitor)

    async def _stop(self, monitor: _Monitor) -> None:
        monitor.active = False
        if monitor.owned:
            await self.factory.stop(monitor.resource)
