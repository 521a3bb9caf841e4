"""Leader election against a real API server and etcd: one leader, hand-over on release, takeover on partition."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from machinery.client import LEASES, NAMESPACES, ApiClient, ClientConfig
from machinery.leaderelection import LeaderElectionConfig, LeaderElector, LeadershipLost

LEASE = dict(lease_duration=3.0, renew_deadline=2.5, retry_period=0.25)


class PartitionTransport(httpx.AsyncBaseTransport):
    """A real HTTP transport that can be cut off, as a network partition cuts one process off the API server."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.partitioned = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.partitioned:
            raise httpx.ConnectError("network unreachable (partitioned by the test)", request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Work:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = False

    async def __call__(self) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


@pytest.fixture
async def lease_namespace(apiserver) -> AsyncIterator[str]:
    name = "le-" + uuid.uuid4().hex[:8]
    async with ApiClient(ClientConfig(server=apiserver.url)) as client:
        await client.create(NAMESPACES, {"metadata": {"name": name}})
        yield name


async def wait_until(predicate, timeout: float, message: str) -> float:
    """Poll until ``predicate()``; return how long it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def test_one_leader_and_hand_over_on_release(apiserver, lease_namespace) -> None:
    async with ApiClient(ClientConfig(server=apiserver.url)) as client_a, \
            ApiClient(ClientConfig(server=apiserver.url)) as client_b:
        electors = [LeaderElector(client, LeaderElectionConfig(lease_namespace, "controller", identity, **LEASE))
                    for client, identity in ((client_a, "a"), (client_b, "b"))]
        works = [Work(), Work()]
        runs = [asyncio.create_task(e.run(w)) for e, w in zip(electors, works, strict=True)]
        try:
            await wait_until(lambda: any(e.is_leader() for e in electors), 5, "a leader")
            for _ in range(20):  # 1 s: several renewals, never two leaders
                assert sum(e.is_leader() for e in electors) == 1
                await asyncio.sleep(0.05)
            leader = 0 if electors[0].is_leader() else 1
            follower = 1 - leader
            assert electors[follower].leader_identity == electors[leader].config.identity
            lease = await client_a.get(LEASES, "controller", lease_namespace)
            assert lease["spec"]["holderIdentity"] == electors[leader].config.identity
            assert lease["spec"]["leaseDurationSeconds"] == 3

            runs[leader].cancel()
            await asyncio.wait({runs[leader]})
            assert works[leader].cancelled
            released = await client_a.get(LEASES, "controller", lease_namespace)
            assert released["spec"].get("holderIdentity", "") == ""

            # a released lease is taken at the next retry, not after the lease duration (generous bounds:
            # the machine may be busy; what matters is that release beats expiry)
            took = await wait_until(electors[follower].is_leader, LEASE["lease_duration"], "the follower to take over")
            assert took < LEASE["lease_duration"], f"takeover after release took {took:.2f}s"
            assert works[follower].started.is_set()
            lease = await client_a.get(LEASES, "controller", lease_namespace)
            assert lease["spec"]["holderIdentity"] == electors[follower].config.identity
            assert lease["spec"]["leaseTransitions"] == 1
        finally:
            for run in runs:
                run.cancel()
            await asyncio.wait(runs)


async def test_partitioned_leader_steps_down_and_is_replaced(apiserver, lease_namespace) -> None:
    transport = PartitionTransport()
    async with ApiClient(ClientConfig(server=apiserver.url), transport=transport) as client_a, \
            ApiClient(ClientConfig(server=apiserver.url)) as client_b:
        cfg = LeaderElectionConfig(lease_namespace, "scheduler", "a", **LEASE)
        leader = LeaderElector(client_a, cfg)
        follower = LeaderElector(client_b, LeaderElectionConfig(lease_namespace, "scheduler", "b", **LEASE))
        leader_work, follower_work = Work(), Work()
        leader_run = asyncio.create_task(leader.run(leader_work))
        await wait_until(leader.is_leader, 5, "a to lead")
        follower_run = asyncio.create_task(follower.run(follower_work))
        try:
            await asyncio.sleep(0.5)
            assert not follower.is_leader() and follower.leader_identity == "a"

            transport.partitioned = True
            cut = time.monotonic()
            result = await asyncio.wait_for(leader_run, 5)
            stepped_down = time.monotonic() - cut
            assert isinstance(result, LeadershipLost) and leader_work.cancelled
            assert stepped_down <= cfg.renew_deadline + 1.0, f"stepped down after {stepped_down:.2f}s"

            await wait_until(follower.is_leader, 8, "the follower to take over")
            taken_over = time.monotonic() - cut
            # the follower waits out the lease (from its last sight of a renewal), then one retry period
            assert taken_over < cfg.lease_duration + 2.0, f"takeover after {taken_over:.2f}s"
            assert stepped_down < taken_over, "the old leader must stop before the new one starts"
            lease = await client_b.get(LEASES, "scheduler", lease_namespace)
            assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1
        finally:
            follower_run.cancel()
            leader_run.cancel()
            await asyncio.wait({follower_run, leader_run})
