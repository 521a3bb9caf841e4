"""The per-container monitor: runs one runc container, writes its output as CRI logs, records how it exited.

Why a separate process per container (like containerd's shim or conmon): the container's exit status can only be
collected by its parent, and the runtime must be restartable without losing it. The shim makes itself a child
subreaper, runs ``runc run --detach`` (runc's child, the container's init, is re-parented to the shim when runc
exits), then lives exactly as long as the container: it turns the container's stdout/stderr pipes into CRI log
lines (``<RFC3339Nano> <stream> <P|F> <text>``), reopens the log on SIGUSR1 (ReopenContainerLog), and when the
init process exits writes ``exit.json`` (exit code, signal, finish time, whether the memory cgroup OOM-killed
anything) atomically. A restarted runtime finds running containers through their live shims and finished ones
through their exit files.

The shim is also the only process holding the container's stdio, so it serves attach (CRI Attach, ``kubectl
attach``) on ``attach.sock`` in its state directory. Whether the container gets a stdin comes from its
ContainerConfig.stdin, passed in the shim's spec: with it, the container's stdin is a pipe the shim keeps open,
otherwise ``/dev/null``. A container whose OCI config asks for a terminal (``process.terminal``, from
ContainerConfig.tty) is run with ``--console-socket``: runc sends the pty master over that socket
(SCM_RIGHTS); the shim owns it and logs what the terminal prints as stdout.

Attach protocol: both directions carry frames of a 1-byte stream id, a 4-byte big-endian payload length and the
payload. The shim sends 1 (stdout) and 2 (stderr; never with a terminal) to every connected client, from the moment
it connected until the container's output ends, then hangs up. A client sends 0 (stdin data), 4 (terminal resize:
width and height as two big-endian uint16) and 255 (close the container's stdin once what was sent before is
written; ignored with a terminal). A client that reads too slowly is dropped rather than allowed to hold up the
container's output, and a container that does not read its stdin stops the shim reading from clients.

Shims are forked, not started: a fresh interpreter costs ~25 ms of CPU before it does anything, which on a busy
node was a quarter of all the CPU spent starting pods. So the runtime runs one **shim server** (``python -S
shim.py CHANNEL_FD ROOT``: no site, only the standard library, everything imported once) and asks it for each
shim over a SOCK_SEQPACKET socket: one message holds the shim's spec as JSON and two descriptors, the runtime's
notification pipe and the shim's log file. The server forks; the child daemonizes (the server reaps it at once;
its child, the shim, belongs to no one), writes its output to the log, and answers one JSON line on the pipe
(``{"pid": ..., "shim_pid": ...}`` or ``{"error": ...}``) once the container has started. The server exits when the
runtime closes the socket. A shim's working directory is its container's state directory: that is how a
restarted runtime knows a pid is still the shim it recorded (``tasks.is_shim``).
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import select
import signal
import socket
import struct
import sys
import termios
import time

PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
SHIM_NAME = b"kubemini-shim"  # what ps -o comm and top show
IGNORED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE)  # by the shim; not by runc
MAX_REQUEST = 1 << 16
LIBC = ctypes.CDLL(None, use_errno=True)
MAX_LINE = 16 * 1024  # longer lines are split into partial (P) records, as containerd does
DRAIN_AFTER_EXIT_S = 2.0  # processes outside the container's pid namespace may keep the pipes open
CONSOLE_WAIT_S = 10.0  # for runc to hand over a terminal container's pty master
ATTACH_SOCKET = "attach.sock"
CONSOLE_SOCKET = "console.sock"
STDIN, STDOUT, STDERR, RESIZE, CLOSE_STDIN = 0, 1, 2, 4, 255  # attach frame stream ids
STREAM_IDS = {"stdout": STDOUT, "stderr": STDERR}
FRAME = struct.Struct(">BI")
MAX_FRAME = 1 << 20
CLIENT_BACKLOG = 4 << 20  # output queued for one attach client before it is dropped
STDIN_BACKLOG = 1 << 20  # input queued for the container before clients stop being read


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


def container_stdio(spec: dict) -> tuple[bool, bool]:
    """(stdin, tty) asked for this container: stdin from the spec, tty from the OCI config's process.terminal."""
    tty = False
    try:
        with open(os.path.join(spec["bundle"], "config.json")) as f:
            tty = bool(json.load(f).get("process", {}).get("terminal"))
    except (OSError, ValueError, AttributeError):
        pass
    return bool(spec.get("stdin")), tty


