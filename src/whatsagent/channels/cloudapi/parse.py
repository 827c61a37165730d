"""Cloud API webhook bodies → neutral events (`whatsagent.messages`), parsed once at the edge.

Shapes follow Meta's webhook reference (each message type on the pages beside the ones for the
envelope and for statuses, below) and the webhook fixtures of pywa
(https://github.com/david-lev/pywa, ``tests/data/updates``):
https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/overview
https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/status
Two rules:

- What routing and dedup need (the envelope's lists and objects, a message's `id` and `type`, a
  status's `id` and `status`) must be there: a body without them raises `MalformedWebhook` naming the
  exact place ("entry[0].changes must be a list, got dict"), as does any field of the wrong JSON type.
- Edits and deletions (`edit`, `revoke`) become `Edit` and `Revoke`, with the original message's id.
- What WhatsApp itself could not deliver is kept, not dropped: an unknown type, `unsupported`, or a
  message whose content object is missing (seen in the wild as an `interactive` message without its
  `interactive` object, with a value-level 131000 error, pywa's ``interactive_message_with_err``
  fixture) becomes `Unsupported` with its errors,
  so the inbox still stores and dedups it.

This runs on the webhook's hot path: plain dict lookups, the neutral models' own constructors (measured
faster than `model_construct` here), and paths for error messages built only when something is wrong.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn

from pydantic import ValidationError

from whatsagent.channels.cloudapi.errors import is_window_closed
from whatsagent.errors import MalformedWebhook
from whatsagent.messages import (
    Audio,
    ButtonReply,
    CallPermissionReply,
    ChannelNotice,
    ContactPhone,
    Contacts,
    Context,
    Document,
    Edit,
    Event,
    FlowReply,
    Image,
    InboundMessage,
    ListReply,
    Location,
    Media,
    Order,
    OrderItem,
    Pricing,
    ProviderError,
    Reaction,
    Referral,
    ReferredProduct,
    Revoke,
    SharedContact,
    StatusUpdate,
    Sticker,
    System,
    TemplateButton,
    Text,
    Unsupported,
    User,
    Video,
)
from whatsagent.privacy import shorten

__all__ = ["parse_webhook"]

_OBJECT = "whatsapp_business_account"
_DELIVERY_STATES = frozenset({"sent", "delivered", "read", "played", "failed"})

_Json = dict[str, Any]
_Contact = tuple[str | None, str | None, str | None, str | None, str | None]
"""A `value.contacts[]` item reduced to (wa_id, user_id, profile name, username, parent user id)."""

log = logging.getLogger(__name__)


def parse_webhook(payload: object, *, channel: str) -> list[Event]:
    """Turn one decoded Cloud API webhook body into events, in payload order.

    `payload` is the JSON the caller decoded after checking the signature; `channel` is the name of the
    channel that received it. Only `changes[].field == "messages"` carries bot traffic; other fields
    (template status updates, account updates, ...) and bodies whose `object` is not a WhatsApp Business
    Account yield no events. Raises `MalformedWebhook` with a reason a person can act on for anything
    the Cloud API does not send.
    """
    refused: list[str] = []
    try:
        events = _parse(payload, channel, refused)
    except MalformedWebhook:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, RecursionError) as exc:
        # A backstop: every known bad shape is caught with its path below; this keeps the promise that
        # nothing but MalformedWebhook leaves the parser even for a shape nobody thought of.
        raise MalformedWebhook(f"the webhook body could not be parsed: {exc!r}") from exc
    if refused:
        raise PartlyMalformed("; ".join(refused), events)
    return events


class PartlyMalformed(MalformedWebhook):
    """Some messages or statuses of an envelope are malformed: `events` holds the others, which are
    stored before the envelope is answered 400 (a redelivery then finds them as duplicates)."""

    def __init__(self, reason: str, events: list[Event]) -> None:
        super().__init__(reason)
        self.events = events


def _parse(payload: object, channel: str, refused: list[str]) -> list[Event]:
    if not isinstance(payload, dict):
        raise MalformedWebhook(f"the webhook body must be a JSON object, got {_kind(payload)}")
    obj = payload.get("object")
    if obj is not None and obj != _OBJECT:
        return []  # Instagram, Page, ... webhooks share the endpoint format but are not ours.
    entries = payload.get("entry")
    if not isinstance(entries, list):
        raise MalformedWebhook(_must("entry", "a list", payload, "entry"))
    events: list[Event] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise MalformedWebhook(f"entry[{i}] must be an object, got {_kind(entry)}")
        changes = entry.get("changes")
        if not isinstance(changes, list):
            raise MalformedWebhook(_must(f"entry[{i}].changes", "a list", entry, "changes"))
        for j, change in enumerate(changes):
            if not isinstance(change, dict):
                raise MalformedWebhook(f"entry[{i}].changes[{j}] must be an object, got {_kind(change)}")
            field = change.get("field")
            if field != "messages":
                if isinstance(field, str):
                    continue  # template, account, quality updates: not bot traffic
                raise MalformedWebhook(_must(f"entry[{i}].changes[{j}].field", "a string", change, "field"))
            value = change.get("value")
            if not isinstance(value, dict):
                raise MalformedWebhook(_must(f"entry[{i}].changes[{j}].value", "an object", change, "value"))
            _parse_value(value, f"entry[{i}].changes[{j}].value", channel, events, refused)
    return events


def _parse_value(value: _Json, path: str, channel: str, events: list[Event], refused: list[str]) -> None:
    metadata = value.get("metadata")
    if not isinstance(metadata, dict):
        raise MalformedWebhook(_must(f"{path}.metadata", "an object", value, "metadata"))
    account = metadata.get("phone_number_id")
    if not isinstance(account, str) or not account:
        raise MalformedWebhook(
            _must(f"{path}.metadata.phone_number_id", "a non-empty string", metadata, "phone_number_id")
        )
    messages = _value_list(value, "messages", path)
    statuses = _value_list(value, "statuses", path)
    errors = _value_list(value, "errors", path)
    contacts = _contacts(_value_list(value, "contacts", path), path, refused)

    value_errors: tuple[ProviderError, ...] = ()
    if errors:
        try:
            value_errors = tuple(_error(e, f"errors[{n}]") for n, e in enumerate(errors))
        except _Invalid as bad:
            raise MalformedWebhook(bad.reason(path)) from None
    errors_attached = False

    for k, raw in enumerate(messages):
        try:
            message, used_value_errors = _message(raw, account, channel, contacts, value_errors)
        except _Invalid as bad:  # this message only: the others of the envelope are kept
            refused.append(bad.reason(f"{path}.messages[{k}]", _id_of(raw)))
            continue
        except ValidationError as exc:
            refused.append(_invalid_model(f"{path}.messages[{k}]", _id_of(raw), exc))
            continue
        errors_attached = errors_attached or used_value_errors
        events.append(message)

    for k, raw in enumerate(statuses):
        try:
            update = _status(raw, account, channel)
        except _Invalid as bad:
            refused.append(bad.reason(f"{path}.statuses[{k}]", _id_of(raw)))
            continue
        except ValidationError as exc:
            refused.append(_invalid_model(f"{path}.statuses[{k}]", _id_of(raw), exc))
            continue
        if update is not None:
            events.append(update)

    if value_errors and not errors_attached:
        events.append(ChannelNotice(channel=channel, account=account, errors=value_errors))


# --- messages ---------------------------------------------------------------------------------------


def _message(
    raw: object,
    account: str,
    channel: str,
    contacts: list[_Contact],
    value_errors: tuple[ProviderError, ...],
) -> tuple[InboundMessage, bool]:
    """One `messages[]` item, and whether it took the value-level errors as its own."""
    if not isinstance(raw, dict):
        raise _Invalid("", f"must be an object, got {_kind(raw)}")
    message_id = raw.get("id")
    if not isinstance(message_id, str) or not message_id:
        raise _Invalid("id", _problem("a non-empty string", raw, "id"))
    type_ = raw.get("type")
    if not isinstance(type_, str) or not type_:
        raise _Invalid("type", _problem("a non-empty string", raw, "type"))

    context = raw.get("context")
    referral = raw.get("referral")
    own_errors = _errors(raw, "errors") if "errors" in raw else ()
    common: _Json = {
        "channel": channel,
        "account": account,
        "id": message_id,
        "user": _user(raw, contacts),
        "timestamp": _timestamp(raw),
        "context": None if context is None else _context(context),
        "referral": None if referral is None else _referral(referral),
        "errors": own_errors,
    }

    parse = _PARSERS.get(type_)
    if parse is None:
        return Unsupported(original_type=_original_type(type_, raw), **common), False
    body = raw.get(type_)
    if body is not None:
        try:
            return parse(body, common), False
        except _Unreadable as unreadable:
            type_ = unreadable.original_type
    # WhatsApp sent the type but not its content (pywa's "interactive_message_with_err" fixture): keep the
    # message, with the value-level errors that explain it when it has none of its own.
    if own_errors or not value_errors:
        return Unsupported(original_type=type_, **common), False
    common["errors"] = value_errors
    return Unsupported(original_type=type_, **common), True


def _original_type(type_: str, raw: _Json) -> str:
    if type_ == "unsupported":
        # Newer payloads say what it was: {"unsupported": {"type": "poll_update"}}, see
        # https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/unsupported
        detail = raw.get("unsupported")
        if isinstance(detail, dict):
            inner = _opt_str(detail, "type", "unsupported")
            if inner:
                return inner
    return type_


def _text(body: object, common: _Json) -> Text:
    return Text(body=_req_str(_obj(body, "text"), "body", "text"), **common)


def _image(body: object, common: _Json) -> Image:
    return Image(media=_media(_obj(body, "image"), "image"), **common)


def _video(body: object, common: _Json) -> Video:
    return Video(media=_media(_obj(body, "video"), "video"), **common)


def _audio(body: object, common: _Json) -> Audio:
    audio = _obj(body, "audio")
    return Audio(media=_media(audio, "audio"), voice=_opt_bool(audio, "voice", "audio"), **common)


def _document(body: object, common: _Json) -> Document:
    return Document(media=_media(_obj(body, "document"), "document"), **common)


def _sticker(body: object, common: _Json) -> Sticker:
    sticker = _obj(body, "sticker")
    return Sticker(media=_media(sticker, "sticker"), animated=_opt_bool(sticker, "animated", "sticker"), **common)


def _media(body: _Json, where: str) -> Media:
    return Media(
        media_id=_opt_str(body, "id", where),
        url=_opt_str(body, "url", where),
        mime_type=_opt_str(body, "mime_type", where),
        sha256=_opt_str(body, "sha256", where),
        caption=_opt_str(body, "caption", where),
        filename=_opt_str(body, "filename", where),
    )


def _location(body: object, common: _Json) -> Location:
    location = _obj(body, "location")
    return Location(
        latitude=_number(location, "latitude", "location"),
        longitude=_number(location, "longitude", "location"),
        name=_opt_str(location, "name", "location"),
        address=_opt_str(location, "address", "location"),
        url=_opt_str(location, "url", "location"),
        **common,
    )


def _shared_contacts(body: object, common: _Json) -> Contacts:
    if not isinstance(body, list):
        raise _Invalid("contacts", f"must be a list, got {_kind(body)}")
    return Contacts(contacts=tuple(_card(card, f"contacts[{n}]") for n, card in enumerate(body)), **common)


def _card(card: object, where: str) -> SharedContact:
    card = _obj(card, where)
    name = _opt_obj(card, "name", where) or {}
    first = _opt_str(name, "first_name", f"{where}.name")
    last = _opt_str(name, "last_name", f"{where}.name")
    formatted = _opt_str(name, "formatted_name", f"{where}.name") or " ".join(p for p in (first, last) if p)
    phones = tuple(_phone(phone, f"{where}.phones[{n}]") for n, phone in enumerate(_opt_list(card, "phones", where)))
    emails: list[str] = []
    for n, email in enumerate(_opt_list(card, "emails", where)):
        address = _opt_str(_obj(email, f"{where}.emails[{n}]"), "email", f"{where}.emails[{n}]")
        if address:
            emails.append(address)
    org = _opt_obj(card, "org", where)
    return SharedContact(
        formatted_name=formatted,
        first_name=first,
        last_name=last,
        phones=phones,
        emails=tuple(emails),
        organization=_opt_str(org, "company", f"{where}.org") if org else None,
    )


def _phone(phone: object, where: str) -> ContactPhone:
    phone = _obj(phone, where)
    return ContactPhone(
        phone=_opt_str(phone, "phone", where),
        wa_id=_opt_str(phone, "wa_id", where),
        type=_opt_str(phone, "type", where),
    )


def _interactive(body: object, common: _Json) -> InboundMessage:
    interactive = _obj(body, "interactive")
    sub = _opt_str(interactive, "type", "interactive")
    if not sub:
        raise _Unreadable("interactive")
    reply = interactive.get(sub)
    if reply is None:
        raise _Unreadable(f"interactive.{sub}")
    where = f"interactive.{sub}"
    if sub == "button_reply":
        reply = _obj(reply, where)
        return ButtonReply(button_id=_req_str(reply, "id", where), title=_req_str(reply, "title", where), **common)
    if sub == "list_reply":
        reply = _obj(reply, where)
        return ListReply(
            row_id=_req_str(reply, "id", where),
            title=_req_str(reply, "title", where),
            description=_opt_str(reply, "description", where),
            **common,
        )
    if sub == "nfm_reply":
        reply = _obj(reply, where)
        response, raw_response = _flow_response(_opt_str(reply, "response_json", where))
        return FlowReply(
            name=_opt_str(reply, "name", where),
            body=_opt_str(reply, "body", where),
            response=response,
            raw_response=raw_response,
            **common,
        )
    if sub == "call_permission_reply":
        reply = _obj(reply, where)
        expires = reply.get("expiration_timestamp")
        return CallPermissionReply(
            accepted=_req_str(reply, "response", where) == "accept",
            permanent=_opt_bool(reply, "is_permanent", where),
            expires_at=None if expires is None else _timestamp({"timestamp": expires}),
            source=_opt_str(reply, "response_source", where),
            **common,
        )
    return Unsupported(original_type=where, **common)


def _flow_response(raw: str | None) -> tuple[dict[str, Any], str | None]:
    """`response_json` is a JSON string inside the JSON (pywa's ``flow_completion`` fixture). A flow
    answer that is not a JSON object is kept verbatim instead of failing the whole webhook over one user's form."""
    if raw is None:
        return {}, None
    try:
        decoded = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return {}, raw
    if isinstance(decoded, dict):
        return decoded, None
    return {}, raw


def _reject_constant(name: str) -> NoReturn:
    # NaN and Infinity are not JSON; they would not survive the inbox's JSON round trip either.
    raise ValueError(f"{name} is not JSON")


def _template_button(body: object, common: _Json) -> TemplateButton:
    button = _obj(body, "button")
    return TemplateButton(
        payload=_opt_str(button, "payload", "button"), text=_req_str(button, "text", "button"), **common
    )


def _reaction(body: object, common: _Json) -> Reaction:
    reaction = _obj(body, "reaction")
    # A removed reaction arrives as "emoji": "" or with no emoji at all (pywa's reaction fixtures).
    return Reaction(
        message_id=_req_str(reaction, "message_id", "reaction"),
        emoji=_opt_str(reaction, "emoji", "reaction") or None,
        **common,
    )


def _order(body: object, common: _Json) -> Order:
    order = _obj(body, "order")
    items = tuple(
        _order_item(item, f"order.product_items[{n}]")
        for n, item in enumerate(_opt_list(order, "product_items", "order"))
    )
    return Order(
        catalog_id=_opt_str(order, "catalog_id", "order"),
        text=_opt_str(order, "text", "order") or None,
        items=items,
        **common,
    )


def _order_item(item: object, where: str) -> OrderItem:
    item = _obj(item, where)
    quantity = item.get("quantity", 1)
    if not isinstance(quantity, int) or isinstance(quantity, bool):
        raise _Invalid(f"{where}.quantity", f"must be an integer, got {_kind(quantity)}")
    price = item.get("item_price")
    return OrderItem(
        product_retailer_id=_req_str(item, "product_retailer_id", where),
        quantity=quantity,
        item_price=None if price is None else _number(item, "item_price", where),
        currency=_opt_str(item, "currency", where),
    )


def _system(body: object, common: _Json) -> System:
    system = _obj(body, "system")
    system_type = _opt_str(system, "type", "system") or "system"
    new_wa_id = None
    if system_type == "user_changed_number":
        # `wa_id` today; `new_wa_id` in older API versions.
        new_wa_id = _opt_str(system, "wa_id", "system") or _opt_str(system, "new_wa_id", "system")
    return System(system_type=system_type, body=_opt_str(system, "body", "system"), new_wa_id=new_wa_id, **common)


def _edit(body: object, common: _Json) -> Edit:
    edit = _obj(body, "edit")
    original_id = _req_str(edit, "original_message_id", "edit")
    message = _opt_obj(edit, "message", "edit") or {}
    kind = _opt_str(message, "type", "edit.message")
    content = message.get(kind) if kind else None
    text = media = None
    if isinstance(content, dict):
        where = f"edit.message.{kind}"
        if kind == "text":
            text = _opt_str(content, "body", where)
        else:
            text = _opt_str(content, "caption", where)
            if kind in ("image", "video", "document", "audio", "sticker"):
                media = _media(content, where)
    return Edit(original_id=original_id, text=text, original_kind=kind, media=media, **common)


def _revoke(body: object, common: _Json) -> Revoke:
    return Revoke(original_id=_req_str(_obj(body, "revoke"), "original_message_id", "revoke"), **common)


_PARSERS: dict[str, Callable[[object, _Json], InboundMessage]] = {
    "text": _text,
    "image": _image,
    "video": _video,
    "audio": _audio,
    "document": _document,
    "sticker": _sticker,
    "location": _location,
    "contacts": _shared_contacts,
    "interactive": _interactive,
    "button": _template_button,
    "reaction": _reaction,
    "order": _order,
    "system": _system,
    "edit": _edit,
    "revoke": _revoke,
}
"""Message types with a neutral counterpart; any other type (`unsupported`, `request_welcome`,
tomorrow's new one) becomes `Unsupported`."""


def _context(context: object) -> Context:
    context = _obj(context, "context")
    frequently = _opt_bool(context, "frequently_forwarded", "context")
    product = _opt_obj(context, "referred_product", "context")
    return Context(
        referred_product=None
        if product is None
        else ReferredProduct(
            catalog_id=_opt_str(product, "catalog_id", "context.referred_product"),
            product_retailer_id=_req_str(product, "product_retailer_id", "context.referred_product"),
        ),
        reply_to=_opt_str(context, "id", "context"),
        reply_to_from=_opt_str(context, "from", "context"),
        # WhatsApp sends only `frequently_forwarded: true` for a message forwarded many times; it is
        # still a forwarded message.
        forwarded=frequently or _opt_bool(context, "forwarded", "context"),
        frequently_forwarded=frequently,
    )


def _referral(referral: object) -> Referral:
    referral = _obj(referral, "referral")
    media_type = _opt_str(referral, "media_type", "referral")
    image_url = _opt_str(referral, "image_url", "referral")
    video_url = _opt_str(referral, "video_url", "referral")
    welcome = _opt_obj(referral, "welcome_message", "referral")
    return Referral(
        source_url=_opt_str(referral, "source_url", "referral"),
        source_id=_opt_str(referral, "source_id", "referral"),
        source_type=_opt_str(referral, "source_type", "referral"),
        headline=_opt_str(referral, "headline", "referral"),
        body=_opt_str(referral, "body", "referral"),
        media_type=media_type,
        media_url=(video_url or image_url) if media_type == "video" else (image_url or video_url),
        ctwa_clid=_opt_str(referral, "ctwa_clid", "referral"),
        welcome_message=_opt_str(welcome, "text", "referral.welcome_message") if welcome else None,
    )


# --- users ------------------------------------------------------------------------------------------


def _contacts(contacts: list[Any], path: str, refused: list[str]) -> list[_Contact]:
    reduced: list[_Contact] = []
    for n, contact in enumerate(contacts):
        where = f"contacts[{n}]"
        try:
            contact = _obj(contact, where)
            profile = _opt_obj(contact, "profile", where) or {}
            name = _opt_str(profile, "name", f"{where}.profile")
            username = _opt_str(profile, "username", f"{where}.profile")
            reduced.append(
                (
                    _opt_str(contact, "wa_id", where) or None,
                    _opt_str(contact, "user_id", where) or None,
                    name or None,
                    username or None,
                    _opt_str(contact, "parent_user_id", where) or None,
                )
            )
        except _Invalid as bad:  # refused, and its messages go unnamed: they are still stored
            refused.append(bad.reason(path))
            reduced.append((None, None, None, None, None))
    return reduced


def _user(raw: _Json, contacts: list[_Contact]) -> User:
    """The sender: `from` (wa_id) and `from_user_id` (BSUID), completed and named from the matching
    `value.contacts[]` item, or from the only one when it does not contradict the message."""
    wa_id = _opt_str(raw, "from", "") or None
    user_id = _opt_str(raw, "from_user_id", "") or None
    name = username = parent = None
    contact = _matching_contact(wa_id, user_id, contacts)
    if contact is not None:
        wa_id = wa_id or contact[0]
        user_id = user_id or contact[1]
        name, username, parent = contact[2], contact[3], contact[4]
    if not wa_id and not user_id:
        # Username-only users may have no wa_id, but every message has someone behind it.
        raise _Invalid("", "has neither `from` nor `from_user_id`, and no contact names its sender")
    return User(wa_id=wa_id, user_id=user_id, name=name, username=username, parent_user_id=parent)


def _matching_contact(wa_id: str | None, user_id: str | None, contacts: list[_Contact]) -> _Contact | None:
    for contact in contacts:
        if (wa_id and contact[0] == wa_id) or (user_id and contact[1] == user_id):
            return contact
    if len(contacts) == 1:
        only = contacts[0]
        if not (wa_id and only[0] and only[0] != wa_id) and not (user_id and only[1] and only[1] != user_id):
            return only
    return None


# --- statuses and errors ----------------------------------------------------------------------------


def _status(raw: object, account: str, channel: str) -> StatusUpdate | None:
    if not isinstance(raw, dict):
        raise _Invalid("", f"must be an object, got {_kind(raw)}")
    message_id = raw.get("id")
    if not isinstance(message_id, str) or not message_id:
        raise _Invalid("id", _problem("a non-empty string", raw, "id"))
    status = raw.get("status")
    if not isinstance(status, str):
        raise _Invalid("status", _problem("a string", raw, "status"))
    if status not in _DELIVERY_STATES:
        # A state Meta added later (older docs list `deleted`, `warning`): refusing it would make Meta
        # redeliver the whole batch for 7 days, so it is skipped, and said so.
        log.warning(
            "skipping status %r for %s: not a delivery state whatsagent tracks",
            shorten(str(status), 40),
            shorten(str(message_id), 80),
        )
        return None
    return StatusUpdate(
        channel=channel,
        account=account,
        message_id=message_id,
        status=status,  # type: ignore[arg-type]  # checked against _DELIVERY_STATES above
        recipient=_opt_str(raw, "recipient_id", "") or None,
        recipient_user_id=_opt_str(raw, "recipient_user_id", "") or None,
        pricing=_pricing(raw),
        timestamp=_timestamp(raw),
        errors=_errors(raw, "errors") if "errors" in raw else (),
        callback_data=_opt_str(raw, "biz_opaque_callback_data", ""),
    )


def _pricing(raw: _Json) -> Pricing | None:
    pricing = _opt_obj(raw, "pricing", "")
    if pricing is None:
        return None
    billable = pricing.get("billable")
    return Pricing(
        billable=billable if isinstance(billable, bool) else None,
        pricing_model=_opt_str(pricing, "pricing_model", "pricing"),
        type=_opt_str(pricing, "type", "pricing"),
        category=_opt_str(pricing, "category", "pricing"),
    )


def _errors(obj: _Json, key: str) -> tuple[ProviderError, ...]:
    errors = obj[key]
    if not isinstance(errors, list):
        raise _Invalid(key, f"must be a list, got {_kind(errors)}")
    return tuple(_error(error, f"{key}[{n}]") for n, error in enumerate(errors))


def _error(error: object, where: str) -> ProviderError:
    error = _obj(error, where)
    code = error.get("code")
    if isinstance(code, str) and code.isascii() and code.isdigit():
        code = int(code)
    if not isinstance(code, int) or isinstance(code, bool):
        raise _Invalid(f"{where}.code", _problem("an integer", error, "code"))
    data = error.get("error_data")
    # error_data is usually {"details": "..."} but a plain string for some APIs (pywa's `errors.py`,
    # https://github.com/david-lev/pywa/blob/master/pywa/errors.py).
    if isinstance(data, dict):
        details = _opt_str(data, "details", f"{where}.error_data") or ""
    else:
        details = data if isinstance(data, str) else ""
    return ProviderError(
        code=code,
        title=_opt_str(error, "title", where) or "",
        message=_opt_str(error, "message", where) or "",
        details=details,
        window_closed=is_window_closed(code),
    )


def _timestamp(obj: _Json) -> datetime:
    raw = obj.get("timestamp")
    if raw is None:
        return datetime.now(UTC)  # never seen from Meta; the receipt time is the best we know
    # Unix seconds, as a string (https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/overview).
    if isinstance(raw, str) and raw.isascii() and raw.isdigit():
        seconds = int(raw)
    elif isinstance(raw, int) and not isinstance(raw, bool):
        seconds = raw
    else:
        raise _Invalid("timestamp", f"must be unix seconds, got {_kind(raw)} {raw!r:.40}")
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise _Invalid("timestamp", f"is not a valid unix time: {raw!r:.40}") from None


# --- field access with exact error paths ------------------------------------------------------------


class _Invalid(Exception):
    """A wrong field inside one message, status or contact; re-raised as `MalformedWebhook` once the
    caller knows the full path, so paths are only built when something is wrong."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(where, problem)
        self.where = where
        self.problem = problem

    def reason(self, path: str, item_id: str | None = None) -> str:
        where = f"{path}.{self.where}" if self.where else path
        named = f" (message {item_id})" if item_id else ""
        return f"{where} {self.problem}{named}"


class _Unreadable(Exception):
    """A message's content object is missing: it is kept as `Unsupported` of this type."""

    def __init__(self, original_type: str) -> None:
        super().__init__(original_type)
        self.original_type = original_type


def _obj(value: object, where: str) -> _Json:
    if not isinstance(value, dict):
        raise _Invalid(where, f"must be an object, got {_kind(value)}")
    return value


def _opt_obj(obj: _Json, key: str, where: str) -> _Json | None:
    value = obj.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise _Invalid(_join(where, key), f"must be an object, got {_kind(value)}")


def _opt_list(obj: _Json, key: str, where: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if isinstance(value, list):
        return value
    raise _Invalid(_join(where, key), f"must be a list, got {_kind(value)}")


def _req_str(obj: _Json, key: str, where: str) -> str:
    value = obj.get(key)
    if isinstance(value, str):
        return value
    raise _Invalid(_join(where, key), _problem("a string", obj, key))


def _opt_str(obj: _Json, key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise _Invalid(_join(where, key), f"must be a string, got {_kind(value)}")


def _opt_bool(obj: _Json, key: str, where: str) -> bool:
    value = obj.get(key, False)
    if isinstance(value, bool):
        return value
    raise _Invalid(_join(where, key), f"must be true or false, got {_kind(value)}")


def _number(obj: _Json, key: str, where: str) -> float:
    value = obj.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    raise _Invalid(_join(where, key), _problem("a number", obj, key))


def _value_list(value: _Json, key: str, path: str) -> list[Any]:
    items = value.get(key)
    if items is None and key not in value:
        return []
    if not isinstance(items, list):
        raise MalformedWebhook(f"{path}.{key} must be a list, got {_kind(items)}")
    return items


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _problem(expected: str, obj: _Json, key: str) -> str:
    return f"must be {expected}, got {_kind(obj[key])}" if key in obj else "is missing"


def _must(path: str, expected: str, obj: _Json, key: str) -> str:
    return f"{path} {_problem(expected, obj, key)}"


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _id_of(raw: object) -> str | None:
    if isinstance(raw, dict):
        message_id = raw.get("id")
        if isinstance(message_id, str) and message_id:
            return shorten(message_id, 80)
    return None


def _invalid_model(path: str, item_id: str | None, exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    named = f" (message {item_id})" if item_id else ""
    return f"{path} is not valid: {field}: {first['msg']}{named}"
