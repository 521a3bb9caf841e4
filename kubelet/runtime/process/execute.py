"""``exec``: one more process in a running container, in the foreground like ``runc exec``.

The process is described by the container's own ``process`` (user, capabilities, rlimits, no_new_privs, env, cwd)
with the command line, ``--env`` additions, ``--cwd`` and ``--tty`` of the call. This command opens the init's
namespaces (``/proc/<pid>/ns/*``, those that differ from ours) and root directory, enters the pid namespace
itself so that its child is born there, moves the child into the container's cgroups and lets it go on
(``init.exec_process``: setns, chroot into the container's root, user and capabilities, execve). ``--tty`` gives
the process a pty of the container's own devpts (``tty`` names it ``/dev/pts/N`` inside), as runc does. The
command then stays in the foreground (``foreground.py``) and exits with the process's status, or with 255 if the
process could not be started.
"""

from __future__ import annotations

import contextlib
import os
import signal

from kubelet.runtime.process import cgroupfs, channel, foreground, identity, init, linux, state
from kubelet.runtime.process.create import await_ready, load_config, write_pid_file
from kubelet.runtime.process.errors import Failure

EXEC_FAILED = 255
# setns order for an exec: pid is done by the parent before fork, mount last.
EXEC_NAMESPACES = (("ipc", linux.CLONE_NEWIPC), ("uts", linux.CLONE_NEWUTS), ("net", linux.CLONE_NEWNET),
                   ("cgroup", linux.CLONE_NEWCGROUP), ("mnt", linux.CLONE_NEWNS))


def _differs(pid: int, name: str) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/{name}").st_ino != os.stat(f"/proc/self/ns/{name}").st_ino
    except FileNotFoundError:
        return False


def process_spec(config: dict, args: list[str], tty: bool, env: list[str], cwd: str | None) -> dict:
    process = dict(config.get("process") or {})
    process["args"] = args
    process["terminal"] = tty
    process["env"] = list(process.get("env") or []) + list(env)
    if cwd:
        process["cwd"] = cwd
    return process


def exec_(root: str, container_id: str, args: list[str], *, tty: bool, pid_file: str | None, env: list[str],
          cwd: str | None) -> int:
    record = state.load(root, container_id)
    if not args:
        raise Failure("exec args cannot be empty")
    if state.status(root, record) == "stopped":
        raise Failure("cannot exec in a stopped container")
    process = process_spec(load_config(record.bundle), args, tty, env, cwd)
    ns_fds: list[tuple[int, int, str]] = []
    root_fd = -1
    child = 0
    try:
        for name, flag in EXEC_NAMESPACES:
            if _differs(record.pid, name):
                ns_fds.append((os.open(f"/proc/{record.pid}/ns/{name}", os.O_RDONLY), flag, name))
        root_fd = os.open(f"/proc/{record.pid}/root", os.O_RDONLY | os.O_DIRECTORY)
        if _differs(record.pid, "pid"):
            pid_ns = os.open(f"/proc/{record.pid}/ns/pid", os.O_RDONLY)
            try:
                linux.setns(pid_ns, linux.CLONE_NEWPID, "pid namespace of the container")
            finally:
                os.close(pid_ns)
        if not state.alive(record):  # the namespaces opened above may be another process's
            raise Failure("cannot exec in a stopped container")
        parent_sock, child_sock = channel.pair()
        last_cap = identity.last_capability()
        child = os.fork()
        if child == 0:
            parent_sock.close()
            init.exec_process(process, child_sock, ns_fds, root_fd, last_cap)
        child_sock.close()
        cgroupfs.join(record.cgroups, child)
        channel.send(parent_sock, "go")
        master = await_ready(parent_sock, None)
        parent_sock.close()
        if pid_file:
            write_pid_file(pid_file, child)
    except BaseException as e:
        if child:
            with contextlib.suppress(OSError):
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
        if isinstance(e, Failure):
            raise Failure(f"exec failed: {e}", EXEC_FAILED) from None
        if isinstance(e, OSError):
            raise Failure(f"exec failed: {e.strerror}", EXEC_FAILED) from None
        raise
    finally:
        for fd, _, _ in ns_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        if root_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(root_fd)
    if master is not None:
        return foreground.relay_terminal(child, master)
    return foreground.wait(child)
