"""Exec, Attach and PortForward through the runtime's streaming server, as a kubelet proxying kubectl uses them.

The RPCs answer a URL; these tests open it with a WebSocket client speaking Kubernetes' channel protocols (one
channel byte before every message) and check what comes back: output per stream, the final status on the error
channel, terminal behaviour, stdin closing, and port-forward into a pod's own loopback. Like the rest of the suite
they run against kubemini and containerd; what containerd's server cannot do (the v5 close signal, which Kubernetes
only speaks between the API server and kubectl) is kubemini only.
"""

from __future__ import annotations

import json
import struct
import time
from collections import defaultdict
from types import SimpleNamespace

import grpc
import pytest
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from kubelet.runtime.errors import ResourceExhausted
from kubelet.runtime.state import SANDBOX_READY
from kubelet.runtime.streaming import RequestCache, StreamingServer, parse_resize, query_ports
from proto.cri import api_pb2 as cri
from tests.runtime.cri import container_config, sandbox_config
from tests.support import wait_for

V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
V5_ONLY = "containerd's streaming server speaks the channel protocol up to v4 (no stream close signal)"


def open_stream(url: str, protocols=(V5, V4)):
    return connect("ws://" + url.removeprefix("http://"), subprotocols=list(protocols), open_timeout=10,
                   compression=None, max_size=None)


def drain(ws, timeout: float = 30) -> tuple[dict[int, bytes], dict | None]:
    """Everything the server sends until it closes: output per channel, and the status from the error channel."""
    output: dict[int, bytes] = defaultdict(bytes)
    status = None
    deadline = time.monotonic() + timeout
    try:
        while True:
            message = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
            if message[0] == ERROR and message[1:]:
                status = json.loads(message[1:])
            else:
                output[message[0]] += message[1:]
    except ConnectionClosed:
        pass
    return output, status


def read_until(ws, output: dict[int, bytes], channel: int, wanted: bytes, timeout: float = 15) -> bytes:
    deadline = time.monotonic() + timeout
    while wanted not in output[channel]:
        message = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        output[message[0]] += message[1:]
    return output[channel]


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()


def http_status(url: str, protocols=(V5, V4)) -> int:
    with pytest.raises(InvalidStatus) as info, open_stream(url, protocols):
        pass
    return info.value.response.status_code


def run_container(pods, command: list[str], *, stdin: bool = False, stdin_once: bool = False, tty: bool = False,
                  log_path: str = "", sandbox=None) -> str:
    config = container_config("app", command, log_path=log_path)
    config.stdin, config.stdin_once, config.tty = stdin, stdin_once, tty
    return pods.run(sandbox or pods.run_sandbox(), config)


def exec_url(pods, container: str, cmd: list[str], *, stdin: bool = False, tty: bool = False) -> str:
    return pods.client.Exec(cri.ExecRequest(container_id=container, cmd=cmd, stdin=stdin, tty=tty, stdout=True,
                                            stderr=not tty)).url


def attach_url(pods, container: str, *, tty: bool = False) -> str:
    return pods.client.Attach(cri.AttachRequest(container_id=container, stdin=True, tty=tty, stdout=True,
                                                stderr=not tty)).url


def resize(width: int, height: int) -> bytes:
    return bytes([RESIZE]) + json.dumps({"Width": width, "Height": height}).encode()


# ---- exec ------------------------------------------------------------------------------------------------------------

def test_exec_streams_stdout_and_stderr_and_reports_the_exit_code(pods):
    container = run_container(pods, ["sleep", "3600"])
    cmd = ["sh", "-c", "echo out; echo err >&2; exit 42"]
    with open_stream(exec_url(pods, container, cmd)) as ws:
        output, status = drain(ws)
    assert (output[STDOUT], output[STDERR]) == (b"out\n", b"err\n")
    assert status == {
        "metadata": {}, "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command "
                   "[sh -c echo out; echo err >&2; exit 42], exit code 42",
        "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": "42"}]}}


def test_exec_that_succeeds_reports_success(pods):
    container = run_container(pods, ["sleep", "3600"])
    with open_stream(exec_url(pods, container, ["echo", "fine"])) as ws:
        output, status = drain(ws)
    assert output[STDOUT] == b"fine\n"
    assert status == {"metadata": {}, "status": "Success"}


