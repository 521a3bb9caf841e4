"""Import image tarballs into the store: OCI image layouts and ``docker save`` archives.

A node without registry access still needs images: tests and air-gapped setups hand the runtime a tarball made by
``docker save``, ``podman save``, ``ctr export``, ``skopeo copy … oci-archive:`` or our own test fixtures.
:func:`load_archive` recognises both formats (an OCI layout has ``oci-layout`` + ``index.json``; a docker archive
has ``manifest.json``; docker 25+ writes both and is read as OCI), picks this machine's platform from
multi-platform indexes, verifies every digest, and registers the images through :class:`ImageStore`.

Names come from ``io.containerd.image.name`` (a full reference) or ``org.opencontainers.image.ref.name``. The
latter is often only a tag (``latest``); like ``ctr import --base-name``, a bare tag names an image only when
``base_name`` (a repository) is given, otherwise the image is imported by id alone. A ref.name containing ``/``
or ``:`` is taken as a full reference. Loading is heavy: run it with :func:`asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import posixpath
import re
import tarfile
import zlib
from pathlib import Path
from typing import IO, Any

from kubelet.runtime.errors import InvalidArgument, NotFound
from kubelet.runtime.images.reference import parse
from kubelet.runtime.images.store import (
    INDEX_MEDIA_TYPES,
    Image,
    ImageStore,
    choose_platform,
    digest_hex,
    host_platform,
    manifest_parts,
    media_type_of,
    sha256_digest,
)

__all__ = ["load_archive"]

_CONTAINERD_NAME = "io.containerd.image.name"
_OCI_REF_NAME = "org.opencontainers.image.ref.name"
_MAX_JSON = 32 << 20
_BLOB_NAME = re.compile(r"blobs/sha256/([a-f0-9]{64})")
_DOCKER_CONFIG_NAME = re.compile(r"([a-f0-9]{64})\.json")


def load_archive(store: ImageStore, path: Path | str, *, base_name: str | None = None) -> list[Image]:
    """Import every image in the tarball at ``path`` (plain or compressed); return them, each once.

    InvalidArgument for a file that is neither format, a digest that does not match, or an index without an
    image for this machine's platform. Heavy (hashing, unpacking)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidArgument(f"image archive {path} does not exist")
    if not tarfile.is_tarfile(path):
        raise InvalidArgument(f"{path} is neither an OCI layout nor a docker-archive tarball")
    try:
        with tarfile.open(path, "r:*") as tar:
            archive = _Archive(tar, path.name)
            if archive.has("oci-layout") and archive.has("index.json"):
                images = _load_oci(archive, store, base_name)
            elif archive.has("manifest.json"):
                images = _load_docker(archive, store)
            else:
                raise InvalidArgument(f"{path} is neither an OCI layout nor a docker-archive tarball")
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise InvalidArgument(f"image archive {path} is corrupt: {err}") from err
    seen: dict[str, Image] = {}
    for image in images:
        seen[image.id] = image
    return [store.get(image_id) for image_id in seen]  # the final names after all merges


class _Archive:
    """Random access to a tarball's members by normalised name, following symlinks and hard links inside it."""

    def __init__(self, tar: tarfile.TarFile, label: str) -> None:
        self.tar = tar
        self.label = label
        self.members = {_norm(m.name): m for m in tar.getmembers()}

    def has(self, name: str) -> bool:
        return _norm(name) in self.members

    def open(self, name: str) -> IO[bytes]:
        member = self._member(name)
        stream = self.tar.extractfile(member)
        if stream is None:
            raise InvalidArgument(f"{self.label}: {name} is not a file")
        return stream

    def json(self, name: str) -> Any:
        member = self._member(name)
        if member.size > _MAX_JSON:
            raise InvalidArgument(f"{self.label}: {name} is too large for a JSON document")
        with self.open(name) as stream:
            data = stream.read()
        return _parse_json(data, f"{self.label}: {name}")

    def blob(self, digest: str) -> bytes:
        """An OCI blob's bytes, digest-verified."""
        with self.open(f"blobs/sha256/{digest_hex(digest)}") as stream:
            data = stream.read(_MAX_JSON + 1)
        if sha256_digest(data) != digest:
            raise InvalidArgument(f"{self.label}: blob {digest} does not match its digest")
        return data

    def ingest(self, store: ImageStore, name: str, digest: str | None) -> str:
        """Copy a member into the store (verifying ``digest`` when known); skip blobs the store has."""
        if digest is not None and store.has_blob(digest):
            return digest
        with self.open(name) as stream:
            return store.ingest(stream, digest)

    def _member(self, name: str) -> tarfile.TarInfo:
        current = _norm(name)
        for _ in range(40):
            member = self.members.get(current)
            if member is None:
                raise InvalidArgument(f"{self.label}: {name} is missing from the archive")
            if member.issym():
                current = _norm(posixpath.join(posixpath.dirname(current), member.linkname))
            elif member.islnk():
                current = _norm(member.linkname)
            else:
                return member
        raise InvalidArgument(f"{self.label}: {name}: too many levels of links")