def create(spec: dict, stdio: tuple[int, int, int], console_socket: str = "") -> int:
    """``runc run --detach``: makes and starts the container; returns its init pid. Raises RuntimeError with runc's
    message on failure."""
    runc_log = os.path.join(spec["state_dir"], "runc.log")
    pid_file = os.path.join(spec["state_dir"], "init.pid")
    argv = [spec["runc"], "--root", spec["runc_root"], "--log", runc_log, "--log-format", "json", "run", "--detach",
            "--bundle", spec["bundle"], "--pid-file", pid_file]
    if console_socket:
        argv += ["--console-socket", console_socket]
    argv.append(spec["id"])
    actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(stdio)]
    runc = os.posix_spawn(spec["runc"], argv, os.environ, file_actions=actions, setsigdef=IGNORED_SIGNALS)
    _, status = os.waitpid(runc, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(runc_error(runc_log, f"runc run exited with {os.waitstatus_to_exitcode(status)}"))
    with open(pid_file) as f:
        return int(f.read().strip())


def create_with_terminal(spec: dict, dir_fd: int, devnull: int) -> tuple[int, int]:
    """``runc run`` of a terminal container; returns (init pid, pty master)."""
    path = f"/proc/self/fd/{dir_fd}/{CONSOLE_SOCKET}"  # short, however deep the state directory is
    unlink_quietly(path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(1)
        try:
            init_pid = create(spec, (devnull, devnull, devnull), f"/proc/{os.getpid()}/fd/{dir_fd}/{CONSOLE_SOCKET}")
            listener.settimeout(CONSOLE_WAIT_S)
            conn, _ = listener.accept()  # runc connected and sent during create; the fd waits in the socket
            with conn:
                conn.settimeout(CONSOLE_WAIT_S)
                _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        finally:
            unlink_quietly(path)
    if not fds:
        raise RuntimeError("runc sent no terminal over the console socket")
    return init_pid, fds[0]


def start(spec: dict, dir_fd: int, stdin: bool, tty: bool) -> tuple[int, dict[int, str], int | None]:
    """Run the container; returns (init pid, output fds to copy, the fd the container's stdin is written to)."""
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        if tty:
            init_pid, master = create_with_terminal(spec, dir_fd, devnull)
            return init_pid, {master: "stdout"}, master if stdin else None
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        in_r, in_w = os.pipe() if stdin else (devnull, None)
        try:
            init_pid = create(spec, (in_r, out_w, err_w))
        except BaseException:
            for fd in (out_r, err_r, in_w):
                if fd is not None:
                    os.close(fd)
            raise
        finally:
            for fd in {out_w, err_w, in_r} - {devnull}:
                os.close(fd)
        return init_pid, {out_r: "stdout", err_r: "stderr"}, in_w
    finally:
        os.close(devnull)


def unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class AttachClient:
    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.inbox = bytearray()
        self.outbox = bytearray()


class Attach:
    """``attach.sock``: output goes to every connected client, their input to the container (see the docstring)."""

    def __init__(self, dir_fd: int, stdin_fd: int | None, terminal_fd: int | None) -> None:
        self.path = f"/proc/self/fd/{dir_fd}/{ATTACH_SOCKET}"
        unlink_quietly(self.path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(16)
        self.listener.setblocking(False)
        self.clients: dict[int, AttachClient] = {}
        self.terminal_fd = terminal_fd
        self.stdin_fd = stdin_fd
        self.stdin_pending = bytearray()
        self.close_stdin_requested = False
        if stdin_fd is not None:
            os.set_blocking(stdin_fd, False)

    def readers(self) -> list[int]:
        clients = list(self.clients) if len(self.stdin_pending) < STDIN_BACKLOG else []
        return [self.listener.fileno(), *clients]

    def writers(self) -> list[int]:
        ready = [fd for fd, client in self.clients.items() if client.outbox]
        if self.stdin_pending and self.stdin_fd is not None:
            ready.append(self.stdin_fd)
        return ready

    def broadcast(self, stream: str, data: bytes) -> None:
        frame = FRAME.pack(STREAM_IDS[stream], len(data)) + data
        for fd, client in list(self.clients.items()):
            if len(client.outbox) + len(frame) > CLIENT_BACKLOG:
                self.drop(fd)
            else:
                client.outbox += frame

    def readable(self, fd: int) -> None:
        if fd == self.listener.fileno():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            conn.setblocking(False)
            self.clients[conn.fileno()] = AttachClient(conn)
            return
        client = self.clients.get(fd)
        if client is None:
            return
        try:
            data = client.conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.drop(fd)
            return
        client.inbox += data
        while len(client.inbox) >= FRAME.size:
            stream, length = FRAME.unpack_from(client.inbox)
            if length > MAX_FRAME:
                self.drop(fd)
                return
            if len(client.inbox) < FRAME.size + length:
                break
            payload = bytes(client.inbox[FRAME.size:FRAME.size + length])
            del client.inbox[:FRAME.size + length]
            self.handle(stream, payload)

    def handle(self, stream: int, payload: bytes) -> None:
        if stream == STDIN and self.stdin_fd is not None and not self.close_stdin_requested:
            self.stdin_pending += payload
            self.write_stdin()
        elif stream == RESIZE and self.terminal_fd is not None and len(payload) >= 4:
            width, height = struct.unpack_from(">HH", payload)
            try:
                fcntl.ioctl(self.terminal_fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
            except OSError:
                pass
        elif stream == CLOSE_STDIN and self.terminal_fd is None and self.stdin_fd is not None:
            self.close_stdin_requested = True
            self.write_stdin()

    def writable(self, fd: int) -> None:
        if fd == self.stdin_fd:
            self.write_stdin()
            return
        client = self.clients.get(fd)
        if client is None:
            return
        try:
            sent = client.conn.send(client.outbox)
        except BlockingIOError:
            return
        except OSError:
            self.drop(fd)
            return
        del client.outbox[:sent]

    def write_stdin(self) -> None:
        try:
            while self.stdin_pending:
                del self.stdin_pending[:os.write(self.stdin_fd, self.stdin_pending)]
        except BlockingIOError:
            return
        except OSError:  # the container closed its stdin, or has gone
            self.stdin_pending.clear()
            self.close_stdin_requested = self.terminal_fd is None
        if self.close_stdin_requested and not self.stdin_pending:
            os.close(self.stdin_fd)
            self.stdin_fd = None

    def forget(self, fd: int) -> None:
        """``fd`` (a terminal, which is also the container's stdin) is being closed by the output copier."""
        if fd == self.stdin_fd:
            self.stdin_fd = None
            self.stdin_pending.clear()
        if fd == self.terminal_fd:
            self.terminal_fd = None

    def drop(self, fd: int) -> None:
        client = self.clients.pop(fd, None)
        if client is not None:
            client.conn.close()

    def close(self) -> None:
        """Hand clients what they are owed (briefly), then hang up: for them the container's output has ended."""
        for fd, client in list(self.clients.items()):
            try:
                client.conn.settimeout(1.0)
                client.conn.sendall(client.outbox)
            except OSError:
                pass
            self.drop(fd)
        self.listener.close()
        unlink_quietly(self.path)


def monitor(spec: dict, init_pid: int, streams: dict[int, str], log: CriLog, attach: Attach) -> dict:
    """Copy output to the log and attached clients until the init process has exited and the output is drained;
    return its exit."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    reopen_requested = []
    signal.signal(signal.SIGUSR1, lambda *_: reopen_requested.append(True))
    signal.signal(signal.SIGCHLD, lambda *_: None)
    exit_info: dict | None = None
    drain_deadline = None
    while streams:
        timeout = None if drain_deadline is None else drain_deadline - time.monotonic()
        if timeout is not None and timeout <= 0:
            break
        try:
            readable, writable, _ = select.select([*streams, wake_r, *attach.readers()], attach.writers(), [],
                                                  timeout)
        except InterruptedError:
            readable, writable = [], []
        for fd in readable:
            if fd == wake_r:
                os.read(wake_r, 512)
            elif fd in streams:
                copy_output(fd, streams, log, attach)
            else:
                attach.readable(fd)
        for fd in writable:
            attach.writable(fd)
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
    attach.close()
    while exit_info is None:  # the output ended before the exit was reaped
        pid, status = os.waitpid(-1, 0)
        if pid == init_pid:
            exit_info = exit_record(status, spec["cgroup_path"])
    return exit_info


def copy_output(fd: int, streams: dict[int, str], log: CriLog, attach: Attach) -> None:
    try:
        data = os.read(fd, 65536)
    except BlockingIOError:
        return
    except OSError:  # EIO from a pty master: the terminal's last holder (the container) has gone
        data = b""
    if data:
        log.feed(streams[fd], data)
        attach.broadcast(streams[fd], data)
    else:
        attach.forget(fd)
        os.close(fd)
        del streams[fd]


def exit_record(status: int, cgroup_path: str) -> dict:
    signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    code = 128 + signum if signum else os.WEXITSTATUS(status)
    return {"exit_code": code, "signal": signum, "finished_at": time.time_ns(), "oom_killed": oom_killed(cgroup_path)}


def daemonize() -> None:
    """Detach from the server: it reaps our first process at once; the second one is the shim."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    for signum in IGNORED_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def run_shim(spec: dict, notify_fd: int) -> None:
    os.set_inheritable(notify_fd, False)  # neither runc nor the container may hold the runtime's pipe
    daemonize()
    LIBC.prctl(PR_SET_NAME, SHIM_NAME, 0, 0, 0)
    if LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        notify(notify_fd, {"error": f"prctl(PR_SET_CHILD_SUBREAPER): errno {ctypes.get_errno()}"})
        return
    stdin, tty = container_stdio(spec)
    try:
        os.chdir(spec["state_dir"])  # how the runtime tells this shim from a process that reused its pid
        dir_fd = os.open(spec["state_dir"], os.O_PATH | os.O_DIRECTORY)
        init_pid, streams, stdin_fd = start(spec, dir_fd, stdin, tty)
        attach = Attach(dir_fd, stdin_fd, next(iter(streams)) if tty else None)
    except (RuntimeError, OSError) as e:
        notify(notify_fd, {"error": str(e)})
        return
    log = CriLog(spec.get("log_path", ""))
    notify(notify_fd, {"pid": init_pid, "shim_pid": os.getpid()})
    exit_info = monitor(spec, init_pid, streams, log, attach)
    write_json_atomic(os.path.join(spec["state_dir"], "exit.json"), exit_info)


def forked(channel: socket.socket, request: bytes, notify_fd: int, log_fd: int) -> None:
    """In the server's child: stdio to the shim's log, then become the shim. Never returns to the server loop."""
    status = 1
    try:
        channel.close()
        devnull = os.open(os.devnull, os.O_RDONLY)
        for fd, target in ((devnull, 0), (log_fd, 1), (log_fd, 2)):
            os.dup2(fd, target)
        os.close(devnull)
        os.close(log_fd)
        run_shim(json.loads(request), notify_fd)
        status = 0
    except Exception as e:
        print(f"shim: {e!r}", file=sys.stderr, flush=True)
    finally:
        os._exit(status)


def serve(channel_fd: int) -> None:
    """The shim server: fork a shim for every request until the runtime closes the channel. A request carries the
    runtime's notification pipe and the shim's log."""
    os.chdir("/")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal reaches the runtime, which closes the channel
    channel = socket.socket(fileno=channel_fd)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(channel, MAX_REQUEST, 2)
        except ConnectionError:
            return
        if not message:
            return  # the runtime has gone
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            continue
        notify_fd, log_fd = fds
        try:
            pid = os.fork()
        except OSError as e:
            os.close(log_fd)
            notify(notify_fd, {"error": f"cannot fork a shim: {e}"})  # closes it
            continue
        if pid == 0:
            forked(channel, message, notify_fd, log_fd)
        os.close(notify_fd)
        os.close(log_fd)
        os.waitpid(pid, 0)  # the child forks the shim and leaves at once


if __name__ == "__main__":
    serve(int(sys.argv[1]))  # argv[2], the runtime's root, only names the server in process listings
