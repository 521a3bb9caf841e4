"""The container's filesystem view: mounts from config.json, /dev, pivot_root, masked and read-only paths.

Runs in the container's init after it entered its new mount namespace, with every mount made slave (or what
``linux.rootfsPropagation`` asks) first so that nothing done here reaches the host. Mount destinations are
resolved inside the root (symlinks in the image cannot point a mount outside it). The sequence follows the OCI
runtime spec: mounts in order, device nodes when /dev is a fresh tmpfs, ``pivot_root`` (the old root stacked
under the new one and detached, as runc does), then maskedPaths, readonlyPaths, and the read-only root.
"""

from __future__ import annotations

import contextlib
import os
import stat

from kubelet.runtime.process import linux
from kubelet.runtime.process.errors import Failure

FLAGS = {  # option: (flags to set, flags to clear)
    "ro": (linux.MS_RDONLY, 0), "rw": (0, linux.MS_RDONLY), "nosuid": (linux.MS_NOSUID, 0),
    "suid": (0, linux.MS_NOSUID), "nodev": (linux.MS_NODEV, 0), "dev": (0, linux.MS_NODEV),
    "noexec": (linux.MS_NOEXEC, 0), "exec": (0, linux.MS_NOEXEC), "sync": (linux.MS_SYNCHRONOUS, 0),
    "async": (0, linux.MS_SYNCHRONOUS), "dirsync": (linux.MS_DIRSYNC, 0), "remount": (linux.MS_REMOUNT, 0),
    "mand": (linux.MS_MANDLOCK, 0), "nomand": (0, linux.MS_MANDLOCK), "atime": (0, linux.MS_NOATIME),
    "noatime": (linux.MS_NOATIME, 0), "diratime": (0, linux.MS_NODIRATIME), "nodiratime": (linux.MS_NODIRATIME, 0),
    "bind": (linux.MS_BIND, 0), "rbind": (linux.MS_BIND | linux.MS_REC, 0), "relatime": (linux.MS_RELATIME, 0),
    "norelatime": (0, linux.MS_RELATIME), "strictatime": (linux.MS_STRICTATIME, 0),
    "nostrictatime": (0, linux.MS_STRICTATIME), "nosymfollow": (linux.MS_NOSYMFOLLOW, 0),
}
PROPAGATION = {
    "private": linux.MS_PRIVATE, "rprivate": linux.MS_PRIVATE | linux.MS_REC, "shared": linux.MS_SHARED,
    "rshared": linux.MS_SHARED | linux.MS_REC, "slave": linux.MS_SLAVE, "rslave": linux.MS_SLAVE | linux.MS_REC,
    "unbindable": linux.MS_UNBINDABLE, "runbindable": linux.MS_UNBINDABLE | linux.MS_REC,
}
# The character devices every container gets on a fresh /dev: name, major, minor.
DEFAULT_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9),
                   ("tty", 5, 0))
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))
_ST_TO_MS = ((os.ST_NOSUID, linux.MS_NOSUID), (os.ST_NODEV, linux.MS_NODEV), (os.ST_NOEXEC, linux.MS_NOEXEC),
             (os.ST_NOATIME, linux.MS_NOATIME), (os.ST_NODIRATIME, linux.MS_NODIRATIME),
             (os.ST_RELATIME, linux.MS_RELATIME))


def parse_options(options: list[str]) -> tuple[int, int, str]:
    """(mount flags, propagation flags, filesystem data) of an OCI mount's options."""
    flags, propagation, data = 0, 0, []
    for option in options:
        if option in FLAGS:
            add, clear = FLAGS[option]
            flags = (flags | add) & ~clear
        elif option in PROPAGATION:
            propagation |= PROPAGATION[option]
        else:
            data.append(option)
    return flags, propagation, ",".join(data)


