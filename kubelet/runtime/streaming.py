"""The runtime's streaming server: where CRI Exec, Attach and PortForward sessions actually run.

CRI does not stream over gRPC. The Exec, Attach and PortForward RPCs only validate a request and answer a URL on
this server (like containerd's on 127.0.0.1:<port>); the kubelet proxies its client's connection there. A URL
carries a random single-use token that expires after a minute (the kubelet's streaming cache does the same), so
the server needs no authentication of its own beyond listening on localhost.

Sessions are WebSockets speaking Kubernetes' channel protocols: every binary message starts with a channel byte.
Exec and attach (subprotocols ``v5.channel.k8s.io``, ``v4.channel.k8s.io``, ``channel.k8s.io``; none offered
means ``channel.k8s.io``, as the Kubernetes server allows): 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize
(``{"Width":W,"Height":H}``); on v5, ``[255, 0]`` closes stdin. The server first sends an empty message on the
lowest output channel asked for, and ends with one metav1.Status JSON on channel 3 (v4/v5; the older protocol gets
only a failure's message as text). Port-forward (``v4.channel.k8s.io``, ``portforward.k8s.io``): port i uses
channel 2i for data and 2i+1 for errors, and the first message on each carries the port (uint16, little-endian).
The ports are the query's ``port``/``ports`` (comma-separated) if given, else the PortForwardRequest's.

Exec runs ``runc exec`` in the foreground. With a TTY its stdio is a pty this server owns: runc refuses
``--console-socket`` unless it detaches, and a detached exec's exit status would go to whichever process reaps the
orphan, not to us. Foreground runc copies between our pty and the container's; a resize is TIOCSWINSZ on our end
plus SIGWINCH to runc, which resizes the container's. Closing stdin of a TTY session types the EOF character (^D).
A session whose client goes away has its process killed. Attach talks to the container's shim over
``attach.sock`` (framing documented in ``shim.py``); ContainerConfig.stdin_once closes the container's stdin when
an attached client's stdin ends. Port-forward connects to localhost inside the sandbox's network namespace from a
fresh thread that enters it with setns(2), so the pod's loopback-only listeners are reachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import http
import json
import logging
import os
import secrets
import signal
import socket
import struct
import termios
import time
import tty
import weakref
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, NegotiationError

from kubelet.runtime import namespaces
from kubelet.runtime.errors import FailedPrecondition, InvalidArgument, ResourceExhausted, RuntimeFailure
from kubelet.runtime.state import RUNNING, SANDBOX_READY

log = logging.getLogger(__name__)
ws_log = log.getChild("websockets")  # the library logs every frame at debug and every connection at info
ws_log.setLevel(logging.WARNING)

TOKEN_TTL_S = 60.0
MAX_IN_FLIGHT = 1000
MAX_MESSAGE = 4 << 20
DRAIN_AFTER_EXIT_S = 2.0  # output a process's background children keep open is not waited for longer
CONNECT_TIMEOUT_S = 10.0
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
V5, V4, V1 = "v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"
SUBPROTOCOLS = {"exec": (V5, V4, V1), "attach": (V5, V4, V1), "portforward": (V4, "portforward.k8s.io")}
SHIM_FRAME = struct.Struct(">BI")  # attach.sock: stream id, payload length
SHIM_CLOSE_STDIN = 255
EOF_CHARACTER = b"\x04"


class RequestCache:
    """Validated requests under single-use tokens that expire ``ttl`` seconds after they were issued."""

    def __init__(self, ttl: float = TOKEN_TTL_S, limit: int = MAX_IN_FLIGHT, clock=time.monotonic) -> None:
        self.ttl = ttl
        self.limit = limit
        self.clock = clock
        self._entries: dict[str, tuple[float, str, object]] = {}  # insertion order is expiry order

    def insert(self, kind: str, request) -> str:
        now = self.clock()
        while self._entries:
            oldest = next(iter(self._entries))
            if self._entries[oldest][0] > now:
                break
            del self._entries[oldest]
        if len(self._entries) >= self.limit:
            raise ResourceExhausted(f"more than {self.limit} streaming requests in flight")
        token = secrets.token_urlsafe(16)
        self._entries[token] = (now + self.ttl, kind, request)
        return token

    def consume(self, token: str, kind: str):
        """The request ``token`` was issued for, if it is of ``kind`` and has not expired; the token is spent."""
        expires, issued_kind, request = self._entries.pop(token, (0.0, "", None))
        return request if issued_kind == kind and expires > self.clock() else None


def success_status() -> dict:
    return {"metadata": {}, "status": "Success"}


def exit_status(cmd: list[str], code: int) -> dict:
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command [{' '.join(cmd)}], "
                       f"exit code {code}",
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def internal_error(message: str) -> dict:
    return {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {message}",
            "reason": "InternalError", "details": {"causes": [{"message": message}]}, "code": 500}


def query_ports(query: str) -> list[int]:
    """Ports from ``port=`` (repeatable, as kubectl sends) and ``ports=`` (comma-separated); ValueError if bad."""
    values = parse_qs(query, keep_blank_values=True)
    ports = []
    for value in values.get("port", []) + values.get("ports", []):
        for item in value.split(","):
            if not item.isdigit() or not 0 < int(item) < 65536:
                raise ValueError(f"invalid port {item!r}: must be 1-65535")
            ports.append(int(item))
    return ports


def parse_resize(data: bytes) -> tuple[int, int] | None:
    """The last ``{"Width":W,"Height":H}`` in a resize message (a client may send several back to back)."""
    decoder, text, at, size = json.JSONDecoder(), data.decode(errors="replace"), 0, None
    while at < len(text):
        try:
            value, at = decoder.raw_decode(text, at)
        except ValueError:
            break
        width, height = (value.get("Width"), value.get("Height")) if isinstance(value, dict) else (None, None)
        if isinstance(width, int) and isinstance(height, int) and 0 <= width < 65536 and 0 <= height < 65536:
            size = (width, height)
        while at < len(text) and text[at].isspace():
            at += 1
    return size


class Channels:
    """One exec/attach WebSocket: channel-prefixed messages out, (channel, payload) pairs in."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.protocol = ws.subprotocol or V1
        self.can_close_streams = self.protocol == V5

    async def send(self, channel: int, data: bytes = b"") -> None:
        await self.ws.send(bytes([channel]) + data)

    async def announce(self, request) -> None:
        """The empty message on the lowest output channel that tells the client the session is up."""
        await self.send(STDOUT if request.stdout else STDERR if request.stderr else ERROR)

    async def send_status(self, status: dict) -> None:
        if self.protocol in (V5, V4):
            await self.send(ERROR, json.dumps(status, separators=(",", ":")).encode())
        elif status["status"] != "Success":
            await self.send(ERROR, status["message"].encode())

    async def receive(self):
        with contextlib.suppress(ConnectionClosed):
            async for message in self.ws:
                data = message.encode() if isinstance(message, str) else message
                if data:
                    yield data[0], data[1:]


