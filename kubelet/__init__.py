"""kubemini's node agent.

``kubelet.runtime`` is the CRI server (the container runtime the kubelet drives over gRPC). It is deliberately
independent of the rest of this package: it imports only ``proto`` and its own dependencies, so the kubelet can
drive containerd in its place.
"""