def secure_join(root: str, path: str) -> str:
    """``root/path`` with symlinks resolved as if ``root`` were ``/`` (never leaving it)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            target = os.readlink(candidate)
        except OSError:  # not a symlink, or does not exist (yet)
            resolved.append(part)
            continue
        hops += 1
        if hops > 255:
            raise Failure(f"too many symlinks resolving {path} in {root}")
        if target.startswith("/"):
            resolved = []
        parts = [p for p in target.split("/") if p not in ("", ".")] + parts
    return os.path.join(root, *resolved)


def _mount_flags_of(path: str) -> int:
    """The per-mount flags in force at ``path`` (to keep them when remounting read-only)."""
    flags = os.statvfs(path).f_flag
    return sum(ms for st, ms in _ST_TO_MS if flags & st)


def _make_target(dest: str, source_is_dir: bool) -> None:
    if source_is_dir:
        os.makedirs(dest, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if not os.path.exists(dest):
            os.close(os.open(dest, os.O_CREAT | os.O_WRONLY, 0o644))


def mount_entry(rootfs: str, bundle: str, entry: dict, cgroup_dirs: dict[str, str]) -> None:
    dest = secure_join(rootfs, entry["destination"])
    kind = entry.get("type") or ""
    flags, propagation, data = parse_options(entry.get("options") or [])
    if kind == "bind" or flags & linux.MS_BIND:
        source = entry.get("source") or ""
        if not source.startswith("/"):
            source = os.path.join(bundle, source)
        if not os.path.exists(source):
            raise Failure(f"mount source {source} for {entry['destination']} does not exist")
        _make_target(dest, os.path.isdir(source))
        linux.mount(source, dest, None, linux.MS_BIND | (flags & linux.MS_REC))
        extra = flags & ~(linux.MS_BIND | linux.MS_REC | linux.MS_REMOUNT)
        if extra:
            linux.mount(source, dest, None, extra | linux.MS_BIND | linux.MS_REMOUNT | _mount_flags_of(dest))
    elif kind == "cgroup":
        _mount_cgroups(dest, flags, cgroup_dirs)
    else:
        os.makedirs(dest, exist_ok=True)
        linux.mount(entry.get("source") or kind, dest, kind, flags, data or None)
    if propagation:
        linux.mount(None, dest, None, propagation)


def _mount_cgroups(dest: str, flags: int, cgroup_dirs: dict[str, str]) -> None:
    """No cgroup namespace: a tmpfs with each hierarchy's *own* directory bound in (what runc does on v1)."""
    base = flags & (linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    os.makedirs(dest, exist_ok=True)
    linux.mount("tmpfs", dest, "tmpfs", base, "mode=755")
    for name, directory in cgroup_dirs.items():
        target = os.path.join(dest, name)
        os.makedirs(target, exist_ok=True)
        linux.mount(directory, target, None, linux.MS_BIND | linux.MS_REC)
        linux.mount(directory, target, None, linux.MS_BIND | linux.MS_REMOUNT | base | (flags & linux.MS_RDONLY))
    if flags & linux.MS_RDONLY:
        linux.mount("tmpfs", dest, None, linux.MS_REMOUNT | linux.MS_RDONLY | base)


def _make_node(path: str, kind: str, major: int, minor: int, mode: int = 0o666, uid: int = 0, gid: int = 0) -> None:
    kinds = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    try:
        os.mknod(path, kinds[kind] | (mode & 0o7777), os.makedev(major, minor))
    except PermissionError:  # no CAP_MKNOD here: bind the host's node instead
        host = f"/dev/{os.path.basename(path)}"
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
        linux.mount(host, path, None, linux.MS_BIND)
        return
    os.chmod(path, mode & 0o7777)
    os.chown(path, uid, gid)


def make_devices(rootfs: str, config: dict) -> None:
    """The default device nodes and /dev symlinks on a fresh /dev, then ``linux.devices``."""
    fresh_dev = any(m.get("destination", "").rstrip("/") == "/dev" and m.get("type") != "bind"
                    for m in config.get("mounts") or [])
    old_umask = os.umask(0)
    try:
        if fresh_dev:
            for name, major, minor in DEFAULT_DEVICES:
                _make_node(os.path.join(rootfs, "dev", name), "c", major, minor)
            for name, target in DEV_LINKS:
                with contextlib.suppress(FileExistsError):
                    os.symlink(target, os.path.join(rootfs, "dev", name))
            if os.path.exists("/proc/kcore"):
                with contextlib.suppress(FileExistsError):
                    os.symlink("/proc/kcore", os.path.join(rootfs, "dev", "core"))
        for device in (config.get("linux") or {}).get("devices") or []:
            _make_node(secure_join(rootfs, device["path"]), device.get("type", "c"), device.get("major", 0),
                       device.get("minor", 0), device.get("fileMode", 0o666), device.get("uid", 0),
                       device.get("gid", 0))
    finally:
        os.umask(old_umask)


def prepare(config: dict, bundle: str, cgroup_dirs: dict[str, str]) -> str:
    """Everything before pivot_root; returns the root's host path."""
    root = config["root"]["path"]
    rootfs = root if root.startswith("/") else os.path.join(bundle, root)
    propagation = (config.get("linux") or {}).get("rootfsPropagation") or "rslave"
    linux.mount(None, "/", None, PROPAGATION.get(propagation, linux.MS_SLAVE | linux.MS_REC))
    linux.mount(rootfs, rootfs, None, linux.MS_BIND | linux.MS_REC)  # pivot_root needs a mount point
    for entry in config.get("mounts") or []:
        mount_entry(rootfs, bundle, entry, cgroup_dirs)
    make_devices(rootfs, config)
    cwd = (config.get("process") or {}).get("cwd") or "/"
    os.makedirs(secure_join(rootfs, cwd), exist_ok=True)
    return rootfs


def pivot(rootfs: str) -> None:
    """pivot_root(".", "."): the old root ends up stacked on the new one, is made slave and detached."""
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY)
    new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY)
    try:
        os.fchdir(new_root)
        linux.pivot_root(".", ".")
        os.fchdir(old_root)
        linux.mount(None, ".", None, linux.MS_SLAVE | linux.MS_REC)
        linux.umount2(".", linux.MNT_DETACH)
    finally:
        os.close(old_root)
        os.close(new_root)
    os.chdir("/")


def mask_paths(paths: list[str]) -> None:
    for path in paths:
        try:
            is_dir = os.path.isdir(path) and not os.path.islink(path)
            if not os.path.lexists(path):
                continue
            if is_dir:
                linux.mount("tmpfs", path, "tmpfs", linux.MS_RDONLY)
            else:
                linux.mount("/dev/null", path, None, linux.MS_BIND)
        except FileNotFoundError:
            continue


def readonly_paths(paths: list[str]) -> None:
    for path in paths:
        if not os.path.exists(path):
            continue
        linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC)
        linux.mount(path, path, None,
                    linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_REC | _mount_flags_of(path))


def readonly_root() -> None:
    linux.mount("/", "/", None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | _mount_flags_of("/"))


def write_sysctls(sysctls: dict[str, str]) -> None:
    for key, value in sysctls.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as e:
            raise Failure(f"sysctl {key}={value}: {e.strerror}") from None
