"""The official Python clients, unchanged, against a real API server: CRUD, errors, watch across a restart."""

from __future__ import annotations

import threading
import uuid

import pytest
import urllib3
from kubernetes import client as k8s
from kubernetes import watch
from kubernetes.client.rest import ApiException
from kubernetes_asyncio import client as k8s_async
from kubernetes_asyncio.client.rest import ApiException as AsyncApiException

from kubemini.apiserverproc import ApiServerProcess
from tests.support import wait_for


def sync_client(url: str, **config) -> k8s.ApiClient:
    conf = k8s.Configuration()
    conf.host = url
    conf.api_key = {"authorization": "Bearer kubemini"}
    for key, value in config.items():
        setattr(conf, key, value)
    return k8s.ApiClient(conf)


@pytest.fixture
def apiclient(apiserver):
    with sync_client(apiserver.url) as api_client:
        yield api_client


@pytest.fixture
def core(apiclient) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(apiclient)


@pytest.fixture
def apps(apiclient) -> k8s.AppsV1Api:
    return k8s.AppsV1Api(apiclient)


def config_map(name: str, data: dict[str, str] | None = None, labels: dict[str, str] | None = None):
    return k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name=name, labels=labels), data=data)


def deployment(name: str, replicas: int = 1, image: str = "nginx:1.27") -> k8s.V1Deployment:
    labels = {"app": name}
    return k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name=name, labels=labels),
        spec=k8s.V1DeploymentSpec(
            replicas=replicas,
            selector=k8s.V1LabelSelector(match_labels=labels),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels),
                spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="web", image=image)]),
            ),
        ),
    )


# --- kubernetes (sync) -------------------------------------------------------------------------------


def test_configmap_crud(core, namespace):
    created = core.create_namespaced_config_map(namespace, config_map("one", {"a": "1"}, {"tier": "x"}))
    assert created.metadata.name == "one" and created.metadata.namespace == namespace
    assert created.metadata.uid and created.metadata.resource_version and created.metadata.creation_timestamp
    core.create_namespaced_config_map(namespace, config_map("two", {"b": "2"}, {"tier": "y"}))

    read = core.read_namespaced_config_map("one", namespace)
    assert read.data == {"a": "1"} and read.metadata.uid == created.metadata.uid

    everything = core.list_namespaced_config_map(namespace)
    assert [c.metadata.name for c in everything.items] == ["one", "two"]
    assert everything.metadata.resource_version
    selected = core.list_namespaced_config_map(namespace, label_selector="tier=y")
    assert [c.metadata.name for c in selected.items] == ["two"]
    assert core.list_namespaced_config_map(namespace, label_selector="tier notin (x,y)").items == []

    patched = core.patch_namespaced_config_map("one", namespace, {"data": {"c": "3"}, "metadata": {
        "labels": {"patched": "yes"}}})
    assert patched.data == {"a": "1", "c": "3"}
    assert patched.metadata.labels == {"tier": "x", "patched": "yes"}
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)

    patched.data = {"only": "this"}
    replaced = core.replace_namespaced_config_map("one", namespace, patched)
    assert replaced.data == {"only": "this"}
    assert core.read_namespaced_config_map("one", namespace).data == {"only": "this"}

    # replacing with the stale resourceVersion of `created` is a conflict
    created.data = {"stale": "write"}
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("one", namespace, created)
    assert err.value.status == 409

    core.delete_namespaced_config_map("one", namespace)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("one", namespace)
    assert err.value.status == 404
    assert [c.metadata.name for c in core.list_namespaced_config_map(namespace).items] == ["two"]


def test_deployment_crud_and_scale(apps, namespace):
    created = apps.create_namespaced_deployment(namespace, deployment("web", replicas=1))
    assert created.metadata.name == "web" and created.spec.replicas == 1
    assert created.metadata.generation == 1
    apps.create_namespaced_deployment(namespace, deployment("api", replicas=1))

    listed = apps.list_namespaced_deployment(namespace, label_selector="app=web")
    assert [d.metadata.name for d in listed.items] == ["web"]

    patched = apps.patch_namespaced_deployment("web", namespace, {
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.28"}]}}}})
    assert [c.image for c in patched.spec.template.spec.containers] == ["nginx:1.28"]
    assert patched.metadata.generation == 2

    # a read-modify-write, retried on conflict as client code must (the controller-manager, when this
    # session runs one, writes the deployment's status and revision annotation meanwhile)
    current = patched
    for _ in range(10):
        current.spec.template.spec.containers[0].image = "nginx:1.29"
        try:
            replaced = apps.replace_namespaced_deployment("web", namespace, current)
            break
        except ApiException as exc:
            assert exc.status == 409, exc
            current = apps.read_namespaced_deployment("web", namespace)
    assert replaced.spec.template.spec.containers[0].image == "nginx:1.29"

    scale = apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 3}})
    assert scale.kind == "Scale" and scale.api_version == "autoscaling/v1"
    assert scale.spec.replicas == 3
    assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 3
    read_scale = apps.read_namespaced_deployment_scale("web", namespace)
    assert read_scale.spec.replicas == 3 and read_scale.status.selector == "app=web"

    apps.delete_namespaced_deployment("web", namespace, propagation_policy="Background")
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment("web", namespace)
    assert err.value.status == 404
    assert [d.metadata.name for d in apps.list_namespaced_deployment(namespace).items] == ["api"]