@pytest.mark.kubemini_only(V5_ONLY)
def test_exec_stdin_is_echoed_until_the_client_closes_it(pods):
    container = run_container(pods, ["sleep", "3600"])
    with open_stream(exec_url(pods, container, ["cat"], stdin=True), [V5]) as ws:
        assert ws.subprotocol == V5
        output: dict[int, bytes] = defaultdict(bytes)
        ws.send(bytes([STDIN]) + b"hello\n")
        read_until(ws, output, STDOUT, b"hello\n")
        ws.send(bytes([STDIN]) + b"again\n")
        read_until(ws, output, STDOUT, b"again\n")
        ws.send(bytes([CLOSE, STDIN]))
        rest, status = drain(ws)
    assert output[STDOUT] + rest[STDOUT] == b"hello\nagain\n"
    assert status == {"metadata": {}, "status": "Success"}


def test_exec_with_a_terminal_follows_resizes(pods):
    container = run_container(pods, ["sleep", "3600"])
    script = 'tty; while read line; do [ "$line" = q ] && exit 3; stty size; done'
    with open_stream(exec_url(pods, container, ["sh", "-c", script], stdin=True, tty=True)) as ws:
        output: dict[int, bytes] = defaultdict(bytes)
        assert read_until(ws, output, STDOUT, b"/dev/pts/").startswith(b"/dev/pts/")
        ws.send(resize(100, 30))
        deadline = time.monotonic() + 15
        while b"30 100" not in output[STDOUT]:  # the resize travels apart from the input: ask until it shows
            assert time.monotonic() < deadline, output[STDOUT]
            ws.send(bytes([STDIN]) + b"\n")
            try:
                message = ws.recv(timeout=0.5)
                output[message[0]] += message[1:]
            except TimeoutError:
                pass
        ws.send(bytes([STDIN]) + b"q\n")
        rest, status = drain(ws)
    assert STDERR not in output and STDERR not in rest  # a terminal has one output stream
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


def test_exec_output_arrives_whole_and_in_order(pods):
    container = run_container(pods, ["sleep", "3600"])
    with open_stream(exec_url(pods, container, ["seq", "1", "300000"])) as ws:
        output, status = drain(ws)
    assert output[STDOUT] == "".join(f"{n}\n" for n in range(1, 300001)).encode()
    assert status == {"metadata": {}, "status": "Success"}


@pytest.mark.kubemini_only("containerd leaves an exec whose client went away running (seen here)")
def test_an_exec_whose_client_leaves_is_ended(pods):
    container = run_container(pods, ["sleep", "3600"])

    def sleeping() -> bool:
        response = pods.client.ExecSync(cri.ExecSyncRequest(container_id=container, cmd=["ps"], timeout=5))
        return b"sleep 1234" in response.stdout

    with open_stream(exec_url(pods, container, ["sleep", "1234"])):
        wait_for(sleeping, timeout=10, message="the exec to start")
    wait_for(lambda: not sleeping(), timeout=10, message="the abandoned exec to be killed")


def test_unknown_and_spent_tokens_are_not_found(pods):
    container = run_container(pods, ["sleep", "3600"])
    url = exec_url(pods, container, ["true"])
    assert http_status(url.rsplit("/", 1)[0] + "/not-a-token") == 404
    with open_stream(url) as ws:
        drain(ws)
    assert http_status(url) == 404


@pytest.mark.kubemini_only("containerd's WebSocket library answers 403 to an unsupported subprotocol")
def test_unsupported_subprotocol_is_a_bad_request(pods):
    container = run_container(pods, ["sleep", "3600"])
    assert http_status(exec_url(pods, container, ["true"]), ["chat"]) == 400


