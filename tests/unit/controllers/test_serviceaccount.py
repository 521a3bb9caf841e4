"""ServiceAccounts controller: a ``default`` ServiceAccount in every active namespace."""

from __future__ import annotations

import pytest

from controllers.controller import ControllerContext
from controllers.serviceaccount import ServiceAccountsController
from machinery import errors
from machinery.client import NAMESPACES, SERVICE_ACCOUNTS
from machinery.clock import FakeClock
from tests.fakes import FakeClient, FakeInformers, FakeRecorder

NS = "team-a"


@pytest.fixture
def client():
    return FakeClient(clock=FakeClock())


@pytest.fixture
def informers():
    return FakeInformers()


@pytest.fixture
def ctrl(client, informers):
    return ServiceAccountsController(ControllerContext(client, informers, FakeRecorder(), client.clock))


def namespace(name=NS, phase="Active"):
    meta = {"name": name}
    if phase == "Terminating":
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase}}


def service_account(name="default", ns=NS):
    return {"metadata": {"name": name, "namespace": ns}}


async def test_creates_default_in_an_active_namespace_without_one(ctrl, client, informers):
    informers.add(NAMESPACES, namespace())
    informers.add(SERVICE_ACCOUNTS, service_account("builder"))
    assert await ctrl.reconcile(NS) is None
    [create] = client.actions
    assert (create.verb, create.resource, create.namespace) == ("create", "serviceaccounts", NS)
    assert create.body == {"metadata": {"name": "default"}}
    assert client.stored(SERVICE_ACCOUNTS, NS, "default") is not None


async def test_nothing_to_do_when_the_cache_has_default(ctrl, client, informers):
    informers.add(NAMESPACES, namespace())
    informers.add(SERVICE_ACCOUNTS, service_account())
    assert await ctrl.reconcile(NS) is None
    assert client.actions == []


@pytest.mark.parametrize("ns", [None, namespace(phase="Terminating")], ids=["missing", "terminating"])
async def test_nothing_for_missing_or_terminating_namespaces(ctrl, client, informers, ns):
    if ns is not None:
        informers.add(NAMESPACES, ns)
    assert await ctrl.reconcile(NS) is None
    assert client.actions == []


async def test_already_exists_is_success(ctrl, client, informers):
    informers.add(NAMESPACES, namespace())
    client.seed(SERVICE_ACCOUNTS, service_account())  # created, but the cache has not seen it yet
    assert await ctrl.reconcile(NS) is None
    assert [a.verb for a in client.actions] == ["create"]


async def test_a_namespace_turning_terminating_under_us_is_not_an_error(ctrl, client, informers):
    informers.add(NAMESPACES, namespace())
    refused = errors.forbidden_error("serviceaccounts", "default", "unable to create new content in namespace "
                                     f"{NS} because it is being terminated")
    refused.details["causes"] = [{"reason": "NamespaceTerminating", "field": "metadata.namespace"}]
    client.fail("create", "serviceaccounts", refused)
    assert await ctrl.reconcile(NS) is None


async def test_other_errors_are_retried(ctrl, client, informers):
    informers.add(NAMESPACES, namespace())
    client.fail("create", "serviceaccounts", errors.internal_error("boom"))
    with pytest.raises(errors.StatusError):
        await ctrl.reconcile(NS)


async def test_deleted_default_is_recreated(ctrl, client, informers):
    informers.add(NAMESPACES, namespace())
    sa = client.seed(SERVICE_ACCOUNTS, service_account())
    await client.delete(SERVICE_ACCOUNTS, "default", NS)
    ctrl.on_service_account_delete(sa)
    assert await ctrl.queue.get() == NS
    assert await ctrl.reconcile(NS) is None
    recreated = client.stored(SERVICE_ACCOUNTS, NS, "default")
    assert recreated is not None and recreated["metadata"]["uid"] != sa["metadata"]["uid"]


async def test_handlers_enqueue_namespaces_and_deleted_default_only(ctrl):
    ctrl.on_service_account_delete(service_account("builder"))
    assert len(ctrl.queue) == 0
    ctrl.on_namespace_add(namespace("a"))
    ctrl.on_namespace_update(namespace("b"), namespace("b", phase="Terminating"))
    ctrl.on_service_account_delete(service_account("default", "c"))
    assert [await ctrl.queue.get() for _ in range(3)] == ["a", "b", "c"]
