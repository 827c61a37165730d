"""Everything that is not a webhook goes from the front to the bot's process, as it came.

The front passes each request on over the bot's Unix socket (bodies streamed both ways) with who sent
it in `CLIENT_HEADER`, which it sets itself (a client cannot forge it: the front drops any copy it
receives). `ClientFromFront` in the bot's process puts that address back where the app reads it, so the
console's loopback checks judge the real client, not the socket.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

CLIENT_HEADER = b"x-whatsagent-client"

_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",  # the body is streamed on: aiohttp frames it again
        CLIENT_HEADER,
    }
)
_RESPONSE_DROPPED = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"upgrade"})


class Forward:
    """ASGI app of the front: the request to the bot's process at `socket`, and its answer back."""

    def __init__(self, socket: str) -> None:
        self.socket = socket
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=self.socket, limit=0),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1003})
            return
        request = Request(scope, receive)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k not in _HOP_BY_HOP]
        if scope.get("client"):
            headers.append((CLIENT_HEADER.decode(), f"{scope['client'][0]}:{scope['client'][1]}"))
        target = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        url = "http://whatsagent" + target.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
        try:
            async with self._client().request(
                scope["method"],
                url,
                headers=headers,
                data=_body(request) if has_body else None,
                allow_redirects=False,
            ) as answer:
                await send(
                    {
                        "type": "http.response.start",
                        "status": answer.status,
                        "headers": [(k, v) for k, v in answer.raw_headers if k.lower() not in _RESPONSE_DROPPED],
                    }
                )
                async for chunk in answer.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
        except ClientDisconnect:
            return
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            log.debug("the bot's process did not answer %s %s: %s", scope["method"], scope["path"], exc)
            answer_503 = PlainTextResponse("whatsagent is starting or restarting, retry later", status_code=503)
            try:
                await answer_503(scope, receive, send)
            except RuntimeError:
                pass  # the answer had started: the client sees the connection cut


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


class ClientFromFront:
    """ASGI middleware of the bot's process behind a front: the client address the front saw, restored
    for requests that came over the (private) Unix socket."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("client"):  # over the Unix socket: from the front
            for name, value in scope["headers"]:
                if name == CLIENT_HEADER:
                    host, _, port = value.decode("latin-1").rpartition(":")
                    scope = {**scope, "client": (host, int(port) if port.isdigit() else 0)}
                    break
        await self.app(scope, receive, send)
