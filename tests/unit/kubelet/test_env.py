"""A container's environment: service links, envFrom, env values and every valueFrom source, ordering and errors."""

from __future__ import annotations

import asyncio
import base64

import pytest

from kubelet.env import ContainerConfigError, expand, format_map, make_environment
from kubelet.objects import ApiObjectSource
from machinery.client.resources import CONFIG_MAPS, SECRETS, SERVICES
from machinery.clock import FakeClock
from tests.fakes import FakeClient


class FakeSource:
    """An ObjectSource over dicts; counts reads."""

    def __init__(self, config_maps=None, secrets=None, services=None) -> None:
        self.config_maps = config_maps or {}
        self.secrets = secrets or {}
        self.service_lists = services or {}
        self.reads: list[tuple[str, str, str]] = []

    async def config_map(self, namespace, name):
        self.reads.append(("configmap", namespace, name))
        return self.config_maps.get((namespace, name))

    async def secret(self, namespace, name):
        self.reads.append(("secret", namespace, name))
        return self.secrets.get((namespace, name))

    async def services(self, namespace):
        return self.service_lists.get(namespace, [])


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def pod(containers=None, *, namespace="ns", links=None, **spec) -> dict:
    spec = {"nodeName": "node-1", "serviceAccountName": "sa", "containers": containers or [], **spec}
    if links is not None:
        spec["enableServiceLinks"] = links
    return {"metadata": {"name": "web", "namespace": namespace, "uid": "u-1", "labels": {"app": "web", "tier": "x"},
                         "annotations": {"note": 'say "hi"\n'}}, "spec": spec}


def service(name, ip, *ports, namespace="ns") -> dict:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"clusterIP": ip, "ports": list(ports)}}


KUBERNETES = service("kubernetes", "10.0.0.1", {"name": "https", "port": 443, "protocol": "TCP"}, namespace="default")


async def environment(container, source=None, the_pod=None, **kwargs) -> dict[str, str]:
    the_pod = the_pod or pod([container])
    pairs = await make_environment(the_pod, container, source or FakeSource(), host_ip="192.168.1.5",
                                   pod_ip="10.1.0.7", pod_ips=kwargs.pop("pod_ips", ["10.1.0.7", "fd00::7"]),
                                   node_allocatable=kwargs.pop("node_allocatable", {"cpu": "4", "memory": "8Gi"}),
                                   **kwargs)
    assert len({name for name, _ in pairs}) == len(pairs)
    return dict(pairs)


# --- expansion ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("$(A)-$(B)", "1-2"),
    ("$$(A)", "$(A)"),           # escaped: not expanded
    ("$$", "$"),
    ("$(MISSING)", "$(MISSING)"),  # unknown kept literally
    ("x$(A", "x$(A"),            # incomplete reference
    ("$A $", "$A $"),            # lone operators
    ("$()", "$()"),
    ("$(A)$(A)$$$(B)", "11$2"),
])
def test_expand(text, expected):
    assert expand(text, {"A": "1", "B": "2"}) == expected


# --- service links ------------------------------------------------------------------------------------------------


async def test_service_links_for_services_with_cluster_ip():
    source = FakeSource(services={
        "ns": [service("my-db", "10.0.0.9", {"name": "sql", "port": 5432}, {"name": "metrics", "port": 9187,
                                                                          "protocol": "UDP"}),
               service("headless", "None", {"port": 80}), service("pending", "", {"port": 80})],
        "default": [KUBERNETES, service("other", "10.0.0.3", {"port": 80}, namespace="default")],
    })
    env = await environment({"name": "c"}, source)
    assert env["MY_DB_SERVICE_HOST"] == "10.0.0.9"
    assert env["MY_DB_SERVICE_PORT"] == "5432"
    assert env["MY_DB_SERVICE_PORT_SQL"] == "5432"
    assert env["MY_DB_SERVICE_PORT_METRICS"] == "9187"
    assert env["MY_DB_PORT"] == "tcp://10.0.0.9:5432"
    assert env["MY_DB_PORT_5432_TCP"] == "tcp://10.0.0.9:5432"
    assert env["MY_DB_PORT_5432_TCP_PROTO"] == "tcp"
    assert env["MY_DB_PORT_5432_TCP_PORT"] == "5432"
    assert env["MY_DB_PORT_5432_TCP_ADDR"] == "10.0.0.9"
    assert env["MY_DB_PORT_9187_UDP"] == "udp://10.0.0.9:9187"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.0.0.1"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert not any(k.startswith(("HEADLESS_", "PENDING_", "OTHER_")) for k in env)


