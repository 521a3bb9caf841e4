"""The node's image store: content-addressed blobs, unpacked layers shared by images, and an index of images.

The runtime runs containers as overlayfs mounts over read-only image layers, so every layer must exist on disk
unpacked exactly once, whichever images share it, and the kubelet must be able to find an image by id, by any
spelling of a tag, or by a digest reference. Layout under ``root``::

    blobs/sha256/<hex>      compressed layers, configs and manifests exactly as received (digest-verified)
    layers/<diff_id hex>/   one unpacked directory per layer, whiteouts already in overlayfs form
    images.json             the index: {"images": {id: record}, "layers": {diff_id: unpacked size}}
    tmp/                    downloads and imports in progress (emptied when a store opens)

An image id is ``sha256:`` + the digest of its config blob, as in docker and containerd.

Threading contract: the runtime is asyncio code. Cheap calls (:meth:`ImageStore.resolve`, ``get``, ``list``,
``tag``, ``layer_dirs``, ``lowerdir``, ``has_blob``) only touch memory and a small JSON file and may run on the
event loop. Heavy calls hash or unpack data and are plain sync functions for the caller to run with
:func:`asyncio.to_thread`: :meth:`ImageStore.commit_image`, :meth:`ImageStore.ensure_layer`,
:meth:`ImageStore.add_blob_file`, :meth:`ImageStore.ingest`, :meth:`ImageStore.remove` and
:meth:`ImageStore.fs_info`. One ``threading.Lock`` guards the index; a layer is unpacked under its own lock into a
temp dir that is then renamed into place, so concurrent pulls sharing a layer unpack it once. One store object
per root per process.

Unpacking (:func:`unpack_layer`) accepts gzip, plain tar and (with the ``zstd`` binary) zstd layers, refuses
entries that would land outside the layer, keeps modes, owners, symlinks, hard links and xattrs, skips device
nodes, and turns OCI whiteouts into overlayfs ones (``.wh.x`` → char device 0/0 ``x``; ``.wh..wh..opq`` → xattr
``trusted.overlay.opaque=y``), which needs root. The manifest helpers at the end are shared by the archive
loader and the registry puller.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import gzip
import hashlib
import json
import os
import platform
import re
import shutil
import stat
import subprocess
import tarfile
import threading
import uuid
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from kubelet.runtime.errors import InvalidArgument, NotFound, RuntimeFailure
from kubelet.runtime.images.reference import parse, parse_image_id

__all__ = [
    "INDEX_MEDIA_TYPES",
    "MANIFEST_MEDIA_TYPES",
    "Image",
    "ImageStore",
    "choose_platform",
    "digest_hex",
    "host_platform",
    "manifest_parts",
    "media_type_of",
    "sha256_digest",
    "unpack_layer",
]

_CHUNK = 1 << 20
_DIGEST = re.compile(r"sha256:([a-f0-9]{64})")
_ID_PREFIX = re.compile(r"(?:sha256:)?([a-f0-9]{12,63})")
_NUMERIC = re.compile(r"[0-9]+")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_hex(digest: str) -> str:
    """The hex part of a ``sha256:<64 hex>`` digest; InvalidArgument for anything else."""
    match = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if match is None:
        raise InvalidArgument(f"invalid digest {digest!r}: expected sha256:<64 hex digits>")
    return match.group(1)


@dataclass
class Image:
    """One image as the CRI sees it.

    ``size`` is the unpacked size in bytes: the sum of the file sizes in the image's distinct layers (what the
    image occupies once unpacked, as ``docker images`` shows), not the compressed download size.
    ``config`` is the ``config`` object of the OCI image config (Env, Entrypoint, Cmd, WorkingDir, User,
    ExposedPorts, Labels, StopSignal); ``layers`` are the diff_ids, bottom → top.
    """

    id: str
    repo_tags: list[str]
    repo_digests: list[str]
    size: int
    config: dict[str, Any]
    layers: list[str]

    @property
    def user(self) -> str:
        return str(self.config.get("User") or "")

    @property
    def uid(self) -> int | None:
        """CRI ``Image.uid``: the numeric user of ``User`` (``1000`` or ``1000:1000``), else None."""
        name = self.user.partition(":")[0]
        return int(name) if _NUMERIC.fullmatch(name) else None

    @property
    def username(self) -> str:
        """CRI ``Image.username``: the user name of a non-numeric ``User`` (``nginx:nginx`` → ``nginx``), else ""."""
        name = self.user.partition(":")[0]
        return "" if _NUMERIC.fullmatch(name) else name


class ImageStore:
    """The content-addressed image store under ``root`` (see the module docstring for layout and threading)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._blobs = self.root / "blobs" / "sha256"
        self._layers = self.root / "layers"
        self.temp_dir = self.root / "tmp"
        for path in (self._blobs, self._layers, self.temp_dir):
            path.mkdir(parents=True, exist_ok=True)
        self._index_path = self.root / "images.json"
        self._lock = threading.Lock()
        self._unpack_locks: dict[str, threading.Lock] = {}
        self._pins: Counter[str] = Counter()
        self._images, self._layer_sizes = self._load_index()
        self._clean_leftovers()

    # ---- lookups (cheap) -------------------------------------------------------------------------------------

    def resolve(self, ref_or_id: str) -> Image | None:
        """The image for an id (``sha256:…``, 64 hex, or a unique hex prefix of at least 12 digits), a tag
        reference in any spelling (``busybox`` = ``docker.io/library/busybox:latest``) or a digest reference
        (``repo@sha256:…``, matched against repo digests). None when nothing matches or ``ref_or_id`` is
        not a valid reference (containerd answers an invalid reference with "not found" too)."""
        with self._lock:
            image_id = self._find_id(ref_or_id)
            return self._image(image_id) if image_id else None

    def get(self, ref_or_id: str) -> Image:
        """Like :meth:`resolve` but raises NotFound."""
        image = self.resolve(ref_or_id)
        if image is None:
            raise NotFound(f'image "{ref_or_id}" not found')
        return image

    def list(self) -> list[Image]:
        with self._lock:
            return [self._image(image_id) for image_id in sorted(self._images)]

    def layer_dirs(self, image: Image | str) -> list[Path]:
        """The image's unpacked layer directories, bottom → top. A layer repeated in one image (the empty layer
        often is) is listed once, at its topmost position: overlayfs refuses a lowerdir named twice, and the
        lower copy can change nothing the upper one does not redo."""
        if isinstance(image, str):
            image = self.get(image)
        seen: set[str] = set()
        top_down: list[Path] = []
        for diff_id in reversed(image.layers):
            if diff_id not in seen:
                seen.add(diff_id)
                top_down.append(self._layers / digest_hex(diff_id))
        return top_down[::-1]

    def lowerdir(self, image: Image | str) -> str:
        """The overlayfs ``lowerdir=`` value: layer dirs joined by ``:``, top layer FIRST. Empty for an image
        without layers (the runtime then needs an empty dir of its own)."""
        dirs = [str(path) for path in reversed(self.layer_dirs(image))]
        for path in dirs:
            if ":" in path or "," in path:
                raise InvalidArgument(f"image store path {path!r} cannot be an overlayfs lowerdir (':' or ',')")
        return ":".join(dirs)

    # ---- changing the index (cheap) -------------------------------------------------------------------------

    def tag(self, image_id: str, ref: str) -> Image:
        """Add the repo tag ``ref`` (any spelling) to an image, moving it from any other image that had it."""
        tagged = _tag_ref(ref)
        with self._lock:
            found = self._find_id(image_id)
            if found is None:
                raise NotFound(f'image "{image_id}" not found')
            self._move_tags(found, [tagged])
            self._save_locked()
            return self._image(found)

    # ---- removal and usage (heavy) ---------------------------------------------------------------------------

    def remove(self, ref_or_id: str) -> None:
        """Remove an image with all its tags and digests (CRI RemoveImage semantics), then delete the layers and
        blobs no other image (and no pull in progress) uses. Unknown images are a no-op: RemoveImage is
        idempotent. The caller must not remove an image a container still runs on."""
        with self._lock:
            image_id = self._find_id(ref_or_id)
            if image_id is None:
                return
            record = self._images.pop(image_id)
            in_use_layers = {d for r in self._images.values() for d in r["layers"]} | set(self._pins)
            in_use_blobs = {b for r in self._images.values() for b in r["blobs"]} | set(self._pins)
            doomed_layers = sorted(set(record["layers"]) - in_use_layers)
            doomed_blobs = sorted(set(record["blobs"]) - in_use_blobs)
            trash = []
            for diff_id in doomed_layers:
                self._layer_sizes.pop(diff_id, None)
                moved = self._to_trash(self._layers / digest_hex(diff_id))
                if moved is not None:
                    trash.append(moved)
            self._save_locked()
        for blob in doomed_blobs:
            self.blob_path(blob).unlink(missing_ok=True)
        for path in trash:
            shutil.rmtree(path, ignore_errors=True)

    def fs_info(self) -> tuple[int, int, str]:
        """``(used_bytes, inodes_used, mountpoint)`` for CRI ImageFsInfo: disk blocks and distinct inodes under
        the store's root. Like containerd, the "mountpoint" is the store's own directory; the filesystem that
        holds it is found from there."""
        used = inodes = 0
        seen: set[tuple[int, int]] = set()
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in [".", *dirnames, *filenames]:
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                used += st.st_blocks * 512
                inodes += 1
        return used, inodes, str(self.root)

    # ---- blobs ------------------------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self._blobs / digest_hex(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def read_blob(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in the image store") from None

    def new_temp_path(self) -> Path:
        """A fresh path in the store's temp dir (same filesystem as the blobs, so moving it in is a rename)."""
        return self.temp_dir / f"ingest-{uuid.uuid4().hex}"

    def add_blob(self, data: bytes, digest: str | None = None) -> str:
        """Store ``data``; return its digest. InvalidArgument if ``digest`` is given and does not match."""
        actual = sha256_digest(data)
        _check_digest(digest, actual)
        target = self.blob_path(actual)
        if not target.exists():
            tmp = self.new_temp_path()
            tmp.write_bytes(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        return actual

    def add_blob_file(self, path: Path, digest: str | None = None, *, actual: str | None = None) -> str:
        """Move the file at ``path`` into the store (heavy unless ``actual``, its already computed digest, is
        given). InvalidArgument if ``digest`` does not match the content; ``path`` is consumed either way."""
        path = Path(path)
        try:
            actual = actual or _hash_file(path)
            _check_digest(digest, actual)
            target = self.blob_path(actual)
            if not target.exists():
                os.chmod(path, 0o644)
                _move(path, target, self.new_temp_path())
            return actual
        finally:
            path.unlink(missing_ok=True)

    def ingest(self, stream: IO[bytes], digest: str | None = None) -> str:
        """Copy a byte stream into the store while hashing it (heavy); like :meth:`add_blob_file`."""
        tmp = self.new_temp_path()
        hasher = hashlib.sha256()
        with open(tmp, "wb") as out:
            while chunk := stream.read(_CHUNK):
                hasher.update(chunk)
                out.write(chunk)
        return self.add_blob_file(tmp, digest, actual="sha256:" + hasher.hexdigest())

    @contextlib.contextmanager
    def hold(self, *digests: str) -> Iterator[None]:
        """Keep blobs and layers (by digest / diff_id) from being deleted by :meth:`remove` while a pull or
        import that will reference them is in progress."""
        with self._lock:
            self._pins.update(digests)
        try:
            yield
        finally:
            with self._lock:
                self._pins.subtract(digests)
                self._pins = +self._pins  # drop the zero counts

    # ---- registering images (heavy) ---------------------------------------------------------------------------

    def commit_image(self, config_digest: str, layer_blobs: Sequence[str], *, repo_tags: Iterable[str] = (),
                     repo_digests: Iterable[str] = (), blobs: Iterable[str] = ()) -> Image:
        """Register the image whose config blob and layer blobs (bottom → top) are already in the store: unpack
        any layer not yet unpacked (verifying each diff_id against the config), then record it with
        ``repo_tags`` (moved from any image that had them) and ``repo_digests``. ``blobs`` names further blobs
        (manifests, indexes) kept as long as the image is. Committing an existing image merges names. Heavy."""
        tags = [_tag_ref(ref) for ref in repo_tags]
        digests = [_digest_ref(ref) for ref in repo_digests]
        image_id = "sha256:" + digest_hex(config_digest)
        extra = list(blobs)
        with self.hold(config_digest, *layer_blobs, *extra):
            config_doc = _load_json(self.read_blob(config_digest), f"image config {config_digest}")
            diff_ids = _diff_ids(config_doc, len(layer_blobs), config_digest)
            with self.hold(*diff_ids):
                sizes = {d: self.ensure_layer(b, d) for b, d in zip(layer_blobs, diff_ids, strict=True)}
                with self._lock:
                    record = self._images.setdefault(image_id, {
                        "repo_tags": [], "repo_digests": [], "config_digest": config_digest, "layers": diff_ids,
                        "size": sum(sizes.values()), "config": config_doc.get("config") or {}, "blobs": []})
                    record["blobs"] = _merged(record["blobs"], [config_digest, *layer_blobs, *extra])
                    record["repo_digests"] = _merged(record["repo_digests"], digests)
                    self._move_tags(image_id, tags)
                    self._save_locked()
                    return self._image(image_id)

    def ensure_layer(self, blob_digest: str, diff_id: str) -> int:
        """Unpack the layer blob into ``layers/<diff_id hex>`` unless it is there already; return its unpacked
        size. Unpacks into a temp dir renamed into place, once per layer however many threads ask. Call it
        inside :meth:`hold` (``commit_image`` does) so a concurrent remove cannot delete the result. Heavy."""
        hex_id = digest_hex(diff_id)
        final = self._layers / hex_id
        if not self.has_blob(blob_digest):
            raise NotFound(f"layer blob {blob_digest} is not in the image store")
        with self._lock:
            layer_lock = self._unpack_locks.setdefault(hex_id, threading.Lock())
        with layer_lock:
            with self._lock:
                size = self._layer_sizes.get(diff_id)
            if size is not None and final.is_dir():
                return size
            tmp = self._layers / f".tmp-{hex_id}-{uuid.uuid4().hex[:8]}"
            try:
                size = unpack_layer(self.blob_path(blob_digest), tmp, diff_id)
                stale = self._to_trash(final)  # left by a crash before the index recorded it
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            if stale is not None:
                shutil.rmtree(stale, ignore_errors=True)
            with self._lock:
                self._layer_sizes[diff_id] = size
            return size

    # ---- internals ----------------------------------------------------------------------------------------------

    def _find_id(self, value: str) -> str | None:
        value = (value or "").strip()
        full = parse_image_id(value)
        if full is not None:
            return full if full in self._images else None
        try:
            ref = parse(value)
        except InvalidArgument:
            ref = None
        if ref is not None:
            field, wanted = ("repo_digests", ref.digested()) if ref.digest else ("repo_tags", ref.tagged())
            for image_id, record in self._images.items():
                if wanted in record[field]:
                    return image_id
        prefix = _ID_PREFIX.fullmatch(value)
        if prefix is not None:
            matches = [i for i in self._images if i[len("sha256:"):].startswith(prefix.group(1))]
            if len(matches) == 1:
                return matches[0]
        return None

    def _image(self, image_id: str) -> Image:
        record = self._images[image_id]
        return Image(id=image_id, repo_tags=list(record["repo_tags"]), repo_digests=list(record["repo_digests"]),
                     size=record["size"], config=copy.deepcopy(record["config"]), layers=list(record["layers"]))

    def _move_tags(self, image_id: str, tags: list[str]) -> None:
        for other_id, record in self._images.items():
            if other_id != image_id:
                record["repo_tags"] = [t for t in record["repo_tags"] if t not in tags]
        record = self._images[image_id]
        record["repo_tags"] = _merged(record["repo_tags"], tags)

    def _load_index(self) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
        try:
            doc = json.loads(self._index_path.read_bytes())
        except FileNotFoundError:
            return {}, {}
        except ValueError as err:
            raise RuntimeFailure(f"image index {self._index_path} is corrupt: {err}") from err
        return doc.get("images", {}), doc.get("layers", {})

    def _save_locked(self) -> None:
        """Write images.json atomically (temp file + os.replace). Caller holds ``self._lock``."""
        live = {d for r in self._images.values() for d in r["layers"]} | set(self._pins)
        layers = {d: size for d, size in self._layer_sizes.items() if d in live}
        data = json.dumps({"images": self._images, "layers": layers}, indent=1, sort_keys=True).encode()
        tmp = self.root / f".images.json.{os.getpid()}.{threading.get_ident()}"
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self._index_path)

    def _to_trash(self, path: Path) -> Path | None:
        """Rename ``path`` aside (atomic) so it can be deleted at leisure; None if it does not exist."""
        trash = self._layers / f".trash-{path.name}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return None
        return trash

    def _clean_leftovers(self) -> None:
        for path in self.temp_dir.iterdir():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        for path in self._layers.glob(".*"):
            shutil.rmtree(path, ignore_errors=True)