@pytest.mark.kubemini_only("containerd answers UNKNOWN for these")
def test_exec_requests_are_validated_by_the_rpc(pods):
    sandbox = pods.run_sandbox()
    running = run_container(pods, ["sleep", "3600"], sandbox=sandbox)
    exited = pods.run(sandbox, container_config("done", ["true"]))
    pods.wait_exited(exited)
    exec_ = pods.client.Exec
    assert code_of(lambda: exec_(cri.ExecRequest(container_id=exited, cmd=["true"], stdout=True))) == \
        grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(lambda: exec_(cri.ExecRequest(container_id="f" * 64, cmd=["true"], stdout=True))) == \
        grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: exec_(cri.ExecRequest(container_id=running, cmd=[], stdout=True))) == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: pods.client.Attach(cri.AttachRequest(container_id=exited, stdout=True))) == \
        grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(lambda: pods.client.PortForward(cri.PortForwardRequest(pod_sandbox_id="f" * 64, port=[80]))) == \
        grpc.StatusCode.NOT_FOUND


# ---- attach ----------------------------------------------------------------------------------------------------------

def test_attach_relays_stdin_and_stdout_of_the_main_process(pods):
    container = run_container(pods, ["cat"], stdin=True)
    with open_stream(attach_url(pods, container)) as ws:
        output: dict[int, bytes] = defaultdict(bytes)
        ws.send(bytes([STDIN]) + b"hello\n")
        assert read_until(ws, output, STDOUT, b"hello\n") == b"hello\n"
    assert pods.status(container).status.state == cri.CONTAINER_RUNNING  # detaching leaves it running


def test_stdin_once_closes_stdin_when_the_first_client_detaches(pods, tmp_path):
    sandbox = pods.run_sandbox(sandbox_config(log_directory=str(tmp_path)))
    container = run_container(pods, ["sh", "-c", "cat; echo done"], stdin=True, stdin_once=True, log_path="app.log",
                              sandbox=sandbox)
    with open_stream(attach_url(pods, container), [V4]) as ws:
        output: dict[int, bytes] = defaultdict(bytes)
        ws.send(bytes([STDIN]) + b"line\n")
        read_until(ws, output, STDOUT, b"line\n")
    assert pods.wait_exited(container).exit_code == 0
    log = (tmp_path / "app.log").read_text()
    assert "stdout F line" in log and "stdout F done" in log


@pytest.mark.kubemini_only(V5_ONLY)
def test_attach_ends_with_success_when_the_container_exits(pods):
    container = run_container(pods, ["sh", "-c", "cat; echo done"], stdin=True, stdin_once=True)
    with open_stream(attach_url(pods, container), [V5]) as ws:
        output: dict[int, bytes] = defaultdict(bytes)
        ws.send(bytes([STDIN]) + b"line\n")
        read_until(ws, output, STDOUT, b"line\n")
        ws.send(bytes([CLOSE, STDIN]))
        rest, status = drain(ws)
    assert output[STDOUT] + rest[STDOUT] == b"line\ndone\n"
    assert status == {"metadata": {}, "status": "Success"}


def test_attach_to_a_terminal_container_follows_resizes(pods):
    container = run_container(pods, ["sh"], stdin=True, tty=True)
    with open_stream(attach_url(pods, container, tty=True)) as ws:
        output: dict[int, bytes] = defaultdict(bytes)
        ws.send(resize(120, 40))
        deadline = time.monotonic() + 15
        while b"40 120" not in output[STDOUT]:
            assert time.monotonic() < deadline, output[STDOUT]
            ws.send(bytes([STDIN]) + b"stty size\n")
            try:
                message = ws.recv(timeout=0.5)
                output[message[0]] += message[1:]
            except TimeoutError:
                pass


def test_terminal_output_is_logged_as_stdout(pods, tmp_path):
    sandbox = pods.run_sandbox(sandbox_config(log_directory=str(tmp_path)))
    container = run_container(pods, ["sh", "-c", "echo hello-tty; tty"], tty=True, log_path="tty.log",
                              sandbox=sandbox)
    pods.wait_exited(container)
    lines = [line.split(" ", 3)[1:] for line in (tmp_path / "tty.log").read_text().splitlines()]
    assert lines[0][0] == "stdout" and lines[0][2].startswith("hello-tty")
    assert any(line[2].startswith("/dev/pts/") for line in lines)
    assert {line[0] for line in lines} == {"stdout"}


# ---- port-forward ----------------------------------------------------------------------------------------------------

