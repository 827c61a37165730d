"""The Twilio channel: form webhooks in (signed, parsed at the edge), Messages API sends out.

TwiML-free by design: a webhook is acknowledged with an empty 200 as soon as its events are durable,
and the answer goes out later through the Messages API, so a slow model never runs into Twilio's
15-second webhook budget (https://www.twilio.com/docs/api/errors/11205).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

import aiohttp
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from whatsagent.channels.accept import hand_over
from whatsagent.channels.base import Accept, Channel, Finding
from whatsagent.channels.body import BodyRefused, read_body, refused_answer
from whatsagent.channels.env import env as _env
from whatsagent.channels.twilio import signature
from whatsagent.channels.twilio.client import TwilioAPI, basic_auth
from whatsagent.channels.twilio.errors import template_failure
from whatsagent.channels.twilio.media import MediaLinks
from whatsagent.channels.twilio.parse import (
    decode_callback_data,
    encode_callback_data,
    is_status_callback,
    parse_message,
    parse_status,
    to_address,
)
from whatsagent.channels.twilio.webhook import Webhook, decode, public_base, request_url
from whatsagent.channels.twilio.wire import message_form
from whatsagent.errors import ConfigurationError, InvalidMessage, MalformedWebhook, SendError
from whatsagent.messages import Event, Media, User
from whatsagent.messages.outbound import MediaOut, OutboundMessage, SendResult, TemplateOut

__all__ = ["Twilio"]

logger = logging.getLogger(__name__)

DEFAULT_API_BASE_URL = "https://api.twilio.com"
DEFAULT_MESSAGING_BASE_URL = "https://messaging.twilio.com"
MAX_WEBHOOK_BYTES = 256 * 1024
"""Twilio's WhatsApp webhooks are a few kilobytes of form fields; media come by URL."""
MEDIA_URL_TTL = 3600.0
"""Seconds a signed media link lives: Twilio fetches it when it sends, retries included."""

