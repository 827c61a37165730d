"""The Cloud API channel: one WhatsApp business number on Meta's Cloud API."""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

import aiohttp
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from yarl import URL

from whatsagent.channels.accept import hand_over
from whatsagent.channels.base import Accept, Channel, Finding
from whatsagent.channels.body import BodyRefused, read_body, refused_answer
from whatsagent.channels.cloudapi import signature
from whatsagent.channels.cloudapi.client import GraphAPI
from whatsagent.channels.cloudapi.errors import TOKEN_REFUSED, template_failure
from whatsagent.channels.cloudapi.parse import PartlyMalformed, parse_webhook
from whatsagent.channels.cloudapi.webhook import (
    MAX_WEBHOOK_BYTES,
    SIGNATURE_HEADER,
    decode,
    is_whatsapp,
    verify_subscription,
)
from whatsagent.channels.cloudapi.wire import body_for
from whatsagent.channels.env import env as _env
from whatsagent.errors import ConfigurationError, MalformedWebhook, SendError
from whatsagent.media.store import MediaNotFound
from whatsagent.messages import Media, User
from whatsagent.messages.outbound import MediaOut, OutboundMessage, SendResult, TemplateOut
from whatsagent.privacy import shorten

__all__ = ["CloudAPI"]

log = logging.getLogger(__name__)

