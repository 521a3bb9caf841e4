"""The per-container monitor: creates one runc container, writes its output as CRI logs, records how it exited.

Why a separate process per container (like containerd's shim or conmon): the container's exit status can only be
collected by its parent, and the runtime must be restartable without losing it. The shim makes itself a child
subreaper, runs ``runc create`` (runc's child, the container's init, is re-parented to the shim when runc
exits), then lives exactly as long as the container: it turns the container's stdout/stderr pipes into CRI log
lines (``<RFC3339Nano> <stream> <P|F> <text>``), reopens the log on SIGUSR1 (ReopenContainerLog), and when the
init process exits writes ``exit.json`` (exit code, signal, finish time, whether the memory cgroup OOM-killed
anything) atomically. A restarted runtime finds running containers through their live shims and finished ones
through their exit files.

Run as a script with ``python -S`` (no site, only the standard library) to keep its footprint small:
``shim.py SPEC_JSON NOTIFY_FD`` (the runtime's notification pipe); it answers one JSON line there
(``{"pid": ..., "shim_pid": ...}`` or ``{"error": ...}``) once the container is created.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
MAX_LINE = 16 * 1024  # longer lines are split into partial (P) records, as containerd does
DRAIN_AFTER_EXIT_S = 2.0  # processes outside the container's pid namespace may keep the pipes open


def rfc3339_nano(ns: int) -> str:
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


class CriLog:
    """Writes CRI log records for both streams to one file; reopened on request (log rotation by the kubelet)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.file = None
        self.pending = {"stdout": b"", "stderr": b""}
        self.reopen()

    def reopen(self) -> None:
        if self.file is not None:
            self.file.close()
        self.file = open(self.path, "ab", buffering=0) if self.path else None  # noqa: SIM115

    def _record(self, stream: str, tag: str, text: bytes) -> None:
        if self.file is not None:
            prefix = f"{rfc3339_nano(time.time_ns())} {stream} {tag} ".encode()
            self.file.write(prefix + text + b"\n")

    def feed(self, stream: str, data: bytes) -> None:
        buffered = self.pending[stream] + data
        *lines, rest = buffered.split(b"\n")
        for line in lines:
            self._record(stream, "F", line)
        while len(rest) > MAX_LINE:
            self._record(stream, "P", rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        self.pending[stream] = rest

    def flush(self) -> None:
        """Output that ended without a newline becomes a partial record."""
        for stream, rest in self.pending.items():
            if rest:
                self._record(stream, "P", rest)
            self.pending[stream] = b""


def write_json_atomic(path: str, value: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(value, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def oom_killed(cgroup_path: str) -> bool:
    try:
        with open(f"/sys/fs/cgroup/memory/{cgroup_path.lstrip('/')}/memory.oom_control") as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value) > 0
    except (OSError, ValueError):
        pass
    return False


def runc_error(log_path: str, fallback: str) -> str:
    """The last error runc logged (``--log-format json``), which explains a failed create."""
    message = fallback
    try:
        with open(log_path) as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("level") in ("error", "fatal") and entry.get("msg"):
                    message = entry["msg"]
    except OSError:
        pass
    return message


def notify(fd: int, message: dict) -> None:
    try:
        os.write(fd, (json.dumps(message) + "\n").encode())
        os.close(fd)
    except OSError:
        pass  # the runtime went away; the container is still ours to monitor


def create(spec: dict, stdout_w: int, stderr_w: int) -> int:
    """``runc create``; returns the container's init pid. Raises RuntimeError with runc's message on failure."""
    runc_log = os.path.join(spec["state_dir"], "runc.log")
    pid_file = os.path.join(spec["state_dir"], "init.pid")
    argv = [spec["runc"], "--root", spec["runc_root"], "--log", runc_log, "--log-format", "json", "create",
            "--bundle", spec["bundle"], "--pid-file", pid_file, spec["id"]]
    devnull = os.open(os.devnull, os.O_RDONLY)
    actions = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, stdout_w, 1),
               (os.POSIX_SPAWN_DUP2, stderr_w, 2)]
    runc = os.posix_spawn(spec["runc"], argv, os.environ, file_actions=actions)
    os.close(devnull)
    _, status = os.waitpid(runc, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(runc_error(runc_log, f"runc create exited with {os.waitstatus_to_exitcode(status)}"))
    with open(pid_file) as f:
        return int(f.read().strip())


def monitor(spec: dict, init_pid: int, streams: dict[int, str], log: CriLog) -> dict:
    """Copy output to the log until the init process has exited and the pipes are drained; return its exit."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    reopen_requested = []
    signal.signal(signal.SIGUSR1, lambda *_: reopen_requested.append(True))
    signal.signal(signal.SIGCHLD, lambda *_: None)
    exit_info: dict | None = None
    drain_deadline = None
    while streams:
        timeout = None if drain_deadline is None else max(0.0, drain_deadline - time.monotonic())
        try:
            ready, _, _ = select.select([*streams, wake_r], [], [], timeout)
        except InterruptedError:
            ready = []
        if not ready and drain_deadline is not None:
            break
        for fd in ready:
            if fd == wake_r:
                os.read(wake_r, 512)
                continue
            data = os.read(fd, 65536)
            if data:
                log.feed(streams[fd], data)
            else:
                os.close(fd)
                del streams[fd]
        if reopen_requested:
            reopen_requested.clear()
            log.flush()
            log.reopen()
        while True:  # reap the init process and any orphan re-parented to us
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == init_pid:
                exit_info = exit_record(status, spec["cgroup_path"])
                drain_deadline = time.monotonic() + DRAIN_AFTER_EXIT_S
    log.flush()
    while exit_info is None:  # the pipes closed before the exit was reaped
        pid, status = os.waitpid(-1, 0)
        if pid == init_pid:
            exit_info = exit_record(status, spec["cgroup_path"])
    return exit_info


def exit_record(status: int, cgroup_path: str) -> dict:
    signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    code = 128 + signum if signum else os.WEXITSTATUS(status)
    return {"exit_code": code, "signal": signum, "finished_at": time.time_ns(), "oom_killed": oom_killed(cgroup_path)}


def daemonize() -> None:
    """Detach from the runtime: the runtime reaps our first process at once; the second one is the shim."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)


def main(spec_path: str, notify_fd: int) -> None:
    with open(spec_path) as f:
        spec = json.load(f)
    os.set_inheritable(notify_fd, False)  # neither runc nor the container may hold the runtime's pipe
    daemonize()
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        notify(notify_fd, {"error": f"prctl(PR_SET_CHILD_SUBREAPER): errno {ctypes.get_errno()}"})
        return
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        init_pid = create(spec, out_w, err_w)
    except (RuntimeError, OSError) as e:
        notify(notify_fd, {"error": str(e)})
        return
    finally:
        os.close(out_w)
        os.close(err_w)
    log = CriLog(spec.get("log_path", ""))
    notify(notify_fd, {"pid": init_pid, "shim_pid": os.getpid()})
    exit_info = monitor(spec, init_pid, {out_r: "stdout", err_r: "stderr"}, log)
    write_json_atomic(os.path.join(spec["state_dir"], "exit.json"), exit_info)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
