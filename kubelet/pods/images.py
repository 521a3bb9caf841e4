"""Getting a container's image onto the node per its imagePullPolicy, with pull backoff.

``Always`` pulls on every container start, ``IfNotPresent`` only when the runtime lacks the image,
``Never`` never (a missing image is ErrImageNeverPull). A failed pull is ErrImagePull; while its backoff
(the crash-loop schedule, keyed by pod and image) runs, further attempts are ImagePullBackOff without
trying. Successful pulls and failures are explained in Events, as the kubelet does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from kubelet.cri import CriError, RuntimeClient
from kubelet.pods.backoff import Backoff

EventSink = Callable[[Mapping[str, Any], str, str, str], None]


class ImagePullError(Exception):
    """The image could not be made present; ``reason`` is the container's waiting reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def pull_policy(container: Mapping[str, Any]) -> str:
    policy = container.get("imagePullPolicy")
    if policy:
        return policy
    image = container.get("image") or ""
    tag = image.rsplit("/", 1)[-1]
    return "Always" if "@" not in image and (":" not in tag or tag.endswith(":latest")) else "IfNotPresent"


class ImagePuller:
    def __init__(self, runtime: RuntimeClient, backoff: Backoff, event: EventSink) -> None:
        self.runtime = runtime
        self.backoff = backoff
        self.event = event
        self._failed_at: dict[str, float] = {}

    def forget(self, pod_uid: str) -> None:
        """Drop a removed pod's pull failures."""
        for key in [k for k in self._failed_at if k.startswith(f"{pod_uid}/")]:
            del self._failed_at[key]

    async def ensure(self, pod: Mapping[str, Any], container: Mapping[str, Any]) -> str:
        """The image reference to create the container from; raises ImagePullError."""
        image = container.get("image") or ""
        policy = pull_policy(container)
        present = await self.runtime.image_status(image)
        if policy == "Never" or (policy == "IfNotPresent" and present is not None):
            if present is None:
                message = f'Container image "{image}" is not present with pull policy of Never'
                self.event(pod, "Warning", "ErrImageNeverPull", message)
                raise ImagePullError("ErrImageNeverPull", message)
            if policy == "IfNotPresent":
                self.event(pod, "Normal", "Pulled",
                           f'Container image "{image}" already present on machine')
            return present.id
        # Not "<uid>/<image>": that is a container's crash-loop key when the container is named like its image.
        key = f"{pod['metadata']['uid']}/pull:{image}"
        failed_at = self._failed_at.get(key)
        if failed_at is not None and self.backoff.remaining(key, failed_at) > 0:
            raise ImagePullError("ImagePullBackOff", f'Back-off pulling image "{image}"')
        self.event(pod, "Normal", "Pulling", f'Pulling image "{image}"')
        started = time.monotonic()
        try:
            ref = await self.runtime.pull_image(image)
        except CriError as err:
            self._failed_at[key] = self.backoff.clock.now().timestamp()
            self.backoff.next(key)
            message = f'Failed to pull image "{image}": {err.details or err}'
            self.event(pod, "Warning", "Failed", message)
            raise ImagePullError("ErrImagePull", message) from None
        self._failed_at.pop(key, None)
        self.backoff.reset(key)
        self.event(pod, "Normal", "Pulled",
                   f'Successfully pulled image "{image}" in {time.monotonic() - started:.3f}s')
        return ref
