"""The kubelet end to end: real etcd, API server, controller-manager, scheduler, CRI runtime, kubelet and kubectl.

Runs once against kubemini's runtime and once against Debian's containerd (the ``runtime_process`` fixture
is parametrized over both): the kubelet must drive either through CRI alone. One node per runtime, named
after it; the node is deleted when its kubelet goes, so the scheduler never binds to a dead node. The module
has a control plane of its own (kubemini.testing.Cluster with the scheduler), so only its pods reach the node.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import select
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kubemini.process import KubeletProcess
from kubemini.testing import Cluster
from proto.cri import api_pb2 as cri
from tests.conftest import Kubectl
from tests.runtime.cri import CriClient
from tests.support import wait_for

BUSYBOX_HTTPD = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {kubernetes.io/hostname: NODE}
      terminationGracePeriodSeconds: 2
      containers:
      - name: httpd
        image: busybox
        imagePullPolicy: IfNotPresent
        command:
        - sh
        - -c
        - mkdir /www && echo hello from $(hostname) >/www/index.html && echo serving; exec httpd -f -v -p 8080 -h /www
        ports: [{containerPort: 8080, name: http}]
        readinessProbe:
          httpGet: {path: /index.html, port: http}
          periodSeconds: 1
"""


@pytest.fixture(scope="module")
def apiserver():
    """A control plane of this module's own (etcd, API server, controller-manager, scheduler). The session's is
    full of pods other tests leave Pending: a scheduler and a real node there would run them all."""
    with Cluster(scheduler=True) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def kubeconfig(apiserver: Cluster) -> Path:
    return apiserver.kubeconfig


@pytest.fixture(scope="module")
def kubectl(kubeconfig: Path, tmp_path_factory) -> Kubectl:
    return Kubectl(kubeconfig, tmp_path_factory.mktemp("kubecache"))


@pytest.fixture(scope="module")
def node(runtime_process, kubeconfig, tmp_path_factory, kubectl):
    """A kubelet for ``runtime_process``, its node Ready; yields the kubelet process."""
    base = tmp_path_factory.mktemp("kubelet")
    name = f"node-{getattr(runtime_process, 'runtime_name', 'cri')}-{secrets.token_hex(2)}"
    kubelet = KubeletProcess(kubeconfig, base, node_name=name, runtime_endpoint=runtime_process.endpoint,
                             root_dir=base / "root", pod_logs_dir=base / "logs", pod_cidr=runtime_process.cidr,
                             extra_args=["--log-level", "debug", "--node-ip", "127.0.0.1"])
    kubelet.start(timeout=60)
    try:
        wait_for(lambda: node_ready(kubectl, name), timeout=60, message=f"node {name} Ready")
        yield kubelet
    finally:
        kubelet.stop()
        kubectl.run("delete", "node", name, "--wait=false", check=False)


@pytest.fixture(autouse=True)
def cleanup_namespace(namespace, runtime_process, kubectl):
    """After each test: delete its workloads and wait until the kubelet has removed their sandboxes, so no
    container outlives the test (the runtime, like containerd, keeps containers when it stops)."""
    yield
    kubectl.run("delete", "deployments,pods,services", "--all", "-n", namespace, "--grace-period=0", "--force",
                "--wait=false", check=False)
    client = CriClient(runtime_process.endpoint)
    try:
        def sandboxes():
            return [s for s in client.ListPodSandbox(cri.ListPodSandboxRequest()).items
                    if s.labels.get("io.kubernetes.pod.namespace") == namespace]

        wait_for(lambda: not sandboxes(), timeout=60, interval=0.5, message=f"the sandboxes of {namespace} removed")
    finally:
        client.close()


def node_ready(kubectl, name: str) -> bool:
    out = kubectl.run("get", "node", name, "-o", "json", check=False)
    if out.returncode:
        return False
    conds = {c["type"]: c["status"] for c in json.loads(out.stdout)["status"].get("conditions", [])}
    return conds.get("Ready") == "True"


def get_pods(kubectl, namespace: str, selector: str = "") -> list[dict]:
    args = ["get", "pods", "-n", namespace, "-o", "json"] + (["-l", selector] if selector else [])
    return json.loads(kubectl(*args))["items"]


