"""A pod's quality-of-service class, computed once at creation as Kubernetes does.

The rule lives in :mod:`machinery.qos` (the kubelet needs the same answer for cgroup placement and
OOM scores); this module keeps the registry's import path.
"""

from __future__ import annotations

from machinery.qos import BEST_EFFORT, BURSTABLE, GUARANTEED, QOS_RESOURCES, pod_qos_class

__all__ = ["BEST_EFFORT", "BURSTABLE", "GUARANTEED", "QOS_RESOURCES", "pod_qos_class"]
