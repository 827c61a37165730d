"""A closed-loop HTTP/1.1 load generator lean enough that the server, not the driver, is what is measured.

aiohttp's client costs 0.25–0.45 ms of CPU per request on this machine (building the request, its
response object, the session's bookkeeping; signing the body too, as the benchmarks did). With 200
connections in flight that makes the driver the bottleneck: against a server that does nothing but
answer 200 it measured ack p50 37–80 ms and p99 84–144 ms at 2,100–4,100 requests a second, so a
server answering within 50 ms could not be told from one answering within 100. This driver, same
server, same run: p99 5–8 ms at 15,000–19,000 requests a second, 0.05–0.07 ms of CPU per request.

Here each connection is an `asyncio.Protocol` that writes a request prepared before the clock starts
(signed, framed, ``Content-Length`` set: signing is the sender's work, not the server's) and parses the
answer with httptools (the C parser uvicorn uses). A connection keeps alive until the server closes
it, then reconnects. ``python -m benchmarks driver`` measures it alone (and aiohttp's client) against a
server that answers at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools


@dataclass(frozen=True)
class Request:
    """One prepared POST: the bytes to write and what the driver calls it."""

    key: object
    raw: bytes


def post(url: str, body: bytes, headers: dict[str, str], key: object) -> Request:
    """A keep-alive POST of `body` to `url` with `headers`, framed once."""
    parts = urlsplit(url)
    lines = [
        f"POST {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return Request(key, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: asyncio.Future[int] | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self.keep_alive = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.keep_alive = False
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError(f"the server closed the connection mid-request: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    # httptools callbacks
    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(self.parser.get_status_code())

    async def send(self, raw: bytes) -> int:
        self.answer = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(raw)
        return await self.answer


async def closed_loop(
    host: str,
    port: int,
    requests: Sequence[Request],
    connections: int,
    on_answer: Callable[[Request, int, float, float], None],
) -> None:
    """Send `requests` in order over `connections` connections, each sending its next as soon as the last is
    answered. `on_answer(request, status, sent_at, latency)` is called for each (monotonic seconds)."""
    loop = asyncio.get_running_loop()
    queue = list(reversed(requests))

    async def connect() -> _Connection:
        _, protocol = await loop.create_connection(_Connection, host, port)
        return protocol

    async def worker() -> None:
        conn: _Connection | None = None
        try:
            while queue:
                request = queue.pop()
                if conn is None or not conn.keep_alive:
                    if conn is not None and conn.transport is not None:
                        conn.transport.close()
                    conn = await connect()
                started = time.monotonic()
                status = await conn.send(request.raw)
                on_answer(request, status, started, time.monotonic() - started)
        finally:
            if conn is not None and conn.transport is not None:
                conn.transport.close()

    await asyncio.gather(*(worker() for _ in range(connections)))


def main() -> None:
    """The driver against a server that answers at once, with aiohttp's client for comparison."""
    import hashlib
    import hmac
    import multiprocessing
    import statistics

    import aiohttp

    from benchmarks.webhooks import signed_text

    def percentile(values: list[float], q: int) -> float:
        return statistics.quantiles(values, n=100)[q - 1] * 1000

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_null_server, args=(child,), daemon=True)
    server.start()
    port = parent.recv()
    url = f"http://127.0.0.1:{port}/webhook"
    bodies = [signed_text("s", "1", f"1555{u:07d}", f"wamid.{u}.{k}", f"m{k}") for k in range(5) for u in range(200)]
    signatures = ["sha256=" + hmac.new(b"s", b, hashlib.sha256).hexdigest() for b in bodies]

    async def lean() -> tuple[list[float], float, float]:
        acks: list[float] = []
        pairs = enumerate(zip(bodies, signatures, strict=True))
        prepared = [post(url, body, {"X-Hub-Signature-256": signature}, i) for i, (body, signature) in pairs]
        t0, c0 = time.monotonic(), time.process_time()
        await closed_loop("127.0.0.1", port, prepared, 200, lambda _r, _s, _t, latency: acks.append(latency))
        return acks, time.monotonic() - t0, time.process_time() - c0

    async def with_aiohttp() -> tuple[list[float], float, float]:
        acks: list[float] = []
        work = list(zip(bodies, signatures, strict=True))
        work.reverse()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as http:

            async def worker() -> None:
                while work:
                    body, signature = work.pop()
                    t = time.monotonic()
                    async with http.post(url, data=body, headers={"X-Hub-Signature-256": signature}) as r:
                        await r.read()
                    acks.append(time.monotonic() - t)

            t0, c0 = time.monotonic(), time.process_time()
            await asyncio.gather(*(worker() for _ in range(200)))
            return acks, time.monotonic() - t0, time.process_time() - c0

    try:
        print("1,000 signed webhooks on 200 connections against a server answering at once:")
        for name, run in (("aiohttp client", with_aiohttp), ("this driver", lean)) * 3:
            acks, elapsed, cpu = asyncio.run(run())
            print(
                f"  {name:>15}: {len(acks) / elapsed:6,.0f} req/s, ack p50 {percentile(acks, 50):5.1f} ms, "
                f"p99 {percentile(acks, 99):5.1f} ms, driver CPU {cpu * 1000 / len(acks):.3f} ms per request"
            )
    finally:
        server.terminate()


def _null_server(conn: object) -> None:
    """A raw asyncio HTTP server answering every request 200 at once (its own process)."""

    class Answer(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_message_complete(self) -> None:
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")  # type: ignore[attr-defined]

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", 0, backlog=1024)
        conn.send(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        await asyncio.Event().wait()

    asyncio.run(main())


if __name__ == "__main__":
    main()
