"""The benchmarks' load generator (`benchmarks.loadgen`): every request sent once, its answer's status
reported, connections the server closes replaced, a request the server drops reported as an error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httptools
import pytest
from benchmarks import loadgen


class _Server(asyncio.Protocol):
    """An HTTP/1.1 server: `answer(body, n)` gives the raw answer to the n-th request on the connection
    (None: close without answering)."""

    def __init__(self, seen: list[bytes], answer: Callable[[bytes, int], bytes | None]) -> None:
        self.seen = seen
        self.answer = answer
        self.body = bytearray()
        self.count = 0
        self.parser = httptools.HttpRequestParser(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        body, self.body = bytes(self.body), bytearray()
        self.seen.append(body)
        self.count += 1
        raw = self.answer(body, self.count)
        if raw is None:
            self.transport.close()
            return
        self.transport.write(raw)
        if b"Connection: close" in raw:
            self.transport.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., asyncio.Future[int]]]:
    servers: list[asyncio.Server] = []

    async def start(seen: list[bytes], answer: Callable[[bytes, int], bytes | None]) -> int:
        server = await asyncio.get_running_loop().create_server(lambda: _Server(seen, answer), "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()
        await server.wait_closed()


def _requests(port: int, n: int) -> list[loadgen.Request]:
    return [
        loadgen.post(f"http://127.0.0.1:{port}/hook?x=1", f"body {i}".encode(), {"X-Test": "yes"}, i) for i in range(n)
    ]


async def test_every_request_is_sent_once_and_its_status_reported(serve) -> None:
    seen: list[bytes] = []

    def answer(body: bytes, _n: int) -> bytes:
        status = b"503 Service Unavailable" if body.endswith(b"7") else b"200 OK"
        return b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok"

    port = await serve(seen, answer)
    answers: dict[object, int] = {}
    await loadgen.closed_loop(
        "127.0.0.1", port, _requests(port, 50), 8, lambda r, status, _t, latency: answers.setdefault(r.key, status)
    )
    assert sorted(seen) == sorted(f"body {i}".encode() for i in range(50))
    assert answers == {i: 503 if str(i).endswith("7") else 200 for i in range(50)}


async def test_a_connection_the_server_closes_is_replaced(serve) -> None:
    seen: list[bytes] = []

    def answer(_body: bytes, n: int) -> bytes:
        # Every second answer on a connection closes it; the answers come chunked.
        close = b"Connection: close\r\n" if n % 2 == 0 else b""
        return b"HTTP/1.1 200 OK\r\n" + close + b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"

    port = await serve(seen, answer)
    statuses: list[int] = []
    await loadgen.closed_loop("127.0.0.1", port, _requests(port, 30), 3, lambda _r, s, _t, _l: statuses.append(s))
    assert statuses == [200] * 30
    assert len(seen) == 30


async def test_a_request_the_server_drops_is_an_error(serve) -> None:
    port = await serve([], lambda _body, n: None if n == 2 else b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(ConnectionError, match="closed the connection mid-request"):
        await loadgen.closed_loop("127.0.0.1", port, _requests(port, 5), 1, lambda *_: None)
