"""Layer unpacking: one layer tarball to one directory that overlayfs can stack as a read-only lowerdir.

Split from the store (``store.py`` keeps blobs and the index) because this is the part that touches untrusted
content: a layer tarball comes from a registry or an archive and must never write outside its directory. It
accepts gzip, plain tar and (with the ``zstd`` binary) zstd layers, refuses entries that would land outside the
layer, keeps modes, owners, symlinks, hard links and xattrs, skips device nodes, and turns OCI whiteouts into
overlayfs ones (``.wh.x`` → char device 0/0 ``x``; ``.wh..wh..opq`` → xattr ``trusted.overlay.opaque=y``),
which needs root.

:func:`install_layer` is the store's entry point: it unpacks into a temp dir of its own next to the final one and
renames it into place, so a layer directory is either absent or complete, and two processes (the runtime and an
``images load``) that unpack the same layer at once both succeed: the first rename wins, the loser deletes its
copy. Heavy: run with :func:`asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import os
import shutil
import stat
import subprocess
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from kubelet.runtime.errors import InvalidArgument, RuntimeFailure

__all__ = ["install_layer", "unpacked_size", "unpack_layer"]

_CHUNK = 1 << 20


def install_layer(blob: Path, final: Path, temp: Path, diff_id: str | None = None) -> int:
    """Unpack ``blob`` into ``temp`` (a fresh path on the same filesystem as ``final``), then rename it to
    ``final``; return the unpacked size. If ``final`` already exists (another process won the race) ours is
    deleted and theirs kept: both were verified against the same diff_id, so they are the same. ``temp`` never
    survives an error."""
    try:
        size = unpack_layer(blob, temp, diff_id)
        try:
            os.rename(temp, final)
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not final.is_dir():
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)  # after a successful rename there is nothing left here
    return size


def unpacked_size(layer_dir: Path) -> int:
    """The size :func:`unpack_layer` reported for an unpacked layer: the bytes of its regular files, each inode
    counted once (hard links are one file). For a layer another process unpacked and has not yet recorded."""
    total = 0
    seen: set[int] = set()
    for dirpath, _, filenames in os.walk(layer_dir):
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode) and st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_size
    return total


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

