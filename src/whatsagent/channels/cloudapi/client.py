"""The Graph API calls whatsagent makes, over the process's one pooled aiohttp session: messages, media.

Nothing here knows about neutral messages; `channel.CloudAPI` builds the bodies (see `wire.py`). Every
refusal becomes a typed `GraphAPIError` (see `errors.py`); a network failure a retryable `SendError`.
Endpoints: https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/send-messages
and https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/media.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from whatsagent.channels.cloudapi.errors import graph_error
from whatsagent.errors import SendError

log = logging.getLogger(__name__)

SEND_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)


class GraphAPI:
    """One phone number's calls to the Graph API, authenticated with its bearer access token."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        access_token: str,
        api_base_url: str,
        api_version: str,
        phone_number_id: str,
    ) -> None:
        self.http = http
        self.authorization = {"Authorization": f"Bearer {access_token}"}
        self.json_headers = {**self.authorization, "Content-Type": "application/json"}
        self.base = f"{api_base_url}/{api_version}"
        self.phone_number_id = phone_number_id
        self.messages_url = f"{self.base}/{phone_number_id}/messages"

    async def post_message(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST a JSON body to the number's ``/messages`` (a send, a read receipt); the JSON answer."""
        return await self._post(
            self.messages_url, orjson.dumps(body), self.json_headers, "could not reach the Graph API", "answered 200"
        )

    async def _post(
        self, url: str, data: Any, headers: dict[str, str], unreachable: str, answered: str
    ) -> dict[str, Any]:
        """POST to the Graph API; its JSON answer. A refusal raises the channel's `SendError` (flags set
        from Meta's code); no answer, or one that is not JSON, is retryable."""
        try:
            async with self.http.post(url, data=data, headers=headers, timeout=SEND_TIMEOUT) as r:
                raw = await r.read()
                if r.status != 200:
                    raise graph_error(r.status, raw, r.headers.get("Retry-After"))
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SendError(f"{unreachable}: {exc or type(exc).__name__}", retryable=True) from exc
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise SendError(f"the Graph API {answered} with a body that is not JSON", retryable=True) from exc
        return answer if isinstance(answer, dict) else {}

    async def download(
        self, media_id: str, *, max_bytes: int, token_may_go_to: Callable[[str], bool]
    ) -> tuple[bytes, str]:
        """An inbound medium's bytes and MIME type: look up its short-lived URL, then fetch it, refusing
        more than `max_bytes`. The token goes with the fetch only where `token_may_go_to` allows."""
        try:
            async with self.http.get(
                f"{self.base}/{media_id}",
                params={"phone_number_id": self.phone_number_id},
                headers=self.authorization,
                timeout=SEND_TIMEOUT,
            ) as r:
                raw = await r.read()
                if r.status != 200:
                    raise graph_error(r.status, raw, r.headers.get("Retry-After"))
                info = orjson.loads(raw)
            size = info.get("file_size")
            if isinstance(size, int) and size > max_bytes:
                raise SendError(f"the medium is {size} bytes, more than the {max_bytes} allowed")
            # The URL lives 5 minutes and needs the same bearer token, which goes only to Meta's hosts.
            url = info["url"]
            headers = self.authorization if token_may_go_to(url) else {}
            if not headers:
                log.warning("the media URL's host is not one of Meta's: fetched without the access token")
            async with self.http.get(url, headers=headers, timeout=SEND_TIMEOUT) as r:
                if r.status != 200:
                    raise graph_error(r.status, await r.read())
                data = bytearray()
                async for chunk in r.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > max_bytes:
                        raise SendError(f"the medium is larger than the {max_bytes} bytes allowed")
                mime = info.get("mime_type") or r.headers.get("Content-Type", "application/octet-stream")
                return bytes(data), mime
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SendError(f"could not download the medium: {exc or type(exc).__name__}", retryable=True) from exc

    async def upload(self, data: bytes, mime_type: str, filename: str | None = None) -> str:
        """Upload a medium for sending; its media id."""
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", mime_type)
        form.add_field("file", data, content_type=mime_type, filename=filename or "file")
        answer = await self._post(
            f"{self.base}/{self.phone_number_id}/media",
            form,
            self.authorization,
            "could not upload the medium",
            "answered the upload",
        )
        media_id = answer.get("id")
        if not media_id:
            raise SendError("the Graph API accepted the upload but returned no media id")
        return str(media_id)
