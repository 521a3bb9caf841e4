"""kubemini's pytest harness used the way a user's own test suite would use it.

Nothing here comes from our own conftest: only the ``kube_cluster`` / ``kube_namespace`` fixtures that installing
kubemini provides, ``kubemini.testing`` and the official ``kubernetes`` clients. docs/harness.md shows this file.
"""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kubemini.testing import Cluster, wait_for


def web_deployment(name: str, replicas: int) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="web", image="nginx:1.27")]),
            ),
        ),
    )


def gone(read) -> bool:
    """True once ``read()`` answers 404."""
    try:
        read()
    except ApiException as err:
        if err.status == 404:
            return True
        raise
    return False


@pytest.fixture
def api(kube_cluster):
    with kube_cluster.kubernetes_client() as api_client:
        yield api_client


def test_deployment_gets_a_replicaset_and_pods(api, kube_namespace):
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(kube_namespace, web_deployment("web", replicas=3))

    replica_sets = wait_for(lambda: apps.list_namespaced_replica_set(kube_namespace).items, message="a ReplicaSet")
    assert replica_sets[0].metadata.owner_references[0].name == "web"
    pods = wait_for(lambda: len(core.list_namespaced_pod(kube_namespace, label_selector="app=web").items) == 3,
                    message="3 pods")
    assert pods
    # no scheduler in this cluster: the pods wait for one, like on a cluster without nodes
    assert all(p.status.phase == "Pending" for p in core.list_namespaced_pod(kube_namespace).items)


def test_deleting_a_namespace_deletes_everything_in_it(api):
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="doomed")))
    core.create_namespaced_config_map("doomed", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings")))
    apps.create_namespaced_deployment("doomed", web_deployment("web", replicas=2))
    wait_for(lambda: len(core.list_namespaced_pod("doomed").items) == 2, message="the Deployment's pods")

    core.delete_namespace("doomed")

    assert core.read_namespace("doomed").status.phase == "Terminating"
    wait_for(lambda: gone(lambda: core.read_namespace("doomed")), timeout=30, message="the namespace to go away")
    assert core.list_pod_for_all_namespaces(field_selector="metadata.namespace=doomed").items == []


def test_deleting_an_owner_garbage_collects_its_dependents(api, kube_namespace):
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(kube_namespace, web_deployment("web", replicas=2))
    wait_for(lambda: len(core.list_namespaced_pod(kube_namespace).items) == 2, message="2 pods")

    apps.delete_namespaced_deployment("web", kube_namespace, propagation_policy="Background")

    wait_for(lambda: not apps.list_namespaced_replica_set(kube_namespace).items, timeout=30,
             message="the ReplicaSet to be garbage collected")
    wait_for(lambda: not core.list_namespaced_pod(kube_namespace).items, timeout=30,
             message="the pods to be garbage collected")


@pytest.mark.kubemini(scheduler=True, hollow_nodes=2)
def test_pods_are_scheduled_and_run_on_hollow_nodes(api, kube_namespace):
    core = client.CoreV1Api(api)
    assert sorted(n.metadata.name for n in core.list_node().items) == ["hollow-node-0", "hollow-node-1"]
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="app"),
                       spec=client.V1PodSpec(containers=[client.V1Container(name="app", image="busybox")]))
    core.create_namespaced_pod(kube_namespace, pod)

    def running_pod():
        pod = core.read_namespaced_pod("app", kube_namespace)
        return pod if pod.status.phase == "Running" else None

    running = wait_for(running_pod, message="the pod Running")
    assert running.spec.node_name in ("hollow-node-0", "hollow-node-1")
    assert running.status.pod_ip


async def test_the_asyncio_client_works_too(kube_cluster, kube_namespace):
    from kubernetes_asyncio import client as aclient

    async with kube_cluster.async_kubernetes_client() as api_client:
        core = aclient.CoreV1Api(api_client)
        await core.create_namespaced_config_map(
            kube_namespace, aclient.V1ConfigMap(metadata=aclient.V1ObjectMeta(name="cm"), data={"k": "v"}))
        assert (await core.read_namespaced_config_map("cm", kube_namespace)).data == {"k": "v"}


def test_a_cluster_without_pytest_fixtures():
    with Cluster() as cluster:  # or cluster = Cluster().start() ... cluster.stop()
        with cluster.httpx_client() as http:
            resp = http.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "plain"}})
            assert resp.status_code == 201, resp.text
        kubectl_config = cluster.kubeconfig.read_text()
        assert cluster.url in kubectl_config
