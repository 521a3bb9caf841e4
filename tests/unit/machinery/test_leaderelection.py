"""Leader election on a fake Lease API with a FakeClock: acquisition, expiry, renewal, stepping down, release."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

import pytest

from machinery.client.resources import LEASES, Resource
from machinery.clock import FakeClock
from machinery.errors import OBJECT_MODIFIED, already_exists, conflict, not_found, service_unavailable
from machinery.leaderelection import LeaderElectionConfig, LeaderElector, LeadershipLost
from machinery.meta import deep_copy, format_rfc3339_micro

NS, NAME = "kube-system", "kube-controller-manager"
MICRO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


class FakeLeaseApi:
    """Leases in a dict, with the API server's resourceVersion compare-and-swap and its errors."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self._rv = 0

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        assert resource == LEASES
        await asyncio.sleep(0)
        if name not in self.leases:
            raise not_found("leases", name, "coordination.k8s.io")
        return deep_copy(self.leases[name])

    async def create(self, resource: Resource, obj: Mapping[str, Any],
                     namespace: str | None = None) -> dict[str, Any]:
        await asyncio.sleep(0)
        name = obj["metadata"]["name"]
        if name in self.leases:
            raise already_exists("leases", name, "coordination.k8s.io")
        stored = deep_copy(dict(obj))
        stored["metadata"] = {**stored["metadata"], "namespace": namespace, "resourceVersion": self._next_rv()}
        self.leases[name] = stored
        return deep_copy(stored)

    async def replace(self, resource: Resource, obj: Mapping[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        name = obj["metadata"]["name"]
        if name not in self.leases:
            raise not_found("leases", name, "coordination.k8s.io")
        if obj["metadata"].get("resourceVersion") != self.leases[name]["metadata"]["resourceVersion"]:
            raise conflict("leases", name, OBJECT_MODIFIED, "coordination.k8s.io")
        stored = deep_copy(dict(obj))
        stored["metadata"]["resourceVersion"] = self._next_rv()
        self.leases[name] = stored
        return deep_copy(stored)

    def spec(self) -> dict[str, Any]:
        return self.leases[NAME]["spec"]


class FlakyClient:
    """One candidate's view of the API: can be cut off (errors) or made to hang."""

    def __init__(self, api: FakeLeaseApi) -> None:
        self.api = api
        self.broken = False
        self.hanging = False

    async def _check(self) -> None:
        if self.hanging:
            await asyncio.Event().wait()
        if self.broken:
            raise service_unavailable("connection refused")

    async def get(self, *args: Any) -> dict[str, Any]:
        await self._check()
        return await self.api.get(*args)

    async def create(self, *args: Any) -> dict[str, Any]:
        await self._check()
        return await self.api.create(*args)

    async def replace(self, *args: Any) -> dict[str, Any]:
        await self._check()
        return await self.api.replace(*args)


def config(identity: str, **overrides: Any) -> LeaderElectionConfig:
    return LeaderElectionConfig(NS, NAME, identity, **overrides)


async def settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


async def tick(clock: FakeClock, seconds: float, step: float = 0.1) -> None:
    """Let ``seconds`` of fake time pass in small steps, giving every task a chance to run after each."""
    for _ in range(round(seconds / step)):
        clock.advance(step)
        await settle()


class Work:
    """The leading work: records that it started and whether it was cancelled."""

    def __init__(self) -> None:
        self.started = False
        self.cancelled = False

    async def __call__(self) -> None:
        self.started = True
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


def held_lease(holder: str, clock: FakeClock, transitions: int = 3) -> dict[str, Any]:
    stamp = format_rfc3339_micro(clock.now())
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": NAME, "namespace": NS, "resourceVersion": "100"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "acquireTime": stamp,
                     "renewTime": stamp, "leaseTransitions": transitions}}


