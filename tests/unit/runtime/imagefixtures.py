"""Small, fully controlled images for the image-store tests: layer tars, configs, manifests, indexes, tarballs.

Real images are large and need a registry; these are built in memory in a few milliseconds, with every byte
known, so a test can assert exact digests, break one on purpose, or write the same image as an OCI layout or a
``docker save`` archive. Test-only: the runtime never imports this.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubelet.runtime.images.store import host_platform

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"

Entry = tuple[tarfile.TarInfo, bytes | None]


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _info(name: str, kind: bytes, mode: int, uid: int = 0, gid: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = 1_700_000_000
    return info


def file(name: str, data: bytes | str = b"", mode: int = 0o644, uid: int = 0, gid: int = 0,
         xattrs: dict[str, str] | None = None) -> Entry:
    body = data.encode() if isinstance(data, str) else data
    info = _info(name, tarfile.REGTYPE, mode, uid, gid)
    info.size = len(body)
    if xattrs:
        info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    return info, body


def directory(name: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Entry:
    return _info(name, tarfile.DIRTYPE, mode, uid, gid), None


def symlink(name: str, target: str) -> Entry:
    info = _info(name, tarfile.SYMTYPE, 0o777)
    info.linkname = target
    return info, None


def hardlink(name: str, target: str) -> Entry:
    info = _info(name, tarfile.LNKTYPE, 0o644)
    info.linkname = target
    return info, None


def char_device(name: str, major: int = 1, minor: int = 3) -> Entry:
    info = _info(name, tarfile.CHRTYPE, 0o666)
    info.devmajor, info.devminor = major, minor
    return info, None


def layer_tar(*entries: Entry) -> bytes:
    """An uncompressed tar of ``entries`` in the given order (PAX format, so xattrs survive)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


@dataclass
class BuiltImage:
    """An image as a registry or an OCI layout holds it."""

    config: bytes
    layer_tars: list[bytes]          # uncompressed: the diff_id content
    layer_blobs: list[bytes]         # as distributed (gzip unless built with compress=False)
    manifest: bytes
    arch: str
    layer_media: str = OCI_LAYER_GZIP

    @property
    def config_digest(self) -> str:
        return digest_of(self.config)

    @property
    def id(self) -> str:
        return self.config_digest

    @property
    def diff_ids(self) -> list[str]:
        return [digest_of(t) for t in self.layer_tars]

    @property
    def layer_digests(self) -> list[str]:
        return [digest_of(b) for b in self.layer_blobs]

    @property
    def manifest_digest(self) -> str:
        return digest_of(self.manifest)

    def blobs(self) -> dict[str, bytes]:
        """Config and layer blobs by digest (not the manifest)."""
        out = {self.config_digest: self.config}
        out.update(zip(self.layer_digests, self.layer_blobs, strict=True))
        return out

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": OCI_MANIFEST, "digest": self.manifest_digest, "size": len(self.manifest),
                "platform": {"os": "linux", "architecture": self.arch}}


@dataclass
class BuiltIndex:
    """A multi-platform OCI index over several images."""

    images: list[BuiltImage]
    index: bytes = b""
    extra: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.index:
            self.index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                     "manifests": [i.descriptor() for i in self.images]}).encode()

    @property
    def digest(self) -> str:
        return digest_of(self.index)

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": OCI_INDEX, "digest": self.digest, "size": len(self.index)}


def build_image(*layers: bytes, config: dict[str, Any] | None = None, arch: str | None = None,
                compress: bool = True, diff_ids: list[str] | None = None) -> BuiltImage:
    """An image of the given uncompressed layer tars. ``diff_ids`` overrides the config's (to break it)."""
    arch = arch or host_platform()[1]
    doc = {"architecture": arch, "os": "linux", "config": config if config is not None else {"Cmd": ["sh"]},
           "rootfs": {"type": "layers", "diff_ids": diff_ids or [digest_of(t) for t in layers]}}
    config_bytes = json.dumps(doc, sort_keys=True).encode()
    blobs = [gzip.compress(t, mtime=0) if compress else t for t in layers]
    media = OCI_LAYER_GZIP if compress else OCI_LAYER
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": media, "digest": digest_of(b), "size": len(b)} for b in blobs],
    }).encode()
    return BuiltImage(config=config_bytes, layer_tars=list(layers), layer_blobs=blobs, manifest=manifest,
                      arch=arch, layer_media=media)


def write_archive(path: Path, entries: Sequence[tuple[BuiltImage | BuiltIndex, Sequence[str]]],
                  format: str = "oci", *, annotations: str = "containerd") -> Path:
    """Write ``entries`` (image or index, names) as an OCI layout tarball or a ``docker save`` archive.

    ``annotations``: "containerd" puts the full name in ``io.containerd.image.name`` and the tag in
    ``org.opencontainers.image.ref.name`` (like ``ctr export``); "ref" puts each name as given in
    ``org.opencontainers.image.ref.name`` only (like skopeo)."""
    members: dict[str, bytes] = {}
    if format == "oci":
        descriptors = []
        for item, names in entries:
            _add_oci_blobs(members, item)
            for name in names or [None]:
                desc = item.descriptor()
                if name is not None:
                    desc["annotations"] = _annotations(name, annotations)
                descriptors.append(desc)
        members["oci-layout"] = json.dumps({"imageLayoutVersion": "1.0.0"}).encode()
        members["index.json"] = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                            "manifests": descriptors}).encode()
    elif format == "docker":
        manifest = []
        for item, names in entries:
            assert isinstance(item, BuiltImage), "docker archives hold single-platform images"
            members[f"{item.config_digest[7:]}.json"] = item.config
            layer_names = []
            for tar_bytes in item.layer_tars:
                name = f"{digest_of(tar_bytes)[7:]}/layer.tar"
                members[name] = tar_bytes
                layer_names.append(name)
            manifest.append({"Config": f"{item.config_digest[7:]}.json", "RepoTags": list(names) or None,
                             "Layers": layer_names})
        members["manifest.json"] = json.dumps(manifest).encode()
    else:
        raise ValueError(format)
    with tarfile.open(path, "w") as tar:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _add_oci_blobs(members: dict[str, bytes], item: BuiltImage | BuiltIndex) -> None:
    images = item.images if isinstance(item, BuiltIndex) else [item]
    if isinstance(item, BuiltIndex):
        members[f"blobs/sha256/{item.digest[7:]}"] = item.index
        for digest, data in item.extra.items():
            members[f"blobs/sha256/{digest[7:]}"] = data
    for image in images:
        members[f"blobs/sha256/{image.manifest_digest[7:]}"] = image.manifest
        for digest, data in image.blobs().items():
            members[f"blobs/sha256/{digest[7:]}"] = data


def _annotations(name: str, style: str) -> dict[str, str]:
    if style == "ref":
        return {"org.opencontainers.image.ref.name": name}
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    return {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag}