def _check_digest(expected: str | None, actual: str) -> None:
    if expected is not None and expected != actual:
        digest_hex(expected)
        raise InvalidArgument(f"digest mismatch: expected {expected}, content has {actual}")


def _hash_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as src:
        while chunk := src.read(_CHUNK):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


def _move(src: Path, target: Path, tmp: Path) -> None:
    try:
        os.replace(src, target)
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
        shutil.copyfile(src, tmp)  # another filesystem: copy next to the target, then rename
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)


def _merged(old: list[str], new: Iterable[str]) -> list[str]:
    out = list(old)
    out.extend(item for item in new if item not in out)
    return out


def _tag_ref(ref: str) -> str:
    parsed = parse(ref)
    if parsed.digest is not None:
        raise InvalidArgument(f"cannot use digest reference {ref!r} as a tag")
    return parsed.tagged() or ""


def _digest_ref(ref: str) -> str:
    parsed = parse(ref)
    if parsed.digest is None:
        raise InvalidArgument(f"repo digest {ref!r} has no digest")
    return parsed.digested() or ""


def _load_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as err:
        raise InvalidArgument(f"{what} is not valid JSON: {err}") from err
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{what} is not a JSON object")
    return doc


def _diff_ids(config: dict[str, Any], layer_count: int, config_digest: str) -> list[str]:
    rootfs = config.get("rootfs") or {}
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or rootfs.get("type") != "layers":
        raise InvalidArgument(f"image config {config_digest} has no rootfs.diff_ids of type 'layers'")
    if len(diff_ids) != layer_count:
        raise InvalidArgument(f"image config {config_digest} lists {len(diff_ids)} diff_ids "
                              f"for {layer_count} layers")
    for diff_id in diff_ids:
        digest_hex(diff_id)
    return list(diff_ids)