async def stop(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_acquires_an_absent_lease_and_starts_leading() -> None:
    api, clock, work = FakeLeaseApi(), FakeClock(), Work()
    seen: list[str] = []
    elector = LeaderElector(api, config("a"), clock, on_new_leader=seen.append)
    task = asyncio.create_task(elector.run(work))
    await settle()

    assert elector.is_leader() and work.started
    assert elector.leader_identity == "a" and seen == ["a"]
    spec = api.spec()
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    assert MICRO_TIME.fullmatch(spec["acquireTime"]) and spec["renewTime"] == spec["acquireTime"]
    await stop(task)


async def test_does_not_acquire_a_held_unexpired_lease() -> None:
    api, clock, work = FakeLeaseApi(), FakeClock(), Work()
    api.leases[NAME] = held_lease("other", clock)
    elector = LeaderElector(api, config("b"), clock)
    task = asyncio.create_task(elector.run(work))
    await tick(clock, 14)

    assert not elector.is_leader() and not work.started
    assert elector.leader_identity == "other"
    assert api.spec()["holderIdentity"] == "other"
    await stop(task)


async def test_takes_over_after_expiry_by_local_clock_and_counts_the_transition() -> None:
    api, clock, work = FakeLeaseApi(), FakeClock(), Work()
    # The holder's renewTime is a day in the future by our wall clock (skew): only our observation time counts.
    lease = held_lease("other", clock, transitions=3)
    lease["spec"]["renewTime"] = "2026-01-02T00:00:00.000000Z"
    api.leases[NAME] = lease
    seen: list[str] = []
    elector = LeaderElector(api, config("b"), clock, on_new_leader=seen.append)
    task = asyncio.create_task(elector.run(work))
    await tick(clock, 14)
    assert not elector.is_leader()

    await tick(clock, 6)  # 15 s lease + at most one jittered retry period (2 s * 2.2)
    assert elector.is_leader() and work.started
    spec = api.spec()
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 4
    assert seen == ["other", "b"]
    await stop(task)


async def test_renewing_keeps_leadership_and_keeps_the_others_out() -> None:
    api, clock = FakeLeaseApi(), FakeClock()
    leader = LeaderElector(api, config("a"), clock)
    other = LeaderElector(api, config("b"), clock)
    leading = asyncio.create_task(leader.run(Work()))
    await settle()
    first_renew = api.spec()["renewTime"]
    waiting = asyncio.create_task(other.run(Work()))

    await tick(clock, 60)
    assert leader.is_leader() and not other.is_leader()
    assert other.leader_identity == "a"
    spec = api.spec()
    assert spec["holderIdentity"] == "a" and spec["leaseTransitions"] == 0
    assert spec["renewTime"] > first_renew and spec["acquireTime"] == first_renew
    await stop(waiting)
    await stop(leading)


@pytest.mark.parametrize("failure", ["broken", "hanging"])
async def test_steps_down_when_renewal_fails_for_the_renew_deadline(failure: str) -> None:
    api, clock, work = FakeLeaseApi(), FakeClock(), Work()
    client = FlakyClient(api)
    elector = LeaderElector(client, config("a"), clock)
    task = asyncio.create_task(elector.run(work))
    await settle()
    assert elector.is_leader()

    setattr(client, failure, True)
    await tick(clock, 7)
    assert elector.is_leader() and not task.done()

    await tick(clock, 3.5)  # 10 s renew deadline since the last successful renewal
    assert task.done()
    result = task.result()
    assert isinstance(result, LeadershipLost)
    assert result.identity == "a" and result.lease == f"{NS}/{NAME}" and "renew" in result.reason
    assert work.cancelled and not elector.is_leader()


async def test_steps_down_at_once_when_another_candidate_holds_the_lease() -> None:
    api, clock, work = FakeLeaseApi(), FakeClock(), Work()
    elector = LeaderElector(api, config("a"), clock)
    task = asyncio.create_task(elector.run(work))
    await settle()
    api.leases[NAME]["spec"]["holderIdentity"] = "intruder"  # e.g. an administrator's edit
    api.leases[NAME]["metadata"]["resourceVersion"] = "999"

    await tick(clock, 2.5)
    assert task.done() and work.cancelled
    assert "intruder" in task.result().reason


async def test_cancelling_the_leader_releases_the_lease_for_an_immediate_takeover() -> None:
    api, clock = FakeLeaseApi(), FakeClock()
    first, second = Work(), Work()
    leader = LeaderElector(api, config("a"), clock)
    other = LeaderElector(api, config("b"), clock)
    leading = asyncio.create_task(leader.run(first))
    await settle()
    waiting = asyncio.create_task(other.run(second))
    await tick(clock, 3)
    assert not other.is_leader()

    await stop(leading)
    assert first.cancelled and not leader.is_leader()
    spec = api.spec()
    assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1
    assert spec["leaseTransitions"] == 0

    await tick(clock, 4.5)  # one jittered retry period, far less than the 15 s lease
    assert other.is_leader() and second.started
    assert api.spec()["holderIdentity"] == "b" and api.spec()["leaseTransitions"] == 1
    await stop(waiting)


async def test_a_release_that_conflicts_with_our_own_late_renewal_reads_again_and_releases() -> None:
    api, clock = FakeLeaseApi(), FakeClock()
    leader = LeaderElector(api, config("a"), clock)
    leading = asyncio.create_task(leader.run(Work()))
    await settle()
    assert leader.is_leader()
    real_get = api.get
    bumped = False

    async def get_then_late_renewal(*args, **kwargs):
        nonlocal bumped
        lease = await real_get(*args, **kwargs)
        if not bumped:  # our renewal lands right after the release read it
            bumped = True
            api.leases[NAME]["metadata"]["resourceVersion"] = api._next_rv()
        return lease

    api.get = get_then_late_renewal
    await stop(leading)
    assert api.spec()["holderIdentity"] == ""


async def test_no_release_when_release_on_cancel_is_off() -> None:
    api, clock = FakeLeaseApi(), FakeClock()
    elector = LeaderElector(api, config("a", release_on_cancel=False), clock)
    task = asyncio.create_task(elector.run(Work()))
    await settle()
    await stop(task)
    assert api.spec()["holderIdentity"] == "a"


async def test_work_that_returns_releases_the_lease_and_run_returns_none() -> None:
    api, clock = FakeLeaseApi(), FakeClock()

    async def short_work() -> None:
        await clock.sleep(1)

    elector = LeaderElector(api, config("a"), clock)
    task = asyncio.create_task(elector.run(short_work))
    await tick(clock, 1.5)
    assert task.done() and task.result() is None
    assert api.spec()["holderIdentity"] == ""


async def test_restarted_candidate_with_the_same_identity_reacquires_without_a_transition() -> None:
    api, clock = FakeLeaseApi(), FakeClock()
    api.leases[NAME] = held_lease("a", clock, transitions=5)
    elector = LeaderElector(api, config("a"), clock)
    task = asyncio.create_task(elector.run(Work()))
    await settle()
    assert elector.is_leader()
    assert api.spec()["leaseTransitions"] == 5
    await stop(task)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"lease_duration": 10.0, "renew_deadline": 10.0}, "renew_deadline .* must be less than lease_duration"),
    ({"lease_duration": 5.0, "renew_deadline": 8.0}, "renew_deadline .* must be less than lease_duration"),
    ({"renew_deadline": 2.0, "retry_period": 2.0}, "retry_period .* must be less than renew_deadline"),
    ({"renew_deadline": 2.0, "retry_period": 1.8}, "retry_period .* must be less than renew_deadline"),
    ({"retry_period": 0.0}, "retry_period must be positive"),
])
def test_config_validation(overrides: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config("a", **overrides)


def test_config_needs_names() -> None:
    with pytest.raises(ValueError, match="identity"):
        LeaderElectionConfig(NS, NAME, "")
    with pytest.raises(ValueError, match="lease_name"):
        LeaderElectionConfig(NS, "", "a")


def test_lease_duration_is_rounded_up_to_whole_seconds() -> None:
    assert config("a", lease_duration=2.5, renew_deadline=2.0, retry_period=0.5).lease_duration_seconds == 3
    assert config("a").lease_duration_seconds == 15
