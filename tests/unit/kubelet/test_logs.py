"""The kubelet's CRI log reader and its /containerLogs route (fake runtime, temp files, fake clock)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from kubelet.cri import labels
from kubelet.server import KubeletServer, logs
from kubelet.server.logs import (
    LogFile,
    LogOptions,
    format_rfc3339_nano,
    log_options_from_query,
    parse_record,
    parse_rfc3339_ns,
    stream_log,
)
from machinery.clock import FakeClock
from proto.cri import api_pb2 as cri

T0 = parse_rfc3339_ns("2026-01-01T00:00:00Z")


def record(second: float, text: str, stream: str = "stdout", tag: str = "F") -> str:
    ns = T0 + int(second * 1_000_000_000)
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = format_rfc3339_nano(seconds * 1_000_000_000)[:-1] + f".{fraction:09d}Z"  # as runtimes write: 9 digits
    return f"{stamp} {stream} {tag} {text}\n"


def write(path: Path, *records: str, mode: str = "a") -> None:
    with open(path, mode) as f:
        f.write("".join(records))


async def read_all(path: Path, **options) -> bytes:
    return b"".join([chunk async for chunk in stream_log(LogFile(str(path)), LogOptions(**options))])


# ---- parsing -----------------------------------------------------------------------------------------------------


def test_parse_record_full_partial_and_empty():
    full = parse_record(b"2026-01-01T00:00:01.500000000Z stdout F hello world")
    assert (full.timestamp_ns, full.stream, full.partial, full.content) == (T0 + 1_500_000_000, "stdout", False,
                                                                            b"hello world")
    assert parse_record(b"2026-01-01T00:00:01Z stderr P part").partial
    assert parse_record(b"2026-01-01T00:00:01Z stdout F ").content == b""
    assert parse_record(b"2026-01-01T00:00:01Z stdout F").content == b""


@pytest.mark.parametrize("line", [b"", b"garbage", b"2026-01-01T00:00:01Z stdin F x", b"yesterday stdout F x",
                                  b"2026-01-01T00:00:01Z stdout X x", b"2026-13-01T00:00:01Z stdout F x"])
def test_parse_record_rejects_what_is_not_a_record(line):
    with pytest.raises(ValueError):
        parse_record(line)


def test_rfc3339_round_trip_and_offsets():
    assert parse_rfc3339_ns("2026-01-01T01:00:00+01:00") == T0
    assert parse_rfc3339_ns("2025-12-31T23:30:00-00:30") == T0
    assert format_rfc3339_nano(T0) == "2026-01-01T00:00:00Z"
    assert format_rfc3339_nano(T0 + 120_000_000) == "2026-01-01T00:00:00.12Z"  # Go's RFC3339Nano drops zeros
    assert format_rfc3339_nano(T0 + 1) == "2026-01-01T00:00:00.000000001Z"


def test_log_options_from_query():
    now = T0 + 100 * 1_000_000_000
    opts = log_options_from_query({"follow": "true", "tailLines": "3", "sinceSeconds": "10", "limitBytes": "5",
                                   "timestamps": "1", "previous": "false"}, now)
    assert opts == LogOptions(follow=True, previous=False, timestamps=True, tail_lines=3,
                              since_ns=now - 10 * 1_000_000_000, limit_bytes=5)
    assert log_options_from_query({"sinceTime": "2026-01-01T00:00:05Z"}, now).since_ns == T0 + 5_000_000_000


@pytest.mark.parametrize("query, message", [
    ({"tailLines": "-1"}, "tailLines: Invalid value: -1: must be greater than or equal to 0"),
    ({"tailLines": str(2**63)}, f'invalid value for tailLines: "{2**63}" is out of range'),
    ({"limitBytes": str(2**64)}, "limitBytes.*out of range"),
    ({"sinceSeconds": str(-2**63 - 1)}, "sinceSeconds.*out of range"),
    ({"limitBytes": "0"}, "limitBytes: Invalid value: 0: must be greater than 0"),
    ({"sinceSeconds": "x"}, 'invalid value for sinceSeconds: "x" is not an integer'),
    ({"sinceSeconds": "1", "sinceTime": "2026-01-01T00:00:00Z"}, "at most one of `sinceTime` or `sinceSeconds`"),
    ({"sinceTime": "yesterday"}, "is not an RFC3339 time"),
    ({"follow": "maybe"}, 'invalid value for follow: "maybe" is not a boolean'),
])
def test_log_options_errors_name_the_field(query, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        log_options_from_query(query, T0)


# ---- reading -----------------------------------------------------------------------------------------------------


async def test_partial_records_are_joined_per_stream(tmp_path):
    path = tmp_path / "0.log"
    write(path, record(1, "hel", tag="P"), record(1.1, "oops", "stderr"), record(1.2, "lo"),
          "not a record\n", record(2, "tail without newline", tag="P"))
    assert await read_all(path) == b"oops\nhello\ntail without newline"


async def test_timestamps_prefix_each_line_with_its_first_records_time(tmp_path):
    path = tmp_path / "0.log"
    write(path, record(1.5, "a", tag="P"), record(2, "b"), record(3, "c"))
    assert await read_all(path, timestamps=True) == (b"2026-01-01T00:00:01.5Z ab\n"
                                                     b"2026-01-01T00:00:03Z c\n")


async def test_tail_since_and_limit(tmp_path):
    path = tmp_path / "0.log"
    write(path, *(record(i, f"line {i}") for i in range(10)))
    assert await read_all(path, tail_lines=2) == b"line 8\nline 9\n"
    assert await read_all(path, tail_lines=0) == b""
    assert await read_all(path, since_ns=T0 + 7 * 1_000_000_000) == b"line 7\nline 8\nline 9\n"
    assert await read_all(path, since_ns=T0 + 5 * 1_000_000_000, tail_lines=1) == b"line 9\n"
    assert await read_all(path, limit_bytes=10) == b"line 0\nlin"
    assert await read_all(path, tail_lines=3, limit_bytes=9) == b"line 7\nli"


async def test_tail_counts_joined_lines(tmp_path):
    path = tmp_path / "0.log"
    write(path, record(1, "first"), record(2, "sec", tag="P"), record(3, "ond"))
    assert await read_all(path, tail_lines=1) == b"second\n"


async def test_tail_reads_backwards_from_the_end_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "READ_CHUNK", 64)  # records straddle chunk boundaries
    monkeypatch.setattr(logs, "PARTIAL_GAP_LIMIT", 512)  # stderr's earlier partial is searched for this far back
    path = tmp_path / "0.log"
    write(path, *(record(i, f"line {i}") for i in range(500)),
          record(500, "long ", "stderr", tag="P"), *(record(501 + i, f"out {i}") for i in range(3)),
          record(504, "error", "stderr"), record(505, "open", tag="P"), "2026-01-01T00:09:00Z std")
    reads = []
    real_read = LogFile.read
    monkeypatch.setattr(LogFile, "read", lambda self: reads.append(1) or real_read(self))
    assert await read_all(path, tail_lines=2) == b"long error\nopen"  # the open line, flushed, counts
    assert len(reads) < 10  # the forward read starts near the end, not at line 0
    assert await read_all(path, tail_lines=5) == b"out 0\nout 1\nout 2\nlong error\nopen"
    assert await read_all(path, tail_lines=0) == b""
    assert (await read_all(path, tail_lines=10**6)).startswith(b"line 0\n")  # more than the file holds


class Follower:
    """Runs stream_log with follow in a task; the test drives the fake clock and the container's state."""

    def __init__(self, path: Path, **options) -> None:
        self.clock = FakeClock()
        self.running = True
        self.output = bytearray()
        self.task = asyncio.create_task(self._collect(path, options))

    async def _is_running(self) -> bool:
        return self.running

    async def _collect(self, path: Path, options) -> None:
        chunks = stream_log(LogFile(str(path)), LogOptions(follow=True, **options), running=self._is_running,
                            clock=self.clock)
        async for chunk in chunks:
            self.output += chunk

    async def tick(self, seconds: float = 0.25) -> None:
        for _ in range(5):
            await asyncio.sleep(0)
        self.clock.advance(seconds)
        for _ in range(5):
            await asyncio.sleep(0)


