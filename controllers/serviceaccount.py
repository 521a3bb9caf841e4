"""The service-account controller: every active namespace has a ``default`` ServiceAccount.

Pods that name no service account run as ``default`` (the API server's ServiceAccount admission
fills it in), so each namespace needs one. As kube-controller-manager's ``serviceaccount``
controller does, this one creates it when a namespace appears or changes and recreates it when it
is deleted; namespaces that are not Active (Terminating) are left alone — their content is being
removed and the API server refuses new objects in them.

The work-queue key is the namespace name.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from controllers.controller import Controller, ControllerContext
from machinery.client import NAMESPACES, SERVICE_ACCOUNTS
from machinery.errors import StatusError, is_already_exists
from machinery.meta import name_of, namespace_of

log = logging.getLogger(__name__)

Obj = dict[str, Any]

MANAGED_SERVICE_ACCOUNTS = ("default",)
NAMESPACE_TERMINATING_CAUSE = "NamespaceTerminating"


class ServiceAccountsController(Controller):
    NAME = "serviceaccount"
    WORKERS = 1  # --concurrent-serviceaccount-syncs

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.namespaces = self.informer(NAMESPACES)
        self.service_accounts = self.informer(SERVICE_ACCOUNTS)
        self.namespaces.add_event_handler(self.on_namespace_add, self.on_namespace_update)
        self.service_accounts.add_event_handler(on_delete=self.on_service_account_delete)

    # --- event handlers -----------------------------------------------------------------------------

    def on_namespace_add(self, namespace: Obj) -> None:
        self.queue.add(name_of(namespace))

    def on_namespace_update(self, old: Obj, new: Obj) -> None:
        self.queue.add(name_of(new))

    def on_service_account_delete(self, service_account: Obj) -> None:
        if name_of(service_account) in MANAGED_SERVICE_ACCOUNTS:
            self.queue.add(namespace_of(service_account))

    # --- reconcile ----------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        """Create the managed service accounts the cache says an active namespace lacks."""
        namespace = self.namespaces.store.get_by_name(None, key)
        if namespace is None or (namespace.get("status") or {}).get("phase") != "Active":
            return None
        failures: list[StatusError] = []
        for name in MANAGED_SERVICE_ACCOUNTS:
            if self.service_accounts.store.get_by_name(key, name) is not None:
                continue
            try:
                await self.client.create(SERVICE_ACCOUNTS, {"metadata": {"name": name}}, key)
            except StatusError as err:
                if not is_already_exists(err) and not _namespace_terminating(err):
                    failures.append(err)
        if failures:
            raise failures[0]
        return None


def _namespace_terminating(err: StatusError) -> bool:
    """The API server refused the create because the namespace is being deleted (nothing to do then)."""
    causes = (err.details or {}).get("causes") or []
    return any(isinstance(c, Mapping) and c.get("reason") == NAMESPACE_TERMINATING_CAUSE for c in causes)