DEFAULT_API_BASE_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v25.0"
UPLOAD_REUSE_SECONDS = 24 * 3600
MEDIA_HOSTS = ("lookaside.fbsbx.com", ".fbcdn.net")
"""Where Meta serves media from (a leading dot: any subdomain). The access token goes with a media
download only to these hosts over HTTPS, or to the Graph API base URL itself (the emulator, a proxy)."""
_CHECK_RECIPIENT = User(wa_id="0")
"""A stand-in recipient: `check` validates the message, not who it goes to."""


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
        self._api: GraphAPI | None = None
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
            return verify_subscription(request, self.verify_token, self.name)

        async def receive(request: Request) -> Response:
            return await self._receive(request, accept)

        return [
            Route(f"{self.prefix}/webhook", verify, methods=["GET"], name=f"{self.name}:verify"),
            Route(f"{self.prefix}/webhook", receive, methods=["POST"], name=f"{self.name}:webhook"),
        ]

    async def _receive(self, request: Request, accept: Accept) -> Response:
        try:
            raw = await read_body(request, self.max_body_bytes)
        except BodyRefused as refused:
            return refused_answer(refused)
        if self.verify_signatures:
            header = request.headers.get(SIGNATURE_HEADER)
            if not header:
                return PlainTextResponse("missing X-Hub-Signature-256", status_code=401)
            if not signature.is_valid(self.app_secret or "", raw, header):
                log.warning("webhook for %r refused: bad signature", self.name)
                return PlainTextResponse("signature does not match", status_code=403)
        try:
            payload = decode(raw)
        except MalformedWebhook as exc:
            return PlainTextResponse(str(exc), status_code=400)
        if not is_whatsapp(payload):
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
        not_stored = await hand_over(accept, events, channel=self.name)
        if not_stored is not None:
            return not_stored
        if malformed is not None:
            log.warning("malformed messages in a webhook for %r: %s", self.name, shorten(str(malformed)))
            return PlainTextResponse(f"malformed webhook: {shorten(str(malformed))}", status_code=400)
        return PlainTextResponse("OK")

    # -- outbound -----------------------------------------------------------------------------------

    async def open(self, http: aiohttp.ClientSession) -> None:
        self._api = GraphAPI(
            http,
            access_token=self.access_token or "",
            api_base_url=self.api_base_url,
            api_version=self.api_version,
            phone_number_id=self.phone_number_id or "",
        )

    def _require_api(self) -> GraphAPI:
        if self._api is None:
            raise SendError("the channel is not open", retryable=True)
        return self._api

    def check(self, message: OutboundMessage) -> None:
        if isinstance(message, MediaOut) and message.stored:
            message = message.model_copy(update={"stored": None, "media_id": "0"})  # uploaded at send time
        body_for(_CHECK_RECIPIENT, message)

    def explain(self, message: OutboundMessage, error: SendError) -> str:
        return template_failure(message, error) if isinstance(message, TemplateOut) else str(error)

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
        api = self._require_api()
        if isinstance(message, MediaOut) and message.stored:
            # Uploaded at send time, so the outbox row holds only a media-store key; a retry re-uploads.
            media_id = await self._media_id(message.stored, message.mime_type, message.filename)
            message = message.model_copy(update={"stored": None, "media_id": media_id})
        answer = await api.post_message(body_for(to, message, callback_data=callback_data))
        try:
            message_id = answer["messages"][0]["id"]
        except (KeyError, IndexError, TypeError) as exc:
            raise SendError(f"the Graph API accepted the send but returned no message id: {answer}") from exc
        contacts = answer.get("contacts") or [{}]
        wa_id = contacts[0].get("wa_id") if isinstance(contacts[0], dict) else None
        return SendResult(message_id=message_id, recipient=wa_id or to.wa_id or to.user_id)

    async def typing(self, to: User, inbound_id: str) -> None:
        # Shows "typing…" for up to 25 s (or until the answer) and marks the message read
        # (https://developers.facebook.com/documentation/business-messaging/whatsapp/typing-indicators).
        await self._require_api().post_message(
            {
                "messaging_product": "whatsapp",
                "status": "read",
                "message_id": inbound_id,
                "typing_indicator": {"type": "text"},
            }
        )

    async def download(self, media: Media, *, max_bytes: int) -> tuple[bytes, str]:
        api = self._require_api()
        if not media.media_id:
            raise SendError("the medium has no media id to download")
        return await api.download(media.media_id, max_bytes=max_bytes, token_may_go_to=self.token_may_go_to)

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
        """Upload a medium for sending; return its media id."""
        return await self._require_api().upload(data, mime_type, filename)

    async def check_credentials(self, http: aiohttp.ClientSession) -> Finding:
        """The access token and phone number id, read back from the Graph API (`GET /{phone number id}`)."""
        if not self.access_token or not self.phone_number_id:
            return "fail", "WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID are needed"
        url = f"{self.api_base_url}/{self.api_version}/{self.phone_number_id}"
        headers = {"Authorization": f"Bearer {self.access_token}"}
        try:
            async with http.get(url, headers=headers) as response:
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return "fail", f"cannot reach {self.api_base_url}: {exc!r}"
        if response.status == 200 and isinstance(body, dict):
            number = body.get("display_phone_number") or body.get("verified_name") or self.phone_number_id
            return "ok", f"accepted by {self.api_base_url} for {number}"
        error = body.get("error", {}) if isinstance(body, dict) else {}
        code = error.get("code")
        if code in TOKEN_REFUSED or response.status == 401:
            return "fail", f"the access token is refused (code {code}): create a new one"
        return (
            "fail",
            f"HTTP {response.status} for phone number id {self.phone_number_id}: {error.get('message', body)}",
        )

    async def check_webhook(self, http: aiohttp.ClientSession, url: str | None) -> Finding:
        """Meta's subscription handshake: `url` must echo `hub.challenge` when given the verify token
        (https://developers.facebook.com/docs/graph-api/webhooks/getting-started)."""
        if not url:
            return "skip", "pass --webhook-url (the URL Meta calls) to check it"
        challenge = str(secrets.randbelow(10**9))
        params = {"hub.mode": "subscribe", "hub.verify_token": self.verify_token or "", "hub.challenge": challenge}
        try:
            async with http.get(url, params=params) as response:
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return "fail", f"{url} cannot be reached: {exc!r}"
        if response.status == 200 and text == challenge:
            return "ok", f"{url} answers Meta's verification with the verify token"
        return "fail", f"{url} answered HTTP {response.status} {text[:100]!r}, not the challenge"