async def test_follow_streams_new_lines_until_the_container_exits(tmp_path):
    path = tmp_path / "0.log"
    write(path, record(1, "one"))
    follower = Follower(path)
    await follower.tick()
    assert bytes(follower.output) == b"one\n"
    write(path, record(2, "two"), record(3, "thr", tag="P"))
    await follower.tick()
    assert bytes(follower.output) == b"one\ntwo\n"
    write(path, record(4, "ee"))
    follower.running = False
    write(path, record(5, "last words"))
    for _ in range(8):
        await follower.tick()
    assert follower.task.done()
    assert bytes(follower.output) == b"one\ntwo\nthree\nlast words\n"


async def test_follow_from_the_tail_keeps_a_record_still_being_written(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "PARTIAL_GAP_LIMIT", 128)  # the backward scan stops well before the file's start
    path = tmp_path / "0.log"
    write(path, *(record(i, f"old {i}") for i in range(20)))
    half = record(30, "new line")
    write(path, half[:-6])  # the runtime is in the middle of writing this record
    follower = Follower(path, tail_lines=0)
    await follower.tick()
    write(path, half[-6:])
    await follower.tick()
    assert bytes(follower.output) == b"new line\n"
    follower.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await follower.task


async def test_follow_keeps_polling_while_running(tmp_path):
    path = tmp_path / "0.log"
    write(path, record(1, "one"))
    follower = Follower(path)
    for _ in range(20):
        await follower.tick()
    assert not follower.task.done()
    follower.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await follower.task