_FROM_NUMBER = re.compile(r"^whatsapp:\+[1-9]\d{5,14}$")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class Twilio(Channel):
    """A WhatsApp sender on Twilio.

    Every setting comes from its argument or, when omitted, from a ``TWILIO_*`` environment variable:
    ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN`` (always needed: it signs the webhooks),
    ``TWILIO_FROM_NUMBER`` (``whatsapp:+14155238886``), ``TWILIO_API_KEY_SID`` and
    ``TWILIO_API_KEY_SECRET`` (optional: authenticate sends with an API key instead of the Auth Token),
    ``TWILIO_PUBLIC_URL`` (the scheme and host Twilio calls, e.g. ``https://bot.example.com``),
    ``TWILIO_TRUST_FORWARDED_HEADERS``, ``TWILIO_API_BASE_URL`` (point it at a fake to test),
    ``TWILIO_MESSAGING_BASE_URL``, ``TWILIO_CONTENT_SIDS`` (``{"welcome": "HX..."}`` or
    ``welcome=HX...,order_update=HX...``), ``TWILIO_STATUS_CALLBACK`` (true, false, or a URL),
    ``TWILIO_WEBHOOK_SIGNING_KEY`` (the SharedKey secret, only with Twilio Webhook Rules).

    Configure the sender's "when a message comes in" URL as ``{public_url}{prefix}/webhook``. Status
    callbacks are requested per message at ``{public_url}{prefix}/status``.

    Signature checks are on. ``verify_signatures=False`` (or ``TWILIO_SKIP_SIGNATURE_VALIDATION=true``)
    turns them off for local development only, and says so loudly in the logs.
    """

    provider = "twilio"
    # Twilio refuses a Body over 1,600 characters (error 21617); the core splits replies at this size.
    text_limit = 1600

    def __init__(
        self,
        *,
        agent: Any = None,
        account_sid: str | None = None,
        auth_token: str | None = None,
        from_number: str | None = None,
        api_key_sid: str | None = None,
        api_key_secret: str | None = None,
        name: str | None = None,
        prefix: str = "/twilio",
        public_url: str | None = None,
        trust_forwarded_headers: bool | None = None,
        api_base_url: str | None = None,
        messaging_base_url: str | None = None,
        content_sids: Mapping[str, str] | None = None,
        status_callback: bool | str | None = None,
        verify_signatures: bool | None = None,
        webhook_signing_key: str | None = None,
        max_body_bytes: int = MAX_WEBHOOK_BYTES,
        media_url_ttl: float = MEDIA_URL_TTL,
    ) -> None:
        super().__init__(agent=agent, name=name, prefix=prefix)
        self._problems: list[str] = []
        self.account_sid = account_sid or _env("TWILIO_ACCOUNT_SID")
        self.auth_token = auth_token or _env("TWILIO_AUTH_TOKEN")
        self.from_number = _whatsapp_address(from_number or _env("TWILIO_FROM_NUMBER"))
        self.api_key_sid = api_key_sid or _env("TWILIO_API_KEY_SID")
        self.api_key_secret = api_key_secret or _env("TWILIO_API_KEY_SECRET")
        url = public_url or _env("TWILIO_PUBLIC_URL")
        self.public_url = url.rstrip("/") if url else None
        self.trust_forwarded_headers = self._flag(
            trust_forwarded_headers, "TWILIO_TRUST_FORWARDED_HEADERS", default=False
        )
        self.api_base_url = (api_base_url or _env("TWILIO_API_BASE_URL") or DEFAULT_API_BASE_URL).rstrip("/")
        messaging = messaging_base_url or _env("TWILIO_MESSAGING_BASE_URL")
        if messaging is None:
            # A fake or proxy given as api_base_url serves the typing API too.
            custom = self.api_base_url != DEFAULT_API_BASE_URL
            messaging = self.api_base_url if custom else DEFAULT_MESSAGING_BASE_URL
        self.messaging_base_url = messaging.rstrip("/")
        self.content_sids: dict[str, str] = (
            dict(content_sids) if content_sids is not None else self._content_sids_from_env()
        )
        self.status_callback = self._status_callback_setting(status_callback)
        skip = self._flag(None, "TWILIO_SKIP_SIGNATURE_VALIDATION", default=False)
        self.verify_signatures = (not skip) if verify_signatures is None else verify_signatures
        self.webhook_signing_key = webhook_signing_key or _env("TWILIO_WEBHOOK_SIGNING_KEY")
        self.max_body_bytes = max_body_bytes
        self.media_url_ttl = media_url_ttl
        self._links = MediaLinks(self.auth_token or "")
        self._api: TwilioAPI | None = None
        self._learned_base: str | None = None
        self._warned_no_callback = False

    # -- configuration ------------------------------------------------------------------------------

    @property
    def account(self) -> str:
        return self.from_number or "unconfigured"

    def validate(self) -> None:
        missing = [
            env
            for env, value in (
                ("TWILIO_ACCOUNT_SID", self.account_sid),
                ("TWILIO_AUTH_TOKEN", self.auth_token),
                ("TWILIO_FROM_NUMBER", self.from_number),
            )
            if not value
        ]
        problems = list(self._problems)
        if missing:
            problems.insert(
                0,
                f"missing {', '.join(missing)}: pass "
                + ", ".join(m.removeprefix("TWILIO_").lower() + "=" for m in missing)
                + " to Twilio(...) or set the environment variable"
                + ("s" if len(missing) > 1 else "")
                + ". The Account SID and Auth Token are on the Twilio Console's home page; the from "
                "number is your WhatsApp sender, as whatsapp:+14155238886",
            )
        if self.account_sid and not self.account_sid.startswith("AC"):
            problems.append(f"TWILIO_ACCOUNT_SID {self.account_sid[:6]!r}... must start with AC")
        if self.from_number and not _FROM_NUMBER.match(self.from_number):
            problems.append(
                f"TWILIO_FROM_NUMBER {self.from_number!r} is not a WhatsApp sender: "
                "write it as whatsapp:+<E.164 number>"
            )
        if bool(self.api_key_sid) != bool(self.api_key_secret):
            problems.append("TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET go together: set both or neither")
        elif self.api_key_sid and not self.api_key_sid.startswith("SK"):
            problems.append(f"TWILIO_API_KEY_SID {self.api_key_sid[:6]!r}... must start with SK")
        for setting, url in (
            ("TWILIO_PUBLIC_URL", self.public_url),
            ("TWILIO_API_BASE_URL", self.api_base_url),
            ("TWILIO_MESSAGING_BASE_URL", self.messaging_base_url),
            (
                "TWILIO_STATUS_CALLBACK",
                self.status_callback if isinstance(self.status_callback, str) else None,
            ),
        ):
            if url and not url.startswith(("http://", "https://")):
                problems.append(f"{setting} {url!r} must be an http(s) URL")
        if self.public_url and ("?" in self.public_url or "#" in self.public_url):
            problems.append(f"TWILIO_PUBLIC_URL {self.public_url!r} must be a base URL, without a query string")
        for template, sid in self.content_sids.items():
            if not sid.startswith("HX"):
                problems.append(f"content_sids[{template!r}] = {sid!r} is not a Content SID (they start with HX)")
        if problems:
            raise ConfigurationError(f"Twilio channel {self.name!r}: " + "; ".join(problems) + ".")
        if not self.verify_signatures:
            logger.warning(
                "SIGNATURE CHECKS ARE OFF for Twilio channel %r: anyone who can reach %s/webhook can make "
                "the bot talk and forge delivery statuses. Use this for local development only.",
                self.name,
                self.prefix,
            )
        elif not self.public_url and not self.trust_forwarded_headers:
            logger.info(
                "Twilio channel %r checks signatures against the URL this server sees; behind a proxy or "
                "tunnel set TWILIO_PUBLIC_URL (or TWILIO_TRUST_FORWARDED_HEADERS=true).",
                self.name,
            )

    def sign_media_url(self, key: str, expires_in: float) -> str:
        """A public URL from which Twilio can fetch the stored medium `key` for `expires_in` seconds."""
        base = self.public_url or self._learned_base
        if not base:
            raise ConfigurationError(
                f"Twilio channel {self.name!r} cannot publish stored media: set TWILIO_PUBLIC_URL so "
                "Twilio can fetch it (Twilio sends media only by URL)"
            )
        return self._links.url(f"{base}{self.prefix}/media", key, expires_in)

    # -- inbound ------------------------------------------------------------------------------------

    def routes(self, accept: Accept) -> list[BaseRoute]:
        async def media(request: Request) -> Response:
            return await self._links.serve(request, self.media_store)

        return [
            *self.webhook_routes(accept),
            Route(f"{self.prefix}/media/{{key:path}}", media, methods=["GET", "HEAD"], name=f"{self.name}:media"),
        ]

    def webhook_routes(self, accept: Accept) -> list[BaseRoute]:
        async def webhook(request: Request) -> Response:
            return await self._receive(request, accept, status_route=False)

        async def status(request: Request) -> Response:
            return await self._receive(request, accept, status_route=True)

        return [
            Route(f"{self.prefix}/webhook", webhook, methods=["POST"], name=f"{self.name}:webhook"),
            Route(f"{self.prefix}/status", status, methods=["POST"], name=f"{self.name}:status"),
        ]

    @property
    def frontable(self) -> bool:
        # Without TWILIO_PUBLIC_URL, the URL Twilio signed is learned from its webhooks and published
        # media links are built on it: the process that sends must see them.
        return bool(self.public_url) or not self.verify_signatures

    async def _receive(self, request: Request, accept: Accept, *, status_route: bool) -> Response:
        try:
            body = await read_body(request, self.max_body_bytes)
        except BodyRefused as refused:
            return refused_answer(refused)
        base = public_base(request, public_url=self.public_url, trust_forwarded_headers=self.trust_forwarded_headers)
        try:
            hook = decode(request, request_url(request, base), body)
        except MalformedWebhook as exc:
            # Undecodable bodies are answered before the signature check: there is nothing to check.
            logger.warning("malformed Twilio webhook for %r: %s", self.name, exc)
            return PlainTextResponse(f"malformed webhook: {exc}", status_code=400)
        if self.verify_signatures:
            refusal = self._check_signature(request, hook)
            if refusal:
                return refusal
            if not self.public_url:
                self._learned_base = base
        try:
            events = self._parse(hook, request, status_route=status_route)
        except MalformedWebhook as exc:
            logger.warning("malformed Twilio webhook for %r: %s", self.name, exc)
            return PlainTextResponse(f"malformed webhook: {exc}", status_code=400)
        except Exception as exc:  # a parser bug must not turn into a 500 that Twilio logs as our outage
            logger.exception("could not parse a Twilio webhook for %r", self.name)
            return PlainTextResponse(f"malformed webhook: {exc.__class__.__name__}", status_code=400)
        not_stored = await hand_over(accept, events, channel=self.name)
        if not_stored is not None:
            return not_stored
        # An empty 200 and no TwiML: the answer goes through the Messages API.
        return Response(status_code=200)

    def _check_signature(self, request: Request, hook: Webhook) -> Response | None:
        header = request.headers.get(signature.SIGNATURE_HEADER)
        if not header:
            logger.warning("Twilio webhook for %r refused: no X-Twilio-Signature", self.name)
            return PlainTextResponse("missing X-Twilio-Signature", status_code=403)
        settings = request.headers.get(signature.SETTINGS_HEADER)
        key = self.auth_token or ""
        if settings:
            # A Webhook Rule signed it with a SharedKey rather than the Auth Token (see signature.SETTINGS_HEADER).
            if not self.webhook_signing_key:
                logger.warning(
                    "Twilio webhook for %r refused: it is signed with a Webhook Rule SharedKey (%s); set "
                    "TWILIO_WEBHOOK_SIGNING_KEY to its secret",
                    self.name,
                    settings,
                )
                return PlainTextResponse("signed with a SharedKey this channel does not know", status_code=403)
            key = self.webhook_signing_key
        if not hook.is_signed_by(key, header, signature.algorithm_of(settings)):
            logger.warning(
                "Twilio webhook for %r refused: the signature does not match %s. If Twilio calls another "
                "URL (a proxy, a tunnel, TLS termination), set TWILIO_PUBLIC_URL to its scheme and host.",
                self.name,
                hook.url,
            )
            return PlainTextResponse("signature does not match", status_code=403)
        return None

    def _parse(self, hook: Webhook, request: Request, *, status_route: bool) -> list[Event]:
        form = hook.form
        if status_route or is_status_callback(form):
            callback_data = decode_callback_data(request.query_params.get("cb"))
            update = parse_status(form, channel=self.name, account=self.account, callback_data=callback_data)
            return [update] if update else []
        to = form.get("To", "").replace(" ", "")
        if to and self.from_number and to != self.from_number:
            # Another sender of the same account or Messaging Service posts here; a reply would go out
            # from the wrong number. Acknowledged and dropped, as the Cloud API channel does.
            logger.warning(
                "Twilio channel %r ignored message %s sent to another sender (it serves %s)",
                self.name,
                form.get("MessageSid", "?"),
                self.from_number,
            )
            return []
        return list(parse_message(form, channel=self.name, account=self.account))

    # -- outbound -----------------------------------------------------------------------------------

    @property
    def _uses_api_key(self) -> bool:
        """Whether requests authenticate with the API key rather than the Auth Token."""
        return bool(self.api_key_sid and self.api_key_secret)

    def _authorization(self) -> str:
        if self._uses_api_key:
            return basic_auth(self.api_key_sid or "", self.api_key_secret or "")
        return basic_auth(self.account_sid or "", self.auth_token or "")

    async def open(self, http: aiohttp.ClientSession) -> None:
        self._api = TwilioAPI(
            http,
            account_sid=self.account_sid or "",
            authorization=self._authorization(),
            api_base_url=self.api_base_url,
            messaging_base_url=self.messaging_base_url,
        )

    def check(self, message: OutboundMessage) -> None:
        message_form(message, content_sids=self.content_sids, media_url=_checked_media_url)

    def explain(self, message: OutboundMessage, error: SendError) -> str:
        return template_failure(message, error) if isinstance(message, TemplateOut) else str(error)

    async def send(self, to: User, message: OutboundMessage, *, callback_data: str | None = None) -> SendResult:
        api = self._require_api()
        form = [("To", to_address(to)), ("From", self.from_number or "")]
        form += message_form(message, content_sids=self.content_sids, media_url=self._media_url)
        callback = self._status_callback_url(callback_data)
        if callback:
            form.append(("StatusCallback", callback))
        created = await api.create_message(form)
        return SendResult(message_id=created["sid"], recipient=to.wa_id or to.user_id)

    async def typing(self, to: User, inbound_id: str) -> None:
        if self._api is None:
            return
        # Extra media of one Twilio message carry ids "<sid>/<n>"; the indicator wants the real SID.
        await self._api.indicate_typing(inbound_id.split("/", 1)[0])

    async def download(self, media: Media, *, max_bytes: int) -> tuple[bytes, str]:
        api = self._require_api()
        if not media.url:
            raise SendError("the medium has no URL to download (Twilio media come as MediaUrlN)")
        data, mime = await api.fetch_media(media.url, max_bytes=max_bytes)
        return data, media.mime_type or mime or "application/octet-stream"

    def _require_api(self) -> TwilioAPI:
        if self._api is None:
            raise SendError(f"Twilio channel {self.name!r} is not open", retryable=True)
        return self._api

    def _media_url(self, message: MediaOut) -> str:
        if message.link:
            return message.link
        if message.stored:
            try:
                return self.sign_media_url(message.stored, self.media_url_ttl)
            except ConfigurationError as exc:
                raise SendError(str(exc), retryable=False) from exc
        return _checked_media_url(message)

    def _status_callback_url(self, callback_data: str | None) -> str | None:
        if self.status_callback is False:
            return None
        if isinstance(self.status_callback, str):
            url = self.status_callback
        else:
            base = self.public_url or self._learned_base
            if not base:
                if not self._warned_no_callback:
                    self._warned_no_callback = True
                    logger.warning(
                        "Twilio channel %r sends without a StatusCallback until it knows its public URL: set "
                        "TWILIO_PUBLIC_URL to get delivery statuses from the first message",
                        self.name,
                    )
                return None
            url = f"{base}{self.prefix}/status"
        if callback_data:
            # Twilio signs the full callback URL, query included, so the echo cannot be forged.
            url += ("&" if "?" in url else "?") + "cb=" + encode_callback_data(callback_data)
        return url

    # -- settings from the environment ------------------------------------------------------------------

    def _flag(self, value: bool | None, env: str, *, default: bool) -> bool:
        if value is not None:
            return value
        raw = (_env(env) or "").strip().lower()
        if not raw:
            return default
        if raw in _TRUE:
            return True
        if raw not in _FALSE:
            self._problems.append(f"{env}={raw!r} is neither true nor false")
        return False if raw in _FALSE else default

    def _content_sids_from_env(self) -> dict[str, str]:
        raw = (_env("TWILIO_CONTENT_SIDS") or "").strip()
        if not raw:
            return {}
        if raw.startswith("{"):
            try:
                parsed = json.loads(raw)
            except json.JSONDecodeError as exc:
                self._problems.append(f"TWILIO_CONTENT_SIDS is not valid JSON: {exc}")
                return {}
            if isinstance(parsed, dict) and all(isinstance(v, str) for v in parsed.values()):
                return {str(k): v for k, v in parsed.items()}
            self._problems.append('TWILIO_CONTENT_SIDS must map template names to SIDs: {"welcome": "HX..."}')
            return {}
        sids = {}
        for pair in raw.split(","):
            name, sep, sid = pair.partition("=")
            if not sep or not name.strip() or not sid.strip():
                self._problems.append(f"TWILIO_CONTENT_SIDS entry {pair!r} is not name=HX...")
                continue
            sids[name.strip()] = sid.strip()
        return sids

    def _status_callback_setting(self, value: bool | str | None) -> bool | str:
        if value is not None:
            return value
        raw = (_env("TWILIO_STATUS_CALLBACK") or "").strip()
        if raw.lower() in _TRUE or not raw:
            return True
        if raw.lower() in _FALSE:
            return False
        return raw

    async def check_credentials(self, http: aiohttp.ClientSession) -> Finding:
        """The Account SID and the credentials sends use (the Auth Token, or the API key), read back from
        Twilio's REST API (`GET /2010-04-01/Accounts/{AccountSid}.json`): the account must be active."""
        if not self.account_sid or not (self.auth_token or self._uses_api_key):
            return "fail", "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or TWILIO_API_KEY_SID and _SECRET) are needed"
        url = f"{self.api_base_url}/2010-04-01/Accounts/{self.account_sid}.json"
        try:
            async with http.get(url, headers={"Authorization": self._authorization()}) as response:
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return "fail", f"cannot reach {self.api_base_url}: {exc!r}"
        body = body if isinstance(body, dict) else {}
        if response.status == 200:
            name = body.get("friendly_name") or self.account_sid
            if body.get("status", "active") != "active":
                return "fail", f"account {name} is {body.get('status')}: sends are refused until it is active again"
            return "ok", f"accepted by {self.api_base_url} for account {name}"
        code = body.get("code")
        which = "API key" if self._uses_api_key else "Auth Token"
        if response.status == 401 or code == 20003:
            return (
                "fail",
                f"the Account SID and {which} are refused (code {code}): check TWILIO_ACCOUNT_SID and the {which}",
            )
        if response.status == 404:
            return "fail", f"no account {self.account_sid} (code {code}): check TWILIO_ACCOUNT_SID"
        return "fail", f"HTTP {response.status} for account {self.account_sid}: {body.get('message', body)}"

    async def check_webhook(self, http: aiohttp.ClientSession, url: str | None) -> Finding:
        return "skip", "Twilio webhooks have no verification handshake"


def _checked_media_url(message: MediaOut) -> str:
    """A stand-in URL for a medium Twilio can fetch (a link, or a stored medium published at send time)."""
    if message.link or message.stored:
        return message.link or "https://stored.invalid/"
    raise InvalidMessage("Twilio sends media only by URL: give MediaOut a link= or a stored= key, not a media_id")


def _whatsapp_address(number: str | None) -> str | None:
    """``+14155238886`` and ``whatsapp:+14155238886`` both name the sender ``whatsapp:+14155238886``."""
    if not number:
        return None
    number = number.strip().replace(" ", "")
    return number if number.startswith("whatsapp:") else f"whatsapp:{number}"
