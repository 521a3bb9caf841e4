"""Images for kubemini's CRI runtime: references, the on-disk store, archive import, builtin images, registry pulls.

The runtime's ImageService (PullImage, ImageStatus, ListImages, RemoveImage, ImageFsInfo) is a thin layer over
:class:`ImageStore`; the container code asks the store for an image's config and its layer directories to stack
as overlayfs lowerdirs. Submodules: ``reference`` (parsing names), ``store`` (blobs, layers, index),
``layers`` (unpacking a layer tarball), ``archive`` (OCI / docker tarballs), ``builtin`` (busybox and pause from
host binaries), ``registry`` (pulls); ``python -m kubelet.runtime.images`` loads, lists and removes images in a
store from the command line, also while the runtime runs on it.
"""

from kubelet.runtime.images.store import Image, ImageStore

__all__ = ["Image", "ImageStore"]
