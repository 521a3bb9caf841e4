"""The one place where storage errors become ``metav1.Status`` errors a client understands."""

from __future__ import annotations

from apiserver.resources import ResourceInfo
from apiserver.storage import errors as storage
from machinery import errors as api


def interpret(err: storage.StorageError, info: ResourceInfo, name: str = "") -> api.StatusError:
    """Translate a storage error for ``info``/``name`` into the Status kube-apiserver would send."""
    resource, group = info.resource, info.group
    if isinstance(err, storage.NotFound):
        return api.not_found(resource, name, group)
    if isinstance(err, storage.AlreadyExists):
        return api.already_exists(resource, name, group)
    if isinstance(err, storage.PreconditionFailed):
        return api.conflict(resource, name, err.message, group)
    if isinstance(err, storage.Conflict):
        return api.conflict(resource, name, api.OBJECT_MODIFIED, group)
    if isinstance(err, storage.Expired):
        return api.expired(err.message or "too old resource version")
    if isinstance(err, storage.InvalidContinue):
        return api.bad_request(err.message)
    if isinstance(err, storage.TooLargeResourceVersion):
        status = api.server_timeout(
            f"Too large resource version: {err.requested}, current: {err.current}"
        )
        status.reason = "Timeout"
        status.details = {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                          "retryAfterSeconds": 1}
        return status
    if isinstance(err, storage.TooLarge):
        return api.request_entity_too_large("etcdserver: request is too large")
    if isinstance(err, storage.Unavailable):
        return api.service_unavailable(err.message or "etcd is unavailable")
    return api.internal_error(str(err))
