"""The emulator speaking Twilio's WhatsApp wire format, for bots on the Twilio channel.

    emu = Emulator()
    account = emu.twilio()              # from now on, users' messages go out as Twilio form webhooks
    await emu.start()
    Twilio(account_sid=account.account_sid, auth_token=account.auth_token,
           from_number=account.from_number, api_base_url=emu.base_url,
           content_sids=account.content_sids, public_url=...)
    emu.webhook_url = "http://127.0.0.1:8000/twilio/webhook"

The same simulated users, chat page and faults serve both wire formats; only the edges differ:

- Inbound: what a user does becomes the form Twilio posts (``MessageSid``, ``From=whatsapp:+...``,
  ``WaId``, ``ProfileName``, ``Body``, ``NumMedia``/``MediaUrl0``, ``ButtonPayload``, ``Latitude``, ...),
  signed with ``X-Twilio-Signature``: base64 HMAC-SHA1, keyed with the Auth Token, of the URL followed
  by every parameter name and value in name order. Computed here, independently of the channel's code.
  Twilio does not batch and does not retry a webhook that failed; neither does this.
- Outbound: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` with HTTP Basic auth and form
  fields (``To``, ``From``, ``Body``, ``MediaUrl``, ``ContentSid``/``ContentVariables``,
  ``PersistentAction``, ``StatusCallback``), answered with a Message resource (201) or Twilio's error
  JSON (``code``, ``message``, ``more_info``, ``status``). Media are fetched from the bot's URLs, as
  Twilio does. A free-form message outside the 24-hour window fails with 63016.
- Status callbacks (sent, delivered, read, failed with ``ErrorCode``) go to each message's
  ``StatusCallback``, signed the same way. The typing indicator is ``POST /v2/Indicators/Typing.json``.
- Inbound media are served at ``/2010-04-01/Accounts/{AccountSid}/Messages/{sid}/Media/ME...`` behind
  basic auth.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import aiohttp
from aiohttp import web
from yarl import URL

from whatsagent.emulator.errors import GraphError
from whatsagent.emulator.media import kind_of
from whatsagent.emulator.validation import Send, check_request

if TYPE_CHECKING:
    from whatsagent.emulator.server import Emulator
    from whatsagent.emulator.state import InboundRecord, OutboundRecord
    from whatsagent.emulator.users import SimulatedUser

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
BODY_LIMIT = 1600
"""Twilio refuses a Body longer than this (error 21617)."""
MEDIA_FETCH_TIMEOUT = aiohttp.ClientTimeout(total=30)

# Meta's codes, as the shared emulator core decides them, and what Twilio says for the same situation.
_FROM_META = {
    131047: (
        63016,
        "Failed to send freeform message because you are outside the allowed window. "
        "If you are using WhatsApp, please use a Message Template.",
    ),
    131053: (63019, "Media failed to download"),
    131026: (63003, "Channel could not find To address"),
    130429: (20429, "Too Many Requests"),
    131056: (63018, "Rate limit exceeded for Channel"),
    131000: (20500, "Internal Server Error"),
    132001: (63016, "Content template not found"),
}


def sign(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """X-Twilio-Signature: base64(HMAC-SHA1(auth_token, url + name1 + value1 + ...)), names sorted (the
    values of a repeated name sorted too)."""
    payload = url + "".join(f"{name}{value}" for name, value in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def content_sid(template_name: str, language: str) -> str:
    """A stable Content SID for an emulated template (HX + 32 hex digits)."""
    return "HX" + hashlib.sha256(f"{template_name}/{language}".encode()).hexdigest()[:32]


@dataclass(slots=True)
class TwilioError(Exception):
    """A refusal in Twilio's shape."""

    status: int
    code: int
    message: str
    retry_after: str | None = None

    def response(self) -> web.Response:
        headers = {"Retry-After": self.retry_after} if self.retry_after else None
        body = {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }
        return web.json_response(body, status=self.status, headers=headers)


def _from_graph(error: GraphError) -> TwilioError:
    code = getattr(error, "code", 0)
    status = getattr(error, "status", 400)
    if code in _FROM_META:
        twilio_code, message = _FROM_META[code]
    else:
        twilio_code, message = 21619 if status == 400 else 20500, str(error)
    if status == 429 or code in (130429, 131056):
        return TwilioError(429, twilio_code, message, retry_after="1")
    return TwilioError(status if status >= 400 else 400, twilio_code, message)