def get_pod(kubectl, namespace: str, name: str) -> dict:
    return json.loads(kubectl("get", "pod", name, "-n", namespace, "-o", "json"))


def condition(pod: dict, kind: str) -> str | None:
    return next((c["status"] for c in pod.get("status", {}).get("conditions", []) if c["type"] == kind), None)


def container_status(pod: dict, name: str | None = None) -> dict:
    statuses = pod.get("status", {}).get("containerStatuses") or [{}]
    return next((s for s in statuses if s.get("name") == name), statuses[0]) if name else statuses[0]


def apply(kubectl, namespace: str, manifest: str, node_name: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest.replace("NODE", node_name))


def pod_manifest(name: str, node_name: str, container: str, extra_pod: str = "") -> str:
    return (f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n"
            f"  nodeSelector: {{kubernetes.io/hostname: {node_name}}}\n  terminationGracePeriodSeconds: 2\n"
            f"{extra_pod}  containers:\n{container}")


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=3) as resp:
        return resp.read().decode()


def test_deployment_runs_ready_pods_that_serve_http(node, kubectl, namespace):
    apply(kubectl, namespace, BUSYBOX_HTTPD, node.node_name)

    def all_ready():
        pods = get_pods(kubectl, namespace, "app=web")
        ready = [p for p in pods if condition(p, "Ready") == "True" and p["status"].get("podIP")]
        return ready if len(ready) == 3 else None

    pods = wait_for(all_ready, timeout=60, interval=0.5, message="3 Ready web pods")
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        assert pod["spec"]["nodeName"] == node.node_name
        body = http_get(f"http://{pod['status']['podIP']}:8080/index.html")
        assert body.strip() == f"hello from {pod['metadata']['name']}"
    assert len({p["status"]["podIP"] for p in pods}) == 3
    table = kubectl("get", "pods", "-n", namespace)
    assert table.count("Running") == 3 and "1/1" in table

    first = pods[0]["metadata"]["name"]
    logs = wait_for(lambda: kubectl("logs", "-n", namespace, first), timeout=10, message="logs")
    assert "serving" in logs
    assert kubectl("exec", "-n", namespace, first, "--", "hostname").strip() == first

    follow = subprocess.Popen([*kubectl_cmd(kubectl), "logs", "-f", "-n", namespace, first],
                              stdout=subprocess.PIPE, bufsize=0)
    try:
        wait_output(follow, "serving", timeout=10)  # what was logged before
        try:  # the probes' requests log "response:200"; this one is the only 404
            http_get(f"http://{pods[0]['status']['podIP']}:8080/follow-{secrets.token_hex(4)}")
        except urllib.error.HTTPError:
            pass
        wait_output(follow, "response:404", timeout=10)  # logged after kubectl started following
    finally:
        follow.kill()
        follow.wait()

    kubectl("delete", "pod", "-n", namespace, first)

    def replaced():
        names = {p["metadata"]["name"] for p in get_pods(kubectl, namespace, "app=web")
                 if condition(p, "Ready") == "True"}
        return first not in names and len(names) == 3

    wait_for(replaced, timeout=60, interval=0.5, message="the deleted pod replaced by a new Ready one")


def wait_output(proc: subprocess.Popen, text: str, timeout: float) -> None:
    """Read ``proc``'s unbuffered stdout until ``text`` appears; fail if it does not within ``timeout`` s."""
    seen = getattr(proc, "seen", b"")
    deadline = time.monotonic() + timeout
    while text.encode() not in seen:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"kubectl logs -f did not write {text!r} in time"
        chunk = os.read(proc.stdout.fileno(), 65536)
        assert chunk, "kubectl logs -f ended"
        seen += chunk
    proc.seen = seen[seen.index(text.encode()) + len(text):]


def kubectl_cmd(kubectl) -> list[str]:
    from tests.conftest import KUBECTL
    return [KUBECTL, "--kubeconfig", str(kubectl.kubeconfig), "--cache-dir", str(kubectl.cache_dir)]


