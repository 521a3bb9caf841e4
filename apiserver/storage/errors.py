"""Typed storage errors: what can go wrong between the API server and etcd, independent of HTTP.

The registry turns these into ``metav1.Status`` errors in one place
(:func:`apiserver.registry.errors.interpret`), adding the resource and object names clients expect.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class; ``key`` is the etcd key involved (empty for list/watch-wide errors)."""

    def __init__(self, key: str = "", message: str = "") -> None:
        super().__init__(message or f"{type(self).__name__}: {key}")
        self.key = key
        self.message = message


class NotFound(StorageError):
    """The key does not exist (or no longer exists)."""


class AlreadyExists(StorageError):
    """Create found the key already present."""


class Conflict(StorageError):
    """A precondition or an expected resourceVersion did not match the stored object."""


class PreconditionFailed(Conflict):
    """DeleteOptions/update preconditions (uid, resourceVersion) did not match."""


class Expired(StorageError):
    """The requested revision was compacted (410 Expired): the client must relist."""


class TooLargeResourceVersion(StorageError):
    """A client asked for a resourceVersion newer than this server has seen yet."""

    def __init__(self, requested: int, current: int) -> None:
        super().__init__("", f"Too large resource version: {requested}, current: {current}")
        self.requested = requested
        self.current = current


class Unavailable(StorageError):
    """etcd could not be reached or did not answer in time."""


class TooLarge(StorageError):
    """The encoded object is larger than etcd accepts."""


class InvalidContinue(StorageError):
    """A list ``continue`` token could not be decoded."""
