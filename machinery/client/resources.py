"""Where an API resource lives on the wire: group, version, plural, kind and scope → URL paths.

Clients address resources by a :class:`Resource` (what client-go calls a GroupVersionResource plus
its kind and scope). The constants below name the built-in resources kubemini's own components use;
others (custom resources, anything found by discovery) are built with :func:`Resource` directly or
by :func:`resources_from_discovery`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    verbs: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``pods`` or ``deployments.apps``, as error messages and kubectl name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def collection_path(self, namespace: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"

    def path(self, namespace: str | None, name: str, subresource: str | None = None) -> str:
        if self.namespaced and not namespace:
            raise ValueError(f"{self.qualified} is namespaced: a namespace is required to address {name!r}")
        path = f"{self.collection_path(namespace)}/{name}"
        return f"{path}/{subresource}" if subresource else path

    def __str__(self) -> str:
        return self.qualified


NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
NODES = Resource("", "v1", "nodes", "Node", namespaced=False)
PODS = Resource("", "v1", "pods", "Pod")
SERVICES = Resource("", "v1", "services", "Service")
ENDPOINTS = Resource("", "v1", "endpoints", "Endpoints")
EVENTS = Resource("", "v1", "events", "Event")
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")
CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS = Resource("", "v1", "secrets", "Secret")
PERSISTENT_VOLUME_CLAIMS = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
REPLICA_SETS = Resource("apps", "v1", "replicasets", "ReplicaSet")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
DAEMON_SETS = Resource("apps", "v1", "daemonsets", "DaemonSet")
STATEFUL_SETS = Resource("apps", "v1", "statefulsets", "StatefulSet")
CONTROLLER_REVISIONS = Resource("apps", "v1", "controllerrevisions", "ControllerRevision")
JOBS = Resource("batch", "v1", "jobs", "Job")
CRON_JOBS = Resource("batch", "v1", "cronjobs", "CronJob")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
POD_DISRUPTION_BUDGETS = Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")


def resources_from_discovery(groups: Iterable[Mapping[str, Any]]) -> list[Resource]:
    """Resources (preferred versions, no subresources) from an aggregated discovery document's items.

    ``groups`` is the ``items`` list of an ``apidiscovery.k8s.io/v2`` APIGroupDiscoveryList, as served at
    ``/api`` and ``/apis`` with ``Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList``.
    """
    found: list[Resource] = []
    for group in groups:
        group_name = (group.get("metadata") or {}).get("name") or ""
        versions = group.get("versions") or []
        if not versions:
            continue
        preferred = versions[0]  # the server lists versions in preference order
        for res in preferred.get("resources") or []:
            kind = (res.get("responseKind") or {}).get("kind") or ""
            found.append(Resource(
                group_name, preferred.get("version") or "v1", res.get("resource") or "", kind,
                namespaced=res.get("scope") == "Namespaced", verbs=frozenset(res.get("verbs") or ()),
            ))
    return found
