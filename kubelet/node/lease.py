"""The node's heartbeat: a coordination.k8s.io/v1 Lease in ``kube-node-lease`` renewed every 10 seconds.

Controllers judge a node alive by this Lease's ``renewTime`` (cheaper than rewriting the whole Node
status). Like the kubelet's lease controller: the Lease is named after the node, held by it, lasts
``lease_duration`` seconds, and has an ownerReference to the Node so it is garbage collected with it (when
the Node is not known yet the Lease is created without one and the owner is filled in on a later renewal).
A renewal PUTs the last Lease read, so it is one request; a conflict or a missing Lease makes it read (or
create) the Lease again. A failed renewal is retried after 200 ms, doubling up to 7 s. The API server
creates the ``kube-node-lease`` namespace at start-up; should it be missing, it is created here.

The Lease bodies come from two pure functions, :func:`new_lease` and :func:`renewed_lease`, which the hollow
nodes (:mod:`kubelet.hollow`) use too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from kubelet.node.registration import owner_reference
from machinery.client import LEASES, NAMESPACES, ApiClient
from machinery.clock import REAL_CLOCK, Clock
from machinery.errors import StatusError, is_already_exists, is_conflict, is_not_found
from machinery.meta import micro_time_now, uid_of

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
RETRY_INITIAL = 0.2  # seconds after a failed renewal
RETRY_MAX = 7.0
UPDATE_ATTEMPTS = 5  # conflicts re-read and retried at once, this many times per renewal


def new_lease(node_name: str, duration: int, now: datetime, *,
              owner: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The Lease ``kube-node-lease/<node_name>`` to create: held by the node, renewed ``now``, owned by ``owner``
    (the Node) when it is given and has a uid."""
    body = {"apiVersion": LEASES.api_version, "kind": LEASES.kind,
            "metadata": {"name": node_name, "namespace": LEASE_NAMESPACE}, "spec": {}}
    return renewed_lease(body, node_name, duration, now, owner=owner)


def renewed_lease(lease: Mapping[str, Any], holder: str, duration: int, now: datetime, *,
                  owner: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A copy of ``lease`` held by ``holder`` for ``duration`` seconds and renewed ``now``; with an ``owner`` (the
    Node, once it has a uid) also owned by that Node, replacing any other Node owner. ``lease`` is not mutated;
    only the parts that change are copied (the rest is shared), so it stays cheap for many hollow nodes. The
    copy keeps ``lease``'s resourceVersion, which makes the PUT a compare-and-swap."""
    renewed = {**lease, "metadata": dict(lease.get("metadata") or {}),
               "spec": {**(lease.get("spec") or {}), "holderIdentity": holder, "leaseDurationSeconds": duration,
                        "renewTime": micro_time_now(now)}}
    if owner is not None and uid_of(owner):
        refs = renewed["metadata"].get("ownerReferences") or []
        if not any(r.get("kind") == "Node" and r.get("uid") == uid_of(owner) for r in refs):
            others = [r for r in refs if r.get("kind") != "Node"]
            renewed["metadata"]["ownerReferences"] = [*others, owner_reference(owner)]
    return renewed


class NodeLease:
    """Keeps ``kube-node-lease/<node_name>`` renewed. ``owner()`` returns the current Node (or None)."""

    def __init__(self, client: ApiClient, node_name: str, duration: int, *,
                 owner: Callable[[], Mapping[str, Any] | None], clock: Clock = REAL_CLOCK) -> None:
        self.client = client
        self.node_name = node_name
        self.duration = duration
        self.owner = owner
        self.clock = clock
        self._lease: dict[str, Any] | None = None

    @property
    def lease(self) -> dict[str, Any] | None:
        """The Lease as last written or read."""
        return self._lease

    async def run(self, interval: float) -> None:
        """Renew every ``interval`` seconds, forever; failures back off from 200 ms to 7 s (cancel to stop)."""
        retry = RETRY_INITIAL
        while True:
            try:
                await self.renew()
            except Exception as err:  # never give up the heartbeat; a bug shows with its traceback
                log.warning("failed to renew lease %s/%s, will retry in %.1fs: %s", LEASE_NAMESPACE,
                            self.node_name, retry, err, exc_info=not isinstance(err, StatusError))
                await self.clock.sleep(retry)
                retry = min(retry * 2, RETRY_MAX)
                continue
            retry = RETRY_INITIAL
            await self.clock.sleep(interval)

    async def renew(self) -> dict[str, Any]:
        """One renewal: create the Lease, or move its renewTime to now (raises StatusError on failure)."""
        for _ in range(UPDATE_ATTEMPTS):
            if self._lease is None:
                lease, created = await self._get_or_create()
                self._lease = lease
                if created:
                    return lease
            try:
                self._lease = await self.client.replace(LEASES, self._renewed(self._lease))
                return self._lease
            except StatusError as err:
                if not (is_conflict(err) or is_not_found(err)):
                    raise
                log.debug("lease %s/%s changed or vanished; reading it again", LEASE_NAMESPACE, self.node_name)
                self._lease = None
        raise StatusError(409, "Conflict", f"lease {LEASE_NAMESPACE}/{self.node_name}: still conflicting after "
                                           f"{UPDATE_ATTEMPTS} attempts")

    async def _get_or_create(self) -> tuple[dict[str, Any], bool]:
        try:
            return await self.client.get(LEASES, self.node_name, LEASE_NAMESPACE), False
        except StatusError as err:
            if not is_not_found(err):
                raise
        try:
            return await self._create(), True
        except StatusError as err:
            if not is_already_exists(err):
                raise
        return await self.client.get(LEASES, self.node_name, LEASE_NAMESPACE), False

    async def _create(self) -> dict[str, Any]:
        body = new_lease(self.node_name, self.duration, self.clock.now(), owner=self.owner())
        try:
            return await self.client.create(LEASES, body, LEASE_NAMESPACE)
        except StatusError as err:
            if not is_not_found(err):  # on create, NotFound means the namespace is missing
                raise
        await self._ensure_namespace()
        return await self.client.create(LEASES, body, LEASE_NAMESPACE)

    async def _ensure_namespace(self) -> None:
        log.info("namespace %s is missing; creating it", LEASE_NAMESPACE)
        try:
            await self.client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                                  "metadata": {"name": LEASE_NAMESPACE}})
        except StatusError as err:
            if not is_already_exists(err):
                raise

    def _renewed(self, lease: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``lease`` held by this node, renewed now, owned by the current Node when known."""
        return renewed_lease(lease, self.node_name, self.duration, self.clock.now(), owner=self.owner())
