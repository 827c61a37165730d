"""Channel-neutral messages: what a webhook becomes once it is parsed at the edge.

Every channel (Meta's Cloud API, Twilio) turns its wire format into these types; nothing downstream
(inbox, lanes, turns, agent) reads a provider's dicts. They serialize losslessly to JSON, which is how
the inbox stores them.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, model_validator


def _without_nul(value: Any) -> Any:
    # PostgreSQL refuses NUL in text; no WhatsApp field means anything by one.
    return value.replace("\x00", "") if isinstance(value, str) and "\x00" in value else value


def _fitted(limit: int) -> AfterValidator:
    """An identifier cut to `limit` characters (a column's size), its tail replaced by a hash of the
    whole so that two long ids stay two ids. Real ids are far shorter and pass unchanged."""

    def fit(value: str | None) -> str | None:
        if value is None or len(value) <= limit:
            return value
        digest = hashlib.sha256(value.encode()).hexdigest()[:16]
        return f"{value[: limit - 17]}~{digest}"

    return AfterValidator(fit)


def _cut(limit: int) -> AfterValidator:
    """A display text (a profile name) cut to `limit` characters."""
    return AfterValidator(lambda value: value[:limit] if isinstance(value, str) else value)


# Sizes of the columns these fields are stored in (whatsagent.store.schema), so that no value a sender
# chooses can fail an insert on PostgreSQL (SQLite does not check lengths): fields are made safe here,
# at the edge, and every message of an envelope is stored.
MessageId = Annotated[str, _fitted(255)]
OptionalId = Annotated[str | None, _fitted(255)]
Account = Annotated[str, _fitted(100)]
WaId = Annotated[str | None, _fitted(64)]
Name = Annotated[str | None, _cut(255)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(isinstance(v, str) and "\x00" in v for v in data.values()):
            return {k: _without_nul(v) for k, v in data.items()}
        return data


class ProviderError(_Model):
    """An error a provider attached to a message, a status or a whole webhook."""

    code: Annotated[int, AfterValidator(lambda code: code if -(2**31) <= code < 2**31 else -1)]
    """The provider's error code; -1 when it is outside a 32-bit integer (nothing real is)."""
    title: str = ""
    message: str = ""
    details: str = ""
    window_closed: bool = False
    """The channel read `code` as "the user's 24-hour window is closed": only a template can go now."""


class User(_Model):
    """Who wrote. WhatsApp users are known by `wa_id` and, more and more, by a business-scoped user id
    (BSUID, e.g. ``US.13491208655302741918``); username-only users may have no `wa_id` at all."""

    wa_id: WaId = None
    user_id: OptionalId = None
    name: Name = None
    username: Name = None
    """The user's WhatsApp username (`contacts[].profile.username`), when they have one."""
    parent_user_id: OptionalId = None
    """A parent BSUID shared across a managed business's portfolios (`US.ENT.…`)."""

    @property
    def key(self) -> str:
        """The stable identity a conversation is keyed on: the `wa_id` when known, else the BSUID."""
        key = self.wa_id or self.user_id
        if not key:
            raise ValueError("a WhatsApp user needs a wa_id or a business-scoped user id")
        return key


class Referral(_Model):
    """The Click-to-WhatsApp ad (or post) that brought the user here."""

    source_url: str | None = None
    source_id: str | None = None
    source_type: str | None = None
    headline: str | None = None
    body: str | None = None
    media_type: str | None = None
    media_url: str | None = None
    ctwa_clid: str | None = None
    welcome_message: str | None = None
    """The greeting the ad showed the user before they wrote (`referral.welcome_message.text`)."""


class ReferredProduct(_Model):
    """The catalog product a user asked about (the "Message business" button on a product)."""

    catalog_id: str | None = None
    product_retailer_id: str


class Context(_Model):
    """How a message relates to earlier ones: a quoted reply, a forward."""

    reply_to: str | None = None
    reply_to_from: str | None = None
    forwarded: bool = False
    frequently_forwarded: bool = False
    referred_product: ReferredProduct | None = None


class Media(_Model):
    """A medium the user sent. `media_id` is the provider's handle; the bytes are fetched by a turn,
    never on the webhook path."""

    media_id: str | None = None
    url: str | None = None
    mime_type: str | None = None
    sha256: str | None = None
    size: int | None = None
    caption: str | None = None
    filename: str | None = None


class _Inbound(_Model):
    """Fields every inbound message carries."""

    channel: str
    """Name of the channel that received it (unique per OS)."""
    account: Account
    """The business account it was sent to: the Cloud API phone number id, or Twilio's number."""
    id: MessageId
    """The provider's message id (a wamid, a Twilio MessageSid): the dedup key."""
    user: User
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    context: Context | None = None
    referral: Referral | None = None
    errors: tuple[ProviderError, ...] = ()

    @property
    def triggers_reply(self) -> bool:
        """Whether this message should start a turn. Reactions, system notices and messages WhatsApp
        could not deliver do not: answering them invites loops between bots (a known pitfall)."""
        return True

    def describe(self) -> str:
        """A short, readable account of the message for an agent that cannot take it as it is."""
        raise NotImplementedError


class Text(_Inbound):
    kind: Literal["text"] = "text"
    body: str

    def describe(self) -> str:
        return self.body


class Image(_Inbound):
    kind: Literal["image"] = "image"
    media: Media

    def describe(self) -> str:
        return _media_description("an image", self.media)


class Audio(_Inbound):
    kind: Literal["audio"] = "audio"
    media: Media
    voice: bool = False
    """True for a recorded voice note, False for an audio file."""

    def describe(self) -> str:
        return _media_description("a voice note" if self.voice else "an audio file", self.media)


class Video(_Inbound):
    kind: Literal["video"] = "video"
    media: Media

    def describe(self) -> str:
        return _media_description("a video", self.media)


class Document(_Inbound):
    kind: Literal["document"] = "document"
    media: Media

    def describe(self) -> str:
        name = f" named {self.media.filename!r}" if self.media.filename else ""
        return _media_description(f"a document{name}", self.media)


class Sticker(_Inbound):
    kind: Literal["sticker"] = "sticker"
    media: Media
    animated: bool = False

    def describe(self) -> str:
        return "[The user sent an animated sticker]" if self.animated else "[The user sent a sticker]"


class Location(_Inbound):
    kind: Literal["location"] = "location"
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None
    url: str | None = None

    def describe(self) -> str:
        place = ", ".join(p for p in (self.name, self.address) if p)
        where = f" ({place})" if place else ""
        return f"[The user shared a location: latitude {self.latitude}, longitude {self.longitude}{where}]"


class ContactPhone(_Model):
    phone: str | None = None
    wa_id: str | None = None
    type: str | None = None


class SharedContact(_Model):
    formatted_name: str
    first_name: str | None = None
    last_name: str | None = None
    phones: tuple[ContactPhone, ...] = ()
    emails: tuple[str, ...] = ()
    organization: str | None = None


class Contacts(_Inbound):
    kind: Literal["contacts"] = "contacts"
    contacts: tuple[SharedContact, ...]

    def describe(self) -> str:
        cards = []
        for c in self.contacts:
            phones = ", ".join(p.phone or p.wa_id or "" for p in c.phones if p.phone or p.wa_id)
            cards.append(f"{c.formatted_name}" + (f" ({phones})" if phones else ""))
        return "[The user shared contact cards: " + "; ".join(cards) + "]"


class ButtonReply(_Inbound):
    """A tap on a reply button the bot sent (interactive `button_reply`)."""

    kind: Literal["button_reply"] = "button_reply"
    button_id: str
    title: str

    def describe(self) -> str:
        return f"{self.title}\n[The user tapped the button {self.title!r} (id {self.button_id!r})]"


class ListReply(_Inbound):
    """A row chosen from a list message the bot sent (interactive `list_reply`)."""

    kind: Literal["list_reply"] = "list_reply"
    row_id: str
    title: str
    description: str | None = None

    def describe(self) -> str:
        desc = f" — {self.description}" if self.description else ""
        return f"{self.title}\n[The user chose {self.title!r}{desc} (id {self.row_id!r}) from a list]"


class FlowReply(_Inbound):
    """A completed WhatsApp Flow (interactive `nfm_reply`)."""

    kind: Literal["flow_reply"] = "flow_reply"
    name: str | None = None
    body: str | None = None
    response: dict[str, Any] = Field(default_factory=dict)
    raw_response: str | None = None
    """The flow's answer exactly as received, kept only when it was not a JSON object (so `response` is
    empty) rather than losing what the user filled in."""

    def describe(self) -> str:
        return f"[The user completed a form: {self.response or self.raw_response or {}}]"


class TemplateButton(_Inbound):
    """A tap on a quick-reply button of a template message (type `button`)."""

    kind: Literal["template_button"] = "template_button"
    payload: str | None = None
    text: str

    def describe(self) -> str:
        return f"{self.text}\n[The user tapped the template button {self.text!r} (payload {self.payload!r})]"


class Reaction(_Inbound):
    """An emoji reaction on an earlier message; `emoji` None means the reaction was removed."""

    kind: Literal["reaction"] = "reaction"
    message_id: str
    emoji: str | None = None

    @property
    def triggers_reply(self) -> bool:
        return False

    def describe(self) -> str:
        if self.emoji:
            return f"[The user reacted {self.emoji} to message {self.message_id}]"
        return f"[The user removed their reaction from message {self.message_id}]"


class OrderItem(_Model):
    product_retailer_id: str
    quantity: int = 1
    item_price: float | None = None
    currency: str | None = None


class Order(_Inbound):
    kind: Literal["order"] = "order"
    catalog_id: str | None = None
    text: str | None = None
    items: tuple[OrderItem, ...] = ()

    def describe(self) -> str:
        lines = [
            f"{i.quantity} × {i.product_retailer_id}"
            + (f" at {i.item_price} {i.currency or ''}".rstrip() if i.item_price is not None else "")
            for i in self.items
        ]
        note = f" Note: {self.text}" if self.text else ""
        return "[The user placed an order: " + "; ".join(lines) + "]" + note


class System(_Inbound):
    """A notice from WhatsApp about the user (changed number, identity changed)."""

    kind: Literal["system"] = "system"
    system_type: str
    body: str | None = None
    new_wa_id: str | None = None

    @property
    def triggers_reply(self) -> bool:
        return False

    def describe(self) -> str:
        return f"[WhatsApp notice: {self.body or self.system_type}]"


class Edit(_Inbound):
    """The user edited an earlier message: `original_id` now reads `text` (a new text or caption)."""

    kind: Literal["edit"] = "edit"
    original_id: str
    text: str | None = None
    original_kind: str | None = None
    """The edited message's type (`text`, `image`, ...)."""
    media: Media | None = None

    def describe(self) -> str:
        if self.text is None:
            return f"[The user edited their message {self.original_id}]"
        return f"[The user edited their message to: {self.text}]"


class Revoke(_Inbound):
    """The user deleted ("deleted for everyone") an earlier message."""

    kind: Literal["revoke"] = "revoke"
    original_id: str

    @property
    def triggers_reply(self) -> bool:
        return False

    def describe(self) -> str:
        return f"[The user deleted their message {self.original_id}]"


class CallPermissionReply(_Inbound):
    """The user's answer to the bot's request to call them (interactive `call_permission_reply`)."""

    kind: Literal["call_permission_reply"] = "call_permission_reply"
    accepted: bool
    permanent: bool = False
    expires_at: datetime | None = None
    source: str | None = None
    """`user_action`, or `automatic` when WhatsApp answered for the user."""

    def describe(self) -> str:
        if not self.accepted:
            return "[The user declined to be called]"
        until = " permanently" if self.permanent else ""
        if self.expires_at is not None and not self.permanent:
            until = f" until {self.expires_at:%Y-%m-%d %H:%M} UTC"
        return f"[The user allowed the business to call them{until}]"


class Unsupported(_Inbound):
    """A message WhatsApp could not hand to the bot (a poll, a view-once, an unknown type), kept with its
    errors so nothing is silently dropped. It is answered: by default with the channel's short
    `unsupported_reply` ("I can't open that kind of message yet"), else by the agent."""

    kind: Literal["unsupported"] = "unsupported"
    original_type: str | None = None

    def describe(self) -> str:
        what = f" ({self.original_type})" if self.original_type else ""
        reason = f": {self.errors[0].title or self.errors[0].message}" if self.errors else ""
        return f"[The user sent a kind of message the bot cannot read{what}{reason}]"


InboundMessage = Annotated[
    Text
    | Image
    | Audio
    | Video
    | Document
    | Sticker
    | Location
    | Contacts
    | ButtonReply
    | ListReply
    | FlowReply
    | TemplateButton
    | Reaction
    | Order
    | System
    | Edit
    | Revoke
    | CallPermissionReply
    | Unsupported,
    Field(discriminator="kind"),
]
"""Any inbound message, discriminated by `kind`."""

inbound_adapter: TypeAdapter[InboundMessage] = TypeAdapter(InboundMessage)

MEDIA_KINDS = frozenset({"image", "audio", "video", "document", "sticker"})

DeliveryState = Literal["sent", "delivered", "read", "played", "failed"]


class Pricing(_Model):
    """How Meta prices a delivered message (`statuses[].pricing`)."""

    billable: bool | None = None
    pricing_model: str | None = None
    type: str | None = None
    category: str | None = None


class StatusUpdate(_Model):
    """What became of a message the bot sent: one tick, two ticks, blue ticks, or a failure."""

    channel: str
    account: Account
    message_id: MessageId
    """The provider id of the outbound message (the wamid the send returned)."""
    status: DeliveryState
    recipient: str | None = None
    """The recipient's wa_id; None for a user whose number is withheld (see `recipient_user_id`)."""
    recipient_user_id: str | None = None
    """The recipient's business-scoped user id (BSUID)."""
    pricing: Pricing | None = None
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    errors: tuple[ProviderError, ...] = ()
    callback_data: str | None = None
    """`biz_opaque_callback_data` echoed back by Meta: whatsagent puts the outbox idempotency key here."""


class ChannelNotice(_Model):
    """A webhook-level error that concerns the account rather than one message (e.g. its throughput
    exceeded)."""

    channel: str
    account: str
    errors: tuple[ProviderError, ...]


Event = InboundMessage | StatusUpdate | ChannelNotice


def _media_description(what: str, media: Media) -> str:
    details = [d for d in (media.mime_type, _human_size(media.size)) if d]
    extra = f" ({', '.join(details)})" if details else ""
    caption = f" with the caption {media.caption!r}" if media.caption else ""
    return f"[The user sent {what}{extra}{caption}]"


def _human_size(size: int | None) -> str | None:
    if size is None:
        return None
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / (1024 * 1024):.1f} MB"
