"""Finding the CRI container (or sandbox) behind a ``/containerLogs``, ``/exec`` or ``/attach`` request.

The kubelet keeps no table of its own: a pod's containers are the CRI containers labelled with the pod's UID and
the container's name, one per attempt (``metadata.attempt``, the restart count). The current one has the highest
attempt; ``previous`` is the one before it. Errors are :class:`RequestError` carrying the HTTP status and the
message the upstream kubelet gives, which the API server passes on to the user.
"""

from __future__ import annotations

from collections.abc import Mapping

from grpc import StatusCode

from kubelet.cri import labels
from kubelet.cri.client import CriError, RuntimeClient
from proto.cri import api_pb2 as cri


class RequestError(Exception):
    """A request the kubelet cannot serve: ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def spec_container_names(pod: Mapping) -> list[str]:
    """Init, regular and ephemeral containers, in that order (how Kubernetes lists a pod's containers)."""
    spec = pod.get("spec") or {}
    return [c.get("name", "") for key in ("initContainers", "containers", "ephemeralContainers")
            for c in spec.get(key) or []]


def check_container_name(pod: Mapping, name: str) -> None:
    if name not in spec_container_names(pod):
        raise RequestError(400, f"container {name} is not valid for pod {pod['metadata'].get('name', '')}")


async def attempts(runtime: RuntimeClient, pod: Mapping, name: str) -> list[cri.Container]:
    """The container's CRI containers, oldest attempt first."""
    uid = pod["metadata"].get("uid", "")
    found = await runtime.list_containers({labels.POD_UID: uid, labels.CONTAINER_NAME: name})
    return sorted(found, key=lambda c: (c.metadata.attempt, c.created_at))


async def log_container(runtime: RuntimeClient, pod: Mapping, name: str, previous: bool) -> cri.Container:
    """The container whose log a request reads: the newest attempt, or the one before it with ``previous``."""
    check_container_name(pod, name)
    pod_name = pod["metadata"].get("name", "")
    found = await attempts(runtime, pod, name)
    if previous:
        if len(found) < 2:
            raise RequestError(400, f'previous terminated container "{name}" in pod "{pod_name}" not found')
        return found[-2]
    if not found:
        raise RequestError(400, f'container "{name}" in pod "{pod_name}" is waiting to start'
                                f"{_waiting_reason(pod, name)}")
    return found[-1]


async def running_container(runtime: RuntimeClient, pod: Mapping, name: str) -> cri.Container:
    """The newest attempt of the container, which must be running (exec and attach need a live process)."""
    check_container_name(pod, name)
    found = await attempts(runtime, pod, name)
    if not found or found[-1].state != cri.CONTAINER_RUNNING:
        raise RequestError(400, f'container "{name}" in pod "{pod["metadata"].get("name", "")}" is not running')
    return found[-1]


async def ready_sandbox(runtime: RuntimeClient, pod: Mapping) -> cri.PodSandbox:
    """The pod's ready sandbox (port-forward connects inside its network namespace)."""
    uid = pod["metadata"].get("uid", "")
    for sandbox in await runtime.list_pod_sandboxes({labels.POD_UID: uid}):
        if sandbox.state == cri.SANDBOX_READY:
            return sandbox
    raise RequestError(400, f'pod "{pod["metadata"].get("name", "")}" has no running sandbox')


def _waiting_reason(pod: Mapping, name: str) -> str:
    """``: <reason>`` from the container's waiting state in the pod's status, else `` - no logs yet``."""
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for container in status.get(key) or []:
            if container.get("name") == name:
                reason = ((container.get("state") or {}).get("waiting") or {}).get("reason")
                if reason:
                    return f": {reason}"
    return " - no logs yet"


def cri_request_error(err: CriError, action: str) -> RequestError:
    """A runtime's refusal as the HTTP error the kubelet answers with."""
    status = {StatusCode.NOT_FOUND: 404, StatusCode.INVALID_ARGUMENT: 400, StatusCode.FAILED_PRECONDITION: 400,
              StatusCode.RESOURCE_EXHAUSTED: 429, StatusCode.UNAVAILABLE: 503}.get(err.code, 500)
    return RequestError(status, f"{action}: {err.details or err.code.name}")
