"""API discovery: /api, /apis (legacy and aggregated v2), group and group-version resource lists.

kubectl picks the format by the response Content-Type, so the aggregated documents carry
``application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList``. The Python dynamic
client and kopf use the legacy documents, and ``kubectl drain``/``auth can-i`` read the
per-group-version APIResourceList even when aggregated discovery is served.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from apiserver.resources import ResourceInfo, core_group_first
from apiserver.server import codec


class Discovery:
    def __init__(self, registry) -> None:
        self.registry = registry

    # --- helpers ----------------------------------------------------------------------------------

    def _resources(self) -> list[ResourceInfo]:
        return core_group_first(self.registry.resources)

    def _groups(self) -> dict[str, list[str]]:
        """Named groups and their versions, in registration order."""
        groups: dict[str, list[str]] = {}
        for info in self._resources():
            if info.group:
                versions = groups.setdefault(info.group, [])
                if info.version not in versions:
                    versions.append(info.version)
        return groups

    @staticmethod
    def _address(request: Request) -> str:
        return request.headers.get("host", "")

    # --- legacy -----------------------------------------------------------------------------------

    async def api(self, request: Request) -> Response:
        version = codec.aggregated_discovery_version(request)
        if version:
            return self._aggregated([r for r in self._resources() if r.group == ""], core=True, version=version)
        return codec.json_response({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": self._address(request)}],
        })

    async def apis(self, request: Request) -> Response:
        version = codec.aggregated_discovery_version(request)
        if version:
            return self._aggregated([r for r in self._resources() if r.group != ""], core=False, version=version)
        groups = [self._group_doc(name, versions) for name, versions in self._groups().items()]
        return codec.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    async def group(self, request: Request) -> Response:
        name = request.path_params["group"]
        versions = self._groups().get(name)
        if versions is None:
            return _not_found()
        return codec.json_response({"kind": "APIGroup", "apiVersion": "v1", **self._group_doc(name, versions)})

    @staticmethod
    def _group_doc(name: str, versions: list[str]) -> dict:
        entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        return {"name": name, "versions": entries, "preferredVersion": entries[0]}

    async def core_resources(self, request: Request) -> Response:
        return self._resource_list("", "v1")

    async def group_resources(self, request: Request) -> Response:
        return self._resource_list(request.path_params["group"], request.path_params["version"])

    def _resource_list(self, group: str, version: str) -> Response:
        infos = [r for r in self._resources() if r.group == group and r.version == version]
        if not infos:
            return _not_found()
        resources = []
        for info in infos:
            resources.append({
                "name": info.resource, "singularName": info.singular, "namespaced": info.namespaced,
                "kind": info.kind, "verbs": list(info.verbs),
                **({"shortNames": list(info.short_names)} if info.short_names else {}),
                **({"categories": list(info.categories)} if info.categories else {}),
            })
            for sub in info.subresources:
                entry = {"name": f"{info.resource}/{sub.name}", "singularName": "", "namespaced": info.namespaced,
                         "kind": sub.kind, "verbs": list(sub.verbs)}
                if (sub.group, sub.version) != (info.group, info.version):
                    entry.update(group=sub.group, version=sub.version)
                resources.append(entry)
        group_version = f"{group}/{version}" if group else version
        return codec.json_response(
            {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})

    # --- aggregated (apidiscovery.k8s.io/v2, and v2beta1 with the same shape) --------------------

    def _aggregated(self, infos: list[ResourceInfo], *, core: bool, version: str) -> Response:
        by_group: dict[str, dict[str, list[dict]]] = {}
        for info in infos:
            by_group.setdefault(info.group, {}).setdefault(info.version, []).append(_aggregated_resource(info))
        items = []
        for group, versions in by_group.items():
            items.append({
                "metadata": {} if core else {"name": group},
                "versions": [{"version": v, "resources": res, "freshness": "Current"} for v, res in versions.items()],
            })
        body = {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{version}", "metadata": {},
                "items": items}
        response = codec.json_response(body)
        response.headers["content-type"] = (
            f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
        response.headers["vary"] = "Accept"
        return response


def _aggregated_resource(info: ResourceInfo) -> dict:
    entry: dict = {
        "resource": info.resource,
        "responseKind": {"group": info.group, "version": info.version, "kind": info.kind},
        "scope": "Namespaced" if info.namespaced else "Cluster",
        "singularResource": info.singular,
        "verbs": list(info.verbs),
    }
    if info.short_names:
        entry["shortNames"] = list(info.short_names)
    if info.categories:
        entry["categories"] = list(info.categories)
    if info.subresources:
        entry["subresources"] = [
            {"subresource": sub.name, "responseKind": {"group": sub.group, "version": sub.version, "kind": sub.kind},
             "verbs": list(sub.verbs)}
            for sub in info.subresources
        ]
    return entry


def _not_found() -> Response:
    from machinery import errors as api

    return codec.error_response(api.StatusError(404, "NotFound", "the server could not find the requested resource"))
