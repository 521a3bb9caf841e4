"""Pod volumes on the node: emptyDir, hostPath, configMap, secret, downwardAPI and projected.

:class:`VolumeManager` materializes them under ``<root>/pods/<uid>/volumes`` before a pod's containers start,
re-projects configMap/secret/downwardAPI content in place when it changes, turns a container's volumeMounts into
CRI mounts, and removes everything when the pod is gone. A volume that cannot be set up raises
:class:`VolumeError`, whose text is the FailedMount event message.
"""

from kubelet.volumes.layout import VolumeError
from kubelet.volumes.manager import VolumeManager

__all__ = ["VolumeError", "VolumeManager"]
