"""Signed webhook delivery, the way Meta does it.

The body is compact JSON with non-ASCII characters and slashes escaped (`\\u00e9`, `https:\\/\\/`), as
Meta's PHP-encoded webhooks are: a bot that re-serialises before checking the signature fails here as it
would in production. The signature is `sha256=` + hex HMAC-SHA256 of those raw bytes with the app
secret (Cloud API docs, Create a webhook endpoint: https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/create-webhook-endpoint),
computed here with `hmac`, independent of the project's own code.
A delivery that is not answered 200 is retried with backoff (Cloud API docs, Webhooks: https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/overview).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

log = logging.getLogger(__name__)


def encode(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode()


def signature(raw: bytes, app_secret: str) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()


def timestamp() -> str:
    """Unix seconds as a string, as every webhook timestamp is."""
    return str(int(time.time()))


def envelope(
    waba_id: str,
    phone_number_id: str,
    display_phone_number: str,
    *,
    contacts: list[dict[str, Any]] | None = None,
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The `whatsapp_business_account` envelope around one `messages` change (Cloud API docs, Webhooks:
    https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/overview)."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": display_phone_number, "phone_number_id": phone_number_id},
    }
    if contacts:
        value["contacts"] = contacts
    if messages:
        value["messages"] = messages
    if statuses:
        value["statuses"] = statuses
    if errors:
        value["errors"] = errors
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{"value": value, "field": "messages"}]}],
    }


class WebhookPoster:
    """Posts signed webhooks to the bot over one pooled HTTP session."""

    def __init__(self, app_secret: str, *, timeout: float = 20.0) -> None:
        self.app_secret = app_secret
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256, force_close=False),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"User-Agent": "facebookexternalua"},
            )

    async def session(self) -> aiohttp.ClientSession:
        """The pooled session (opened on first use), for the emulator's other outbound calls."""
        await self.open()
        assert self._session is not None
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(
        self,
        url: str,
        raw: bytes,
        *,
        sign: bool | str = True,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, str]:
        """POST `raw` to `url`; return (HTTP status, body text), or (0, reason) when unreachable."""
        if self._session is None:
            await self.open()
        assert self._session is not None
        sent_headers = {"Content-Type": "application/json"}
        if sign is True:
            sent_headers["X-Hub-Signature-256"] = signature(raw, self.app_secret)
        elif isinstance(sign, str):
            sent_headers["X-Hub-Signature-256"] = sign
        if headers:
            sent_headers.update(headers)
        try:
            async with self._session.post(url, data=raw, headers=sent_headers) as resp:
                return resp.status, await resp.text()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.debug("webhook to %s failed: %r", url, exc)
            return 0, f"{type(exc).__name__}: {exc}"