async def test_service_links_disabled_keeps_the_kubernetes_service():
    source = FakeSource(services={"ns": [service("db", "10.0.0.9", {"port": 5432})], "default": [KUBERNETES]})
    env = await environment({"name": "c"}, source, pod([{"name": "c"}], links=False))
    assert env["KUBERNETES_SERVICE_HOST"] == "10.0.0.1"
    assert "DB_SERVICE_HOST" not in env


async def test_service_link_ipv6_address_is_bracketed():
    source = FakeSource(services={"ns": [service("v6", "fd00::10", {"port": 80})]})
    env = await environment({"name": "c"}, source)
    assert env["V6_PORT"] == "tcp://[fd00::10]:80"


# --- envFrom and env ------------------------------------------------------------------------------------------------


async def test_env_from_config_map_and_secret_with_prefix_in_order():
    source = FakeSource(config_maps={("ns", "cfg"): {"data": {"A": "from-cm", "B": "cm"}}},
                        secrets={("ns", "sec"): {"data": {"A": b64("from-secret"), "PASS": b64("s3cret")}}})
    env = await environment({"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}},
                                                      {"secretRef": {"name": "sec"}},
                                                      {"prefix": "CM_", "configMapRef": {"name": "cfg"}}]}, source)
    assert env["A"] == "from-secret"  # the later source wins
    assert env["B"] == "cm" and env["PASS"] == "s3cret" and env["CM_A"] == "from-cm"


async def test_env_from_missing_optional_is_skipped_and_required_fails():
    container = {"name": "c", "envFrom": [{"configMapRef": {"name": "gone", "optional": True}},
                                          {"secretRef": {"name": "gone", "optional": True}}]}
    assert await environment(container) == {}
    with pytest.raises(ContainerConfigError, match=r'^configmap "gone" not found$'):
        await environment({"name": "c", "envFrom": [{"configMapRef": {"name": "gone"}}]})
    with pytest.raises(ContainerConfigError, match=r'^secret "gone" not found$'):
        await environment({"name": "c", "envFrom": [{"secretRef": {"name": "gone"}}]})


async def test_env_from_skips_invalid_names_with_a_warning():
    source = FakeSource(config_maps={("ns", "cfg"): {"data": {"ok.name": "1", "a=b": "2"}}})
    warnings = []
    env = await environment({"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}}]}, source,
                            on_warning=lambda reason, message: warnings.append((reason, message)))
    assert env == {"ok.name": "1"}
    assert warnings == [("InvalidEnvironmentVariableNames", "Keys [a=b] from the EnvFrom configmap ns/cfg were "
                         "skipped since they are considered invalid environment variable names.")]


async def test_env_values_expand_and_later_definitions_override():
    source = FakeSource(config_maps={("ns", "cfg"): {"data": {"HOST": "db", "PORT": "1"}}},
                        services={"default": [KUBERNETES]})
    env = await environment({"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}}], "env": [
        {"name": "PORT", "value": "5432"},
        {"name": "URL", "value": "pg://$(HOST):$(PORT)/$(NOPE)$$(HOST)"},
        {"name": "API", "value": "$(KUBERNETES_SERVICE_HOST)"},
        {"name": "EMPTY"},
        {"name": "URL", "value": "$(URL)?x"},
    ]}, source)
    assert env["PORT"] == "5432"
    assert env["URL"] == "pg://db:5432/$(NOPE)$(HOST)?x"
    assert env["API"] == "10.0.0.1"
    assert env["EMPTY"] == ""


async def test_env_order_is_services_then_env_from_then_env():
    source = FakeSource(config_maps={("ns", "cfg"): {"data": {"FROM_CM": "1"}}}, services={"default": [KUBERNETES]})
    pairs = await make_environment(pod(), {"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}}],
                                           "env": [{"name": "LAST", "value": "x"}]}, source, host_ip="h",
                                   pod_ip="p", pod_ips=[], node_allocatable={})
    names = [name for name, _ in pairs]
    assert names[0].startswith("KUBERNETES_") and names[-2:] == ["FROM_CM", "LAST"]