def test_already_exists_and_not_found(core, apps, namespace):
    core.create_namespaced_config_map(namespace, config_map("dup"))
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(namespace, config_map("dup"))
    assert err.value.status == 409
    assert '"reason":"AlreadyExists"' in err.value.body.replace(" ", "")

    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("missing", namespace)
    assert err.value.status == 404
    assert '"reason":"NotFound"' in err.value.body.replace(" ", "")
    with pytest.raises(ApiException) as err:
        apps.read_namespaced_deployment("missing", namespace)
    assert err.value.status == 404


# --- kubernetes_asyncio --------------------------------------------------------------------------------


async def test_asyncio_client_crud(apiserver, namespace):
    conf = k8s_async.Configuration()
    conf.host = apiserver.url
    async with k8s_async.ApiClient(conf) as api_client:
        core = k8s_async.CoreV1Api(api_client)
        body = k8s_async.V1ConfigMap(metadata=k8s_async.V1ObjectMeta(name="async", labels={"k": "v"}),
                                     data={"a": "1"})
        created = await core.create_namespaced_config_map(namespace, body)
        assert created.metadata.name == "async" and created.data == {"a": "1"}

        read = await core.read_namespaced_config_map("async", namespace)
        assert read.metadata.uid == created.metadata.uid
        listed = await core.list_namespaced_config_map(namespace, label_selector="k=v")
        assert [c.metadata.name for c in listed.items] == ["async"]

        patched = await core.patch_namespaced_config_map("async", namespace, {"data": {"b": "2"}})
        assert patched.data == {"a": "1", "b": "2"}
        patched.data = {"c": "3"}
        replaced = await core.replace_namespaced_config_map("async", namespace, patched)
        assert replaced.data == {"c": "3"}

        with pytest.raises(AsyncApiException) as err:
            await core.create_namespaced_config_map(namespace, body)
        assert err.value.status == 409

        await core.delete_namespaced_config_map("async", namespace)
        with pytest.raises(AsyncApiException) as err:
            await core.read_namespaced_config_map("async", namespace)
        assert err.value.status == 404


# --- watch across an API server restart ---------------------------------------------------------------


def test_watch_survives_apiserver_restart(etcd, api, namespace, tmp_path):
    second = ApiServerProcess([etcd.endpoint], tmp_path).start()
    restarted: ApiServerProcess | None = None
    # urllib3 retries (a normal client setting) cover the restart: connection refused while no server
    # listens, and a re-watch GET written onto a kept-alive connection the exiting server is closing
    # (the same keep-alive race exists with kube-apiserver; client-go retries such GETs too).
    # Reconnecting after the stream ends, from the last resourceVersion, is the Watch's own job.
    retries = urllib3.Retry(total=200, connect=200, read=3, status=0, backoff_factor=0.05, backoff_max=0.25)
    api_client = sync_client(second.url, retries=retries)
    core = k8s.CoreV1Api(api_client)
    w = watch.Watch()
    events: list[tuple[str, str, str]] = []
    errors: list[BaseException] = []
    sentinel = "zz-sentinel-" + uuid.uuid4().hex[:6]

    def run() -> None:
        try:
            for event in w.stream(core.list_namespaced_config_map, namespace):
                meta = event["raw_object"]["metadata"]
                events.append((event["type"], meta["name"], meta["resourceVersion"]))
                if meta["name"] == sentinel:
                    break
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        names = [f"cm-{i:02d}" for i in range(10)]
        for name in names[:5]:
            assert api.post(f"/api/v1/namespaces/{namespace}/configmaps",
                            json={"metadata": {"name": name}}).status_code == 201
        wait_for(lambda: len(events) >= 5 or errors, 15, message="the first 5 events")

        second.stop()
        restarted = ApiServerProcess([etcd.endpoint], tmp_path, port=second.port).start()
        for name in names[5:]:
            assert api.post(f"/api/v1/namespaces/{namespace}/configmaps",
                            json={"metadata": {"name": name}}).status_code == 201
        wait_for(lambda: len(events) >= 10 or errors, 30, message="10 events after the restart")
        # a last write marks the end: everything the watcher reports before it is all it will report
        assert api.post(f"/api/v1/namespaces/{namespace}/configmaps",
                        json={"metadata": {"name": sentinel}}).status_code == 201
        thread.join(30)
        assert not thread.is_alive(), f"the watch did not see the sentinel; got {events}"
    finally:
        w.stop()
        (restarted or second).stop()
        thread.join(15)
        api_client.close()
    assert not errors, errors
    assert events[-1][:2] == ("ADDED", sentinel)
    received = events[:-1]
    assert [(t, n) for t, n, _ in received] == [("ADDED", n) for n in names], received
    rvs = [int(rv) for _, _, rv in received]
    assert rvs == sorted(set(rvs)), rvs
