"""The garbage collector: kube-controller-manager's ``garbagecollector`` controller.

Objects name their owners in ``metadata.ownerReferences``; when every owner is gone the object is
deleted, and owners deleted with ``propagationPolicy`` Foreground or Orphan wait (through the
``foregroundDeletion``/``orphan`` finalizers the API server adds) until their dependents are deleted
or released. :mod:`.graph` keeps the ownership graph, :mod:`.monitors` discovers and watches every
deletable resource, :mod:`.collector` is the controller acting on it.
"""

from controllers.garbagecollector.collector import GarbageCollector, NotYetObserved
from controllers.garbagecollector.graph import AbsentOwnerCache, DependencyGraph, Node, ObjectReference
from controllers.garbagecollector.monitors import Monitors, RestMapper, UnknownKind

__all__ = [
    "AbsentOwnerCache", "DependencyGraph", "GarbageCollector", "Monitors", "Node", "NotYetObserved",
    "ObjectReference", "RestMapper", "UnknownKind",
]