@dataclass(slots=True)
class _Resource:
    """What the REST API remembers of a message beyond the emulator's own record."""

    sid: str
    direction: str
    sender: str
    to: str
    body: str
    num_media: int
    messaging_service_sid: str | None
    created: float
    initial: str


def _rfc2822(moment: float) -> str:
    """Twilio's date format: `Thu, 30 Jul 2015 20:12:31 +0000`."""
    return email.utils.format_datetime(datetime.fromtimestamp(moment, UTC))


def _new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


class TwilioAccount:
    """An emulated Twilio account with one WhatsApp sender, and the Twilio side of the emulator."""

    def __init__(
        self,
        emulator: Emulator,
        account_sid: str = "AC" + "e" * 32,
        auth_token: str = "emulator-twilio-auth-token",
        from_number: str | None = None,
    ) -> None:
        if not account_sid.startswith("AC") or len(account_sid) != 34:
            raise ValueError(f"a Twilio Account SID is AC followed by 32 characters, not {account_sid!r}")
        self.emu = emulator
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.from_number = from_number or f"whatsapp:+{emulator.display_phone_number}"
        self.created = time.time()
        self.sids: dict[str, str] = {}
        """Twilio message SID → the emulator's wamid, both directions of the conversation."""
        self._wamids: dict[str, str] = {}
        self._callbacks: dict[str, str] = {}
        """wamid of a bot message → the StatusCallback it was sent with."""
        self.messaging_service_sid = "MG" + "e" * 32
        """The account's Messaging Service, whose sender is `from_number`: a send may name it
        (`MessagingServiceSid`) instead of `From`."""
        self._resources: dict[str, _Resource] = {}
        self.callbacks: list[tuple[str, dict[str, str], int]] = []
        """(url, form, the bot's HTTP status) of every webhook and status callback posted."""

    @property
    def content_sids(self) -> dict[str, str]:
        """Template name → Content SID, for the Twilio channel's `content_sids`."""
        return {t.name: content_sid(t.name, t.language) for t in self.emu.templates}

    def sid_of(self, wamid: str) -> str | None:
        return self._wamids.get(wamid)

    def _link(self, sid: str, wamid: str) -> None:
        self.sids[sid] = wamid
        self._wamids[wamid] = sid

    # -- what users do, as Twilio posts it ---------------------------------------------------------

    async def post_messages(self, records: list[InboundRecord]) -> tuple[int, str]:
        """Post each message as its own signed form (Twilio neither batches nor retries)."""
        status, text = 200, ""
        for record in records:
            user = self.emu.find_user(record.user)
            form = self.inbound_form(record, user)
            if form is None:
                record.deliveries.append(200)
                continue
            copies = 2 if self.emu.faults.duplicate() else 1
            for _ in range(copies):
                status, text = await self._post_signed(self.emu._require_url(), form)
                record.deliveries.append(status)
            if self.emu.hub.active:
                self.emu.hub.publish({"event": "delivery", "id": record.message_id, "deliveries": record.deliveries})
        return status, text

    def inbound_form(self, record: InboundRecord, user: SimulatedUser | None) -> list[tuple[str, str]] | None:
        """The form Twilio posts for this user message; None for what Twilio does not pass on."""
        message = record.message
        kind = record.type
        if kind in ("reaction", "system", "unsupported", "order"):
            return None
        sid = self.sid_of(record.message_id)
        has_media = kind in ("image", "audio", "video", "document", "sticker", "contacts")
        if sid is None:
            sid = _new_sid("MM" if has_media else "SM")
            self._link(sid, record.message_id)
        if sid not in self._resources:
            sender_id = (user.wa_id if user else None) or record.user
            self._resources[sid] = _Resource(
                sid=sid,
                direction="inbound",
                sender=f"whatsapp:+{sender_id}" if sender_id.isdigit() else f"whatsapp:{sender_id}",
                to=self.from_number,
                body=str((message.get("text") or {}).get("body", "")),
                num_media=1 if has_media else 0,
                messaging_service_sid=None,
                created=record.time,
                initial="received",
            )
        wa_id = (user.wa_id if user else None) or record.user
        fields: list[tuple[str, str]] = [
            ("SmsMessageSid", sid),
            ("SmsSid", sid),
            ("MessageSid", sid),
            ("AccountSid", self.account_sid),
            ("From", f"whatsapp:+{wa_id}" if wa_id.isdigit() else f"whatsapp:{wa_id}"),
            ("To", self.from_number),
            ("WaId", wa_id),
            ("SmsStatus", "received"),
            ("NumSegments", "1"),
            ("ApiVersion", API_VERSION),
        ]
        if user is not None and user.name:
            fields.append(("ProfileName", user.name))
        body = ""
        media: list[tuple[str, str]] = []
        message_type = kind
        payload = message.get(kind) or {}
        if kind == "text":
            body = payload.get("body", "")
        elif kind in ("image", "audio", "video", "document", "sticker"):
            body = payload.get("caption") or ""
            media.append((self._media_url(sid, payload["id"]), payload.get("mime_type", "application/octet-stream")))
        elif kind == "contacts":
            item = self.emu.media.put(_vcards(message.get("contacts") or []).encode(), "text/vcard", "contact.vcf")
            media.append((self._media_url(sid, item.id), "text/vcard"))
        elif kind == "location":
            fields += [("Latitude", str(payload["latitude"])), ("Longitude", str(payload["longitude"]))]
            if payload.get("address"):
                fields.append(("Address", payload["address"]))
            if payload.get("name"):
                fields.append(("Label", payload["name"]))
        elif kind == "button":  # a template's quick-reply button
            body = payload.get("text", "")
            fields += [("ButtonText", body), ("ButtonPayload", payload.get("payload") or body)]
        elif kind == "interactive":
            message_type = "interactive"
            if payload.get("type") == "button_reply":
                reply = payload["button_reply"]
                body = reply["title"]
                fields += [("ButtonText", reply["title"]), ("ButtonPayload", reply["id"])]
            else:
                row = payload.get("list_reply") or {}
                body = row.get("title", "")
                fields += [("ListId", row.get("id", "")), ("ListTitle", body)]
                if row.get("description"):
                    fields.append(("ListDescription", row["description"]))
        fields += [("Body", body), ("NumMedia", str(len(media))), ("MessageType", message_type)]
        for index, (url, mime) in enumerate(media):
            fields += [(f"MediaUrl{index}", url), (f"MediaContentType{index}", mime)]
        context = message.get("context") or {}
        quoted = self.sid_of(context["id"]) if context.get("id") else None
        if quoted:
            fields.append(("OriginalRepliedMessageSid", quoted))
            sender = context.get("from") or ""
            fields.append(("OriginalRepliedMessageSender", f"whatsapp:+{sender}" if sender.isdigit() else sender))
        return fields

    def _media_url(self, sid: str, media_id: str) -> str:
        return f"{self.emu.base_url}/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}/Media/ME{media_id}"

    async def _post_signed(self, url: str, form: list[tuple[str, str]]) -> tuple[int, str]:
        session = await self.emu._poster.session()
        headers = {
            "X-Twilio-Signature": sign(self.auth_token, url, form),
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
        }
        try:
            # Exactly the URL that was signed: yarl would otherwise normalise its escapes.
            async with session.post(URL(url, encoded=True), data=form, headers=headers) as resp:
                status, text = resp.status, await resp.text()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            status, text = 0, f"{type(exc).__name__}: {exc}"
        self.callbacks.append((url, dict(form), status))
        return status, text

    # -- statuses ------------------------------------------------------------------------------------

    async def post_status(self, record: OutboundRecord, stage: str, user: SimulatedUser) -> None:
        """A signed status callback to the StatusCallback the message was sent with (none: nothing)."""
        url = self._callbacks.get(record.message_id)
        sid = self.sid_of(record.message_id)
        if not url or not sid:
            return
        to = f"whatsapp:+{user.wa_id}" if user.wa_id else f"whatsapp:{user.key}"
        form = [
            ("SmsSid", sid),
            ("SmsStatus", stage),
            ("MessageStatus", stage),
            ("ChannelToAddress", to.removeprefix("whatsapp:")),
            ("To", to),
            ("ChannelPrefix", "whatsapp"),
            ("MessageSid", sid),
            ("AccountSid", self.account_sid),
            ("From", self.from_number),
            ("ApiVersion", API_VERSION),
        ]
        if stage == "failed" and record.errors:
            meta_code = int(record.errors[0].get("code", 0))
            code, message = _FROM_META.get(meta_code, (30008, "Unknown error"))
            form += [("ErrorCode", str(code)), ("ErrorMessage", message)]
        await self._post_signed(url, form)

    # -- the REST API ----------------------------------------------------------------------------------

    def _authenticate(self, request: web.Request, account: str | None = None) -> None:
        header = request.headers.get("Authorization", "")
        username = password = ""
        if header.startswith("Basic "):
            try:
                username, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                pass
        if (
            not hmac.compare_digest(username, self.account_sid)
            or not hmac.compare_digest(password, self.auth_token)
            or (account is not None and account != self.account_sid)
        ):
            raise TwilioError(401, 20003, "Authenticate")

    async def create_message(self, request: web.Request) -> web.Response:
        form = [(k, str(v)) for k, v in (await request.post()).items() if isinstance(v, str)]
        record = self.emu.record_request("POST", request.path, dict(form))
        try:
            if self.emu.faults.send_latency:
                await asyncio.sleep(self.emu.faults.send_latency)
            self._authenticate(request, request.match_info["account"])
            failure = self.emu.faults.send_failure()
            if failure is not None:
                raise _from_graph(GraphError(*failure))
            response = await self._create(form)
        except TwilioError as error:
            response = error.response()
        except GraphError as error:
            response = _from_graph(error).response()
        if record is not None:
            record.status = response.status
        return response

    async def _create(self, form: list[tuple[str, str]]) -> web.Response:
        fields = dict(form)
        to, sender = fields.get("To", ""), fields.get("From", "")
        service = fields.get("MessagingServiceSid") or None
        if not to:
            raise TwilioError(400, 21604, "A 'To' phone number is required.")
        if service is not None and service != self.messaging_service_sid:
            raise TwilioError(400, 21705, f"The Messaging Service Sid {service} is invalid.")
        if not sender:
            if service is None:
                raise TwilioError(400, 21603, "A 'From' phone number is required.")
            sender = self.from_number  # the service's WhatsApp sender
        if not to.startswith("whatsapp:") or not sender.startswith("whatsapp:"):
            raise TwilioError(400, 21910, "Invalid From and To pair. From and To should be of the same channel")
        if sender != self.from_number:
            raise TwilioError(400, 63007, f"Twilio could not find a Channel with the specified From address: {sender}")
        body = fields.get("Body", "")
        media_urls = [v for k, v in form if k == "MediaUrl"]
        if not (body or media_urls or fields.get("ContentSid")):
            raise TwilioError(400, 21602, "Message body is required.")
        if len(body) > BODY_LIMIT:
            raise TwilioError(400, 21617, "The concatenated message body exceeds the 1600 character limit")
        recipient = to.removeprefix("whatsapp:")
        cloud: dict[str, Any] = {"messaging_product": "whatsapp", "to": recipient}
        if fields.get("ContentSid"):
            cloud.update(self._template(fields["ContentSid"], fields.get("ContentVariables")))
        elif media_urls:
            cloud.update(await self._media(media_urls[0], body))
        elif fields.get("PersistentAction", "").startswith("geo:"):
            cloud.update(_location(fields["PersistentAction"], body))
        else:
            cloud.update({"type": "text", "text": {"body": body}})
        checked = check_request(cloud, self.emu.templates)
        assert isinstance(checked, Send)
        # Outside the window: accepted, then failed with 63016 in a status callback (or refused at once
        # with `close_window(..., synchronous=True)`); the shared core decides, in Meta's codes.
        wamid = self.emu.accept(checked)["messages"][0]["id"]
        sid = _new_sid("MM" if media_urls else "SM")
        # Linked before the next await, so the status callbacks the core scheduled find their SID.
        self._link(sid, wamid)
        if fields.get("StatusCallback"):
            self._callbacks[wamid] = fields["StatusCallback"]
        self._resources[sid] = _Resource(
            sid=sid,
            direction="outbound-api",
            sender=sender,
            to=to,
            body=body,
            num_media=len(media_urls),
            messaging_service_sid=service,
            created=time.time(),
            initial="accepted" if service else "queued",
        )
        return web.json_response(self.resource(sid, created=True), status=201)

    def resource(self, sid: str, *, created: bool = False) -> dict[str, Any]:
        """The Message resource as Twilio's REST API shows it (every field twilio-python reads); as
        the create call answers it (`created`): queued, or accepted by a Messaging Service."""
        res = self._resources[sid]
        wamid = self.sids.get(sid)
        outbound = self.emu.outbound.get(wamid) if wamid and not created else None
        status = res.initial
        error_code: int | None = None
        error_message: str | None = None
        if outbound is not None and outbound.status != "accepted":
            status = outbound.status
            if status == "failed" and outbound.errors:
                error_code, error_message = _FROM_META.get(
                    int(outbound.errors[0].get("code", 0)), (30008, "Unknown error")
                )
        date_created = _rfc2822(res.created)
        sent = status not in ("accepted", "queued")
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": res.body,
            "date_created": date_created,
            "date_sent": date_created if sent or res.direction == "inbound" else None,
            "date_updated": _rfc2822(outbound.time if outbound is not None else res.created),
            "direction": res.direction,
            "error_code": error_code,
            "error_message": error_message,
            "from": res.sender,
            "messaging_service_sid": res.messaging_service_sid,
            "num_media": str(res.num_media),
            "num_segments": "1",
            "price": "-0.00500" if sent and res.direction != "inbound" else None,
            "price_unit": "USD",
            "sid": sid,
            "status": status,
            "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
            "to": res.to,
            "uri": f"{uri}.json",
        }

    async def fetch_account(self, request: web.Request) -> web.Response:
        """`GET Accounts/{AccountSid}.json`: the account, as twilio-python's `AccountInstance` reads it."""
        try:
            self._authenticate(request, request.match_info["account"])
        except TwilioError as error:
            return error.response()
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}"
        created = _rfc2822(self.created)
        return web.json_response(
            {
                "auth_token": self.auth_token,
                "date_created": created,
                "date_updated": created,
                "friendly_name": "whatsagent emulator",
                "owner_account_sid": self.account_sid,
                "sid": self.account_sid,
                "status": "active",
                "subresource_uris": {"messages": f"{uri}/Messages.json"},
                "type": "Full",
                "uri": f"{uri}.json",
            }
        )

    async def fetch_message(self, request: web.Request) -> web.Response:
        try:
            self._authenticate(request, request.match_info["account"])
        except TwilioError as error:
            return error.response()
        sid = request.match_info["sid"]
        if sid not in self._resources:
            return TwilioError(404, 20404, f"The requested resource {request.path} was not found").response()
        return web.json_response(self.resource(sid))

    async def list_messages(self, request: web.Request) -> web.Response:
        """`GET Messages.json`: newest first, filtered by To, From and DateSent, one page of PageSize."""
        try:
            self._authenticate(request, request.match_info["account"])
        except TwilioError as error:
            return error.response()
        query = request.query
        try:
            page_size = min(int(query.get("PageSize", "50")), 1000)
            page = int(query.get("Page", "0"))
        except ValueError:
            return TwilioError(400, 20001, "PageSize and Page must be integers").response()
        items = [self.resource(sid) for sid in reversed(self._resources)]
        for name in ("To", "From"):
            if query.get(name):
                items = [m for m in items if m[name.lower()] == query[name]]
        shown = items[page * page_size : (page + 1) * page_size]
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json?PageSize={page_size}"
        more = (page + 1) * page_size < len(items)
        return web.json_response(
            {
                "messages": shown,
                "end": page * page_size + max(len(shown) - 1, 0),
                "first_page_uri": f"{uri}&Page=0",
                "next_page_uri": f"{uri}&Page={page + 1}" if more else None,
                "page": page,
                "page_size": page_size,
                "previous_page_uri": f"{uri}&Page={page - 1}" if page else None,
                "start": page * page_size,
                "uri": f"{uri}&Page={page}",
            }
        )

    def _template(self, sid: str, variables: str | None) -> dict[str, Any]:
        template = next(
            (t for t in self.emu.templates if content_sid(t.name, t.language) == sid),
            None,
        )
        if template is None:
            raise TwilioError(400, 21655, f"The ContentSid {sid} is invalid: no such Content template")
        values: dict[str, Any] = {}
        if variables:
            try:
                values = json.loads(variables)
            except ValueError:
                values = None  # type: ignore[assignment]
            if not isinstance(values, dict):
                raise TwilioError(400, 21656, "The ContentVariables Parameter is invalid.")
        components = []
        for where in ("header", "body"):
            parameters = []
            for index, name in enumerate(dict.fromkeys(template.placeholders(where)), 1):
                value = values.get(name, values.get(str(index)))
                if value is None:
                    raise TwilioError(400, 21656, f"ContentVariables is missing the variable {name!r}")
                param = {"type": "text", "text": str(value)}
                if not name.isdigit():
                    param["parameter_name"] = name
                parameters.append(param)
            if parameters:
                components.append({"type": where, "parameters": parameters})
        return {
            "type": "template",
            "template": {"name": template.name, "language": {"code": template.language}, "components": components},
        }

    async def _media(self, url: str, caption: str) -> dict[str, Any]:
        """Fetch the medium as Twilio does; one it cannot fetch makes the message fail (63019)."""
        session = await self.emu._poster.session()
        media_id, mime = "0", "application/octet-stream"
        try:
            async with session.get(url, timeout=MEDIA_FETCH_TIMEOUT) as resp:
                if resp.status == 200:
                    mime = (resp.headers.get("Content-Type") or mime).split(";")[0].strip()
                    filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or None
                    media_id = self.emu.media.put(await resp.read(), mime, filename).id
                else:
                    log.info("the emulator could not fetch %s: HTTP %s", url, resp.status)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.info("the emulator could not fetch %s: %r", url, exc)
        kind = kind_of(mime) or "document"
        media: dict[str, Any] = {"id": media_id}
        if caption and kind not in ("audio", "sticker"):
            media["caption"] = caption
        if kind == "document":
            media["filename"] = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or "document"
        return {"type": kind, kind: media}

    async def media(self, request: web.Request) -> web.Response:
        try:
            self._authenticate(request, request.match_info["account"])
        except TwilioError as error:
            return error.response()
        item = self.emu.media.get(request.match_info["media"].removeprefix("ME"))
        if item is None:
            return TwilioError(404, 20404, "The requested resource was not found").response()
        return web.Response(body=item.data, headers={"Content-Type": item.mime_type})

    async def typing(self, request: web.Request) -> web.Response:
        try:
            self._authenticate(request)
        except TwilioError as error:
            return error.response()
        fields = await request.post()
        wamid = self.sids.get(str(fields.get("messageId", "")))
        if wamid is None:
            return TwilioError(404, 20404, "The requested resource was not found").response()
        self.emu.mark_read(wamid, typing=True)
        return web.json_response({"success": True})


