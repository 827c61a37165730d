"""Twilio's form-encoded webhooks, parsed once at the edge into neutral messages and status updates.

Parameter names come from a real WhatsApp inbound capture and Twilio's docs
(https://www.twilio.com/docs/messaging/guides/webhook-request,
https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks). Twilio may add
parameters without notice; unknown ones are ignored here (but still signed).
"""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import Mapping
from typing import Any

from whatsagent.channels.twilio.errors import error_title, is_window_closed
from whatsagent.errors import MalformedWebhook
from whatsagent.messages import (
    Audio,
    ButtonReply,
    Context,
    DeliveryState,
    Document,
    Image,
    InboundMessage,
    ListReply,
    Location,
    Media,
    ProviderError,
    Referral,
    StatusUpdate,
    Sticker,
    TemplateButton,
    Text,
    Unsupported,
    User,
    Video,
)

logger = logging.getLogger(__name__)

Form = Mapping[str, str]
"""A webhook's parameters, first value of each name."""

_STATUS: dict[str, DeliveryState] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
    # Twilio gave up delivering (WhatsApp refused it, or the window closed): a failure with its ErrorCode.
    "undelivered": "failed",
    # Only scheduled messages are canceled; whatsagent schedules none, but it would never be delivered.
    "canceled": "failed",
}
_NO_CHANGE = frozenset({"queued", "accepted", "scheduled", "sending", "receiving", "received"})
"""Statuses before anything reached WhatsApp, or of inbound messages: no change for an outbox row."""

_MAX_MEDIA = 10


def is_status_callback(form: Form) -> bool:
    """Whether a POST is a status callback rather than an inbound message (when both share one URL)."""
    status = form.get("MessageStatus") or form.get("SmsStatus") or ""
    return status.lower() not in {"", "received", "receiving"}


def parse_message(form: Form, *, channel: str, account: str) -> list[InboundMessage]:
    """One inbound WhatsApp message as neutral messages: usually one; one per medium if Twilio ever
    batches several media into one message (WhatsApp sends one per message)."""
    sid = _message_sid(form)
    common: dict[str, Any] = {
        "channel": channel,
        "account": account,
        "id": sid,
        "user": parse_user(form),
        "context": _context(form),
        "referral": _referral(form),
    }
    message_type = form.get("MessageType", "").strip().lower()
    body = form.get("Body", "")

    if form.get("ButtonPayload") or form.get("ButtonText"):
        text = form.get("ButtonText") or body
        payload = form.get("ButtonPayload") or None
        if message_type == "interactive":
            # A reply button of a session (non-template) quick-reply: the payload is the button's id.
            return [ButtonReply(**common, button_id=payload or text, title=text)]
        return [TemplateButton(**common, payload=payload, text=text)]

    if form.get("ListId"):
        # list-picker selections; parameter names unconfirmed in the reference, kept tolerant.
        title = form.get("ListTitle") or body
        return [ListReply(**common, row_id=form["ListId"], title=title, description=form.get("ListDescription"))]

    if form.get("Latitude") or form.get("Longitude"):
        return [
            Location(
                **common,
                latitude=_coordinate(form, "Latitude", 90),
                longitude=_coordinate(form, "Longitude", 180),
                name=form.get("Label") or None,
                address=form.get("Address") or None,
            )
        ]

    count = _num_media(form)
    if count:
        messages: list[InboundMessage] = []
        for index in range(count):
            url = form.get(f"MediaUrl{index}")
            if not url:
                raise MalformedWebhook(f"NumMedia is {count} but MediaUrl{index} is missing")
            mime = form.get(f"MediaContentType{index}") or None
            media = Media(
                media_id=url.rstrip("/").rsplit("/", 1)[-1] or None,
                url=url,
                mime_type=mime,
                caption=(body or None) if index == 0 else None,
            )
            item = dict(common, id=sid if index == 0 else f"{sid}/{index}")
            messages.append(_media_message(item, media, message_type))
        return messages

    if body:
        return [Text(**common, body=body)]
    return [Unsupported(**common, original_type=message_type or None)]


def parse_status(form: Form, *, channel: str, account: str, callback_data: str | None) -> StatusUpdate | None:
    """A status callback as a StatusUpdate, or None for statuses that change nothing (queued, sending...)."""
    sid = _message_sid(form)
    raw = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    if not raw:
        raise MalformedWebhook("status callback without MessageStatus")
    if raw in _NO_CHANGE:
        return None
    status = _STATUS.get(raw)
    if status is None:
        logger.warning("ignoring Twilio status %r for %s: not a status whatsagent knows", raw, sid)
        return None
    errors: tuple[ProviderError, ...] = ()
    code = _error_code(form)
    if code:
        message = form.get("ErrorMessage", "")
        error = ProviderError(
            code=code, title=error_title(code) or message, message=message, window_closed=is_window_closed(code)
        )
        errors = (error,)
    elif raw == "canceled":
        errors = (ProviderError(code=0, title="Twilio canceled the message"),)
    return StatusUpdate(
        channel=channel,
        account=account,
        message_id=sid,
        status=status,
        recipient=_address(form.get("To", "")) or None,
        errors=errors,
        callback_data=callback_data,
    )


