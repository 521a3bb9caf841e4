"""The two images every node has without a registry: busybox (for ``image: busybox`` pods) and the pause image.

The machines kubemini runs on cannot reach Docker Hub, yet pods need a sandbox ("pause") image and tests and
demos need a shell image. Both are built here from Debian packages already on the host: ``busybox-static``'s
``/bin/busybox`` and ``catatonit``'s ``/usr/bin/catatonit`` (both static, so one file makes a working rootfs).

The builds are deterministic (entries sorted, fixed mtimes and owners, uncompressed layer, fixed ``created``):
the image id depends only on the binary and the architecture, so two nodes with the same Debian package report
the same id, as they would for a pulled image. Building is heavy (hashing, unpacking): run
:func:`ensure_builtin_images` with :func:`asyncio.to_thread`.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from kubelet.runtime.errors import RuntimeFailure
from kubelet.runtime.images.store import (
    OCI_INDEX,
    OCI_MANIFEST,
    Image,
    ImageStore,
    host_platform,
    sha256_digest,
)

__all__ = ["BUSYBOX_IMAGE", "PAUSE_IMAGE", "busybox_layer", "ensure_builtin_images", "pause_layer",
           "write_builtin_archive"]

BUSYBOX_IMAGE = "docker.io/library/busybox:latest"
PAUSE_IMAGE = "kubemini.local/pause:latest"
BUSYBOX_BINARY = Path("/bin/busybox")
CATATONIT_BINARY = Path("/usr/bin/catatonit")

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_CREATED = "1970-01-01T00:00:00Z"
_MTIME = 0
_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
_GROUP = "root:x:0:\nnogroup:x:65534:\n"
# The upstream pause image runs as 65535:65535; ours does too, so a sandbox holds no root process by default.
_PAUSE_USER = "65535:65535"
_PAUSE_PASSWD = "root:x:0:0:root:/:/catatonit\npause:x:65535:65535:pause:/:/catatonit\n"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
_PAUSE_GROUP = "root:x:0:\npause:x:65535:\n"


def ensure_builtin_images(store: ImageStore, *, busybox: Path | str = BUSYBOX_BINARY,
                          catatonit: Path | str = CATATONIT_BINARY) -> list[Image]:
    """Build and register busybox and pause unless the store already has them by name; return both.

    RuntimeFailure (saying which package to install) when a binary is missing."""
    images = []
    for name, build in ((BUSYBOX_IMAGE, lambda: busybox_layer(busybox)),
                        (PAUSE_IMAGE, lambda: pause_layer(catatonit))):
        image = store.resolve(name)
        if image is None:
            layer, config = build()
            image = _register(store, name, layer, config)
        images.append(image)
    return images


def busybox_layer(binary: Path | str = BUSYBOX_BINARY) -> tuple[bytes, dict[str, Any]]:
    """The busybox rootfs as one uncompressed layer tar, and its image ``config`` object."""
    data = _read_binary(binary, "busybox-static")
    try:
        listing = subprocess.run([str(binary), "--list-full"], capture_output=True, text=True, check=True,
                                 timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise RuntimeFailure(f"{binary} --list-full failed ({err}); apt-get install busybox-static") from err
    layer = _Layer()
    for path in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "run", "var",
                 "var/run", "home"):
        layer.dir(path)
    layer.dir("tmp", 0o1777)
    layer.dir("root", 0o700)
    layer.file("bin/busybox", data, 0o755)
    layer.file("etc/passwd", _PASSWD.encode())
    layer.file("etc/group", _GROUP.encode())
    for placeholder in ("etc/hosts", "etc/hostname", "etc/resolv.conf"):  # bind-mount targets
        layer.file(placeholder, b"")
    for applet in listing.split():
        applet = applet.strip("/")
        if applet and applet != "bin/busybox":
            layer.parents(applet)
            layer.symlink(applet, "/bin/busybox")
    return layer.build(), {"Cmd": ["sh"], "Env": [PATH_ENV]}


def pause_layer(binary: Path | str = CATATONIT_BINARY) -> tuple[bytes, dict[str, Any]]:
    """The pause rootfs (catatonit in pause mode) as one uncompressed layer tar, and its ``config`` object."""
    data = _read_binary(binary, "catatonit")
    layer = _Layer()
    for path in ("dev", "etc", "proc", "sys"):
        layer.dir(path)
    layer.file("catatonit", data, 0o755)
    layer.file("etc/passwd", _PAUSE_PASSWD.encode())
    layer.file("etc/group", _PAUSE_GROUP.encode())
    config = {"Entrypoint": ["/catatonit", "-P"], "Env": [PATH_ENV], "User": _PAUSE_USER, "WorkingDir": "/"}
    return layer.build(), config


def _read_binary(path: Path | str, package: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise RuntimeFailure(f"{path} is missing: apt-get install {package}") from None


def _register(store: ImageStore, name: str, layer: bytes, config: dict[str, Any]) -> Image:
    config_bytes = _config_blob(name, layer, config)
    with store.hold(sha256_digest(layer)):
        layer_digest = store.add_blob(layer)
        config_digest = store.add_blob(config_bytes)
        return store.commit_image(config_digest, [layer_digest], repo_tags=[name])


def _config_blob(name: str, layer: bytes, config: dict[str, Any]) -> bytes:
    """The image's config document (deterministic: the same binary gives the same image id everywhere)."""
    _, arch, variant = host_platform()
    doc: dict[str, Any] = {
        "architecture": arch, "os": "linux", "created": _CREATED, "config": config,
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer)]},
        "history": [{"created": _CREATED, "created_by": f"kubemini builtin image {name}"}],
    }
    if variant:
        doc["variant"] = variant
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def write_builtin_archive(path: Path) -> Path:
    """Both built-in images as one OCI layout tarball, for runtimes that import images (``ctr images import``):
    each manifest is named with ``io.containerd.image.name`` (full name) and ``org.opencontainers.image.ref.name``
    (the tag), as ``ctr export`` writes them."""
    blobs: dict[str, bytes] = {}
    manifests = []
    for name, (layer, config) in ((BUSYBOX_IMAGE, busybox_layer()), (PAUSE_IMAGE, pause_layer())):
        config_bytes = _config_blob(name, layer, config)
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": _descriptor(
            OCI_CONFIG, config_bytes), "layers": [_descriptor(OCI_LAYER, layer)]}).encode()
        for blob in (layer, config_bytes, manifest):
            blobs[f"blobs/sha256/{sha256_digest(blob)[7:]}"] = blob
        manifests.append({**_descriptor(OCI_MANIFEST, manifest), "annotations": {
            "io.containerd.image.name": name, "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}})
    blobs["oci-layout"] = json.dumps({"imageLayoutVersion": "1.0.0"}).encode()
    blobs["index.json"] = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()
    with tarfile.open(path, "w") as tar:
        for member, data in sorted(blobs.items()):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _descriptor(media_type: str, blob: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256_digest(blob), "size": len(blob)}


class _Layer:
    """A deterministic tar: entries sorted by path (parents first), owned by 0:0, all with the same mtime."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}

    def dir(self, path: str, mode: int = 0o755) -> None:
        self._add(path, tarfile.DIRTYPE, mode)

    def parents(self, path: str) -> None:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            if "/".join(parts[:i]) not in self._entries:
                self.dir("/".join(parts[:i]))

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._add(path, tarfile.REGTYPE, mode, data=data)

    def symlink(self, path: str, target: str) -> None:
        self._add(path, tarfile.SYMTYPE, 0o777, linkname=target)

    def build(self) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(self._entries):
                info, data = self._entries[path]
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
        return out.getvalue()

    def _add(self, path: str, kind: bytes, mode: int, *, data: bytes | None = None, linkname: str = "") -> None:
        info = tarfile.TarInfo(path)
        info.type = kind
        info.mode = mode
        info.mtime = _MTIME
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.linkname = linkname
        info.size = len(data) if data is not None else 0
        self._entries[path] = (info, data)