async def test_follow_moves_to_the_reopened_file_after_rotation(tmp_path):
    path = tmp_path / "0.log"
    write(path, record(1, "old"))
    follower = Follower(path, tail_lines=5)
    await follower.tick()
    write(path, record(2, "old, last before rotation"))
    os.rename(path, tmp_path / "0.log.20260101-000002")
    await follower.tick()
    write(path, record(3, "new"))  # the runtime reopened the path
    await follower.tick()
    follower.running = False
    for _ in range(8):
        await follower.tick()
    assert follower.task.done()
    assert bytes(follower.output) == b"old\nold, last before rotation\nnew\n"


async def test_follow_with_limit_bytes_ends_at_the_limit(tmp_path):
    path = tmp_path / "0.log"
    write(path, record(1, "abc"))
    follower = Follower(path, limit_bytes=6)
    await follower.tick()
    write(path, record(2, "defgh"))
    await follower.tick()
    await follower.tick()
    assert follower.task.done()
    assert bytes(follower.output) == b"abc\nde"


# ---- the /containerLogs route ------------------------------------------------------------------------------------


POD = {"metadata": {"name": "web", "namespace": "ns", "uid": "uid-1"},
       "spec": {"containers": [{"name": "app"}, {"name": "side"}]},
       "status": {"containerStatuses": [{"name": "side", "state": {"waiting": {"reason": "ContainerCreating"}}}]}}


class FakeRuntime:
    """list_containers/container_status over a dict of containers with their log paths."""

    def __init__(self) -> None:
        self.containers: dict[str, tuple[cri.Container, str]] = {}

    def add(self, cid: str, name: str, attempt: int, log_path: str, state=cri.CONTAINER_EXITED) -> None:
        container = cri.Container(id=cid, metadata=cri.ContainerMetadata(name=name, attempt=attempt), state=state,
                                  labels={labels.POD_UID: "uid-1", labels.CONTAINER_NAME: name})
        self.containers[cid] = (container, log_path)

    async def list_containers(self, selector=None, *, sandbox_id=""):
        return [c for c, _ in self.containers.values()
                if all(c.labels.get(k) == v for k, v in (selector or {}).items())]

    async def container_status(self, cid):
        container, log_path = self.containers[cid]
        return cri.ContainerStatus(id=cid, metadata=container.metadata, state=container.state, log_path=log_path)


@pytest.fixture
def kubelet(tmp_path):
    runtime = FakeRuntime()
    for attempt, text in ((0, "first run"), (1, "second run")):
        write(tmp_path / f"{attempt}.log", record(attempt, text))
        runtime.add(f"c{attempt}", "app", attempt, str(tmp_path / f"{attempt}.log"))
    server = KubeletServer(runtime, lambda ns, name: POD if (ns, name) == ("ns", "web") else None,
                           registry=CollectorRegistry(), all_pods=lambda: [POD], clock=FakeClock())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=server), base_url="http://kubelet")


async def test_container_logs_current_and_previous(kubelet):
    async with kubelet as client:
        current = await client.get("/containerLogs/ns/web/app")
        assert (current.status_code, current.text) == (200, "second run\n")
        assert current.headers["content-type"].startswith("text/plain")
        previous = await client.get("/containerLogs/ns/web/app", params={"previous": "true", "timestamps": "true"})
        assert previous.text == "2026-01-01T00:00:00Z first run\n"


@pytest.mark.parametrize("path, params, status, message", [
    ("/containerLogs/ns/nope/app", {}, 404, 'pod "ns/nope" does not exist'),
    ("/containerLogs/ns/web/db", {}, 400, "container db is not valid for pod web"),
    ("/containerLogs/ns/web/side", {}, 400, 'container "side" in pod "web" is waiting to start: ContainerCreating'),
    ("/containerLogs/ns/web/side", {"previous": "1"}, 400, 'previous terminated container "side" in pod "web" '
                                                          "not found"),
    ("/containerLogs/ns/web/app", {"tailLines": "-2"}, 400, "tailLines: Invalid value: -2"),
])
async def test_container_logs_errors(kubelet, path, params, status, message):
    async with kubelet as client:
        response = await client.get(path, params=params)
    assert response.status_code == status
    assert message in response.text


async def test_pods_health_and_plain_http_exec(kubelet):
    async with kubelet as client:
        pods = (await client.get("/pods")).json()
        assert (pods["kind"], [p["metadata"]["name"] for p in pods["items"]]) == ("PodList", ["web"])
        assert (await client.get("/healthz")).text == "ok"
        assert (await client.get("/healthz/ping")).text == "ok"
        assert (await client.get("/metrics")).status_code == 200
        exec_ = await client.post("/exec/ns/web/app", params={"command": "ls", "stdout": "1"})
        assert exec_.status_code == 400 and "WebSocket" in exec_.text