def test_oom_killed_container_is_restarted_into_crash_loop_backoff(node, kubectl, namespace):
    container = ("  - name: hog\n    image: busybox\n    imagePullPolicy: IfNotPresent\n"
                 "    command: [sh, -c, 'echo start; x=$(head -c 100000000 /dev/zero | tr \"\\\\0\" x); sleep 100']\n"
                 "    resources: {limits: {memory: 32Mi}}\n")
    apply(kubectl, namespace, pod_manifest("hog", node.node_name, container), node.node_name)

    def oom_restarted():
        status = container_status(get_pod(kubectl, namespace, "hog"))
        last = status.get("lastState", {}).get("terminated") or status.get("state", {}).get("terminated") or {}
        return status if last.get("reason") == "OOMKilled" and status.get("restartCount", 0) >= 1 else None

    status = wait_for(oom_restarted, timeout=60, interval=0.5, message="OOMKilled and restarted")
    assert status["lastState"]["terminated"]["exitCode"] == 137

    def crash_loop():
        return "CrashLoopBackOff" in kubectl("get", "pod", "hog", "-n", namespace)

    wait_for(crash_loop, timeout=60, interval=0.5, message="CrashLoopBackOff in kubectl get pods")
    wait_for(lambda: container_status(get_pod(kubectl, namespace, "hog"))["restartCount"] >= 2, timeout=40,
             interval=0.5, message="restarted again after the 10 s back-off")


def test_failing_liveness_probe_restarts_and_failing_readiness_unreadies(node, kubectl, namespace):
    container = ("  - name: app\n    image: busybox\n    imagePullPolicy: IfNotPresent\n"
                 "    command: [sh, -c, 'touch /tmp/live /tmp/ready; sleep 3600']\n"
                 "    livenessProbe: {exec: {command: [cat, /tmp/live]}, periodSeconds: 1, failureThreshold: 1}\n"
                 "    readinessProbe: {exec: {command: [cat, /tmp/ready]}, periodSeconds: 1}\n")
    manifest = pod_manifest("probed", node.node_name, container).replace(
        "metadata: {name: probed}", "metadata: {name: probed, labels: {app: probed}}")
    service = ("apiVersion: v1\nkind: Service\nmetadata: {name: probed}\n"
               "spec: {selector: {app: probed}, ports: [{port: 80}]}")
    apply(kubectl, namespace, manifest + "---\n" + service, node.node_name)
    pod = wait_for(lambda: condition(p := get_pod(kubectl, namespace, "probed"), "Ready") == "True" and p,
                   timeout=60, interval=0.5, message="probed Ready")
    ip = pod["status"]["podIP"]
    wait_for(lambda: endpoint_ips(kubectl, namespace, "probed") == ([ip], []), timeout=20, interval=0.3,
             message="the ready pod in the Service's endpoints")

    kubectl("exec", "-n", namespace, "probed", "--", "rm", "/tmp/ready")
    wait_for(lambda: condition(get_pod(kubectl, namespace, "probed"), "Ready") == "False", timeout=20,
             interval=0.3, message="Ready False after the readiness probe fails")
    wait_for(lambda: endpoint_ips(kubectl, namespace, "probed") == ([], [ip]), timeout=20, interval=0.3,
             message="the unready pod out of the Service's ready addresses")
    assert container_status(get_pod(kubectl, namespace, "probed"))["restartCount"] == 0

    before = container_status(get_pod(kubectl, namespace, "probed"))["containerID"]
    kubectl("exec", "-n", namespace, "probed", "--", "rm", "/tmp/live")

    def restarted():
        status = container_status(get_pod(kubectl, namespace, "probed"))
        return status.get("restartCount", 0) >= 1 and status.get("containerID") != before

    wait_for(restarted, timeout=30, interval=0.3, message="a restart after the liveness probe failed")
    events = kubectl("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=probed")
    assert "Unhealthy" in events and "liveness probe" in events.lower()


def endpoint_ips(kubectl, namespace: str, service: str) -> tuple[list[str], list[str]]:
    """(ready addresses, not-ready addresses) of the Service's Endpoints."""
    out = kubectl.run("get", "endpoints", service, "-n", namespace, "-o", "json", check=False)
    if out.returncode:
        return [], []
    subsets = json.loads(out.stdout).get("subsets") or []
    return ([a["ip"] for s in subsets for a in s.get("addresses") or []],
            [a["ip"] for s in subsets for a in s.get("notReadyAddresses") or []])


