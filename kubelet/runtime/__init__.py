"""kubemini's container runtime: a CRI (k8s.io/cri-api runtime.v1) gRPC server that runs pods as runc containers.

Kept free of imports so that the per-container monitor (``kubelet.runtime.shim``) starts with nothing loaded.
"""
