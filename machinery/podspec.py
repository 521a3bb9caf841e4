"""Facts about a pod spec that the API server and the kubelet must read the same way.

One definition per fact, so the resize validation in the API server, the kubelet's container ordering,
probing and resource sums, and the hollow nodes never disagree on, e.g., which init containers are sidecars.
Pure, tolerant of any mapping, never mutates its argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SIDECAR_RESTART_POLICY = "Always"


def is_sidecar(container: Mapping[str, Any]) -> bool:
    """An init container with ``restartPolicy: Always`` (a sidecar) keeps running beside the app containers.

    Only init containers may set a container-level ``restartPolicy`` (validation refuses it on the others),
    so the caller need not say which list ``container`` came from."""
    return container.get("restartPolicy") == SIDECAR_RESTART_POLICY
