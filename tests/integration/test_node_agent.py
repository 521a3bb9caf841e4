"""The node agent against the real API server: registration, lease renewal, quiet status loop, kubectl view.

The container runtime is a fake answering the four CRI calls the agent makes; the host facts are this
machine's, so the API server's validation sees real capacities, addresses and nodeInfo.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from kubelet.node import LEASE_NAMESPACE, NodeAgent, NodeConfig
from machinery.client import LEASES, NODES, ApiClient, ClientConfig
from machinery.errors import StatusError, is_not_found
from proto.cri import api_pb2 as cri

# keep the scheduler of other tests sharing this API server away from the test's node
TEST_TAINT = {"key": "kubemini.io/node-agent-test", "effect": "NoSchedule"}


class FakeRuntime:
    def __init__(self) -> None:
        self.network_ready = True

    async def version(self):
        return cri.VersionResponse(version="0.1.0", runtime_name="fake", runtime_version="1.2.3")

    async def status(self, verbose: bool = False):
        return cri.StatusResponse(status=cri.RuntimeStatus(conditions=[
            cri.RuntimeCondition(type="RuntimeReady", status=True),
            cri.RuntimeCondition(type="NetworkReady", status=self.network_ready,
                                 reason="" if self.network_ready else "NoBridge", message="")]),
            runtime_handlers=[cri.RuntimeHandler(name="", features=cri.RuntimeHandlerFeatures())],
            features=cri.RuntimeFeatures(supplemental_groups_policy=True))

    async def list_images(self):
        return [cri.Image(id="sha256:1", repo_tags=["busybox:latest"], repo_digests=["busybox@sha256:ab"],
                          size=4_000_000)]

    async def image_fs_info(self):
        return cri.ImageFsInfoResponse()


@pytest.fixture
async def client(apiserver) -> AsyncIterator[ApiClient]:
    async with ApiClient(ClientConfig(server=apiserver.url)) as api_client:
        yield api_client


@pytest.fixture
async def node_name(client) -> AsyncIterator[str]:
    name = "agent-" + uuid.uuid4().hex[:8]
    yield name
    for resource, namespace in ((LEASES, LEASE_NAMESPACE), (NODES, None)):
        try:
            await client.delete(resource, name, namespace)
        except StatusError as err:
            if not is_not_found(err):
                raise


def make_agent(client: ApiClient, node_name: str, tmp_path, runtime: FakeRuntime | None = None) -> NodeAgent:
    config = NodeConfig(node_name=node_name, root_dir=tmp_path, pod_cidr="10.250.3.0/24", taints=(TEST_TAINT,),
                        labels={"kubemini.io/test": "node-agent"}, lease_duration=2,
                        status_update_frequency=0.2, status_report_frequency=60)
    return NodeAgent(client, runtime or FakeRuntime(), config)


async def eventually(predicate, timeout: float = 10.0, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(0.05)


def ready_of(node: dict) -> dict:
    return next(c for c in node["status"]["conditions"] if c["type"] == "Ready")


async def test_register_renew_lease_and_report_ready(client, node_name, tmp_path, kubectl) -> None:
    runtime = FakeRuntime()
    agent = make_agent(client, node_name, tmp_path, runtime)
    node = await agent.register()
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == node_name
    assert node["spec"]["podCIDRs"] == ["10.250.3.0/24"]
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"] == "fake://1.2.3"
    assert node["status"]["allocatable"]["pods"] == "110"
    assert node["status"]["images"] == [{"names": ["busybox@sha256:ab", "busybox:latest"], "sizeBytes": 4_000_000}]

    task = asyncio.create_task(agent.run())
    try:
        async def lease():
            try:
                return await client.get(LEASES, node_name, LEASE_NAMESPACE)
            except StatusError as err:
                if is_not_found(err):
                    return None
                raise
        created = await eventually(lease, message="the lease to be created")

        async def lease_renewed():  # a renewal every 0.5 s
            current = await lease()
            return current["spec"]["renewTime"] > created["spec"]["renewTime"] and current
        renewed = await eventually(lease_renewed, message="the lease to be renewed")
        assert renewed["spec"]["holderIdentity"] == node_name
        assert renewed["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]

        out = kubectl("get", "node", node_name, "--no-headers", "-o", "wide")
        assert out.split()[:2] == [node_name, "Ready"], out
        assert "v1.35.0-kubemini" in out and "fake://1.2.3" in out and agent.node_ip in out

        # an unchanged status is not rewritten every round (0.2 s here)
        version = (await client.get(NODES, node_name))["metadata"]["resourceVersion"]
        await asyncio.sleep(1.0)
        assert (await client.get(NODES, node_name))["metadata"]["resourceVersion"] == version

        # a change is: the runtime's network goes down → NotReady with the reason
        runtime.network_ready = False
        agent.request_status_update()

        async def not_ready():
            current = await client.get(NODES, node_name)
            return ready_of(current)["status"] == "False" and current
        current = await eventually(not_ready, message="the node to turn NotReady")
        assert ready_of(current)["message"].startswith("container runtime network not ready: NetworkReady=false")
        # the strategic merge patch merged the conditions by type: still one of each
        assert sorted(c["type"] for c in current["status"]["conditions"]) == [
            "DiskPressure", "MemoryPressure", "PIDPressure", "Ready"]
        assert kubectl("get", "node", node_name, "--no-headers").split()[1] == "NotReady"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_restarted_agent_adopts_its_node(client, node_name, tmp_path) -> None:
    first = await make_agent(client, node_name, tmp_path).register()
    await client.patch(NODES, node_name, {"metadata": {"labels": {"kubernetes.io/hostname": "someone-else",
                                                                  "added-by-admin": "yes"}}})
    adopted = await make_agent(client, node_name, tmp_path).register()
    assert adopted["metadata"]["uid"] == first["metadata"]["uid"]
    labels = adopted["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == node_name and labels["added-by-admin"] == "yes"
    assert ready_of(adopted)["status"] == "True"
