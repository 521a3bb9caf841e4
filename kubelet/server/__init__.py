"""The kubelet's HTTP server (logs, exec, attach, port-forward, health, metrics); see :mod:`kubelet.server.app`."""

from kubelet.server.app import KubeletServer

__all__ = ["KubeletServer"]
