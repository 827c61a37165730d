"""Reading a webhook body before anyone knows who sent it, within bounds.

A signature can only be checked on the whole body, so every webhook is read before it is trusted. Three
bounds keep that cheap for a stranger: the channel's size cap (a declared ``Content-Length`` over it is
refused before a byte is read), a deadline for the whole body (`BODY_TIMEOUT`, so a client trickling one
byte at a time cannot hold a slot for ever), and a budget for all bodies being read at once in this
process for large bodies (`BODY_BUDGET`, so 300 connections each sending 3 MB minus one byte hold at
most the budget, not a gigabyte; past it a large body is told 503 and Meta or Twilio retry it later,
while ordinary webhooks of a few KB still go through). A client that goes away
mid-body is logged at DEBUG: that is the network, not an error.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response

log = logging.getLogger(__name__)

BODY_TIMEOUT = 20.0
"""Seconds to receive a whole webhook body. Meta and Twilio send theirs in milliseconds."""

BODY_BUDGET = 48 * 1024 * 1024
"""Bytes of large webhook bodies held at once, unauthenticated, across the process (16 of Meta's
largest). Only what a body holds past its first `SMALL_BODY` bytes counts, so real webhooks, a few KB
each, are never refused because someone is holding big ones (the number of connections bounds them)."""

SMALL_BODY = 64 * 1024


class BodyRefused(Exception):
    """The body was not read: `response` says why (413, 408, 503), or None when the client left."""

    def __init__(self, response: Response | None, reason: str) -> None:
        super().__init__(reason)
        self.response = response


class _Budget:
    held = 0


def declared_length(request: Request) -> int | None:
    """``Content-Length`` as a number, or None when absent or not plain ASCII digits."""
    value = request.headers.get("content-length", "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


async def read_body(request: Request, limit: int, *, timeout: float | None = None) -> bytes:
    """The raw body, at most `limit` bytes, within `timeout` seconds (default `BODY_TIMEOUT`).
    Raises `BodyRefused`."""
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise BodyRefused(PlainTextResponse("payload too large", status_code=413), "over the size limit")
    body = bytearray()
    try:
        async with asyncio.timeout(BODY_TIMEOUT if timeout is None else timeout):
            async for chunk in request.stream():
                if len(body) + len(chunk) > limit:
                    raise BodyRefused(PlainTextResponse("payload too large", status_code=413), "over the size limit")
                counted = max(0, len(body) + len(chunk) - SMALL_BODY) - max(0, len(body) - SMALL_BODY)
                if counted and _Budget.held + counted > BODY_BUDGET:
                    log.warning("webhook body refused: %d bytes of large bodies are being read", _Budget.held)
                    raise BodyRefused(PlainTextResponse("busy, retry later", status_code=503), "over the budget")
                _Budget.held += counted
                body += chunk
    except TimeoutError:
        log.info("webhook body not received within %gs: closed", BODY_TIMEOUT if timeout is None else timeout)
        raise BodyRefused(PlainTextResponse("request body timed out", status_code=408), "timed out") from None
    except ClientDisconnect:
        log.debug("client disconnected while sending a webhook body (%d bytes received)", len(body))
        raise BodyRefused(None, "client disconnected") from None
    finally:
        _Budget.held -= max(0, len(body) - SMALL_BODY)
    return bytes(body)


def refused_answer(error: BodyRefused) -> Response:
    """What to answer for a refused body (a client that left gets an empty 400 it never reads)."""
    return error.response if error.response is not None else Response(status_code=400)
