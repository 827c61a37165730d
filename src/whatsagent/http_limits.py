"""A size cap for request bodies outside the channels' webhooks (which cap their own): the operator API
(``/memories``, ``/messages/template``, ...) reads JSON of a few hundred bytes, so a body over
`OPERATOR_BODY_MAX` is answered 413 as soon as that is known, before it is read, authenticated or not."""

from __future__ import annotations

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

OPERATOR_BODY_MAX = 64 * 1024


class _TooLarge(Exception):
    pass


class BodyCap:
    """ASGI middleware: bodies of requests whose path does not start with one of `exempt` are capped."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = OPERATOR_BODY_MAX, exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        refuse = PlainTextResponse(f"request body over {self.max_bytes} bytes", status_code=413)
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await refuse(scope, receive, send)
                return
        received = 0
        started = False

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except _TooLarge:
            if not started:
                await refuse(scope, receive, send)
