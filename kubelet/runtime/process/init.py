"""The container's process from fork(2) to execve(2): the child half of ``create`` and of ``exec``.

Both wait for the parent's ``go`` (sent once the child is in the container's cgroups), enter namespaces, become
the configured user and exec the configured command. The container's init also builds its root filesystem
(``rootfs``), sets the hostname and sysctls, optionally gets a terminal, and between ``ready`` and execve blocks
opening ``exec.fifo`` for writing until ``start`` opens it for reading, as runc's init does. The FIFO is reached
through a descriptor of the state directory taken before pivot_root, so it works from inside the new root.
Everything the parent must know (an error, the pty master) goes over the channel; these functions never return.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import sys
import termios

from kubelet.runtime.process import channel, identity, linux, rootfs
from kubelet.runtime.process.errors import Failure, describe
from kubelet.runtime.process.state import EXEC_FIFO

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# setns order: the mount namespace last (after it, /proc/<pid>/ns paths of the host are no longer visible).
JOIN_ORDER = ("user", "ipc", "uts", "network", "cgroup", "time", "mount")


def enter_namespaces(namespaces: dict[str, str | None]) -> None:
    """setns(2) into the namespaces given by path, then unshare(2) the new ones. ``pid`` is the parent's job."""
    fds = []
    try:
        for kind in JOIN_ORDER:
            path = namespaces.get(kind)
            if kind in namespaces and path:
                try:
                    fds.append((os.open(path, os.O_RDONLY), kind))
                except OSError as e:
                    raise Failure(f"unable to open {kind} namespace {path}: {e.strerror}") from None
        for fd, kind in fds:
            linux.setns(fd, linux.NAMESPACES[kind][0], f"{kind} namespace {namespaces[kind]}")
    finally:
        for fd, _ in fds:
            os.close(fd)
    new = 0
    for kind, path in namespaces.items():
        if kind != "pid" and not path:
            new |= linux.NAMESPACES[kind][0]
    if new:
        linux.unshare(new)
    if "network" in namespaces and not namespaces["network"]:
        linux.loopback_up()


def lookup(name: str, env: list[str]) -> str:
    """The executable ``name`` resolves to with the container's PATH, checked before ``start`` (as runc does)."""
    if "/" in name:
        if os.path.isfile(name) and os.access(name, os.X_OK):
            return name
        raise Failure(f'exec: "{name}": stat {name}: no such file or directory')
    path = next((item[5:] for item in reversed(env) if item.startswith("PATH=")), DEFAULT_PATH)
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise Failure(f'exec: "{name}": executable file not found in $PATH')


def _environment(env: list[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        result[key] = value
    return result


def _execute(path: str, args: list[str], env: list[str]) -> None:  # never returns
    """Reset what Python changed (ignored SIGPIPE/SIGXFSZ, handlers, the mask) and exec."""
    for signum in range(1, signal.NSIG):
        if signum not in (signal.SIGKILL, signal.SIGSTOP):
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    try:
        os.execve(path, args, _environment(env))
    except OSError as e:
        os.write(2, f"exec {path}: {e.strerror}\n".encode())
    os._exit(127)


def _controlling_terminal(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSCTTY, 0)


def _terminal(sock: socket.socket) -> None:
    """A pty of the container's own devpts as stdio and controlling terminal; the master goes to the parent."""
    master, slave = os.openpty()
    channel.send(sock, "console", fd=master)
    os.close(master)
    _controlling_terminal(slave)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    if slave > 2:
        os.close(slave)


def _wait_for_go(sock: socket.socket) -> None:
    message, _ = channel.receive(sock)
    if message.get("type") != "go":
        os._exit(1)


def _fail(sock: socket.socket, error: BaseException) -> None:  # never returns
    with contextlib.suppress(OSError):
        channel.send(sock, "error", message=describe(error))
    os._exit(1)


def container_init(config: dict, bundle: str, sock: socket.socket, state_dir_fd: int,
                   cgroup_dirs: dict[str, str], last_cap: int) -> None:  # never returns
    try:
        _wait_for_go(sock)
        os.setsid()
        linux_config = config.get("linux") or {}
        namespaces = {e["type"]: e.get("path") for e in linux_config.get("namespaces") or []}
        if "user" in namespaces:
            raise Failure("user namespaces are not supported by the process backend")
        if "mount" not in namespaces:
            raise Failure("the process backend needs a mount namespace for the container")
        enter_namespaces(namespaces)
        root = rootfs.prepare(config, bundle, cgroup_dirs)
        rootfs.pivot(root)
        if config.get("hostname"):
            if "uts" not in namespaces:
                raise Failure("unable to set hostname without a private UTS namespace")
            linux.sethostname(config["hostname"])
        rootfs.write_sysctls(linux_config.get("sysctl") or {})
        rootfs.mask_paths(linux_config.get("maskedPaths") or [])
        rootfs.readonly_paths(linux_config.get("readonlyPaths") or [])
        if (config.get("root") or {}).get("readonly"):
            rootfs.readonly_root()
        process = config.get("process") or {}
        if process.get("terminal"):
            _terminal(sock)
        os.chdir(process.get("cwd") or "/")
        identity.set_rlimits(process.get("rlimits") or [])
        identity.set_oom_score_adj(process.get("oomScoreAdj"))
        identity.switch(process, last_cap)
        args, env = process.get("args") or [], process.get("env") or []
        if not args:
            raise Failure("process.args must not be empty")
        path = lookup(args[0], env)
        channel.send(sock, "ready")
    except BaseException as e:
        _fail(sock, e)
    sock.close()
    try:  # blocks until ``start`` opens the FIFO for reading
        fifo = os.open(EXEC_FIFO, os.O_WRONLY | os.O_CLOEXEC, dir_fd=state_dir_fd)
        os.write(fifo, b"0")
        os.close(fifo)
        os.close(state_dir_fd)
    except OSError as e:
        os.write(2, f"waiting for start: {e.strerror}\n".encode())
        os._exit(1)
    _execute(path, args, env)


def exec_process(process: dict, sock: socket.socket, ns_fds: list[tuple[int, int, str]], root_fd: int,
                 last_cap: int) -> None:  # never returns
    """An extra process in a running container (``exec``): its namespaces, root, cgroups (joined by the
    parent), user and capabilities."""
    try:
        _wait_for_go(sock)
        for fd, flag, name in ns_fds:
            linux.setns(fd, flag, f"{name} namespace of the container")
            os.close(fd)
        os.fchdir(root_fd)
        os.chroot(".")
        os.close(root_fd)
        os.setsid()
        if process.get("terminal"):
            _terminal(sock)
        os.chdir(process.get("cwd") or "/")
        identity.set_rlimits(process.get("rlimits") or [])
        identity.switch(process, last_cap)
        args, env = process.get("args") or [], process.get("env") or []
        path = lookup(args[0], env)
        channel.send(sock, "ready")
        sock.close()
    except BaseException as e:
        _fail(sock, e)
    sys.stdout.flush()
    _execute(path, args, env)
