"""Meta's WhatsApp Cloud API: webhooks in (verified, parsed at the edge), Graph API sends out."""

from __future__ import annotations

import hmac
import logging
import os
import time
from typing import Any

import aiohttp
import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from yarl import URL

from whatsagent.channels.base import Accept, Channel
from whatsagent.channels.body import BodyRefused, read_body, refused_answer
from whatsagent.channels.cloudapi import signature
from whatsagent.channels.cloudapi.errors import GraphAPIError, graph_error
from whatsagent.channels.cloudapi.parse import PartlyMalformed, parse_webhook
from whatsagent.channels.cloudapi.wire import body_for, recipient
from whatsagent.errors import ConfigurationError, MalformedWebhook, SendError, StoreUnavailable
from whatsagent.media.store import MediaNotFound, MediaStore
from whatsagent.messages import Media, User
from whatsagent.messages.outbound import MediaOut, OutboundMessage, SendResult
from whatsagent.privacy import shorten

__all__ = ["CloudAPI", "GraphAPIError"]

log = logging.getLogger(__name__)

DEFAULT_API_BASE_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v25.0"
# Meta's largest webhook payload is 3 MB (reference §1.1); anything bigger is not from Meta.
MAX_WEBHOOK_BYTES = 3 * 1024 * 1024
WEBHOOK_OBJECT = "whatsapp_business_account"
SEND_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)
UPLOAD_REUSE_SECONDS = 24 * 3600
MEDIA_HOSTS = ("lookaside.fbsbx.com", ".fbcdn.net")
"""Where Meta serves media from (a leading dot: any subdomain). The access token goes with a media
download only to these hosts over HTTPS, or to the Graph API base URL itself (the emulator, a proxy)."""


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


