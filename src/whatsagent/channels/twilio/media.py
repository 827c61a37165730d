"""Outbound media served by whatsagent itself, at signed URLs that expire.

Twilio sends media only by URL (`MediaUrl`) and fetches it when it sends, so a medium kept in whatsagent's
media store is published under ``{prefix}/media/{key}?expires=...&signature=...``. The signature is an
HMAC-SHA256 of the key and expiry with a key derived from the Auth Token: nobody can list the store or
stretch a link's life, and rotating the token revokes every link.

NEEDS THE MEDIA STORE: the route serves whatever object the OS attaches with `Twilio.use_media_store`; it
only calls ``await store.get(key) -> (bytes, info)`` (``info.mime_type``) and treats a `LookupError` as
"not stored", which is what `whatsagent.media.store.MediaStore` provides.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from typing import Any, Protocol
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

logger = logging.getLogger(__name__)


class MediaSource(Protocol):
    """The one call this route makes on the media store."""

    async def get(self, key: str) -> tuple[bytes, Any]: ...


class MediaLinks:
    """Signs and checks the URLs under which stored media are published."""

    def __init__(self, secret: str) -> None:
        # A key of its own, so a media link signature can never be replayed as a webhook signature.
        self._key = hmac.new(secret.encode(), b"whatsagent twilio media links", hashlib.sha256).digest()

    def sign(self, key: str, expires: int) -> str:
        return hmac.new(self._key, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def url(self, base: str, key: str, expires_in: float) -> str:
        """`base` is the public URL of the media route (``https://bot.example.com/twilio/media``)."""
        expires = int(time.time() + expires_in)
        return f"{base}/{quote(key, safe='')}?expires={expires}&signature={self.sign(key, expires)}"

    def check(self, key: str, expires: str | None, signature: str | None) -> str | None:
        """None when the link is good, else why not."""
        if not expires or not signature or not (expires.isascii() and expires.isdigit()):
            return "missing or malformed expires/signature"
        if not hmac.compare_digest(self.sign(key, int(expires)).encode(), signature.encode()):
            return "signature does not match"
        if int(expires) < time.time():
            return "link expired"
        return None

    async def serve(self, request: Request, store: MediaSource | None) -> Response:
        key = request.path_params["key"]
        problem = self.check(key, request.query_params.get("expires"), request.query_params.get("signature"))
        if problem:
            logger.info("media link refused: %s", problem)
            return PlainTextResponse(problem, status_code=410 if problem == "link expired" else 403)
        if store is None:
            logger.error("a signed media link was fetched but no media store is attached to the Twilio channel")
            return PlainTextResponse("media store unavailable", status_code=503)
        try:
            data, info = await store.get(key)
        except LookupError:
            return PlainTextResponse("no such medium", status_code=404)
        mime = getattr(info, "mime_type", None) or "application/octet-stream"
        headers = {"Cache-Control": "private, max-age=300", "Content-Length": str(len(data))}
        body = b"" if request.method == "HEAD" else data
        return Response(body, media_type=mime, headers=headers)
