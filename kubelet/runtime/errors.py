"""Runtime errors and the one table that maps them to gRPC status codes.

Everything below the gRPC servicers raises these; the servicers translate them with :func:`grpc_code`, so a
caller (the kubelet, crictl, a test) can rely on the code — NOT_FOUND for an unknown id, INVALID_ARGUMENT for a
config that cannot run, and so on — without reading messages.
"""

from __future__ import annotations

import grpc


class RuntimeFailure(Exception):
    """Base class: something the runtime could not do. Maps to UNKNOWN unless a subclass says otherwise."""


class NotFound(RuntimeFailure):
    """An id, name or image that does not exist."""


class InvalidArgument(RuntimeFailure):
    """A request or config that can never succeed as sent."""


class AlreadyExists(RuntimeFailure):
    """A name already taken (sandbox or container metadata names are unique per pod/attempt)."""


class FailedPrecondition(RuntimeFailure):
    """The object is in the wrong state for the request (e.g. starting a container that has exited)."""


class DeadlineExceeded(RuntimeFailure):
    """An operation with a timeout did not finish in time (ExecSync)."""


class ResourceExhausted(RuntimeFailure):
    """Out of something the runtime hands out (pod IPs)."""


class Unavailable(RuntimeFailure):
    """A dependency (a registry, runc) could not be reached."""


_CODES: dict[type[RuntimeFailure], grpc.StatusCode] = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def grpc_code(error: BaseException) -> grpc.StatusCode:
    """The gRPC status code for ``error``: its class's entry (or its nearest base's), else UNKNOWN."""
    for cls in type(error).__mro__:
        code = _CODES.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.UNKNOWN
