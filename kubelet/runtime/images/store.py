"""The node's image store: content-addressed blobs, unpacked layers shared by images, and an index of images.

The runtime runs containers as overlayfs mounts over read-only image layers, so every layer must exist on disk
unpacked exactly once, whichever images share it, and the kubelet must be able to find an image by id, by any
spelling of a tag, or by a digest reference. Layout under ``root``::

    blobs/sha256/<hex>      compressed layers, configs and manifests exactly as received (digest-verified)
    layers/<diff_id hex>/   one unpacked directory per layer, whiteouts already in overlayfs form (layers.py)
    images.json             the index: {"images": {id: record}, "layers": {diff_id: unpacked size}}
    index.lock              flock'ed by whoever changes images.json or deletes content
    owners/<token>          one per open store (any process), flock'ed while it lives: the blobs and layers it pins
    tmp/                    downloads and imports in progress

An image id is ``sha256:`` + the digest of its config blob, as in docker and containerd.

Several processes share one store: the runtime, and ``python -m kubelet.runtime.images load`` importing an
archive into a running runtime's store. So every read-modify-write of images.json, every deletion and every
change of pins happens under an ``fcntl.flock`` of ``index.lock``; readers (:meth:`ImageStore.resolve`, ``get``,
``list``) take no file lock but reload the index whenever images.json changed (its inode, mtime and size: a
``stat`` per call). Writes replace images.json atomically, so a reader sees the old index or the new one. A pull
or import pins what it is about to reference (:meth:`ImageStore.hold`) in its owner file, which a remover in any
process reads under the same lock; an owner file nobody holds a flock on belongs to a dead process and is deleted,
with that process's temp files. Images record their users (containers, see :meth:`ImageStore.add_user`) so that
removal is refused from every process, not only the runtime.

Threading contract: the runtime is asyncio code. Cheap calls (``resolve``, ``get``, ``list``, ``tag``,
``add_user``, ``remove_user``, ``hold``, ``layer_dirs``, ``lowerdir``, ``has_blob``) touch memory and a small
JSON file and may run on the event loop (another process holds the index lock only for such small updates,
never while hashing or unpacking). Heavy calls hash, unpack or walk data and are plain sync functions for the
caller to run with :func:`asyncio.to_thread`: :meth:`ImageStore.commit_image`, :meth:`ImageStore.ensure_layer`,
:meth:`ImageStore.add_blob_file`, :meth:`ImageStore.ingest`, :meth:`ImageStore.remove` and
:meth:`ImageStore.fs_info`. In one process a ``threading.Lock`` guards the in-memory index; a layer is unpacked
under its own lock into a temp dir that is then renamed into place (:func:`~.layers.install_layer`), so
concurrent pulls sharing a layer unpack it once per process, and a process losing the rename to another keeps
the winner's copy.

The manifest helpers at the end are shared by the archive loader and the registry puller.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from kubelet.runtime.errors import FailedPrecondition, InvalidArgument, NotFound, RuntimeFailure
from kubelet.runtime.images.layers import install_layer, unpacked_size
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
]

_CHUNK = 1 << 20
_DIGEST = re.compile(r"sha256:([a-f0-9]{64})")
_ID_PREFIX = re.compile(r"(?:sha256:)?([a-f0-9]{12,63})")
_NUMERIC = re.compile(r"[0-9]+")
_TOKEN = re.compile(r"[0-9a-f]{16}")
# Temp entries carry their owner's token: ingest-<token>-…, .tmp-<token>-…, .trash-<token>-…, .images.json.<token>-…
_OWNED = re.compile(r"(?:ingest-|\.tmp-|\.trash-|\.images\.json\.)([0-9a-f]{16})-")
_UNLOADED = ("unloaded",)


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
    """The content-addressed image store under ``root`` (see the module docstring for layout, processes and
    threading). Several instances, in one process or several, may share a root; :meth:`close` releases one."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._blobs = self.root / "blobs" / "sha256"
        self._layers = self.root / "layers"
        self._owners = self.root / "owners"
        self.temp_dir = self.root / "tmp"
        for path in (self._blobs, self._layers, self._owners, self.temp_dir):
            path.mkdir(parents=True, exist_ok=True)
        self._index_path = self.root / "images.json"
        self._lock = threading.Lock()
        self._unpack_locks: dict[str, threading.Lock] = {}
        self._pins: Counter[str] = Counter()
        self._published: list[str] = []
        self._images: dict[str, dict[str, Any]] = {}
        self._layer_sizes: dict[str, int] = {}
        self._index_stat: tuple[Any, ...] = _UNLOADED
        self._token = uuid.uuid4().hex[:16]
        self._index_lock = open(self.root / "index.lock", "a+b")  # noqa: SIM115 - held for the store's life
        with self._writing():
            self._owner = self._register_owner()
            self._other_pins()  # deletes dead owners' files, so their temp entries below count as leftovers
        self._clean_leftovers()

    def close(self) -> None:
        """Unregister this instance (its pins go with it). The store object must not be used afterwards."""
        with self._writing():
            (self._owners / self._token).unlink(missing_ok=True)
            self._owner.close()
        self._index_lock.close()

    # ---- lookups (cheap) -------------------------------------------------------------------------------------

    def resolve(self, ref_or_id: str) -> Image | None:
        """The image for an id (``sha256:…``, 64 hex, or a unique hex prefix of at least 12 digits), a tag
        reference in any spelling (``busybox`` = ``docker.io/library/busybox:latest``) or a digest reference
        (``repo@sha256:…``, matched against repo digests). None when nothing matches or ``ref_or_id`` is
        not a valid reference (containerd answers an invalid reference with "not found" too)."""
        with self._lock:
            self._refresh()
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
            self._refresh()
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
        with self._writing():
            found = self._find_id(image_id)
            if found is None:
                raise NotFound(f'image "{image_id}" not found')
            self._move_tags(found, [tagged])
            self._save_locked()
            return self._image(found)

    def add_user(self, ref_or_id: str, user: str) -> Image:
        """Record that ``user`` (a label naming it, e.g. ``container <id>``) has a root filesystem on the image's
        layers: :meth:`remove` refuses the image, from any process, until :meth:`remove_user`. Idempotent;
        NotFound if the image is gone (a remove won the race). Recorded in the index, so it survives restarts."""
        with self._writing():
            image_id = self._find_id(ref_or_id)
            if image_id is None:
                raise NotFound(f'image "{ref_or_id}" not found')
            users = self._images[image_id].setdefault("users", [])
            if user not in users:
                users.append(user)
                self._save_locked()
            return self._image(image_id)

    def remove_user(self, user: str) -> None:
        """Forget ``user`` on whichever image has it. Idempotent."""
        with self._writing():
            changed = False
            for record in self._images.values():
                if user in record.get("users", ()):
                    record["users"].remove(user)
                    changed = True
            if changed:
                self._save_locked()

    def retain_users(self, live: Collection[str]) -> None:
        """Forget every user not in ``live``: after a crash between removing a container and :meth:`remove_user`,
        the runtime's recovery passes the users it still has."""
        with self._writing():
            changed = False
            for record in self._images.values():
                kept = [user for user in record.get("users", ()) if user in live]
                if kept != record.get("users", []):
                    record["users"] = kept
                    changed = True
            if changed:
                self._save_locked()

    def users(self, ref_or_id: str) -> list[str]:
        """The users recorded for an image ([] for an unknown one)."""
        with self._lock:
            self._refresh()
            image_id = self._find_id(ref_or_id)
            return list(self._images[image_id].get("users", [])) if image_id else []

    # ---- removal and usage (heavy) ---------------------------------------------------------------------------

    def remove(self, ref_or_id: str) -> None:
        """Remove an image with all its tags and digests (CRI RemoveImage semantics), then delete the layers and
        blobs no other image (and no pull or import in progress, in any process) uses. Unknown images are a
        no-op: RemoveImage is idempotent. FailedPrecondition, naming them, while the image has users."""
        trash = []
        with self._writing():
            image_id = self._find_id(ref_or_id)
            if image_id is None:
                return
            record = self._images[image_id]
            if record.get("users"):
                raise FailedPrecondition(f'image "{ref_or_id}" ({image_id}) is in use by '
                                         f'{", ".join(record["users"])}')
            del self._images[image_id]
            pinned = self._other_pins() | set(self._pins)
            in_use_layers = {d for r in self._images.values() for d in r["layers"]} | pinned
            in_use_blobs = {b for r in self._images.values() for b in r["blobs"]} | pinned
            doomed_layers = sorted(set(record["layers"]) - in_use_layers)
            doomed_blobs = sorted(set(record["blobs"]) - in_use_blobs)
            for diff_id in doomed_layers:
                self._layer_sizes.pop(diff_id, None)
            self._save_locked()  # first: a crash below leaves unreferenced files, never a record without them
            for diff_id in doomed_layers:
                moved = self._to_trash(self._layers / digest_hex(diff_id))
                if moved is not None:
                    trash.append(moved)
            # Under the lock: a pin published after this sees the blob gone and fetches it again.
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
        """A fresh path in the store's temp dir (same filesystem as the blobs, so moving it in is a rename),
        named for this instance so that no other process's cleanup deletes it while this one lives."""
        return self.temp_dir / self._temp_name("ingest-")

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
        """Keep blobs and layers (by digest / diff_id) from being deleted by :meth:`remove`, in this process or
        any other, while a pull or import that will reference them is in progress. Check that a held blob or
        layer exists only inside the ``with``: a remove that finished before it may have deleted it."""
        with self._writing():
            self._pins.update(digests)
            self._publish_pins()
        try:
            yield
        finally:
            with self._writing():
                self._pins.subtract(digests)
                self._pins = +self._pins  # drop the zero counts
                self._publish_pins()

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
            config_doc = load_json_object(self.read_blob(config_digest), f"image config {config_digest}")
            diff_ids = _diff_ids(config_doc, len(layer_blobs), config_digest)
            with self.hold(*diff_ids):
                sizes = {d: self.ensure_layer(b, d) for b, d in zip(layer_blobs, diff_ids, strict=True)}
                with self._writing():
                    self._layer_sizes.update(sizes)  # the reload may have dropped what ensure_layer learnt
                    record = self._images.setdefault(image_id, {
                        "repo_tags": [], "repo_digests": [], "config_digest": config_digest, "layers": diff_ids,
                        "size": sum(sizes.values()), "config": config_doc.get("config") or {}, "blobs": [],
                        "users": []})
                    record["blobs"] = _merged(record["blobs"], [config_digest, *layer_blobs, *extra])
                    record["repo_digests"] = _merged(record["repo_digests"], digests)
                    self._move_tags(image_id, tags)
                    self._save_locked()
                    return self._image(image_id)

    def ensure_layer(self, blob_digest: str, diff_id: str) -> int:
        """Unpack the layer blob into ``layers/<diff_id hex>`` unless it is there already; return its unpacked
        size. Unpacks once per layer however many threads ask; another process unpacking it at the same time
        is harmless (:func:`~.layers.install_layer`). Call it inside :meth:`hold` (``commit_image`` does) so a
        concurrent remove cannot delete the result. Heavy."""
        hex_id = digest_hex(diff_id)
        final = self._layers / hex_id
        if not self.has_blob(blob_digest):
            raise NotFound(f"layer blob {blob_digest} is not in the image store")
        with self._lock:
            layer_lock = self._unpack_locks.setdefault(hex_id, threading.Lock())
        with layer_lock:
            with self._lock:
                self._refresh()
                size = self._layer_sizes.get(diff_id)
            if final.is_dir():
                if size is not None:
                    return size
                # Unpacked by another process that has not recorded it yet, or by one that died before it
                # could: a layer dir only ever appears complete (renamed into place), so it can be used.
                size = unpacked_size(final)
            else:
                size = install_layer(self.blob_path(blob_digest), final, self._layers / self._temp_name(".tmp-"),
                                     diff_id)
            with self._lock:
                self._layer_sizes[diff_id] = size
            return size

    # ---- internals ----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the thread lock and the cross-process index lock, with the index freshly loaded."""
        with self._lock:
            fcntl.flock(self._index_lock, fcntl.LOCK_EX)
            try:
                self._refresh()
                yield
            finally:
                fcntl.flock(self._index_lock, fcntl.LOCK_UN)

    def _refresh(self) -> None:
        """Reload images.json if another process (or instance) replaced it since we last read or wrote it.
        Caller holds ``self._lock``. The stat comes first: a change after it is seen by the next call."""
        try:
            st = os.stat(self._index_path)
        except FileNotFoundError:
            key: tuple[Any, ...] = ()
        else:
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key == self._index_stat:
            return
        self._images, self._layer_sizes = self._load_index()
        self._index_stat = key

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
        """Write images.json atomically (temp file + os.replace). Caller is inside :meth:`_writing`."""
        live = {d for r in self._images.values() for d in r["layers"]} | set(self._pins) | self._other_pins()
        layers = {d: size for d, size in self._layer_sizes.items() if d in live}
        data = json.dumps({"images": self._images, "layers": layers}, indent=1, sort_keys=True).encode()
        tmp = self.root / self._temp_name(".images.json.")
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            # Readers compare (inode, mtime_ns, size); inodes are reused and clocks are coarse, so every version
            # gets an mtime later than the one it replaces (the previous key is current: we hold the lock).
            previous = self._index_stat[1] if len(self._index_stat) == 3 else 0
            mtime = max(time.time_ns(), previous + 1)
            os.utime(out.fileno(), ns=(mtime, mtime))
            os.fsync(out.fileno())
        os.replace(tmp, self._index_path)
        st = os.stat(self._index_path)
        self._index_stat = (st.st_ino, st.st_mtime_ns, st.st_size)

    def _temp_name(self, prefix: str) -> str:
        return f"{prefix}{self._token}-{uuid.uuid4().hex[:8]}"

    def _register_owner(self) -> IO[bytes]:
        """Create and flock ``owners/<token>`` (under the index lock, so no cleanup sees it unlocked)."""
        owner = open(self._owners / self._token, "x+b")  # noqa: SIM115 - open (and locked) for the store's life
        fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        owner.write(b"[]")
        owner.flush()
        return owner

    def _publish_pins(self) -> None:
        """Write this instance's pins to its owner file, where removers in other processes read them."""
        pins = sorted(self._pins)
        if pins != self._published:
            self._owner.seek(0)
            self._owner.truncate()
            self._owner.write(json.dumps(pins).encode())
            self._owner.flush()
            self._published = pins

    def _other_pins(self) -> set[str]:
        """What the other live instances on this root pin. An owner file nobody holds a flock on belongs to a
        dead process: it is deleted. Caller is inside :meth:`_writing`."""
        pinned: set[str] = set()
        for path in self._owners.iterdir():
            if path.name == self._token or not _TOKEN.fullmatch(path.name):
                continue
            try:
                other = open(path, "rb")  # noqa: SIM115 - closed below, after the lock probe
            except FileNotFoundError:
                continue
            with other:
                try:
                    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    with contextlib.suppress(ValueError):
                        pinned.update(json.loads(other.read() or b"[]"))
                    continue
                path.unlink(missing_ok=True)
        return pinned

    def _to_trash(self, path: Path) -> Path | None:
        """Rename ``path`` aside (atomic) so it can be deleted at leisure; None if it does not exist."""
        trash = self._layers / self._temp_name(".trash-")
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return None
        return trash

    def _clean_leftovers(self) -> None:
        """Delete temp entries whose owner is gone: a live owner's file exists before it makes any entry, and only
        a dead owner's file is ever deleted (see :meth:`_other_pins`), so a missing owner file means dead."""
        entries = [*self.temp_dir.iterdir(), *self._layers.glob(".*"), *self.root.glob(".images.json.*")]
        for path in entries:
            owner = _OWNED.match(path.name)
            if owner is not None and (self._owners / owner.group(1)).exists():
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


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


def load_json_object(data: bytes, what: str) -> dict[str, Any]:
    """Parse a manifest, config or token document; anything but a JSON object is InvalidArgument."""
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
