"""``create``: making a container's init, set up and waiting in place for ``start``.

``create`` runs in the host's namespaces: it makes the state directory with ``exec.fifo``, the cgroup directories
with their limits, enters (setns) or creates (unshare) the pid namespace so that the child it forks is in it
(pid 1 of a new one), moves the child into the cgroups and tells it to go on (``init.container_init``). When the
child reports ready it records the state, writes ``--pid-file`` and exits, leaving the init to whoever reaps it
(the shim is a child subreaper, exactly as with runc). A terminal's pty master is passed on to
``--console-socket``. On any failure the child is killed and everything made is removed again.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket

from kubelet.runtime.process import cgroupfs, channel, identity, init, linux, state
from kubelet.runtime.process.errors import Failure

SETUP_TIMEOUT_S = 60.0


def load_config(bundle: str) -> dict:
    try:
        with open(os.path.join(bundle, "config.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        raise Failure(f"bundle {bundle}: config.json does not exist") from None
    except ValueError as e:
        raise Failure(f"bundle {bundle}: invalid config.json: {e}") from None


def write_pid_file(path: str, pid: int) -> None:
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp")
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.replace(tmp, path)


def enter_pid_namespace(namespaces: dict[str, str | None]) -> None:
    """What the next fork(2) will be in: the pid namespace at its path, a new one, or (absent) the host's."""
    if "pid" not in namespaces:
        return
    path = namespaces["pid"]
    if not path:
        linux.unshare(linux.CLONE_NEWPID)
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise Failure(f"unable to open pid namespace {path}: {e.strerror}") from None
    try:
        linux.setns(fd, linux.CLONE_NEWPID, f"pid namespace {path}")
    finally:
        os.close(fd)


def send_console(console_socket: str, master: int) -> None:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(console_socket)
            socket.send_fds(sock, [b"/dev/ptmx"], [master])
    except OSError as e:
        raise Failure(f"unable to send the terminal to {console_socket}: {e.strerror}") from None
    finally:
        os.close(master)


def await_ready(sock: socket.socket, console_socket: str | None) -> int | None:
    """Wait for the child's ``ready``; a terminal it made goes to ``console_socket``, or is returned if none."""
    sock.settimeout(SETUP_TIMEOUT_S)
    console = None
    while True:
        try:
            message, fd = channel.receive(sock)
        except TimeoutError:
            raise Failure(f"container process did not finish its setup within {SETUP_TIMEOUT_S:.0f}s") from None
        kind = message.get("type")
        if kind == "ready":
            return console
        if kind == "console" and fd is not None:
            if console_socket:
                send_console(console_socket, fd)
            else:
                console = fd
        elif kind == "error":
            raise Failure(f"unable to start container process: {message.get('message')}")
        elif kind == "eof":
            raise Failure("unable to start container process: it exited during setup")


def create(root: str, container_id: str, bundle: str, pid_file: str | None, console_socket: str | None) -> None:
    bundle = os.path.abspath(bundle or ".")
    config = load_config(bundle)
    directory = state.container_dir(root, container_id)
    os.makedirs(root, 0o711, exist_ok=True)
    try:
        os.mkdir(directory, 0o711)
    except FileExistsError:
        raise Failure(f"container with id exists: {container_id}") from None
    linux_config = config.get("linux") or {}
    namespaces = {e["type"]: e.get("path") for e in linux_config.get("namespaces") or []}
    resources = linux_config.get("resources") or {}
    if (config.get("process") or {}).get("terminal") and not console_socket:
        state.remove(root, container_id)
        raise Failure("cannot allocate tty if runc will detach without setting console socket")
    dirs: dict[str, str] = {}
    child = 0
    try:
        os.chmod(directory, 0o711)
        fifo = os.path.join(directory, state.EXEC_FIFO)
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)  # any container user may open it for writing
        dirs = cgroupfs.paths(linux_config.get("cgroupsPath") or "", container_id)
        cgroupfs.create(dirs)
        cgroupfs.apply_devices(dirs, resources.get("devices") or [])
        cgroupfs.apply(dirs, resources)
        dir_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY)
        parent_sock, child_sock = channel.pair()
        last_cap = identity.last_capability()
        enter_pid_namespace(namespaces)
        child = os.fork()
        if child == 0:
            parent_sock.close()
            init.container_init(config, bundle, child_sock, dir_fd, dirs, last_cap)
        child_sock.close()
        os.close(dir_fd)
        cgroupfs.join(dirs, child)
        found = state.process_stat(child)
        if found is None:
            raise Failure("unable to start container process: it exited during setup")
        root_path = (config.get("root") or {}).get("path") or "rootfs"
        record = state.State(id=container_id, pid=child, start_time=found[1], bundle=bundle,
                             rootfs=root_path if root_path.startswith("/") else os.path.join(bundle, root_path),
                             created=state.rfc3339_now(), cgroups=dirs,
                             annotations=config.get("annotations") or {})
        state.save(root, record)  # before the child goes on: ``delete`` can clean up whatever happens to us now
        channel.send(parent_sock, "go")
        await_ready(parent_sock, console_socket)
        parent_sock.close()
        if pid_file:
            write_pid_file(pid_file, child)
    except BaseException:
        if child:
            with contextlib.suppress(OSError):
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
        with contextlib.suppress(Failure):
            cgroupfs.remove(dirs, timeout=1.0)
        state.remove(root, container_id)
        raise

