"""The catalogue of API resources the server knows: names, scope, kinds, verbs, subresources.

One table drives discovery (aggregated and legacy), routing, OpenAPI paths and etcd key layout, so
a resource is described exactly once. Custom resources add entries at run time through the same
:class:`ResourceInfo` shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
STATUS_VERBS = ("get", "patch", "update")
NO_DELETECOLLECTION = ("create", "delete", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Subresource:
    name: str  # "status", "scale", "binding", ...
    kind: str  # kind of the request/response body
    group: str = ""
    version: str = "v1"
    verbs: tuple[str, ...] = STATUS_VERBS


@dataclass(frozen=True)
class ResourceInfo:
    group: str  # "" for the core group
    version: str
    resource: str  # plural, as in URLs
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[Subresource, ...] = field(default=())

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def qualified(self) -> str:
        """``pods`` or ``deployments.apps``: how error messages name the resource."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def storage_prefix(self) -> str:
        """etcd key prefix: ``/registry/<group>/<resource>/``; the core group has no group segment."""
        group_part = f"{self.group}/" if self.group else ""
        return f"/registry/{group_part}{self.resource}/"

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"{self.storage_prefix}{namespace}/{name}"
        return f"{self.storage_prefix}{name}"

    def list_prefix(self, namespace: str | None) -> str:
        if self.namespaced and namespace:
            return f"{self.storage_prefix}{namespace}/"
        return self.storage_prefix

    def subresource(self, name: str) -> Subresource | None:
        for sub in self.subresources:
            if sub.name == name:
                return sub
        return None


def _status(kind: str, group: str = "", version: str = "v1") -> Subresource:
    return Subresource("status", kind, group, version)


def _scale() -> Subresource:
    return Subresource("scale", "Scale", "autoscaling", "v1")


def _core(resource, kind, namespaced=True, **kw) -> ResourceInfo:
    return ResourceInfo("", "v1", resource, kind, namespaced, singular=kind.lower(), **kw)


def _apps(resource, kind, **kw) -> ResourceInfo:
    return ResourceInfo("apps", "v1", resource, kind, True, singular=kind.lower(), **kw)


BUILTIN_RESOURCES: tuple[ResourceInfo, ...] = (
    # core/v1
    _core("namespaces", "Namespace", False, short_names=("ns",), verbs=NO_DELETECOLLECTION, subresources=(
        _status("Namespace"),
        Subresource("finalize", "Namespace", verbs=("update",)),
    )),
    _core("pods", "Pod", short_names=("po",), categories=("all",), subresources=(
        _status("Pod"),
        Subresource("binding", "Binding", verbs=("create",)),
        Subresource("eviction", "Eviction", "policy", "v1", verbs=("create",)),
        Subresource("ephemeralcontainers", "Pod", verbs=("get", "patch", "update")),
        Subresource("resize", "Pod", verbs=("get", "patch", "update")),
        Subresource("log", "Pod", verbs=("get",)),
        Subresource("exec", "PodExecOptions", verbs=("create", "get")),
        Subresource("attach", "PodAttachOptions", verbs=("create", "get")),
        Subresource("portforward", "PodPortForwardOptions", verbs=("create", "get")),
    )),
    _core("nodes", "Node", False, short_names=("no",), subresources=(_status("Node"),)),
    _core("services", "Service", short_names=("svc",), categories=("all",), subresources=(_status("Service"),)),
    _core("endpoints", "Endpoints", short_names=("ep",)),
    _core("configmaps", "ConfigMap", short_names=("cm",)),
    _core("secrets", "Secret"),
    _core("serviceaccounts", "ServiceAccount", short_names=("sa",)),
    _core("events", "Event", short_names=("ev",)),
    _core("limitranges", "LimitRange", short_names=("limits",)),
    _core("resourcequotas", "ResourceQuota", short_names=("quota",), subresources=(_status("ResourceQuota"),)),
    _core("persistentvolumes", "PersistentVolume", False, short_names=("pv",),
          subresources=(_status("PersistentVolume"),)),
    _core("persistentvolumeclaims", "PersistentVolumeClaim", short_names=("pvc",),
          subresources=(_status("PersistentVolumeClaim"),)),
    # apps/v1
    _apps("deployments", "Deployment", short_names=("deploy",), categories=("all",),
          subresources=(_status("Deployment", "apps"), _scale())),
    _apps("replicasets", "ReplicaSet", short_names=("rs",), categories=("all",),
          subresources=(_status("ReplicaSet", "apps"), _scale())),
    _apps("statefulsets", "StatefulSet", short_names=("sts",), categories=("all",),
          subresources=(_status("StatefulSet", "apps"), _scale())),
    _apps("daemonsets", "DaemonSet", short_names=("ds",), categories=("all",),
          subresources=(_status("DaemonSet", "apps"),)),
    _apps("controllerrevisions", "ControllerRevision"),
    # batch/v1
    ResourceInfo("batch", "v1", "jobs", "Job", True, "job", categories=("all",),
                 subresources=(_status("Job", "batch"),)),
    ResourceInfo("batch", "v1", "cronjobs", "CronJob", True, "cronjob", short_names=("cj",), categories=("all",),
                 subresources=(_status("CronJob", "batch"),)),
    # coordination.k8s.io/v1
    ResourceInfo("coordination.k8s.io", "v1", "leases", "Lease", True, "lease"),
    # events.k8s.io/v1
    ResourceInfo("events.k8s.io", "v1", "events", "Event", True, "event", short_names=("ev",)),
    # discovery.k8s.io/v1
    ResourceInfo("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True, "endpointslice"),
    # policy/v1
    ResourceInfo("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, "poddisruptionbudget",
                 short_names=("pdb",), subresources=(_status("PodDisruptionBudget", "policy"),)),
    # scheduling.k8s.io/v1
    ResourceInfo("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, "priorityclass",
                 short_names=("pc",)),
    # scheduling.k8s.io/v1alpha1 (Kubernetes 1.35 alpha: gang scheduling, KEP-4671)
    ResourceInfo("scheduling.k8s.io", "v1alpha1", "workloads", "Workload", True, "workload"),
)


def core_group_first(resources: list[ResourceInfo]) -> list[ResourceInfo]:
    """Stable order: core group first, then named groups as registered (discovery order matters:
    kubectl prefers the first group that serves an ambiguous name such as ``events``)."""
    return sorted(resources, key=lambda r: 0 if r.group == "" else 1)