def register(app: web.Application, emulator: Emulator) -> None:
    """Twilio's endpoints on the emulator's app; they answer once `emulator.twilio()` was called."""

    def route(name: str) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            account = emulator.twilio_account
            if account is None:
                return TwilioError(404, 20404, "The emulator speaks Twilio only after emu.twilio()").response()
            return await getattr(account, name)(request)  # type: ignore[no-any-return]

        return handler

    r = app.router
    r.add_get(f"/{API_VERSION}/Accounts/{{account}}.json", route("fetch_account"))
    r.add_post(f"/{API_VERSION}/Accounts/{{account}}/Messages.json", route("create_message"))
    r.add_get(f"/{API_VERSION}/Accounts/{{account}}/Messages.json", route("list_messages"))
    r.add_get(f"/{API_VERSION}/Accounts/{{account}}/Messages/{{sid}}.json", route("fetch_message"))
    r.add_get(f"/{API_VERSION}/Accounts/{{account}}/Messages/{{sid}}/Media/{{media}}", route("media"))
    r.add_post("/v2/Indicators/Typing.json", route("typing"))


def _location(action: str, body: str) -> dict[str, Any]:
    coordinates, _, label = action.removeprefix("geo:").partition("|")
    latitude, _, longitude = coordinates.partition(",")
    try:
        location: dict[str, Any] = {"latitude": float(latitude), "longitude": float(longitude)}
    except ValueError:
        raise TwilioError(400, 21619, f"PersistentAction {action!r} is not a geo: location") from None
    if body and body != "📍":
        location["name"] = body
    if label:
        location["address"] = label
    return {"type": "location", "location": location}


def _vcards(cards: list[dict[str, Any]]) -> str:
    out = []
    for card in cards:
        name = (card.get("name") or {}).get("formatted_name", "")
        lines = ["BEGIN:VCARD", "VERSION:3.0", f"FN:{name}"]
        lines += [f"TEL;type=CELL:{p.get('phone', '')}" for p in card.get("phones", [])]
        lines.append("END:VCARD")
        out.append("\r\n".join(lines))
    return "\r\n".join(out) + "\r\n"
