"""StreamTransport (machinery.client.transport) against a tiny HTTP/1.1 server started in the test.

Covers body framing (Content-Length, chunked, until close), streaming as chunks arrive, keep-alive reuse,
reconnecting when the server closed a pooled connection, the pool limit, timeouts and error mapping.
HTTPS is out of scope here (it is asyncio's TLS under the same code; the end-to-end suites run TLS).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from machinery.client.transport import StreamTransport


class Server:
    """Answers by path; counts accepted connections and records requests."""

    def __init__(self) -> None:
        self.accepted = 0
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.release = asyncio.Event()  # /slow sends its second line once this is set
        self.drop_next = False  # close the connection on the next request, without answering
        self.close_after_response = False  # close kept-alive connections right after each response
        self.in_flight = 0
        self.max_in_flight = 0
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        self._server.close()
        for writer in list(self.writers):
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.writers.add(writer)
        try:
            while await self._one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        lines = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        method, target, _ = lines[0].split(" ")
        headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:] if line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append((method, target, headers, body))
        if self.drop_next:
            self.drop_next = False
            return False
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            keep = await self._answer(method, target, body, writer)
        finally:
            self.in_flight -= 1
        await writer.drain()
        return keep and not self.close_after_response

    async def _answer(self, method: str, target: str, body: bytes, writer: asyncio.StreamWriter) -> bool:
        path = target.split("?")[0]
        if path == "/chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Dup: 1\r\nX-Dup: 2\r\n\r\n"
                         b"2;ext=1\r\na\n\r\n" b"5\r\nbb\ncc\r\n" b"0\r\nTrailer: x\r\n\r\n")
        elif path == "/slow":  # a watch: one line, then the next only when the test says so
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nfirst\n\r\n")
            await writer.drain()
            await self.release.wait()
            writer.write(b"7\r\nsecond\n\r\n0\r\n\r\n")
        elif path == "/close":  # no length: the body ends with the connection
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
            return False
        elif path == "/http10":
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
            return False
        elif path == "/hang":
            await asyncio.sleep(3600)
        elif path == "/delay":
            await asyncio.sleep(0.05)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        elif path == "/nocontent":
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        elif path == "/garbage":
            writer.write(b"SPDY/9 banana\r\n\r\n")
            return False
        elif path == "/truncated":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
            return False
        else:  # echo
            out = f"{method} {target} ".encode() + body
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(out))
            if method != "HEAD":
                writer.write(out)
        return True


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    await srv.start()
    yield srv
    srv.release.set()
    await srv.stop()


def client_for(server: Server, **kwargs) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, transport=StreamTransport(**kwargs), timeout=5.0)


def idle_count(client: httpx.AsyncClient) -> int:
    return sum(len(pool.idle) for pool in client._transport._pools.values())  # type: ignore[attr-defined]


async def test_content_length_bodies_and_keep_alive_reuse(server):
    async with client_for(server) as client:
        for i in range(5):
            resp = await client.post("/echo", params={"i": i}, content=b'{"a":1}')
            assert resp.status_code == 200
            assert resp.text == f'POST /echo?i={i} {{"a":1}}'
            assert resp.headers["content-type"] == "text/plain"
        head = await client.head("/echo")
        assert head.status_code == 200 and head.content == b""
        no_content = await client.delete("/nocontent")
        assert no_content.status_code == 204 and no_content.content == b""
        assert (await client.get("/echo")).text == "GET /echo "
    assert server.accepted == 1  # every request went over the one kept-alive connection
    method, target, headers, body = server.requests[0]
    assert (method, target, body) == ("POST", "/echo?i=0", b'{"a":1}')
    assert headers["host"] == server.url.removeprefix("http://")
    assert headers["content-length"] == "7"


async def test_chunked_body_with_extensions_trailers_and_duplicate_headers(server):
    async with client_for(server) as client:
        resp = await client.get("/chunked")
        assert resp.text == "a\nbb\ncc"
        assert resp.headers.get_list("x-dup") == ["1", "2"]
        assert (await client.get("/echo")).status_code == 200
    assert server.accepted == 1  # the chunked response left the connection reusable


async def test_streams_chunks_as_they_arrive(server):
    async with client_for(server) as client, client.stream("GET", "/slow") as resp:
        lines = resp.aiter_lines()
        # the server holds the second line back until we have seen the first
        assert await asyncio.wait_for(anext(lines), 2) == "first"
        server.release.set()
        assert [line async for line in lines] == ["second"]


async def test_early_close_of_a_stream_does_not_pool_its_connection(server):
    async with client_for(server) as client:
        async with client.stream("GET", "/slow") as resp:
            assert await asyncio.wait_for(anext(resp.aiter_lines()), 2) == "first"
        assert idle_count(client) == 0
        assert (await client.get("/echo")).text == "GET /echo "  # on a new connection, not the half-read one
        assert server.accepted == 2


async def test_close_delimited_and_http10_bodies(server):
    async with client_for(server) as client:
        resp = await client.get("/close")
        assert resp.text == "until the end"
        assert idle_count(client) == 0
        resp = await client.get("/http10")
        assert resp.text == "ok" and resp.http_version == "HTTP/1.0"
        assert idle_count(client) == 0  # HTTP/1.0 without keep-alive: not reused
        assert (await client.get("/echo")).status_code == 200
    assert server.accepted == 3


async def test_reconnects_when_the_server_closed_an_idle_connection(server):
    server.close_after_response = True
    async with client_for(server) as client:
        for _ in range(3):
            assert (await client.get("/echo")).status_code == 200
            await asyncio.sleep(0.05)  # the server's close reaches us while the connection is idle
    assert server.accepted == 3


async def test_retries_once_when_a_reused_connection_was_closed_as_we_sent(server):
    async with client_for(server) as client:
        assert (await client.get("/echo")).status_code == 200
        server.drop_next = True  # the server closes the pooled connection on receiving the request
        resp = await client.post("/echo", content=b"x")
        assert resp.text == "POST /echo x"
    assert server.accepted == 2
    assert [r[0] for r in server.requests] == ["GET", "POST", "POST"]


async def test_no_retry_when_a_fresh_connection_fails(server):
    server.drop_next = True
    async with client_for(server) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/echo", content=b"x")
    assert len(server.requests) == 1  # a write is never repeated unless the connection was a reused one


async def test_pool_limits_connections_and_queues_requests(server):
    async with client_for(server, max_connections=2) as client:
        responses = await asyncio.gather(*(client.get("/delay") for _ in range(8)))
        assert all(r.text == "ok" for r in responses)
    assert server.accepted == 2
    assert server.max_in_flight == 2


async def test_pool_timeout(server):
    async with client_for(server, max_connections=1) as client, client.stream("GET", "/slow"):
        with pytest.raises(httpx.PoolTimeout):
            await client.get("/echo", timeout=httpx.Timeout(5.0, pool=0.1))


async def test_unbounded_pool(server):
    async with client_for(server, max_connections=None) as client:
        await asyncio.gather(*(client.get("/delay") for _ in range(5)))
    assert server.accepted == 5


async def test_connection_refused_is_a_connect_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncClient(transport=StreamTransport()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")


async def test_read_timeout_and_the_connection_is_not_reused(server):
    async with client_for(server) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/hang", timeout=httpx.Timeout(5.0, read=0.1))
        assert idle_count(client) == 0
        assert (await client.get("/echo")).status_code == 200
    assert server.accepted == 2


async def test_malformed_and_truncated_responses(server):
    async with client_for(server) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/garbage")
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/truncated")
        assert idle_count(client) == 0


async def test_aclose_closes_idle_and_streaming_connections(server):
    client = client_for(server)
    assert (await client.get("/echo")).status_code == 200
    async with client.stream("GET", "/slow") as resp:
        lines = resp.aiter_lines()
        assert await asyncio.wait_for(anext(lines), 2) == "first"
        await client._transport.aclose()
        with pytest.raises(httpx.TransportError):
            await asyncio.wait_for(anext(lines), 2)
    with pytest.raises(httpx.ConnectError):
        await client.get("/echo")
