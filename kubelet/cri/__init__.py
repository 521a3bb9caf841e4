"""The kubelet's side of the Container Runtime Interface: an async gRPC client and the labels it writes.

Everything the kubelet asks of a container runtime — kubemini's own or containerd — goes through
:class:`RuntimeClient`. Failures arrive as :class:`CriError` carrying the gRPC status code, so callers
branch with :func:`is_not_found` and friends, never on messages.
"""

from kubelet.cri.client import CriError, RuntimeClient, is_not_found, is_unavailable

__all__ = ["CriError", "RuntimeClient", "is_not_found", "is_unavailable"]