async def test_key_refs_resolve_skip_when_optional_and_fail_otherwise():
    source = FakeSource(config_maps={("ns", "cfg"): {"data": {"k": "v"}, "binaryData": {"bin": b64("b")}}},
                        secrets={("ns", "sec"): {"data": {"k": b64("secret-v")}}})

    def ref(kind, name, key, optional=None):
        body = {"name": name, "key": key} | ({"optional": optional} if optional is not None else {})
        return {"name": "V", "valueFrom": {kind: body}}

    assert (await environment({"name": "c", "env": [ref("configMapKeyRef", "cfg", "k")]}, source))["V"] == "v"
    assert (await environment({"name": "c", "env": [ref("secretKeyRef", "sec", "k")]}, source))["V"] == "secret-v"
    for kind, name in (("configMapKeyRef", "cfg"), ("secretKeyRef", "sec"), ("configMapKeyRef", "gone")):
        assert "V" not in await environment({"name": "c", "env": [ref(kind, name, "nope", True)]}, source)
    cases = [(ref("configMapKeyRef", "cfg", "nope"), "couldn't find key nope in ConfigMap ns/cfg"),
             (ref("configMapKeyRef", "cfg", "bin"), "couldn't find key bin in ConfigMap ns/cfg"),  # data only
             (ref("secretKeyRef", "sec", "nope"), "couldn't find key nope in Secret ns/sec"),
             (ref("configMapKeyRef", "gone", "k"), 'configmap "gone" not found'),
             (ref("secretKeyRef", "gone", "k"), 'secret "gone" not found')]
    for var, message in cases:
        with pytest.raises(ContainerConfigError) as caught:
            await environment({"name": "c", "env": [var]}, source)
        assert str(caught.value) == message


