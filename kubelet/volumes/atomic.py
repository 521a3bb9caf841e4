"""The kubelet's atomic writer: replace the files of a configMap/secret/downwardAPI/projected volume in one step.

A running container may read the volume at any moment while the kubelet updates it, so it must never see a mix of
old and new files or a half-written file. The layout (Kubernetes' AtomicWriter) makes that so::

    <volume>/..2026_01_01_12_00_00.123456789/key     the payload, in a fresh timestamped directory
    <volume>/..data -> ..2026_01_01_12_00_00.123456789
    <volume>/key -> ..data/key                         what users see (nested paths: the top-level dir)

An update writes a new timestamped directory, then swaps ``..data`` to it with one ``rename`` of a temporary
symlink: until that instant every user-visible path resolves into the old, complete directory; after it, into
the new one. Then user-visible links that are no longer in the payload go, and the old directory is removed.

Simplification: no fsUser/fsGroup ownership changes (modes only).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

DATA_DIR = "..data"
DATA_DIR_TMP = "..data_tmp"
MAX_PATH_LENGTH = 4096
MAX_FILE_NAME_LENGTH = 255


@dataclass(frozen=True)
class FileProjection:
    data: bytes
    mode: int


Payload = dict[str, FileProjection]  # relative path -> content and permission bits


class PayloadError(ValueError):
    """A payload path that cannot be written (absolute, with '..', or colliding with another path)."""


def validate_path(path: str) -> str:
    """The cleaned relative path, or :class:`PayloadError` with Kubernetes' message."""
    if not path:
        raise PayloadError(f'invalid path: must not be empty: "{path}"')
    if path.startswith("/"):
        raise PayloadError(f"invalid path: must be relative path: {path}")
    if len(path) > MAX_PATH_LENGTH:
        raise PayloadError(f"invalid path: must be less than or equal to {MAX_PATH_LENGTH} characters")
    items = path.split("/")
    for item in items:
        if item == "..":
            raise PayloadError(f"invalid path: must not contain '..': {path}")
        if len(item) > MAX_FILE_NAME_LENGTH:
            raise PayloadError(f"invalid path: filenames must be less than or equal to {MAX_FILE_NAME_LENGTH} "
                               "characters")
    if items[0].startswith("..") and len(items[0]) > 2:
        raise PayloadError(f"invalid path: must not start with '..': {path}")
    cleaned = posixpath.normpath(path)
    if cleaned == ".":
        raise PayloadError(f"invalid path: must not be empty: {path!r}")
    return cleaned


def validate_payload(payload: Payload) -> Payload:
    """Cleaned paths; a path that is also another path's directory is an error."""
    clean = {validate_path(path): projection for path, projection in payload.items()}
    directories = {posixpath.dirname(path) for path in clean}
    directories |= {d for path in directories for d in _parents(path)}
    for path in clean:
        if path in directories:
            raise PayloadError(f"invalid path: {path} is both a file and a directory")
    return clean


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _top_level(path: str) -> str:
    return path.split("/", 1)[0]


def read_payload(directory: Path) -> Payload:
    """The files under ``directory`` as a payload (symlinks and other non-files are ignored)."""
    found: Payload = {}
    for parent, _dirs, files in os.walk(directory):
        for name in files:
            full = Path(parent, name)
            info = full.lstat()
            if stat.S_ISREG(info.st_mode):
                found[str(full.relative_to(directory))] = FileProjection(full.read_bytes(), stat.S_IMODE(info.st_mode))
    return found


def current_data_dir(target: Path) -> Path | None:
    """The timestamped directory ``..data`` points to, or None before the first write."""
    try:
        return target / os.readlink(target / DATA_DIR)
    except (FileNotFoundError, NotADirectoryError, OSError):
        return None


def _user_visible_ok(target: Path, payload: Payload) -> bool:
    for top in {_top_level(path) for path in payload}:
        link = target / top
        if not link.is_symlink() or os.readlink(link) != f"{DATA_DIR}/{top}":
            return False
    return True


def _new_timestamp_dir(target: Path) -> Path:
    prefix = datetime.now(UTC).strftime("..%Y_%m_%d_%H_%M_%S.")
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir=target))
    directory.chmod(0o755)
    return directory


def _write_files(directory: Path, payload: Payload) -> None:
    for path, projection in payload.items():
        full = directory / path
        full.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        with open(full, "wb") as f:
            f.write(projection.data)
        full.chmod(projection.mode)  # exactly the requested mode, whatever the umask


def _swap_data_link(target: Path, new_dir: Path) -> None:
    """Point ``..data`` at ``new_dir`` in one rename (readers see the old or the new directory, never neither)."""
    tmp = target / DATA_DIR_TMP
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(new_dir.name)
    os.replace(tmp, target / DATA_DIR)


def _remove_entry(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def write_atomically(target: Path, payload: Payload) -> bool:
    """Make ``target`` hold exactly ``payload``; False when it already did (nothing is touched then).

    Contracts: ``target`` exists or is created; a :class:`PayloadError` leaves the volume as it was; entries of
    ``target`` that the writer did not create are left alone unless a payload path claims their name.
    """
    clean = validate_payload(payload)
    target.mkdir(parents=True, exist_ok=True)
    old_dir = current_data_dir(target)
    old_payload = read_payload(old_dir) if old_dir is not None and old_dir.is_dir() else None
    if old_payload == clean and _user_visible_ok(target, clean):
        return False
    new_dir = _new_timestamp_dir(target)
    try:
        _write_files(new_dir, clean)
        _swap_data_link(target, new_dir)
    except BaseException:
        shutil.rmtree(new_dir, ignore_errors=True)
        raise
    new_tops = {_top_level(path) for path in clean}
    for top in sorted(new_tops):
        link = target / top
        if link.is_symlink() and os.readlink(link) == f"{DATA_DIR}/{top}":
            continue
        _remove_entry(link)
        link.symlink_to(f"{DATA_DIR}/{top}")
    for top in {_top_level(path) for path in old_payload or {}} - new_tops:
        _remove_entry(target / top)
    if old_dir is not None and old_dir != new_dir and old_dir.name.startswith(".."):
        shutil.rmtree(old_dir, ignore_errors=True)
    return True