def _load_oci(archive: _Archive, store: ImageStore, base_name: str | None) -> list[Image]:
    layout = archive.json("oci-layout")
    if not isinstance(layout, dict) or "imageLayoutVersion" not in layout:
        raise InvalidArgument(f"{archive.label}: oci-layout has no imageLayoutVersion")
    index = archive.json("index.json")
    descriptors = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(descriptors, list):
        raise InvalidArgument(f"{archive.label}: index.json has no manifests")
    want_os, want_arch, _ = host_platform()
    images = []
    for desc in descriptors:
        plat = desc.get("platform")
        if plat and (plat.get("os"), plat.get("architecture")) != (want_os, want_arch):
            continue  # another platform's entry of a flattened multi-platform layout
        names = _names(desc.get("annotations") or {}, base_name, archive.label)
        images.append(_load_oci_descriptor(archive, store, desc, names, desc["digest"]))
    if not images:
        raise InvalidArgument(f"{archive.label}: no image for platform {want_os}/{want_arch}")
    return images


def _load_oci_descriptor(archive: _Archive, store: ImageStore, desc: dict[str, Any], names: list[str],
                         top_digest: str, parents: tuple[str, ...] = ()) -> Image:
    """Import the image a descriptor points at, descending through (nested) indexes to this platform's one.
    Repo digests name the top-level digest (what a pull by that digest would fetch); index blobs are kept."""
    if len(parents) > 4:
        raise InvalidArgument(f"{archive.label}: indexes nested too deeply")
    digest = desc.get("digest", "")
    data = archive.blob(digest)
    doc = _parse_json(data, f"{archive.label}: {digest}")
    if media_type_of(doc, desc.get("mediaType")) in INDEX_MEDIA_TYPES:
        try:
            child = choose_platform(doc, f"{archive.label} index {digest}")
        except NotFound as err:  # for an archive this is a file that cannot be used here, not a missing name
            raise InvalidArgument(str(err)) from None
        with store.hold(digest):
            store.add_blob(data, digest)
            return _load_oci_descriptor(archive, store, child, names, top_digest, (*parents, digest))
    config, layers = manifest_parts(doc, f"{archive.label} manifest {digest}")
    with store.hold(config, *layers, digest, *parents):
        archive.ingest(store, f"blobs/sha256/{digest_hex(config)}", config)
        for layer in layers:
            archive.ingest(store, f"blobs/sha256/{digest_hex(layer)}", layer)
        store.add_blob(data, digest)
        repo_digests = [f"{parse(name).name}@{top_digest}" for name in names]
        return store.commit_image(config, layers, repo_tags=names, repo_digests=repo_digests,
                                  blobs=[*parents, digest])


def _load_docker(archive: _Archive, store: ImageStore) -> list[Image]:
    """``docker save`` format: manifest.json lists Config (a ``<hex>.json`` or blob path), RepoTags and Layers
    (plain tars). There is no manifest digest, so such images get no repo digests (as with ``docker load``)."""
    manifest = archive.json("manifest.json")
    if not isinstance(manifest, list):
        raise InvalidArgument(f"{archive.label}: manifest.json is not a list")
    images = []
    for entry in manifest:
        if not isinstance(entry, dict) or not entry.get("Config") or not isinstance(entry.get("Layers"), list):
            raise InvalidArgument(f"{archive.label}: manifest.json entry without Config and Layers")
        tags = [_tag_name(tag, archive.label) for tag in entry.get("RepoTags") or []]
        with contextlib.ExitStack() as held:
            config = archive.ingest(store, entry["Config"], _expected_digest(entry["Config"]))
            held.enter_context(store.hold(config))
            layers = []
            for name in entry["Layers"]:
                layers.append(archive.ingest(store, name, _expected_digest(name)))
                held.enter_context(store.hold(layers[-1]))
            images.append(store.commit_image(config, layers, repo_tags=tags))
    return images


def _names(annotations: dict[str, str], base_name: str | None, label: str) -> list[str]:
    """The repo tags an OCI index entry's annotations give (see the module docstring)."""
    full = annotations.get(_CONTAINERD_NAME)
    if full:
        return [_tag_name(full, label)]
    ref_name = annotations.get(_OCI_REF_NAME)
    if not ref_name:
        return []
    if base_name:
        return [_tag_name(f"{base_name}:{ref_name}", label)]
    if "/" in ref_name or ":" in ref_name:
        return [_tag_name(ref_name, label)]
    return []


def _tag_name(ref: str, label: str) -> str:
    try:
        tagged = parse(ref).tagged()
    except InvalidArgument as err:
        raise InvalidArgument(f"{label}: bad image name: {err}") from err
    if tagged is None:
        raise InvalidArgument(f"{label}: image name {ref!r} has no tag")
    return tagged


def _expected_digest(name: str) -> str | None:
    """The digest a member's name promises (``blobs/sha256/<hex>`` or ``<hex>.json``), if any."""
    normal = _norm(name)
    match = _BLOB_NAME.fullmatch(normal) or _DOCKER_CONFIG_NAME.fullmatch(normal)
    return f"sha256:{match.group(1)}" if match else None


def _norm(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")


def _parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as err:
        raise InvalidArgument(f"{what} is not valid JSON: {err}") from err
