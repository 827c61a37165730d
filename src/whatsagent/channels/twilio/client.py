"""Twilio's REST APIs over the process's one pooled aiohttp session: Messages, media, typing.

Nothing here knows about neutral messages; `channel.Twilio` builds the forms (see `wire.py`).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from whatsagent.channels.twilio.errors import retry_after, send_error
from whatsagent.errors import SendError

logger = logging.getLogger(__name__)

SEND_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10)
TYPING_TIMEOUT = aiohttp.ClientTimeout(total=5)
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=120, connect=10)


class TwilioAPI:
    """The calls whatsagent makes to Twilio, authenticated with HTTP Basic (account or API key)."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        account_sid: str,
        authorization: str,
        api_base_url: str,
        messaging_base_url: str,
    ) -> None:
        self.http = http
        self.headers = {"Authorization": authorization}
        self.messages_url = f"{api_base_url}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.typing_url = f"{messaging_base_url}/v2/Indicators/Typing.json"
        self._api_origin = _origin(api_base_url)

    async def create_message(self, form: Sequence[tuple[str, str]]) -> dict[str, Any]:
        """POST a Message; the created resource (its `sid` is the new message's id), or SendError."""
        try:
            async with self.http.post(
                self.messages_url, data=list(form), headers=self.headers, timeout=SEND_TIMEOUT
            ) as response:
                payload = await _json(response)
                if response.status >= 400:
                    raise send_error(response.status, payload, response.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # The send may or may not have reached Twilio; the Messages API has no idempotency key, so a
            # retry after a timeout can duplicate the message. Rare, and better than losing the reply.
            raise SendError(
                f"could not reach Twilio's Messages API: {exc.__class__.__name__}",
                retryable=True,
                details=str(exc),
            ) from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("sid"), str):
            raise SendError(
                "Twilio accepted the message but its answer has no sid",
                http_status=response.status,
                retryable=False,
                details=str(payload)[:200],
            )
        return payload

    async def indicate_typing(self, message_id: str) -> None:
        """Twilio's WhatsApp typing indicator (public beta): shows "typing…" and marks `message_id` read.
        It is cosmetic, so any failure is logged and swallowed."""
        form = [("messageId", message_id), ("channel", "whatsapp")]
        try:
            async with self.http.post(self.typing_url, data=form, headers=self.headers, timeout=TYPING_TIMEOUT) as r:
                if r.status >= 400:
                    body = (await r.text())[:200]
                    logger.info("Twilio typing indicator refused (HTTP %s): %s", r.status, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.info("Twilio typing indicator failed: %r", exc)

    async def fetch_media(self, url: str, *, max_bytes: int) -> tuple[bytes, str | None]:
        """GET an inbound medium, following redirects, refusing more than `max_bytes` while streaming.

        Credentials go only to Twilio's own API host; a redirect elsewhere (a short-lived signed URL) is
        followed without them, which aiohttp does on any cross-origin redirect.
        """
        headers = self.headers if _origin(url) == self._api_origin else None
        try:
            async with self.http.get(url, headers=headers, timeout=DOWNLOAD_TIMEOUT) as response:
                if response.status >= 400:
                    raise SendError(
                        f"could not download the medium: Twilio answered HTTP {response.status}",
                        http_status=response.status,
                        retryable=response.status == 429 or response.status >= 500,
                        retry_after=retry_after(response.headers.get("Retry-After")),
                    )
                length = response.content_length
                if length is not None and length > max_bytes:
                    raise SendError(f"the medium is {length} bytes, more than the {max_bytes} allowed")
                data = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > max_bytes:
                        raise SendError(f"the medium is larger than the {max_bytes} bytes allowed")
                mime = response.headers.get("Content-Type")
                return bytes(data), mime.split(";")[0].strip() if mime else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SendError(
                f"could not download the medium: {exc.__class__.__name__}", retryable=True, details=str(exc)
            ) from exc


async def _json(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except ValueError:
        return None


def basic_auth(username: str, password: str) -> str:
    """An HTTP Basic `Authorization` value (RFC 7617)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()