def serve_http(pods, sandbox) -> None:
    """httpd on the pod's loopback only: reachable from inside its network namespace, nowhere else."""
    web = run_container(pods, ["sh", "-c", "mkdir -p /www && echo hello-pf > /www/index.html && "
                                           "exec httpd -f -p 127.0.0.1:8080 -h /www"], sandbox=sandbox)

    def answers():
        response = pods.client.ExecSync(cri.ExecSyncRequest(
            container_id=web, cmd=["wget", "-qO-", "http://127.0.0.1:8080/index.html"], timeout=5))
        return response.exit_code == 0

    wait_for(answers, timeout=10, message="httpd to answer inside the pod")


def test_port_forward_reaches_a_listener_on_the_pods_loopback(pods):
    sandbox = pods.run_sandbox()
    serve_http(pods, sandbox)
    url = pods.client.PortForward(cri.PortForwardRequest(pod_sandbox_id=sandbox[0], port=[8080])).url
    with open_stream(url, [V4]) as ws:
        port = struct.pack("<H", 8080)
        assert {ws.recv(timeout=10), ws.recv(timeout=10)} == {b"\x00" + port, b"\x01" + port}
        ws.send(b"\x00GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n")
        output, _ = drain(ws)
    assert output[0].startswith(b"HTTP/1.") and b" 200 " in output[0].split(b"\r\n")[0]
    assert output[0].endswith(b"\r\n\r\nhello-pf\n")
    assert not output[1]


def test_port_forward_to_a_closed_port_reports_on_the_error_channel(pods):
    sandbox = pods.run_sandbox()
    run_container(pods, ["sleep", "3600"], sandbox=sandbox)
    url = pods.client.PortForward(cri.PortForwardRequest(pod_sandbox_id=sandbox[0], port=[9])).url
    with open_stream(url, [V4]) as ws:
        output, _ = drain(ws)
    port = struct.pack("<H", 9)
    assert output[0] == port and output[1].startswith(port)
    error = output[1][2:].decode()
    assert error.startswith("error forwarding port 9 to pod") and "connection refused" in error.lower()


# ---- the token cache (in-process, no runtime) ------------------------------------------------------------------------

def test_tokens_are_single_use_expire_after_a_minute_and_are_limited():
    now = [0.0]
    cache = RequestCache(limit=2, clock=lambda: now[0])
    first, second = cache.insert("exec", "a"), cache.insert("attach", "b")
    with pytest.raises(ResourceExhausted):
        cache.insert("exec", "c")
    assert cache.consume(second, "exec") is None  # issued for another kind: refused, and spent anyway
    assert cache.consume(second, "attach") is None
    assert cache.consume(first, "exec") == "a"
    assert cache.consume(first, "exec") is None
    late, other = cache.insert("exec", "d"), cache.insert("exec", "e")
    now[0] += 59.9
    assert cache.consume(other, "exec") == "e"
    now[0] += 0.1
    assert cache.consume(late, "exec") is None
    assert cache.insert("exec", "f") and cache.insert("exec", "g")  # expired entries no longer count


def test_resize_messages_and_port_queries_are_parsed_leniently_but_safely():
    assert parse_resize(b'{"Width":80,"Height":24}{"Width":100,"Height":30}') == (100, 30)  # the last one wins
    assert [parse_resize(bad) for bad in (b"junk", b'{"Width":"80"}', b"[1]", b'{"Width":70000,"Height":1}')] == \
        [None] * 4
    assert query_ports("port=80&port=90,91&ports=7") == [80, 90, 91, 7]
    for bad in ("port=0", "port=65536", "ports=8080,", "port=http"):
        with pytest.raises(ValueError):
            query_ports(bad)


async def test_an_expired_url_is_not_found():
    now = [0.0]
    sandbox = SimpleNamespace(id="abc", state=SANDBOX_READY, netns="")
    server = StreamingServer(SimpleNamespace(get_sandbox=lambda _: sandbox), clock=lambda: now[0])
    await server.start()
    try:
        url = server.url_for("portforward", cri.PortForwardRequest(pod_sandbox_id="abc", port=[1]))
        assert url.startswith(f"http://127.0.0.1:{server.port}/portforward/")
        now[0] += 61
        with pytest.raises(InvalidStatus) as info:
            async with async_connect("ws://" + url.removeprefix("http://"), subprotocols=[V4]):
                pass
        assert info.value.response.status_code == 404
    finally:
        await server.stop()
