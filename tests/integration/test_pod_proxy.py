"""pods/log, exec and attach through the API server to a kubelet server, driven by real kubectl.

The kubelet is a real :class:`KubeletServer` running in a thread of the test, over a fake CRI runtime: its
containers' logs are files the test writes, and its Exec/Attach URLs point at a small WebSocket server that plays
the runtime's streaming server (``echo``, ``cat`` and ``fail N`` are the commands it knows). A Node object points
the API server at that kubelet, as a registered node would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import subprocess
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as sync_connect

from kubelet.cri import labels
from kubelet.server import KubeletServer
from proto.cri import api_pb2 as cri
from tests.conftest import KUBECTL
from tests.support import wait_for

MERGE = {"Content-Type": "application/merge-patch+json"}
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io")


def cri_line(second: int, text: str, stream: str = "stdout") -> str:
    return f"2026-01-01T00:00:{second:02d}.000000000Z {stream} F {text}\n"


class FakeStreaming:
    """The runtime's streaming server, reduced to a few commands; URLs carry single-use tokens."""

    def __init__(self) -> None:
        self.requests: dict[str, tuple[str, object]] = {}
        self.port = 0
        self._server = None

    async def start(self) -> None:
        self._server = await serve(self._session, "127.0.0.1", 0, select_subprotocol=self._select)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    def url(self, kind: str, request) -> str:
        token = secrets.token_hex(8)
        self.requests[token] = (kind, request)
        return f"http://127.0.0.1:{self.port}/{kind}/{token}"

    @staticmethod
    def _select(connection, offered):
        return next((p for p in offered if p in PROTOCOLS), None)

    async def _session(self, ws) -> None:
        kind, request = self.requests.pop(ws.request.path.rsplit("/", 1)[-1])
        cmd = list(request.cmd) if kind == "exec" else ["attached"]
        code = 0
        with contextlib.suppress(ConnectionClosed):
            if cmd[0] == "echo":
                await ws.send(b"\x01" + " ".join(cmd[1:]).encode() + b"\n")
            elif cmd[0] == "attached":
                await ws.send(b"\x01attached output\n")
            elif cmd[0] == "fail":
                code = int(cmd[1])
                await ws.send(b"\x02failing on purpose\n")
            elif cmd[0] == "cat":
                async for message in ws:
                    if message[:2] == b"\xff\x00":  # v5: stdin closed
                        break
                    if message[:1] == b"\x00":
                        await ws.send(b"\x01" + message[1:])
            status = {"metadata": {}, "status": "Success"} if code == 0 else {
                "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode", "message": f"exit code {code}",
                "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
            await ws.send(b"\x03" + json.dumps(status).encode())


class FakeRuntime:
    """The CRI calls the kubelet server makes, over containers the test declares."""

    def __init__(self, streaming: FakeStreaming) -> None:
        self.streaming = streaming
        self.containers: dict[str, list] = {}  # id -> [Container, log path]

    def add(self, pod: dict, name: str, attempt: int, log_path: Path, state=cri.CONTAINER_RUNNING) -> str:
        cid = f"{name}-{attempt}-{uuid.uuid4().hex[:6]}"
        container = cri.Container(id=cid, metadata=cri.ContainerMetadata(name=name, attempt=attempt), state=state,
                                  labels={labels.POD_UID: pod["metadata"]["uid"], labels.CONTAINER_NAME: name})
        self.containers[cid] = [container, str(log_path)]
        return cid

    def set_state(self, cid: str, state) -> None:
        self.containers[cid][0].state = state

    async def list_containers(self, selector=None, *, sandbox_id=""):
        return [c for c, _ in self.containers.values()
                if all(c.labels.get(k) == v for k, v in (selector or {}).items())]

    async def container_status(self, cid):
        container, log_path = self.containers[cid]
        return cri.ContainerStatus(id=cid, metadata=container.metadata, state=container.state, log_path=log_path)

    async def exec(self, request):
        return self.streaming.url("exec", request)

    async def attach(self, request):
        return self.streaming.url("attach", request)


class FakeKubelet:
    """A KubeletServer and the fake streaming server on an event loop in a thread of their own."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], dict] = {}
        self.streaming = FakeStreaming()
        self.runtime = FakeRuntime(self.streaming)
        self.server = KubeletServer(self.runtime, lambda ns, name: self.pods.get((ns, name)),
                                    registry=CollectorRegistry(), all_pods=lambda: list(self.pods.values()),
                                    host="127.0.0.1", port=0)
        self.loop = asyncio.new_event_loop()
        self._serving: asyncio.Task | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, name="fake-kubelet", daemon=True)

    def start(self) -> None:
        self.server.bind()
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> None:
        await self.streaming.start()
        self._serving = asyncio.create_task(self.server.serve())

    async def _stop(self) -> None:
        self._serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._serving
        await self.streaming.stop()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class Cluster:
    """One namespace, a node served by the fake kubelet, and pods on it."""

    def __init__(self, api: httpx.Client, kubelet: FakeKubelet, tmp: Path) -> None:
        self.api, self.kubelet, self.tmp = api, kubelet, tmp
        self.namespace = "proxy-" + uuid.uuid4().hex[:8]
        self.node = "node-" + self.namespace
        self.ids: dict[str, str] = {}
        assert api.post("/api/v1/namespaces", json={"metadata": {"name": self.namespace}}).status_code == 201

    def add_node(self, name: str, port: int) -> None:
        assert self.api.post("/api/v1/nodes", json={"metadata": {"name": name}}).status_code == 201
        status = {"addresses": [{"type": "Hostname", "address": "localhost-not-used"},
                                {"type": "InternalIP", "address": "127.0.0.1"}],
                  "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}
        resp = self.api.patch(f"/api/v1/nodes/{name}/status", json={"status": status}, headers=MERGE)
        assert resp.status_code == 200, resp.text

    def add_pod(self, name: str, containers: list[str], *, node: str | None = "", phase: str = "Running",
                waiting: str = "") -> dict:
        spec: dict = {"containers": [{"name": c, "image": "busybox"} for c in containers]}
        if node is not None:
            spec["nodeName"] = node or self.node
        resp = self.api.post(f"/api/v1/namespaces/{self.namespace}/pods", json={"metadata": {"name": name},
                                                                              "spec": spec})
        assert resp.status_code == 201, resp.text
        state = {"waiting": {"reason": waiting}} if waiting else {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
        statuses = [{"name": c, "ready": not waiting, "restartCount": 0, "image": "busybox", "imageID": "",
                     "state": state} for c in containers]
        resp = self.api.patch(f"/api/v1/namespaces/{self.namespace}/pods/{name}/status", headers=MERGE,
                              json={"status": {"phase": phase, "containerStatuses": statuses}})
        assert resp.status_code == 200, resp.text
        pod = resp.json()
        self.kubelet.pods[(self.namespace, name)] = pod
        return pod

    def add_log(self, pod: dict, container: str, attempt: int, *lines: str, state=cri.CONTAINER_RUNNING) -> str:
        path = self.tmp / f"{pod['metadata']['name']}-{container}-{attempt}.log"
        path.write_text("".join(lines))
        cid = self.kubelet.runtime.add(pod, container, attempt, path, state)
        self.ids[f"{pod['metadata']['name']}/{container}/{attempt}"] = cid
        return cid


@pytest.fixture(scope="module")
def cluster(apiserver, tmp_path_factory):
    kubelet = FakeKubelet()
    kubelet.start()
    with httpx.Client(base_url=apiserver.url, timeout=30) as api:
        c = Cluster(api, kubelet, tmp_path_factory.mktemp("pod-logs"))
        c.add_node(c.node, kubelet.server.port)
        web = c.add_pod("web", ["app", "side"])
        c.add_log(web, "app", 0, cri_line(1, "first run"), state=cri.CONTAINER_EXITED)
        c.add_log(web, "app", 1, cri_line(2, "second run, line 1"), cri_line(3, "second run, line 2", "stderr"))
        c.add_log(web, "side", 0, cri_line(4, "side car"))
        yield c
        api.delete(f"/api/v1/namespaces/{c.namespace}")
        api.delete(f"/api/v1/nodes/{c.node}")
    kubelet.stop()


@pytest.fixture(scope="module")
def k(cluster, kubectl):
    def run(*args: str, **kw):
        return kubectl.run("-n", cluster.namespace, *args, check=False, **kw)
    return run


# ---- logs ----------------------------------------------------------------------------------------------------------


def test_logs_of_a_container(k):
    out = k("logs", "web", "-c", "app")
    assert (out.returncode, out.stdout) == (0, "second run, line 1\nsecond run, line 2\n")


def test_logs_tail_timestamps_and_limit(k):
    assert k("logs", "web", "-c", "app", "--tail=1").stdout == "second run, line 2\n"
    assert k("logs", "web", "-c", "app", "--timestamps").stdout == (
        "2026-01-01T00:00:02Z second run, line 1\n2026-01-01T00:00:03Z second run, line 2\n")
    assert k("logs", "web", "-c", "app", "--limit-bytes=6").stdout == "second"


def test_logs_previous(k):
    assert k("logs", "web", "-c", "app", "--previous").stdout == "first run\n"
    out = k("logs", "web", "-c", "side", "--previous")
    assert out.returncode != 0
    assert 'previous terminated container "side" in pod "web" not found' in out.stderr


def test_logs_without_container_kubectl_defaults_to_the_first(k):
    out = k("logs", "web")
    assert out.stdout == "second run, line 1\nsecond run, line 2\n"
    assert 'Defaulted container "app"' in out.stderr


def test_log_errors(cluster, k):
    api, ns = cluster.api, cluster.namespace
    resp = api.get(f"/api/v1/namespaces/{ns}/pods/web/log")
    assert resp.status_code == 400
    assert resp.json()["message"] == "a container name must be specified for pod web, choose one of: [app side]"
    out = k("logs", "web", "-c", "db")
    assert out.returncode != 0 and "container db is not valid for pod web" in out.stderr
    assert "NotFound" in k("logs", "nope").stderr
    resp = api.get(f"/api/v1/namespaces/{ns}/pods/web/log", params={"container": "app", "tailLines": "-1"})
    assert (resp.status_code, resp.json()["reason"]) == (422, "Invalid")
    assert "tailLines" in resp.json()["message"]
    resp = api.get(f"/api/v1/namespaces/{ns}/pods/web/log", params={"container": "app", "tailLines": str(2**63)})
    assert (resp.status_code, resp.json()["reason"]) == (400, "BadRequest")
    assert f'invalid value for tailLines: "{2**63}" is out of range' in resp.json()["message"]


def test_logs_of_a_waiting_or_unbound_pod(cluster, k):
    cluster.add_pod("pending", ["app"], waiting="ContainerCreating")
    out = k("logs", "pending")
    assert out.returncode != 0
    assert 'container "app" in pod "pending" is waiting to start: ContainerCreating' in out.stderr
    cluster.add_pod("unbound", ["app"], node=None, phase="Pending")
    assert "pod unbound does not have a host assigned" in k("logs", "unbound").stderr


def test_unreachable_kubelet_is_a_clear_error(cluster, k):
    cluster.add_node(cluster.node + "-gone", 1)  # nothing listens on port 1
    cluster.add_pod("stranded", ["app"], node=cluster.node + "-gone")
    resp = cluster.api.get(f"/api/v1/namespaces/{cluster.namespace}/pods/stranded/log")
    assert resp.status_code == 503
    assert "cannot reach the kubelet at http://127.0.0.1:1" in resp.json()["message"]
    cluster.api.delete(f"/api/v1/nodes/{cluster.node}-gone")


def test_logs_follow_ends_when_the_container_exits(cluster, kubectl, tmp_path):
    pod = cluster.add_pod("follow", ["app"])
    cid = cluster.add_log(pod, "app", 0, cri_line(1, "before"))
    log_path = Path(cluster.kubelet.runtime.containers[cid][1])
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", str(kubectl.kubeconfig), "--cache-dir", str(kubectl.cache_dir),
                             "-n", cluster.namespace, "logs", "-f", "follow"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        wait_for(lambda: lines == ["before\n"], timeout=15, message="the existing log")
        with open(log_path, "a") as f:
            f.write(cri_line(2, "after"))
        wait_for(lambda: lines == ["before\n", "after\n"], timeout=10, message="the appended line")
        assert proc.poll() is None  # still following
        with open(log_path, "a") as f:
            f.write(cri_line(3, "last words"))
        cluster.kubelet.runtime.set_state(cid, cri.CONTAINER_EXITED)
        assert proc.wait(timeout=15) == 0
        reader.join(5)
        assert lines == ["before\n", "after\n", "last words\n"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---- exec and attach ----------------------------------------------------------------------------------------------


def test_exec_prints_output(k):
    out = k("exec", "web", "-c", "app", "--", "echo", "hello", "world")
    assert (out.returncode, out.stdout) == (0, "hello world\n")


def test_exec_exit_code_becomes_kubectls(k):
    out = k("exec", "web", "-c", "app", "--", "fail", "3")
    assert out.returncode == 3
    assert "failing on purpose" in out.stderr
    assert "command terminated with exit code 3" in out.stderr


def test_exec_with_stdin(k):
    out = k("exec", "-i", "web", "-c", "app", "--", "cat", input="some input\n")
    assert (out.returncode, out.stdout) == (0, "some input\n")


def test_attach(k):
    out = k("attach", "web", "-c", "app")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "attached output\n"


def test_exec_errors(cluster, k):
    out = k("exec", "web", "-c", "db", "--", "echo")
    assert out.returncode != 0 and "container db is not valid for pod web" in out.stderr
    out = k("exec", "nope", "--", "echo")
    assert out.returncode != 0 and 'pods "nope" not found' in out.stderr
    cluster.kubelet.runtime.set_state(cluster.ids["web/side/0"], cri.CONTAINER_EXITED)
    out = k("exec", "web", "-c", "side", "--", "echo")  # the kubelet's refusal, on the error channel
    assert out.returncode != 0 and 'container "side" in pod "web" is not running' in out.stderr


def _ws_url(cluster, pod: str, sub: str, query: str) -> str:
    base = str(cluster.api.base_url).replace("http://", "ws://")
    return f"{base}/api/v1/namespaces/{cluster.namespace}/pods/{pod}/{sub}?{query}"


def test_server_refuses_exec_into_a_completed_pod(cluster):
    cluster.add_pod("done", ["app"], phase="Succeeded")
    with pytest.raises(InvalidStatus) as err:
        sync_connect(_ws_url(cluster, "done", "exec", "command=echo&stdout=true"),
                     subprotocols=["v5.channel.k8s.io"])
    assert err.value.response.status_code == 400
    assert json.loads(err.value.response.body)["message"] == (
        "cannot exec into a container in a completed pod; current phase is Succeeded")


def test_raw_websocket_exec_relays_channels(cluster):
    with sync_connect(_ws_url(cluster, "web", "exec", "command=echo&command=hi&container=app&stdout=true"),
                      subprotocols=["v5.channel.k8s.io"]) as ws:
        assert ws.subprotocol == "v5.channel.k8s.io"
        assert ws.recv(timeout=10) == b"\x01hi\n"
        assert json.loads(ws.recv(timeout=10)[1:])["status"] == "Success"


def test_spdy_and_port_forward_are_refused_clearly(cluster):
    path = f"/api/v1/namespaces/{cluster.namespace}/pods/web"
    spdy = {"Upgrade": "SPDY/3.1", "Connection": "Upgrade", "X-Stream-Protocol-Version": "v4.channel.k8s.io"}
    resp = cluster.api.post(f"{path}/exec", params={"command": "ls", "container": "app", "stdout": "true"},
                            headers=spdy)
    assert resp.status_code == 400 and "SPDY is not supported by kubemini" in resp.json()["message"]
    resp = cluster.api.post(f"{path}/portforward", params={"ports": "80"}, headers=spdy)
    assert resp.status_code == 400 and resp.json()["message"] == "port-forward is not supported by kubemini yet"
    with pytest.raises(InvalidStatus) as err:
        sync_connect(_ws_url(cluster, "web", "portforward", "ports=80"), subprotocols=["v4.channel.k8s.io"])
    assert err.value.response.status_code == 400


def test_discovery_lists_the_pod_subresources(cluster):
    resources = {r["name"]: r for r in cluster.api.get("/api/v1").json()["resources"]}
    assert resources["pods/log"]["verbs"] == ["get"]
    assert (resources["pods/exec"]["kind"], resources["pods/exec"]["verbs"]) == ("PodExecOptions", ["create", "get"])
    assert resources["pods/attach"]["kind"] == "PodAttachOptions"
    assert resources["pods/portforward"]["kind"] == "PodPortForwardOptions"