class StreamingServer:
    """The HTTP/WebSocket endpoint behind the URLs that Exec, Attach and PortForward answer."""

    def __init__(self, runtime, host: str = "127.0.0.1", port: int = 0, *, clock=time.monotonic) -> None:
        self.runtime = runtime
        self.host = host
        self.port = port
        self.cache = RequestCache(clock=clock)
        self._server = None
        self._accepted: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    async def start(self) -> None:
        self._server = await serve(self._session, self.host, self.port, process_request=self._route,
                                   select_subprotocol=self._subprotocol, compression=None, max_size=MAX_MESSAGE,
                                   logger=ws_log)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("streaming server on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def url_for(self, kind: str, request) -> str:
        """Check ``request`` as its RPC must (runtime errors) and issue a URL for one session of it."""
        if kind == "portforward":
            sandbox = self.runtime.get_sandbox(request.pod_sandbox_id)
            if sandbox.state != SANDBOX_READY:
                raise FailedPrecondition(f"pod sandbox {sandbox.id} is not ready")
            if any(not 0 < port < 65536 for port in request.port):
                raise InvalidArgument(f"invalid ports {list(request.port)}: each must be 1-65535")
        else:
            self._running(request.container_id)
            if kind == "exec" and not request.cmd:
                raise InvalidArgument("exec needs a command")
            if request.tty and request.stderr:
                raise InvalidArgument("tty and stderr cannot both be true (a terminal has one output stream)")
            if not (request.stdin or request.stdout or request.stderr):
                raise InvalidArgument("one of stdin, stdout and stderr must be set")
        token = self.cache.insert(kind, request)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/{kind}/{token}"

    def _running(self, container_id: str):
        container = self.runtime.get_container(container_id)
        if container.state != RUNNING:
            raise FailedPrecondition(f"container {container.id} is not running")
        return container

    # ---- the handshake -------------------------------------------------------------------------------------------

    def _route(self, connection: ServerConnection, request):
        url = urlsplit(request.path)
        kind, _, token = url.path.strip("/").partition("/")
        cached = self.cache.consume(token, kind) if kind in SUBPROTOCOLS else None
        if cached is None:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "unknown or expired streaming token\n")
        ports: list[int] = []
        if kind == "portforward":
            try:
                ports = query_ports(url.query) or list(cached.port)
            except ValueError as e:
                return connection.respond(http.HTTPStatus.BAD_REQUEST, f"{e}\n")
            if not ports:
                return connection.respond(http.HTTPStatus.BAD_REQUEST, 'query parameter "port" is required\n')
        self._accepted[connection] = (kind, cached, ports)
        return None

    def _subprotocol(self, connection: ServerConnection, offered):
        supported = SUBPROTOCOLS[self._accepted[connection][0]]
        if not offered:
            return None
        for protocol in offered:  # the client's preference, as the Kubernetes servers pick
            if protocol in supported:
                return protocol
        raise NegotiationError(f"requested protocol(s) {list(offered)} are not supported; supports {list(supported)}")

    async def _session(self, ws: ServerConnection) -> None:
        kind, request, ports = self._accepted.pop(ws)
        try:
            if kind == "portforward":
                await self._port_forward(ws, request, ports)
            elif kind == "exec":
                await self._exec(Channels(ws), request)
            else:
                await self._attach(Channels(ws), request)
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("%s session failed", kind)

    # ---- exec and attach -----------------------------------------------------------------------------------------

    async def _exec(self, channels: Channels, request) -> None:
        await channels.announce(request)
        cmd = list(request.cmd)
        try:
            container = self._running(request.container_id)
            pid_file = self.runtime.container_store.dir(container.id) / f"exec-{secrets.token_hex(4)}.pid"
            argv = self.runtime.runc.exec_argv(container.id, cmd, tty=request.tty, pid_file=str(pid_file))
            session = await (TtyExec if request.tty else PipeExec).start(argv, pid_file, channels, request)
        except (RuntimeFailure, OSError) as e:
            await channels.send_status(internal_error(f"cannot exec in container {request.container_id}: {e}"))
            return
        code = await run_session(channels, session, request.stdin)
        if code is not None:
            await channels.send_status(success_status() if code == 0 else exit_status(cmd, code))

    async def _attach(self, channels: Channels, request) -> None:
        await channels.announce(request)
        try:
            container = self._running(request.container_id)
            session = await ShimAttach.start(self.runtime.container_store.dir(container.id), channels, request,
                                             container.container_config)
        except (RuntimeFailure, OSError) as e:
            await channels.send_status(internal_error(f"cannot attach to container {request.container_id}: {e}"))
            return
        if await run_session(channels, session, request.stdin) is not None:
            await channels.send_status(success_status())

    # ---- port-forward --------------------------------------------------------------------------------------------

    async def _port_forward(self, ws: ServerConnection, request, ports: list[int]) -> None:
        channels = Channels(ws)
        for index, port in enumerate(ports):
            for channel in (2 * index, 2 * index + 1):
                await channels.send(channel, struct.pack("<H", port))
        try:
            sandbox = self.runtime.get_sandbox(request.pod_sandbox_id)
            netns = sandbox.netns
            results = await asyncio.gather(
                *(namespaces.in_fresh_thread(connect_in_netns, netns, port) for port in ports), return_exceptions=True)
        except RuntimeFailure as e:
            results = [e] * len(ports)
        writers: list[asyncio.StreamWriter | None] = []
        copies: list[asyncio.Task] = []
        for index, result in enumerate(results):
            writer = None
            if isinstance(result, socket.socket):
                reader, writer = await asyncio.open_connection(sock=result)
                copies.append(asyncio.create_task(copy_to_channel(reader, channels, 2 * index)))
            writers.append(writer)
        inputs = asyncio.create_task(forward_input(ws, writers))
        try:
            for index, (port, result) in enumerate(zip(ports, results, strict=True)):
                if isinstance(result, BaseException):
                    message = f"error forwarding port {port} to pod {request.pod_sandbox_id}, uid : {result}"
                    await channels.send(2 * index + 1, message.encode())
            if copies:
                await asyncio.wait([inputs, asyncio.gather(*copies)], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in [inputs, *copies]:
                task.cancel()
            for writer in writers:
                if writer is not None:
                    writer.close()


async def run_session(channels: Channels, session, stdin: bool) -> int | None:
    """Serve the client's input to ``session`` until it ends; its exit code, or None if the client left first."""
    inputs = asyncio.create_task(client_input(channels, session, stdin))
    done = asyncio.create_task(session.run())
    try:
        await asyncio.wait([inputs, done], return_when=asyncio.FIRST_COMPLETED)
        if not done.done():
            await session.abandon()
            done.cancel()
            return None
        return done.result()
    finally:
        inputs.cancel()
        done.cancel()
        await session.close()


async def client_input(channels: Channels, session, stdin: bool) -> None:
    async for channel, data in channels.receive():
        if channel == STDIN and stdin:
            await session.write_stdin(data)
        elif channel == RESIZE:
            size = parse_resize(data)
            if size:
                session.resize(*size)
        elif channel == CLOSE and channels.can_close_streams and data[:1] == bytes([STDIN]) and stdin:
            await session.close_stdin()


async def copy_to_channel(reader: asyncio.StreamReader, channels: Channels, channel: int) -> None:
    """Until the reader's end or the client's (a reset connection is an end too)."""
    with contextlib.suppress(ConnectionError, ConnectionClosed):
        while data := await reader.read(65536):
            await channels.send(channel, data)


async def drain(tasks: list[asyncio.Task]) -> None:
    if tasks:
        _, late = await asyncio.wait(tasks, timeout=DRAIN_AFTER_EXIT_S)
        for task in late:
            task.cancel()


class PipeExec:
    """``runc exec`` with pipes: stdout and stderr stay apart."""

    def __init__(self, proc: asyncio.subprocess.Process, pid_file: Path, channels: Channels, request) -> None:
        self.proc = proc
        self.pid_file = pid_file
        self.channels = channels
        self.request = request

    @classmethod
    async def start(cls, argv: list[str], pid_file: Path, channels: Channels, request) -> PipeExec:
        pipe, devnull = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=pipe if request.stdin else devnull, stdout=pipe if request.stdout else devnull,
            stderr=pipe if request.stderr else devnull)
        return cls(proc, pid_file, channels, request)

    async def run(self) -> int:
        copies = [asyncio.create_task(copy_to_channel(stream, self.channels, channel))
                  for stream, channel in ((self.proc.stdout, STDOUT), (self.proc.stderr, STDERR)) if stream]
        code = await self.proc.wait()
        await drain(copies)
        return code

    async def write_stdin(self, data: bytes) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.write(data)
            with contextlib.suppress(ConnectionError):
                await self.proc.stdin.drain()

    async def close_stdin(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()

    def resize(self, width: int, height: int) -> None:
        pass

    async def abandon(self) -> None:
        """The client went away: end the process (runc passes on what it can catch, so kill the process itself)."""
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(self.pid_file.read_text()), signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        await self.proc.wait()

    async def close(self) -> None:
        self.pid_file.unlink(missing_ok=True)


class TtyExec(PipeExec):
    """``runc exec --tty`` in the foreground, its stdio our pty's slave end (see the module docstring)."""

    def __init__(self, proc, pid_file: Path, channels: Channels, request, master: int) -> None:
        super().__init__(proc, pid_file, channels, request)
        self.master = master
        self.pty = Pty(master)

    @classmethod
    async def start(cls, argv: list[str], pid_file: Path, channels: Channels, request) -> TtyExec:
        master, slave = os.openpty()
        try:
            tty.setraw(slave)  # runc sets it raw too, but input may arrive before it does
            proc = await asyncio.create_subprocess_exec(*argv, stdin=slave, stdout=slave, stderr=slave,
                                                        start_new_session=True)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        return cls(proc, pid_file, channels, request, master)

    async def run(self) -> int:
        copy = asyncio.create_task(self._copy_output())
        code = await self.proc.wait()
        await drain([copy])
        return code

    async def _copy_output(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while data := await self.pty.read():
                if self.request.stdout:
                    await self.channels.send(STDOUT, data)

    async def write_stdin(self, data: bytes) -> None:
        await self.pty.write(data)

    async def close_stdin(self) -> None:
        await self.pty.write(EOF_CHARACTER)

    def resize(self, width: int, height: int) -> None:
        with contextlib.suppress(OSError):
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
            os.kill(self.proc.pid, signal.SIGWINCH)

    async def close(self) -> None:
        await super().close()
        self.pty.close()


class Pty:
    """Non-blocking reads and writes on a pty master through the event loop; a hung-up terminal reads as EOF."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)

    async def read(self) -> bytes:
        while True:
            try:
                return os.read(self.fd, 65536)
            except BlockingIOError:
                await self._ready(asyncio.get_running_loop().add_reader, asyncio.get_running_loop().remove_reader)
            except OSError as e:
                if e.errno == errno.EIO:
                    return b""
                raise

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view):]
            except BlockingIOError:
                await self._ready(asyncio.get_running_loop().add_writer, asyncio.get_running_loop().remove_writer)
            except OSError:
                return  # the terminal hung up: the process has gone

    async def _ready(self, add, remove) -> None:
        future = asyncio.get_running_loop().create_future()
        add(self.fd, lambda: future.done() or future.set_result(None))
        try:
            await future
        finally:
            remove(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class ShimAttach:
    """An attach client of the container's shim (``attach.sock``), relaying to one WebSocket."""

    def __init__(self, reader, writer, channels: Channels, request, stdin_once: bool, tty_: bool) -> None:
        self.reader = reader
        self.writer = writer
        self.channels = channels
        self.request = request
        self.stdin_once = stdin_once
        self.tty = tty_

    @classmethod
    async def start(cls, state_dir: Path, channels: Channels, request, config) -> ShimAttach:
        dir_fd = os.open(state_dir, os.O_PATH | os.O_DIRECTORY)  # the path through it stays short enough to connect
        try:
            reader, writer = await asyncio.open_unix_connection(f"/proc/self/fd/{dir_fd}/attach.sock")
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise FailedPrecondition(f"the container's monitor is not accepting attach clients: {e}") from e
        finally:
            os.close(dir_fd)
        return cls(reader, writer, channels, request, config.stdin_once, config.tty)

    async def run(self) -> int:
        wanted = {STDOUT: self.request.stdout, STDERR: self.request.stderr and not self.tty}
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                stream, length = SHIM_FRAME.unpack(await self.reader.readexactly(SHIM_FRAME.size))
                data = await self.reader.readexactly(length)
                if wanted.get(stream):
                    await self.channels.send(stream, data)
        return 0

    async def _frame(self, stream: int, payload: bytes = b"") -> None:
        self.writer.write(SHIM_FRAME.pack(stream, len(payload)) + payload)
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def write_stdin(self, data: bytes) -> None:
        await self._frame(STDIN, data)

    async def close_stdin(self) -> None:
        if self.stdin_once:
            await self._frame(SHIM_CLOSE_STDIN)

    def resize(self, width: int, height: int) -> None:
        self.writer.write(SHIM_FRAME.pack(RESIZE, 4) + struct.pack(">HH", width, height))

    async def abandon(self) -> None:
        if self.request.stdin:
            await self.close_stdin()

    async def close(self) -> None:
        self.writer.close()


async def forward_input(ws: ServerConnection, writers: list[asyncio.StreamWriter | None]) -> None:
    """Client data on port i's data channel (2i) to port i's connection; anything else is ignored."""
    with contextlib.suppress(ConnectionClosed):
        async for message in ws:
            data = message.encode() if isinstance(message, str) else message
            if not data or data[0] % 2 or data[0] // 2 >= len(writers):
                continue
            writer = writers[data[0] // 2]
            if writer is not None and not writer.is_closing():
                writer.write(data[1:])
                with contextlib.suppress(ConnectionError):
                    await writer.drain()


def connect_in_netns(netns: str, port: int) -> socket.socket:
    """A non-blocking TCP connection to localhost:``port`` in network namespace ``netns`` ("": this one).

    Must run in a thread of its own: it switches the calling thread's namespace and back."""
    if not netns:
        return connect_localhost(port)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        namespaces.enter(netns, "net")
        try:
            return connect_localhost(port)  # the socket belongs to the pod's namespace from now on
        finally:
            try:
                namespaces.enter(own, "net")
            except OSError:
                log.error("cannot return a port-forward thread to the runtime's network namespace")
    finally:
        os.close(own)


def connect_localhost(port: int) -> socket.socket:
    error: OSError | None = None
    for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(CONNECT_TIMEOUT_S)
            sock.connect((address, port))
            sock.setblocking(False)
            return sock
        except OSError as e:
            sock.close()
            error = error or e
    raise OSError(error.errno if error else errno.ECONNREFUSED,
                  f"failed to connect to localhost:{port} inside the pod's network namespace: {error}")