@pytest.mark.kubemini_only("reads the container's memory cgroup where kubemini's runtime puts it")
def test_resize_changes_memory_limit_without_restart(node, kubectl, namespace, runtime_process):
    container = ("  - name: app\n    image: busybox\n    imagePullPolicy: IfNotPresent\n"
                 "    command: [sleep, '3600']\n"
                 "    resources: {requests: {memory: 64Mi, cpu: 100m}, limits: {memory: 64Mi, cpu: 200m}}\n")
    apply(kubectl, namespace, pod_manifest("sized", node.node_name, container), node.node_name)
    pod = wait_for(lambda: (p := get_pod(kubectl, namespace, "sized"))["status"].get("phase") == "Running" and p,
                   timeout=60, interval=0.5, message="sized Running")
    before = container_status(pod)["containerID"]
    uid = pod["metadata"]["uid"]
    assert memory_limit(uid, before) == 64 * 1024 * 1024

    kubectl("patch", "pod", "sized", "-n", namespace, "--subresource", "resize", "--patch",
            '{"spec":{"containers":[{"name":"app","resources":{"requests":{"memory":"96Mi"},'
            '"limits":{"memory":"96Mi"}}}]}}')
    wait_for(lambda: memory_limit(uid, before) == 96 * 1024 * 1024, timeout=30, interval=0.3,
             message="the cgroup memory limit raised to 96Mi")

    def resized_status():
        status = container_status(get_pod(kubectl, namespace, "sized"))
        limits = (status.get("resources") or {}).get("limits") or {}
        return status if limits.get("memory") == "96Mi" else None

    status = wait_for(resized_status, timeout=30, interval=0.3, message="status.resources shows 96Mi")
    assert status["containerID"] == before and status["restartCount"] == 0


def memory_limit(pod_uid: str, container_id: str) -> int | None:
    raw = container_id.split("://", 1)[-1]
    for qos in ("", "burstable/", "besteffort/"):
        path = Path(f"/sys/fs/cgroup/memory/kubepods/{qos}pod{pod_uid}/{raw}/memory.limit_in_bytes")
        if path.exists():
            return int(path.read_text())
    return None


def test_kubelet_restart_keeps_containers_running(node, kubectl, namespace, runtime_process):
    container = ("  - name: app\n    image: busybox\n    imagePullPolicy: IfNotPresent\n"
                 "    command: [sh, -c, 'echo up; sleep 3600']\n"
                 "    readinessProbe: {exec: {command: ['true']}, periodSeconds: 1}\n")
    apply(kubectl, namespace, pod_manifest("steady", node.node_name, container), node.node_name)
    pod = wait_for(lambda: condition(p := get_pod(kubectl, namespace, "steady"), "Ready") == "True" and p,
                   timeout=60, interval=0.5, message="steady Ready")
    before = container_status(pod)

    node.kill()
    node.start(timeout=60)
    deadline = time.monotonic() + 3  # a few relists and probe periods of the new kubelet: nothing flaps
    while time.monotonic() < deadline:
        pod = get_pod(kubectl, namespace, "steady")
        assert condition(pod, "Ready") == "True", pod["status"]
        assert container_status(pod)["containerID"] == before["containerID"]
        time.sleep(0.3)
    after = container_status(get_pod(kubectl, namespace, "steady"))
    assert after["containerID"] == before["containerID"]
    assert after["restartCount"] == 0
    assert after["state"]["running"]["startedAt"] == before["state"]["running"]["startedAt"]
    assert re.search(r"\bup\b", kubectl("logs", "-n", namespace, "steady"))

    # A pod deleted from the API while the kubelet is down: the new kubelet removes its sandbox and containers.
    uid = get_pod(kubectl, namespace, "steady")["metadata"]["uid"]
    node.kill()
    kubectl("delete", "pod", "steady", "-n", namespace, "--grace-period=0", "--force")
    node.start(timeout=60)
    client = CriClient(runtime_process.endpoint)
    try:
        wait_for(lambda: not [s for s in client.ListPodSandbox(cri.ListPodSandboxRequest()).items
                              if s.labels.get("io.kubernetes.pod.uid") == uid],
                 timeout=30, interval=0.3, message="the deleted pod's sandbox removed by the restarted kubelet")
    finally:
        client.close()