def encode_callback_data(value: str) -> str:
    """`callback_data` as it travels in the StatusCallback URL's query: base64url, unpadded, so no
    proxy or HTTP client can re-encode it between Twilio's signing and our checking."""
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_callback_data(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise MalformedWebhook(f"status callback key {raw[:40]!r} is not one whatsagent wrote") from None


def parse_user(form: Form) -> User:
    """The sender: `WaId` (digits, no plus) and `ProfileName`; a non-phone `From` is taken as a BSUID."""
    sender = _address(form.get("From", ""))
    wa_id = form.get("WaId", "").strip() or None
    user_id = None
    if wa_id is None and sender:
        if sender.isdigit():
            wa_id = sender
        else:
            user_id = sender  # Twilio plans business-scoped user ids in From (unconfirmed shape).
    if wa_id is None and user_id is None:
        raise MalformedWebhook("inbound message without WaId or From: cannot tell who wrote")
    name = form.get("ProfileName", "").strip() or None
    return User(wa_id=wa_id, user_id=user_id, name=name)


def to_address(user: User) -> str:
    """The `To` of a reply to `user`: ``whatsapp:+<wa_id>``."""
    if user.wa_id:
        return "whatsapp:+" + user.wa_id.lstrip("+")
    return "whatsapp:" + user.key


def _message_sid(form: Form) -> str:
    sid = (form.get("MessageSid") or form.get("SmsMessageSid") or form.get("SmsSid") or "").strip()
    if not sid:
        raise MalformedWebhook("no MessageSid: not a Twilio message webhook")
    if len(sid) > 64 or not sid.isalnum():
        raise MalformedWebhook(f"MessageSid {sid[:70]!r} is not a Twilio SID")
    return sid


def _address(value: str) -> str:
    """``whatsapp:+14155550100`` -> ``14155550100``."""
    value = value.strip()
    if value.startswith("whatsapp:"):
        value = value[len("whatsapp:") :]
    return value.lstrip("+")


def _context(form: Form) -> Context | None:
    reply_to = form.get("OriginalRepliedMessageSid") or None
    reply_from = _address(form.get("OriginalRepliedMessageSender", "")) or None
    forwarded = _flag(form, "Forwarded")
    frequently = _flag(form, "FrequentlyForwarded")
    if not (reply_to or reply_from or forwarded or frequently):
        return None
    return Context(
        reply_to=reply_to,
        reply_to_from=reply_from,
        forwarded=forwarded or frequently,
        frequently_forwarded=frequently,
    )


def _referral(form: Form) -> Referral | None:
    fields = {
        "source_url": form.get("ReferralSourceUrl"),
        "source_id": form.get("ReferralSourceId"),
        "source_type": form.get("ReferralSourceType"),
        "headline": form.get("ReferralHeadline"),
        "body": form.get("ReferralBody"),
        "media_type": form.get("ReferralMediaContentType"),
        "media_url": form.get("ReferralMediaUrl"),
        "ctwa_clid": form.get("ReferralCtwaClid"),
    }
    present = {key: value for key, value in fields.items() if value}
    return Referral(**present) if present else None


def _media_message(common: dict[str, Any], media: Media, message_type: str) -> InboundMessage:
    mime = (media.mime_type or "").lower()
    if message_type == "sticker" or mime == "image/webp":
        # WhatsApp stickers are WebP; photos users send arrive re-encoded as JPEG.
        return Sticker(**common, media=media)
    if mime.startswith("image/"):
        return Image(**common, media=media)
    if mime.startswith("audio/"):
        # Voice notes are recorded as OGG/Opus; audio files keep their format (MP3, M4A, AAC...).
        voice = message_type == "voice" or mime.startswith("audio/ogg")
        return Audio(**common, media=media, voice=voice)
    if mime.startswith("video/"):
        return Video(**common, media=media)
    return Document(**common, media=media)


def _num_media(form: Form) -> int:
    raw = form.get("NumMedia", "0").strip() or "0"
    if not (raw.isascii() and raw.isdigit()):
        raise MalformedWebhook(f"NumMedia {raw[:20]!r} is not a number")
    count = int(raw)
    if count > _MAX_MEDIA:
        raise MalformedWebhook(f"NumMedia {count} is more than Twilio's {_MAX_MEDIA} media per message")
    return count


def _coordinate(form: Form, name: str, bound: float) -> float:
    raw = form.get(name, "")
    try:
        value = float(raw)
    except ValueError:
        raise MalformedWebhook(f"{name} {raw[:30]!r} is not a number") from None
    if not math.isfinite(value) or abs(value) > bound:
        raise MalformedWebhook(f"{name} {raw[:30]!r} is out of range")
    return value


def _flag(form: Form, name: str) -> bool:
    return form.get(name, "").strip().lower() == "true"


def _error_code(form: Form) -> int | None:
    raw = form.get("ErrorCode", "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise MalformedWebhook(f"ErrorCode {raw[:20]!r} is not a number")
    return int(raw) or None