# ---- layer unpacking ----------------------------------------------------------------------------------------------


class _HashingReader:
    """A read-only stream that hashes what passes through it (the tar reader sees every byte)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._hasher = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._hasher.update(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    def digest(self) -> str:
        return "sha256:" + self._hasher.hexdigest()


def unpack_layer(blob: Path, dest: Path, diff_id: str | None = None) -> int:
    """Unpack a (gzip, zstd or plain) layer tarball into the new directory ``dest``; return the sum of its
    regular files' sizes. Raises InvalidArgument for a corrupt tar, an unsafe entry or, when ``diff_id`` is
    given, a digest of the uncompressed tar that differs from it. Heavy; ``dest`` is left for the caller to
    delete on error."""
    dest.mkdir(parents=True)
    try:
        with _decompressed(blob) as stream:
            reader = _HashingReader(stream)
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                size = _Extractor(dest).run(tar)
            reader.drain()
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise InvalidArgument(f"layer {blob.name} is not a valid tar stream: {err}") from err
    if diff_id is not None and reader.digest() != diff_id:
        raise InvalidArgument(f"layer diff_id mismatch: the image config says {diff_id}, "
                              f"the uncompressed layer is {reader.digest()}")
    return size


@contextlib.contextmanager
def _decompressed(blob: Path) -> Iterator[IO[bytes]]:
    with open(blob, "rb") as raw:
        magic = raw.read(4)
        raw.seek(0)
        if magic[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield unzipped
            return
        if magic != b"\x28\xb5\x2f\xfd":
            yield raw
            return
    zstd = shutil.which("zstd")
    if zstd is None:
        raise InvalidArgument(f"layer {blob.name} is zstd-compressed; install zstd (apt-get install zstd)")
    proc = subprocess.Popen([zstd, "-dcq", str(blob)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    try:
        yield proc.stdout
    except BaseException:
        proc.kill()
        raise
    finally:
        proc.stdout.close()
        proc.wait()
    if proc.returncode != 0:
        raise InvalidArgument(f"layer {blob.name}: zstd could not decompress it (exit {proc.returncode})")


class _Extractor:
    """Writes one layer's entries under ``root``, never outside it; directory attributes are applied last."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self.size = 0
        self._dirs: list[tuple[str, tarfile.TarInfo, tuple[int, int]]] = []
        self._as_root = os.geteuid() == 0

    def run(self, tar: tarfile.TarFile) -> int:
        for member in tar:
            self._extract(tar, member)
        for path, member, identity in reversed(self._dirs):
            self._set_dir_attrs(path, member, identity)
        return self.size

    def _extract(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = _entry_parts(member.name)
        if not parts:
            if member.isdir():
                self._remember_dir(self.root, member)
            return
        parent = self._resolve_dir(parts[:-1], member.name)
        base = parts[-1]
        if base.startswith(".wh."):
            self._whiteout(parent, base)
            return
        path = os.path.join(parent, base)
        if member.isdir():
            if not (os.path.isdir(path) and not os.path.islink(path)):
                _remove_existing(path)
                os.mkdir(path, 0o700)
            self._remember_dir(path, member)
            return
        if member.ischr() or member.isblk():
            return  # device nodes: a container's /dev comes from the runtime, never from an image
        _remove_existing(path)
        if member.isreg():
            self._write_file(tar, member, path)
        elif member.issym():
            os.symlink(member.linkname, path)
        elif member.islnk():
            self._hard_link(member, path)
            return  # same inode as the target: its attributes are already set
        elif member.isfifo():
            os.mkfifo(path)
        else:
            return
        self._set_attrs(path, member)

    def _write_file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        source = tar.extractfile(member)
        assert source is not None
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out, source:
            shutil.copyfileobj(source, out, _CHUNK)
        self.size += member.size

    def _hard_link(self, member: tarfile.TarInfo, path: str) -> None:
        target_parts = _entry_parts(member.linkname)
        if not target_parts:
            raise InvalidArgument(f"layer entry {member.name!r}: hard link to the layer root")
        target = os.path.join(self._resolve_dir(target_parts[:-1], member.linkname, create=False),
                              target_parts[-1])
        try:
            os.link(target, path, follow_symlinks=False)
        except (FileNotFoundError, PermissionError, IsADirectoryError) as err:
            raise InvalidArgument(f"layer entry {member.name!r}: bad hard link to {member.linkname!r}: "
                                  f"{err.strerror}") from err

    def _whiteout(self, parent: str, base: str) -> None:
        try:
            if base == ".wh..wh..opq":
                os.setxattr(parent, "trusted.overlay.opaque", b"y")
            elif not base.startswith(".wh..wh."):  # other .wh..wh.* names are aufs bookkeeping, not content
                path = os.path.join(parent, base[len(".wh."):])
                _remove_existing(path)
                os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))
        except PermissionError as err:
            raise RuntimeFailure(f"converting whiteouts to overlayfs form needs root: {err}") from err

    def _resolve_dir(self, parts: list[str], name: str, create: bool = True) -> str:
        """The real directory for ``parts`` with symlinks followed as if ``root`` were ``/`` (so they can never
        lead out of the layer); missing directories are created (0755) when ``create``."""
        pending = list(reversed(parts))
        current: list[str] = []
        hops = 0
        while pending:
            part = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if current:
                    current.pop()
                continue
            path = os.path.join(self.root, *current, part)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                if not create:
                    raise InvalidArgument(f"layer entry {name!r}: {'/'.join([*current, part])} does not exist")\
                        from None
                os.mkdir(path, 0o755)
                current.append(part)
                continue
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > 40:
                    raise InvalidArgument(f"layer entry {name!r}: too many levels of symbolic links")
                target = os.readlink(path)
                if target.startswith("/"):
                    current = []
                pending.extend(reversed(target.split("/")))
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise InvalidArgument(f"layer entry {name!r}: {'/'.join([*current, part])} is not a directory")
            current.append(part)
        return os.path.join(self.root, *current)

    def _remember_dir(self, path: str, member: tarfile.TarInfo) -> None:
        st = os.lstat(path)
        self._dirs.append((path, member, (st.st_dev, st.st_ino)))

    def _set_dir_attrs(self, path: str, member: tarfile.TarInfo, identity: tuple[int, int]) -> None:
        """Directory attributes go last (creating children changes mtimes) and through an fd opened without
        following symlinks and checked to be the directory made earlier: a later entry may have replaced it,
        or a parent of it, with a symlink to a host path."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) == identity:
                self._set_attrs(fd, member)
        finally:
            os.close(fd)

    def _set_attrs(self, path: str | int, member: tarfile.TarInfo) -> None:
        """Owner, xattrs, mode and mtime of a just-created entry (a path never followed if a symlink) or of an
        open directory fd."""
        follow = isinstance(path, int)  # fds take no follow_symlinks=False
        try:
            os.chown(path, member.uid, member.gid, follow_symlinks=follow)
        except PermissionError:
            if self._as_root:
                raise
        for key, value in member.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                with contextlib.suppress(OSError):
                    os.setxattr(path, key[len("SCHILY.xattr."):], value.encode("utf-8", "surrogateescape"),
                                follow_symlinks=follow)
        if not member.issym():
            os.chmod(path, stat.S_IMODE(member.mode))  # after chown, which clears set-id bits
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=follow)


def _entry_parts(name: str) -> list[str]:
    """A tar entry name as path components; InvalidArgument for absolute names and ``..``."""
    if name.startswith("/"):
        raise InvalidArgument(f"layer entry {name!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"layer entry {name!r} escapes the layer with '..'")
    return parts


def _remove_existing(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


# ---- manifests and indexes (shared by archive.py and registry.py) ---------------------------------------------

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_MEDIA_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_MEDIA_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
_ARCHES = {"x86_64": ("amd64", None), "amd64": ("amd64", None), "aarch64": ("arm64", None),
           "arm64": ("arm64", None), "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "i686": ("386", None),
           "i386": ("386", None), "ppc64le": ("ppc64le", None), "s390x": ("s390x", None),
           "riscv64": ("riscv64", None)}


def host_platform() -> tuple[str, str, str | None]:
    """``(os, architecture, variant)`` of this machine in OCI terms, e.g. ``("linux", "amd64", None)``."""
    machine = platform.machine().lower()
    arch, variant = _ARCHES.get(machine, (machine, None))
    return "linux", arch, variant


def media_type_of(doc: dict[str, Any], declared: str | None = None) -> str:
    """The media type of a manifest or index document: its own field, else what the server or the parent
    descriptor declared, else guessed from its shape (OCI makes the field optional)."""
    kind = doc.get("mediaType") or declared or ""
    if kind in INDEX_MEDIA_TYPES or kind in MANIFEST_MEDIA_TYPES:
        return kind
    if doc.get("schemaVersion") == 1:
        raise InvalidArgument("docker schema 1 manifests are not supported")
    if isinstance(doc.get("manifests"), list):
        return OCI_INDEX
    if isinstance(doc.get("config"), dict):
        return OCI_MANIFEST
    raise InvalidArgument(f"unsupported manifest media type {kind!r}")


def choose_platform(index: dict[str, Any], where: str) -> dict[str, Any]:
    """The descriptor for this machine's platform (linux/<arch>) in an index or manifest list. Descriptors
    without a platform count as a match only when they are the index's only entry."""
    want_os, want_arch, want_variant = host_platform()
    manifests = [m for m in index.get("manifests") or [] if isinstance(m, dict)]
    exact, loose = [], []
    for desc in manifests:
        plat = desc.get("platform")
        if plat is None:
            if len(manifests) == 1:
                loose.append(desc)
            continue
        if plat.get("os") != want_os or plat.get("architecture") != want_arch:
            continue
        (exact if want_variant is None or plat.get("variant") in (None, want_variant) else loose).append(desc)
    found = exact or loose
    if not found:
        raise NotFound(f"no image for platform {want_os}/{want_arch} in {where}")
    return found[0]


def manifest_parts(manifest: dict[str, Any], where: str) -> tuple[str, list[str]]:
    """``(config digest, layer digests bottom → top)`` of an image manifest; InvalidArgument if malformed."""
    config = manifest.get("config")
    layers = manifest.get("layers")
    if manifest.get("schemaVersion") != 2 or not isinstance(config, dict) or not isinstance(layers, list):
        raise InvalidArgument(f"{where}: not a schema 2 image manifest")
    digests = []
    for layer in layers:
        media = str(layer.get("mediaType", ""))
        if "encrypted" in media:
            raise InvalidArgument(f"{where}: encrypted layers are not supported ({media})")
        digest_hex(layer.get("digest", ""))
        digests.append(layer["digest"])
    digest_hex(config.get("digest", ""))
    return config["digest"], digests