async def test_each_object_is_read_once_per_container():
    source = FakeSource(config_maps={("ns", "cfg"): {"data": {"a": "1", "b": "2"}}})
    env = [{"name": n, "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": n}}} for n in ("a", "b")]
    await environment({"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}}], "env": env}, source)
    assert source.reads == [("configmap", "ns", "cfg")]


# --- downward API ---------------------------------------------------------------------------------------------------


async def test_field_refs():
    paths = {"NAME": "metadata.name", "NS": "metadata.namespace", "UID": "metadata.uid",
             "APP": "metadata.labels['app']", "NONE": "metadata.labels['none']", "NOTE": "metadata.annotations['note']",
             "NODE": "spec.nodeName", "SA": "spec.serviceAccountName", "HOST": "status.hostIP",
             "HOSTS": "status.hostIPs", "IP": "status.podIP", "IPS": "status.podIPs", "LABELS": "metadata.labels"}
    env = await environment({"name": "c", "env": [{"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}}
                                                  for k, v in paths.items()]})
    assert env == {"NAME": "web", "NS": "ns", "UID": "u-1", "APP": "web", "NONE": "", "NOTE": 'say "hi"\n',
                   "NODE": "node-1", "SA": "sa", "HOST": "192.168.1.5", "HOSTS": "192.168.1.5", "IP": "10.1.0.7",
                   "IPS": "10.1.0.7,fd00::7", "LABELS": 'app="web"\ntier="x"'}


async def test_pod_ip_falls_back_to_pod_ip_argument():
    env = await environment({"name": "c", "env": [{"name": "IP", "valueFrom": {"fieldRef": {
        "fieldPath": "status.podIPs"}}}]}, pod_ips=[])
    assert env["IP"] == "10.1.0.7"


async def test_unsupported_field_ref_is_a_config_error():
    with pytest.raises(ContainerConfigError, match=r"unsupported fieldPath: spec\.bogus"):
        await environment({"name": "c", "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]})


def test_format_map_quotes_like_go():
    assert format_map({"b": "tab\there", "a": 'q"\\'}) == 'a="q\\"\\\\"\nb="tab\\there"'


async def test_resource_field_refs():
    container = {"name": "c", "resources": {"limits": {"cpu": "250m", "memory": "64Mi"},
                                            "requests": {"memory": "32Mi"}}}

    def ref(resource, divisor=None):
        return {"resource": resource} | ({"divisor": divisor} if divisor else {})

    container["env"] = [
        {"name": "CPU", "valueFrom": {"resourceFieldRef": ref("limits.cpu")}},  # rounded up to whole cores
        {"name": "CPU_M", "valueFrom": {"resourceFieldRef": ref("limits.cpu", "1m")}},
        {"name": "MEM", "valueFrom": {"resourceFieldRef": ref("limits.memory")}},
        {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": ref("limits.memory", "1Mi")}},
        {"name": "REQ_MEM_MI", "valueFrom": {"resourceFieldRef": ref("requests.memory", "1Mi")}},
        {"name": "REQ_CPU", "valueFrom": {"resourceFieldRef": ref("requests.cpu")}},
        {"name": "STORAGE", "valueFrom": {"resourceFieldRef": ref("limits.ephemeral-storage", "1Gi")}},
    ]
    env = await environment(container, node_allocatable={"cpu": "4", "memory": "8Gi", "ephemeral-storage": "100Gi"})
    assert env == {"CPU": "1", "CPU_M": "250", "MEM": str(64 * 2**20), "MEM_MI": "64", "REQ_MEM_MI": "32",
                   "REQ_CPU": "0", "STORAGE": "100"}
    unset = {"name": "c", "env": [{"name": "CPU", "valueFrom": {"resourceFieldRef": ref("limits.cpu")}},
                                  {"name": "MEM", "valueFrom": {"resourceFieldRef": ref("limits.memory", "1Gi")}}]}
    assert await environment(unset) == {"CPU": "4", "MEM": "8"}  # unset limits read as node allocatable
    with pytest.raises(ContainerConfigError, match=r"unsupported container resource : limits\.gpu"):
        await environment({"name": "c", "env": [{"name": "X", "valueFrom": {"resourceFieldRef": ref("limits.gpu")}}]})


# --- the API object source -----------------------------------------------------------------------------------------


async def test_api_object_source_caches_for_the_ttl_and_maps_404_to_none():
    clock = FakeClock()
    client = FakeClient(clock=clock)
    client.seed(CONFIG_MAPS, {"metadata": {"name": "cfg", "namespace": "ns"}, "data": {"a": "1"}})
    client.seed(SERVICES, {"metadata": {"name": "svc", "namespace": "ns"}, "spec": {"clusterIP": "10.0.0.5"}})
    source = ApiObjectSource(client, clock=clock, ttl=10.0)
    first = await asyncio.gather(*(source.config_map("ns", "cfg") for _ in range(5)))
    assert all(cm["data"] == {"a": "1"} for cm in first)
    assert await source.secret("ns", "missing") is None
    assert [s["metadata"]["name"] for s in await source.services("ns")] == ["svc"]
    assert len(client.actions_of("get", "configmaps")) == 1  # concurrent callers shared one GET
    client.objects[("configmaps", "ns", "cfg")]["data"] = {"a": "2"}
    assert (await source.config_map("ns", "cfg"))["data"] == {"a": "1"}  # still cached
    clock.advance(10.5)
    assert (await source.config_map("ns", "cfg"))["data"] == {"a": "2"}
    assert await source.secret("ns", "missing") is None
    assert len(client.actions_of("get", "secrets")) == 2


async def test_api_object_source_does_not_cache_errors():
    from machinery import errors

    client = FakeClient()
    client.seed(SECRETS, {"metadata": {"name": "s", "namespace": "ns"}, "data": {}})
    source = ApiObjectSource(client, clock=client.clock)
    client.fail("get", "secrets", errors.internal_error("boom"))
    with pytest.raises(errors.StatusError):
        await source.secret("ns", "s")
    assert await source.secret("ns", "s") is not None


async def test_api_object_source_forgets_expired_entries():
    clock = FakeClock()
    client = FakeClient(clock=clock)
    client.seed(CONFIG_MAPS, {"metadata": {"name": "cfg", "namespace": "ns"}, "data": {"a": "1"}})
    source = ApiObjectSource(client, clock=clock, ttl=10.0)
    await source.config_map("ns", "cfg")
    await source.secret("ns", "gone")
    await source.services("old-namespace")
    assert len(source._cache) == 3
    clock.advance(25)  # nobody asked for them for more than two TTLs
    await source.config_map("ns", "cfg")  # any read sweeps the expired entries
    assert list(source._cache) == [("configmaps", "ns", "cfg")]