class CloudAPI(Channel):
    """A WhatsApp business number on Meta's Cloud API.

    Every setting comes from its argument or, when omitted, from a ``WHATSAPP_*`` environment variable:
    ``WHATSAPP_ACCESS_TOKEN``, ``WHATSAPP_PHONE_NUMBER_ID``, ``WHATSAPP_VERIFY_TOKEN``,
    ``WHATSAPP_APP_SECRET``, ``WHATSAPP_API_BASE_URL`` (default Meta's Graph API; point it at the
    emulator to develop locally), ``WHATSAPP_API_VERSION``, ``WHATSAPP_MEDIA_HOSTS`` (comma-separated
    hosts the access token may go to for media downloads; default `MEDIA_HOSTS`).

    Signature checks are on. ``verify_signatures=False`` (or ``WHATSAPP_SKIP_SIGNATURE_VALIDATION=true``)
    turns them off for local development only, and says so loudly in the logs.
    """

    provider = "cloudapi"

    def __init__(
        self,
        *,
        agent: Any = None,
        access_token: str | None = None,
        phone_number_id: str | None = None,
        verify_token: str | None = None,
        app_secret: str | None = None,
        api_base_url: str | None = None,
        api_version: str | None = None,
        prefix: str = "/whatsapp",
        name: str | None = None,
        verify_signatures: bool | None = None,
        max_body_bytes: int = MAX_WEBHOOK_BYTES,
        media_hosts: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__(agent=agent, name=name, prefix=prefix)
        self.access_token = access_token or _env("WHATSAPP_ACCESS_TOKEN")
        self.phone_number_id = phone_number_id or _env("WHATSAPP_PHONE_NUMBER_ID")
        self.verify_token = verify_token or _env("WHATSAPP_VERIFY_TOKEN")
        self.app_secret = app_secret or _env("WHATSAPP_APP_SECRET")
        self.api_base_url = (api_base_url or _env("WHATSAPP_API_BASE_URL") or DEFAULT_API_BASE_URL).rstrip("/")
        self.api_version = api_version or _env("WHATSAPP_API_VERSION") or DEFAULT_API_VERSION
        if verify_signatures is None:
            skip = (_env("WHATSAPP_SKIP_SIGNATURE_VALIDATION") or "").lower() in ("1", "true", "yes")
            verify_signatures = not skip
        self.verify_signatures = verify_signatures
        self.max_body_bytes = max_body_bytes
        configured = _env("WHATSAPP_MEDIA_HOSTS")
        self.media_hosts = media_hosts or (
            tuple(h.strip().lower() for h in configured.split(",") if h.strip()) if configured else MEDIA_HOSTS
        )
        self._http: aiohttp.ClientSession | None = None
        self._headers: dict[str, str] = {}
        self.media_store: MediaStore | None = None
        self._uploaded: dict[str, tuple[str, float]] = {}

    @property
    def account(self) -> str:
        return self.phone_number_id or "unconfigured"

    @property
    def messages_url(self) -> str:
        return f"{self.api_base_url}/{self.api_version}/{self.phone_number_id}/messages"

    def validate(self) -> None:
        missing = [
            env
            for env, value in (
                ("WHATSAPP_ACCESS_TOKEN", self.access_token),
                ("WHATSAPP_PHONE_NUMBER_ID", self.phone_number_id),
                ("WHATSAPP_VERIFY_TOKEN", self.verify_token),
            )
            if not value
        ]
        if self.verify_signatures and not self.app_secret:
            missing.append("WHATSAPP_APP_SECRET")
        if missing:
            raise ConfigurationError(
                f"WhatsApp channel {self.name!r} is missing {', '.join(missing)}: pass "
                + ", ".join(m.removeprefix("WHATSAPP_").lower() + "=" for m in missing)
                + " to CloudAPI(...) or set the environment variable"
                + ("s" if len(missing) > 1 else "")
                + ". They are in your Meta app: WhatsApp > API Setup (token, phone number id) and "
                "App Settings > Basic (app secret); the verify token is any string you also enter "
                "in the webhook configuration."
            )
        if not self.api_base_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"WHATSAPP_API_BASE_URL {self.api_base_url!r} must be an http(s) URL")
        if not self.verify_signatures:
            log.warning(
                "SIGNATURE CHECKS ARE OFF for WhatsApp channel %r: anyone who can reach %s/webhook can "
                "make the bot talk. Use this for local development only.",
                self.name,
                self.prefix,
            )

    # -- inbound ------------------------------------------------------------------------------------

    def routes(self, accept: Accept) -> list[BaseRoute]:
        async def verify(request: Request) -> Response:
            q = request.query_params
            mode, token, challenge = q.get("hub.mode"), q.get("hub.verify_token"), q.get("hub.challenge")
            if mode != "subscribe" or not token or not self.verify_token:
                return PlainTextResponse("expected hub.mode=subscribe and hub.verify_token", status_code=403)
            if not hmac.compare_digest(token.encode(), self.verify_token.encode()):
                log.warning("webhook verification for %r refused: the verify token does not match", self.name)
                return PlainTextResponse("verify token does not match", status_code=403)
            if challenge is None:
                return PlainTextResponse("hub.challenge is missing", status_code=400)
            return PlainTextResponse(challenge)

        async def receive(request: Request) -> Response:
            try:
                raw = await read_body(request, self.max_body_bytes)
            except BodyRefused as refused:
                return refused_answer(refused)
            if self.verify_signatures:
                header = request.headers.get("x-hub-signature-256")
                if not header:
                    return PlainTextResponse("missing X-Hub-Signature-256", status_code=401)
                if not signature.is_valid(self.app_secret or "", raw, header):
                    log.warning("webhook for %r refused: bad signature", self.name)
                    return PlainTextResponse("signature does not match", status_code=403)
            if not raw:
                return PlainTextResponse("empty body: expected a JSON webhook", status_code=400)
            try:
                payload = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                return PlainTextResponse(f"body is not JSON: {exc}", status_code=400)
            if not isinstance(payload, dict):
                return PlainTextResponse(
                    f"webhook body must be a JSON object, got {type(payload).__name__}", status_code=400
                )
            if payload.get("object") != WEBHOOK_OBJECT:
                # Not WhatsApp traffic (another product's subscription): acknowledge and ignore.
                return PlainTextResponse("ignored")
            malformed: MalformedWebhook | None = None
            try:
                events = parse_webhook(payload, channel=self.name)
            except PartlyMalformed as exc:
                events, malformed = exc.events, exc  # the good messages are stored, then the 400
            except MalformedWebhook as exc:
                log.warning("malformed webhook for %r: %s", self.name, shorten(str(exc)))
                return PlainTextResponse(f"malformed webhook: {shorten(str(exc))}", status_code=400)
            foreign = [e for e in events if e.account != self.phone_number_id]
            if foreign:
                log.warning(
                    "channel %r ignored %d events for phone number id %s (it serves %s)",
                    self.name,
                    len(foreign),
                    foreign[0].account,
                    self.phone_number_id,
                )
                events = [e for e in events if e.account == self.phone_number_id]
            if events:
                try:
                    await accept(events)
                except StoreUnavailable as exc:
                    log.error("webhook for %r not stored, asking Meta to redeliver: %s", self.name, exc)
                    return PlainTextResponse("store unavailable, retry later", status_code=503)
            if malformed is not None:
                log.warning("malformed messages in a webhook for %r: %s", self.name, shorten(str(malformed)))
                return PlainTextResponse(f"malformed webhook: {shorten(str(malformed))}", status_code=400)
            return PlainTextResponse("OK")

        return [
            Route(f"{self.prefix}/webhook", verify, methods=["GET"], name=f"{self.name}:verify"),
            Route(f"{self.prefix}/webhook", receive, methods=["POST"], name=f"{self.name}:webhook"),
        ]

    # -- outbound -----------------------------------------------------------------------------------

    async def open(self, http: aiohttp.ClientSession) -> None:
        self._http = http
        self._headers = {"Authorization": f"Bearer {self.access_token}", "Content-Type": "application/json"}

    async def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._http is None:
            raise SendError("the channel is not open", retryable=True)
        try:
            async with self._http.post(url, data=orjson.dumps(body), headers=self._headers, timeout=SEND_TIMEOUT) as r:
                raw = await r.read()
                if r.status != 200:
                    raise graph_error(r.status, raw, r.headers.get("Retry-After"))
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SendError(f"could not reach the Graph API: {exc or type(exc).__name__}", retryable=True) from exc
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise SendError("the Graph API answered 200 with a body that is not JSON", retryable=True) from exc
        return answer if isinstance(answer, dict) else {}

    def use_media_store(self, store: MediaStore) -> None:
        """Upload `MediaOut.stored` media from `store` when they are sent."""
        self.media_store = store

    async def _media_id(self, key: str, mime_type: str | None, filename: str | None) -> str:
        # Meta keeps an uploaded medium 30 days; re-sending the same bytes within a day reuses the upload.
        cached = self._uploaded.get(key)
        if cached is not None and time.monotonic() - cached[1] < UPLOAD_REUSE_SECONDS:
            return cached[0]
        if self.media_store is None:
            raise SendError("a stored medium cannot be sent: the channel has no media store")
        try:
            data, stored = await self.media_store.get(key)
        except MediaNotFound as exc:
            raise SendError(f"the medium to send is gone from the media store: {exc}") from exc
        media_id = await self.upload(data, mime_type or stored.mime_type, filename or stored.filename)
        self._uploaded[key] = (media_id, time.monotonic())
        return media_id

    async def send(self, to: User, message: OutboundMessage, *, callback_data: str | None = None) -> SendResult:
        if isinstance(message, MediaOut) and message.stored:
            # Uploaded at send time, so the outbox row holds only a media-store key; a retry re-uploads.
            media_id = await self._media_id(message.stored, message.mime_type, message.filename)
            message = message.model_copy(update={"stored": None, "media_id": media_id})
        answer = await self._post(self.messages_url, body_for(to, message, callback_data=callback_data))
        try:
            message_id = answer["messages"][0]["id"]
        except (KeyError, IndexError, TypeError) as exc:
            raise SendError(f"the Graph API accepted the send but returned no message id: {answer}") from exc
        contacts = answer.get("contacts") or [{}]
        wa_id = contacts[0].get("wa_id") if isinstance(contacts[0], dict) else None
        return SendResult(message_id=message_id, recipient=wa_id or to.wa_id or to.user_id)

    async def typing(self, to: User, inbound_id: str) -> None:
        # Shows "typing…" for up to 25 s (or until the answer) and marks the message read.
        await self._post(
            self.messages_url,
            {
                "messaging_product": "whatsapp",
                "status": "read",
                "message_id": inbound_id,
                "typing_indicator": {"type": "text"},
            },
        )

    async def download(self, media: Media, *, max_bytes: int) -> tuple[bytes, str]:
        if self._http is None:
            raise SendError("the channel is not open", retryable=True)
        if not media.media_id:
            raise SendError("the medium has no media id to download")
        auth = {"Authorization": self._headers["Authorization"]}
        try:
            async with self._http.get(
                f"{self.api_base_url}/{self.api_version}/{media.media_id}",
                params={"phone_number_id": self.phone_number_id or ""},
                headers=auth,
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
            headers = auth if self.token_may_go_to(url) else {}
            if not headers:
                log.warning("the media URL's host is not one of Meta's: fetched without the access token")
            async with self._http.get(url, headers=headers, timeout=SEND_TIMEOUT) as r:
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

    def token_may_go_to(self, url: str) -> bool:
        """Whether the access token may be sent with a GET of `url`: the Graph API base URL's own
        origin, or one of `media_hosts` over HTTPS."""
        target, base = URL(url), URL(self.api_base_url)
        if target.origin() == base.origin():
            return True
        host = (target.host or "").lower()
        return target.scheme == "https" and any(
            host.endswith(allowed) if allowed.startswith(".") else host == allowed for allowed in self.media_hosts
        )

    async def upload(self, data: bytes, mime_type: str, filename: str | None = None) -> str:
        if self._http is None:
            raise SendError("the channel is not open", retryable=True)
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", mime_type)
        form.add_field("file", data, content_type=mime_type, filename=filename or "file")
        try:
            async with self._http.post(
                f"{self.api_base_url}/{self.api_version}/{self.phone_number_id}/media",
                data=form,
                headers={"Authorization": self._headers["Authorization"]},
                timeout=SEND_TIMEOUT,
            ) as r:
                raw = await r.read()
                if r.status != 200:
                    raise graph_error(r.status, raw, r.headers.get("Retry-After"))
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SendError(f"could not upload the medium: {exc or type(exc).__name__}", retryable=True) from exc
        media_id = orjson.loads(raw).get("id")
        if not media_id:
            raise SendError("the Graph API accepted the upload but returned no media id")
        return str(media_id)


# Re-exported for callers that build bodies themselves (tools, tests).
__all__ += ["body_for", "recipient"]
