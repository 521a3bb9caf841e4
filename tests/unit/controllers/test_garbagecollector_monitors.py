"""Garbage collector monitors: discovery, the kind → resource mapper, informers started/stopped, run() lifecycle."""

from __future__ import annotations

import asyncio

import pytest

from controllers.controller import ControllerContext
from controllers.garbagecollector import GarbageCollector, Monitors, RestMapper, UnknownKind
from controllers.garbagecollector.graph import AbsentOwnerCache, DependencyGraph
from controllers.garbagecollector.monitors import deletable_resources, discover
from machinery import errors
from machinery.client import Resource, resources_from_discovery
from machinery.clock import FakeClock
from tests.fakes import FakeClient, FakeRecorder

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def group(name, version, *resources):
    return {"metadata": {"name": name} if name else {}, "versions": [
        {"version": version, "resources": [
            {"resource": plural, "responseKind": {"group": name, "version": version, "kind": kind},
             "scope": "Namespaced" if namespaced else "Cluster", "verbs": verbs}
            for plural, kind, namespaced, verbs in resources]}]}


CORE = group("", "v1", ("configmaps", "ConfigMap", True, ALL_VERBS), ("namespaces", "Namespace", False, ALL_VERBS),
             ("events", "Event", True, ALL_VERBS), ("bindings", "Binding", True, ["create"]))
APPS = group("apps", "v1", ("deployments", "Deployment", True, ALL_VERBS))
EVENTS = group("events.k8s.io", "v1", ("events", "Event", True, ALL_VERBS))
WIDGETS = group("example.com", "v1", ("widgets", "Widget", True, ALL_VERBS))


class DiscoveryClient(FakeClient):
    """A fake client that also serves aggregated discovery from ``self.groups``."""

    def __init__(self, groups, **kw) -> None:
        super().__init__(**kw)
        self.groups = groups

    async def get_json(self, path, *, accept=None):
        assert "apidiscovery.k8s.io" in accept
        items = [g for g in self.groups if bool(g["metadata"]) == (path == "/apis")]
        return {"kind": "APIGroupDiscoveryList", "items": items}


class StubInformer:
    def __init__(self, resource, synced=True) -> None:
        self.resource = resource
        self.handlers = []
        self._synced = asyncio.Event()
        if synced:
            self._synced.set()

    def add_event_handler(self, on_add=None, on_update=None, on_delete=None):
        self.handlers.append((on_add, on_update, on_delete))

    def has_synced(self):
        return self._synced.is_set()

    async def wait_for_sync(self):
        await self._synced.wait()


class StubFactory:
    def __init__(self, *shared: Resource) -> None:
        self._informers = {r: StubInformer(r) for r in shared}
        self.starts = 0
        self.stopped: list[Resource] = []

    def informer(self, resource, **_):
        return self._informers.setdefault(resource, StubInformer(resource))

    def informers(self):
        return list(self._informers.values())

    def start(self):
        self.starts += 1

    async def stop(self, resource=None):
        self.stopped.append(resource)
        self._informers.pop(resource, None)


def resources(*groups):
    return {r.plural + "." + r.group: r for r in resources_from_discovery(groups)}


def test_deletable_resources_need_list_watch_delete_and_skip_events():
    found = resources(CORE, APPS, EVENTS)
    assert {r.qualified for r in deletable_resources(found.values())} == {"configmaps", "namespaces",
                                                                          "deployments.apps"}


def test_rest_mapper_maps_group_and_kind_to_the_preferred_resource():
    mapper = RestMapper(resources(CORE, APPS).values())
    assert mapper.resource_for("apps/v1beta1", "Deployment").qualified == "deployments.apps"
    assert mapper.resource_for("v1", "ConfigMap").plural == "configmaps"
    with pytest.raises(UnknownKind):
        mapper.resource_for("example.com/v1", "Widget")


async def test_discover_reads_core_and_groups():
    found = await discover(DiscoveryClient([CORE, APPS]))
    assert {r.qualified for r in found} >= {"configmaps", "deployments.apps", "bindings"}


async def test_monitors_start_new_informers_and_stop_only_their_own():
    found = resources(CORE, APPS, WIDGETS)
    configmaps, deployments, widgets = found["configmaps."], found["deployments.apps"], found["widgets.example.com"]
    factory = StubFactory(configmaps)  # another controller already watches configmaps
    graph = DependencyGraph(asyncio.Queue, asyncio.Queue, AbsentOwnerCache())  # queues unused here
    monitors = Monitors(factory, graph)
    added, removed = await monitors.sync({configmaps, deployments, widgets})
    assert set(added) == {configmaps, deployments, widgets} and removed == [] and factory.starts == 1
    assert monitors.has_synced()

    on_add, _, on_delete = factory.informer(widgets).handlers[0]
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "d",
                                                                              "uid": "u-w"}}
    on_add(widget)
    assert graph.node("u-w") is not None

    added, removed = await monitors.sync({configmaps, deployments})  # the CRD went away
    assert added == [] and removed == [widgets] and factory.stopped == [widgets]
    on_delete(widget)  # a late event from the stopped informer is ignored
    assert graph.node("u-w") is not None

    await monitors.stop()
    assert factory.stopped == [widgets, deployments]  # the shared configmaps informer keeps running


async def test_run_discovers_syncs_and_cleans_up_when_cancelled():
    clock = FakeClock()
    client = DiscoveryClient([CORE, APPS], clock=clock)
    factory = StubFactory()
    gc = GarbageCollector(ControllerContext(client, factory, FakeRecorder(), clock), discovery_period=5)
    task = asyncio.create_task(gc.run(workers=2))
    for _ in range(100):
        if gc.synced() and clock.sleepers:  # the discovery loop is asleep
            break
        await asyncio.sleep(0)
    assert gc.synced()
    assert {r.qualified for r in gc.monitors.resources()} == {"configmaps", "namespaces", "deployments.apps"}

    client.groups = [CORE, APPS, WIDGETS]  # a CRD appears: picked up at the next discovery
    clock.advance(5)
    for _ in range(100):
        if len(gc.monitors.resources()) == 4:
            break
        await asyncio.sleep(0)
    assert "widgets.example.com" in {r.qualified for r in gc.monitors.resources()}
    assert gc.mapper.resource_for("example.com/v1", "Widget").plural == "widgets"

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert {r.qualified for r in factory.stopped} == {"configmaps", "namespaces", "deployments.apps",
                                                     "widgets.example.com"}
    assert gc.queue.shutting_down and gc.orphan_queue.shutting_down and not gc.synced()


async def test_run_retries_discovery_until_the_server_answers():
    clock = FakeClock()
    client = DiscoveryClient([CORE], clock=clock)
    answers = [errors.service_unavailable("not yet")]
    serve = client.get_json

    async def flaky(path, *, accept=None):
        if answers:
            raise answers.pop()
        return await serve(path, accept=accept)

    client.get_json = flaky
    gc = GarbageCollector(ControllerContext(client, StubFactory(), FakeRecorder(), clock))
    task = asyncio.create_task(gc.run(workers=1))
    for _ in range(100):
        if clock.sleepers:
            break
        await asyncio.sleep(0)
    assert not gc.synced()
    clock.advance(1)
    for _ in range(100):
        if gc.synced():
            break
        await asyncio.sleep(0)
    assert gc.synced() and {r.qualified for r in gc.monitors.resources()} == {"configmaps", "namespaces"}
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
