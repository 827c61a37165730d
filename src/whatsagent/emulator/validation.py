"""Meta's checks on a `POST /{phone_number_id}/messages` body, with its limits and error codes.

Limits are Meta's (Cloud API docs: https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/text-messages,
https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/image-messages,
https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/interactive-reply-buttons-messages,
https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/interactive-list-messages):
text 4096, caption 1024, three reply buttons with unique
titles of at most 20 characters, at most 10 list rows across all sections, and so on. A structural
problem is code 100 with the reason in `error_data.details`; a wrong value inside an interactive
message is 131009, a missing interactive part 131008.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeGuard

from whatsagent.emulator.errors import GraphError, invalid
from whatsagent.emulator.templates import Template, Templates

MESSAGE_TYPES = frozenset(
    {
        "text",
        "image",
        "audio",
        "video",
        "document",
        "sticker",
        "location",
        "contacts",
        "interactive",
        "reaction",
        "template",
    }
)
MEDIA_TYPES = frozenset({"image", "audio", "video", "document", "sticker"})
CAPTIONED = frozenset({"image", "video", "document"})
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


@dataclass(slots=True)
class ReadReceipt:
    """A mark-read request, optionally showing the typing indicator."""

    message_id: str
    typing: bool


@dataclass(slots=True)
class Send:
    """A message body that passed Meta's checks."""

    to: str | None
    recipient: str | None
    type: str
    body: dict[str, Any]
    template: Template | None = None
    rendered: str | None = None


def check_request(body: Any, templates: Templates) -> Send | ReadReceipt:
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object")
    product = body.get("messaging_product")
    if product is None:
        raise _required("messaging_product")
    if product != "whatsapp":
        raise invalid("Param messaging_product must be 'whatsapp'")
    if "status" in body:
        return _check_read(body)
    recipient_type = body.get("recipient_type", "individual")
    if recipient_type != "individual":
        raise invalid(f"Param recipient_type must be 'individual' (got {recipient_type!r}); groups are not emulated")
    to, recipient = body.get("to"), body.get("recipient")
    if to is None and recipient is None:
        raise _required("to")
    for name, value in (("to", to), ("recipient", recipient)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise invalid(f"Param {name} must be a non-empty string")
    kind = body.get("type", "text")
    if kind not in MESSAGE_TYPES:
        raise invalid(f"Param type must be one of {{{', '.join(sorted(MESSAGE_TYPES))}}}")
    payload = body.get(kind)
    if payload is None:
        raise _required(kind)
    context = body.get("context")
    if context is not None and (not isinstance(context, dict) or not _nonempty_str(context.get("message_id"))):
        raise invalid("Param context['message_id'] must be a non-empty string")
    callback = body.get("biz_opaque_callback_data")
    if callback is not None and (not isinstance(callback, str) or len(callback) > 512):
        raise invalid("Param biz_opaque_callback_data must be a string of at most 512 characters")
    send = Send(to=to, recipient=recipient, type=kind, body=body)
    if kind == "text":
        _check_text(payload)
    elif kind in MEDIA_TYPES:
        _check_media(kind, payload)
    elif kind == "location":
        _check_location(payload)
    elif kind == "contacts":
        _check_contacts(payload)
    elif kind == "interactive":
        _check_interactive(payload)
    elif kind == "reaction":
        _check_reaction(payload)
    elif kind == "template":
        send.template, send.rendered = templates.check(payload)
    return send


def _check_read(body: dict[str, Any]) -> ReadReceipt:
    if body.get("status") != "read":
        raise invalid("Param status must be 'read'")
    message_id = body.get("message_id")
    if not _nonempty_str(message_id):
        raise _required("message_id")
    typing = body.get("typing_indicator")
    if typing is not None and (not isinstance(typing, dict) or typing.get("type") != "text"):
        raise invalid("Param typing_indicator['type'] must be 'text'")
    return ReadReceipt(message_id=message_id, typing=typing is not None)


def _check_text(text: Any) -> None:
    if not isinstance(text, dict):
        raise invalid("Param text must be a JSON object")
    body = text.get("body")
    if not _nonempty_str(body):
        raise _required("text['body']")
    _limit("text['body']", body, 4096)
    if "preview_url" in text and not isinstance(text["preview_url"], bool):
        raise invalid("Param text['preview_url'] must be a boolean")


def _check_media(kind: str, media: Any) -> None:
    if not isinstance(media, dict):
        raise invalid(f"Param {kind} must be a JSON object")
    has_id, has_link = "id" in media, "link" in media
    if has_id and has_link:
        raise invalid(f"Param {kind} must have either 'id' or 'link', not both")
    if not has_id and not has_link:
        raise _required(f"{kind}['id'] or {kind}['link']")
    if has_id and not _nonempty_str(media["id"]):
        raise invalid(f"Param {kind}['id'] must be a non-empty string")
    if has_link and not (isinstance(media["link"], str) and _URL.match(media["link"])):
        raise invalid(f"Param {kind}['link'] must be a valid http(s) URL")
    if "caption" in media:
        if kind not in CAPTIONED:
            raise invalid(f"Param {kind}['caption'] is not supported for {kind} messages")
        _limit(f"{kind}['caption']", media["caption"], 1024)
    if "filename" in media and (kind != "document" or not isinstance(media["filename"], str)):
        raise invalid(f"Param {kind}['filename'] is only supported, as a string, on document messages")
    if "voice" in media and (kind != "audio" or not isinstance(media["voice"], bool)):
        raise invalid("Param voice is only supported, as a boolean, on audio messages")


def _check_location(loc: Any) -> None:
    if not isinstance(loc, dict):
        raise invalid("Param location must be a JSON object")
    for name, bound in (("latitude", 90.0), ("longitude", 180.0)):
        value = loc.get(name)
        if value is None:
            raise _required(f"location['{name}']")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise invalid(f"Param location['{name}'] must be a number") from None
        if isinstance(value, bool) or not -bound <= number <= bound:
            raise invalid(f"Param location['{name}'] must be between -{bound:g} and {bound:g}")
    for name in ("name", "address"):
        if name in loc and not isinstance(loc[name], str):
            raise invalid(f"Param location['{name}'] must be a string")


def _check_contacts(contacts: Any) -> None:
    if not isinstance(contacts, list) or not contacts:
        raise invalid("Param contacts must be a non-empty array")
    if len(contacts) > 257:
        raise invalid("Param contacts must have at most 257 items")
    for i, card in enumerate(contacts):
        name = card.get("name") if isinstance(card, dict) else None
        if not isinstance(name, dict) or not _nonempty_str(name.get("formatted_name")):
            raise _required(f"contacts[{i}]['name']['formatted_name']")
        phones = card.get("phones", [])
        if not isinstance(phones, list) or not all(isinstance(p, dict) for p in phones):
            raise invalid(f"Param contacts[{i}]['phones'] must be an array of objects")


def _check_reaction(reaction: Any) -> None:
    if not isinstance(reaction, dict):
        raise invalid("Param reaction must be a JSON object")
    if not _nonempty_str(reaction.get("message_id")):
        raise _required("reaction['message_id']")
    emoji = reaction.get("emoji")
    if not isinstance(emoji, str):
        raise _required("reaction['emoji']")
    if len(emoji) > 10:
        raise invalid("Param reaction['emoji'] must be a single emoji", code=131009)


INTERACTIVE_TYPES = (
    "button",
    "list",
    "cta_url",
    "flow",
    "catalog_message",
    "product",
    "product_list",
    "carousel",
    "location_request_message",
    "call_permission_request",
    "voice_call",
    "request_contact_info",
    "order_details",
    "order_status",
)
"""Interactive message types Meta accepts (pywa's `send_*` methods send each; Cloud API docs, Send messages:
https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/send-messages)."""

_MEDIA_HEADERS = ("text", "image", "video", "document")
_HEADERS: dict[str, tuple[str, ...]] = {
    "button": _MEDIA_HEADERS,
    "cta_url": _MEDIA_HEADERS,
    "flow": _MEDIA_HEADERS,
    "list": ("text",),
    "product_list": ("text",),
    "order_details": _MEDIA_HEADERS,
}
"""Header types each interactive type takes; the others take no header."""

_ACTION_NAMES = {
    "cta_url": "cta_url",
    "flow": "flow",
    "catalog_message": "catalog_message",
    "location_request_message": "send_location",
    "call_permission_request": "call_permission_request",
    "voice_call": "voice_call",
    "request_contact_info": "request_contact_info",
    "order_details": "review_and_pay",
    "order_status": "review_order",
}


def _check_interactive(inter: Any) -> None:
    if not isinstance(inter, dict):
        raise invalid("Param interactive must be a JSON object")
    kind = inter.get("type")
    if kind not in INTERACTIVE_TYPES:
        raise invalid(f"Param interactive['type'] must be one of {{{', '.join(INTERACTIVE_TYPES)}}}")
    body = inter.get("body")
    if body is not None or kind != "product":
        if not isinstance(body, dict) or not _nonempty_str(body.get("text")):
            raise GraphError(400, 131008, "The parameter interactive['body']['text'] is required.")
        _limit("interactive['body']['text']", body["text"], 4096 if kind == "list" else 1024, code=131009)
    footer = inter.get("footer")
    if footer is not None:
        if not isinstance(footer, dict) or not _nonempty_str(footer.get("text")):
            raise invalid("Param interactive['footer']['text'] must be a non-empty string")
        _limit("interactive['footer']['text']", footer["text"], 60, code=131009)
    header = inter.get("header")
    if header is not None:
        _check_header(kind, header)
    elif kind == "product_list":
        raise GraphError(400, 131008, "The parameter interactive['header'] is required.")
    action = inter.get("action")
    if not isinstance(action, dict):
        raise GraphError(400, 131008, "The parameter interactive['action'] is required.")
    name = _ACTION_NAMES.get(kind)
    if name is not None and action.get("name") != name:
        raise invalid(f"Param interactive['action']['name'] must be '{name}' for {kind} messages")
    params = action.get("parameters")
    if kind == "button":
        _check_buttons(action)
    elif kind == "list":
        _check_list(action)
    elif kind == "cta_url":
        _check_cta(action)
    elif kind == "flow":
        _check_flow(params)
    elif kind == "voice_call":
        if params is not None:
            if not isinstance(params, dict):
                raise invalid("Param interactive['action']['parameters'] must be a JSON object")
            if "display_text" in params:
                _limit("parameters['display_text']", params["display_text"], 20, code=131009)
    elif kind == "product":
        _check_product_ref(action, "interactive['action']")
    elif kind == "product_list":
        _check_product_list(action)
    elif kind == "carousel":
        _check_carousel(action)
    elif kind in ("order_details", "order_status"):
        _check_order(kind, params)


def _check_flow(params: Any) -> None:
    if not isinstance(params, dict):
        raise GraphError(400, 131008, "The parameter interactive['action']['parameters'] is required.")
    if str(params.get("flow_message_version", "")) != "3":
        raise invalid("Param parameters['flow_message_version'] must be '3'")
    if not (_nonempty_str(params.get("flow_id")) or _nonempty_str(params.get("flow_name"))):
        raise GraphError(400, 131008, "The parameter parameters['flow_id'] or parameters['flow_name'] is required.")
    cta = params.get("flow_cta")
    if not _nonempty_str(cta):
        raise GraphError(400, 131008, "The parameter parameters['flow_cta'] is required.")
    _limit("parameters['flow_cta']", cta, 30, code=131009)
    if params.get("mode", "published") not in ("draft", "published"):
        raise invalid("Param parameters['mode'] must be 'draft' or 'published'")
    flow_action = params.get("flow_action", "navigate")
    if flow_action not in ("navigate", "data_exchange"):
        raise invalid("Param parameters['flow_action'] must be 'navigate' or 'data_exchange'")
    payload = params.get("flow_action_payload")
    if payload is not None and (not isinstance(payload, dict) or not _nonempty_str(payload.get("screen"))):
        raise invalid("Param parameters['flow_action_payload']['screen'] must be a non-empty string")


def _check_product_ref(item: Any, path: str) -> None:
    if not isinstance(item, dict):
        raise invalid(f"Param {path} must be a JSON object")
    for name in ("catalog_id", "product_retailer_id"):
        if not _nonempty_str(item.get(name)):
            raise GraphError(400, 131008, f"The parameter {path}['{name}'] is required.")


def _check_product_list(action: dict[str, Any]) -> None:
    if not _nonempty_str(action.get("catalog_id")):
        raise GraphError(400, 131008, "The parameter interactive['action']['catalog_id'] is required.")
    sections = action.get("sections")
    if not isinstance(sections, list) or not sections:
        raise GraphError(400, 131008, "The parameter interactive['action']['sections'] is required.")
    if len(sections) > 10:
        raise invalid("Param interactive['action']['sections'] must have at most 10 items", code=131009)
    total = 0
    for i, section in enumerate(sections):
        items = section.get("product_items") if isinstance(section, dict) else None
        if not isinstance(items, list) or not items:
            raise GraphError(400, 131008, f"The parameter sections[{i}]['product_items'] is required.")
        if len(sections) > 1 and not _nonempty_str(section.get("title")):
            raise GraphError(400, 131008, f"sections[{i}]['title'] is required when there are several sections")
        for j, product in enumerate(items):
            if not isinstance(product, dict) or not _nonempty_str(product.get("product_retailer_id")):
                raise GraphError(400, 131008, f"sections[{i}]['product_items'][{j}]['product_retailer_id'] is required")
        total += len(items)
    if total > 30:
        raise invalid(f"Total product count exceeded: {total} products, at most 30", code=131009)


def _check_carousel(action: dict[str, Any]) -> None:
    cards = action.get("cards")
    if not isinstance(cards, list) or not cards:
        raise GraphError(400, 131008, "The parameter interactive['action']['cards'] is required.")
    if not 2 <= len(cards) <= 10:
        raise invalid("Param interactive['action']['cards'] must have 2 to 10 cards", code=131009)
    header_types: set[str] = set()
    for i, card in enumerate(cards):
        if not isinstance(card, dict):
            raise invalid(f"Param cards[{i}] must be a JSON object")
        if card.get("card_index") != i:
            raise invalid(f"Param cards[{i}]['card_index'] must be {i}")
        header = card.get("header")
        if not isinstance(header, dict) or header.get("type") not in ("image", "video"):
            raise GraphError(400, 131008, f"The parameter cards[{i}]['header'] (an image or a video) is required.")
        header_types.add(header["type"])
        _check_media(header["type"], header.get(header["type"]))
        if "body" in card:
            text = card["body"].get("text") if isinstance(card["body"], dict) else None
            _limit(f"cards[{i}]['body']['text']", text, 160, code=131009)
        card_action = card.get("action")
        if not isinstance(card_action, dict):
            raise GraphError(400, 131008, f"The parameter cards[{i}]['action'] is required.")
        if card_action.get("name") == "cta_url":
            _check_cta(card_action)
        else:
            buttons = card_action.get("buttons")
            if not isinstance(buttons, list) or not 1 <= len(buttons) <= 2:
                raise invalid(f"Param cards[{i}]['action'] needs a cta_url or 1 to 2 quick-reply buttons")
            for button in buttons:
                reply = button.get("quick_reply") if isinstance(button, dict) else None
                if button.get("type") != "quick_reply" or not isinstance(reply, dict):
                    raise invalid(f"Param cards[{i}]['action']['buttons'] must be quick_reply buttons")
                if not _nonempty_str(reply.get("id")) or not _nonempty_str(reply.get("title")):
                    raise GraphError(400, 131008, f"cards[{i}]: button 'id' and 'title' are required")
                _limit("quick_reply['title']", reply["title"], 20, code=131009)
    if len(header_types) > 1:
        raise invalid("All carousel cards must have the same header type", code=131009)


def _check_order(kind: str, params: Any) -> None:
    if not isinstance(params, dict):
        raise GraphError(400, 131008, "The parameter interactive['action']['parameters'] is required.")
    if not _nonempty_str(params.get("reference_id")):
        raise GraphError(400, 131008, "The parameter parameters['reference_id'] is required.")
    order = params.get("order")
    if not isinstance(order, dict) or not _nonempty_str(order.get("status")):
        raise GraphError(400, 131008, "The parameter parameters['order']['status'] is required.")
    if kind == "order_details":
        for name in ("currency", "total_amount"):
            if name not in params:
                raise GraphError(400, 131008, f"The parameter parameters['{name}'] is required.")
        total = params["total_amount"]
        if not isinstance(total, dict) or not isinstance(total.get("value"), int):
            raise invalid("Param parameters['total_amount'] must be {value: int, offset: int}")


def _check_header(kind: str, header: Any) -> None:
    allowed = _HEADERS.get(kind, ())
    if not allowed:
        raise invalid(f"Param interactive['header'] is not supported for {kind} messages")
    if not isinstance(header, dict) or header.get("type") not in allowed:
        raise invalid(f"Param interactive['header']['type'] must be one of {{{', '.join(allowed)}}}")
    htype = header["type"]
    if htype == "text":
        if not _nonempty_str(header.get("text")):
            raise GraphError(400, 131008, "The parameter interactive['header']['text'] is required.")
        _limit("interactive['header']['text']", header["text"], 60, code=131009)
    else:
        media = header.get(htype)
        if not isinstance(media, dict):
            raise GraphError(400, 131008, f"The parameter interactive['header']['{htype}'] is required.")
        if "caption" in media:
            raise invalid("Captions are not allowed on media used as an interactive header")
        _check_media(htype, media)


def _check_buttons(action: dict[str, Any]) -> None:
    buttons = action.get("buttons")
    if not isinstance(buttons, list) or not buttons:
        raise GraphError(400, 131008, "The parameter interactive['action']['buttons'] is required.")
    if len(buttons) > 3:
        raise invalid("Param interactive['action']['buttons'] must have at most 3 items", code=131009)
    ids: set[str] = set()
    titles: set[str] = set()
    for i, button in enumerate(buttons):
        reply = button.get("reply") if isinstance(button, dict) else None
        if not isinstance(button, dict) or button.get("type") != "reply" or not isinstance(reply, dict):
            raise invalid(f"Param interactive['action']['buttons'][{i}] must be {{type: reply, reply: {{id, title}}}}")
        bid, title = reply.get("id"), reply.get("title")
        if not _nonempty_str(bid) or not _nonempty_str(title):
            raise GraphError(400, 131008, f"Button {i}: 'id' and 'title' are required")
        if len(title) > 20:
            raise invalid("Button title length invalid. Min length: 1, Max length: 20", code=131009)
        if len(bid) > 256:
            raise invalid("Button id length invalid. Min length: 1, Max length: 256", code=131009)
        if bid in ids or title in titles:
            raise invalid("Duplicate buttons: button ids and titles must be unique", code=131009)
        ids.add(bid)
        titles.add(title)


def _check_list(action: dict[str, Any]) -> None:
    button = action.get("button")
    if not _nonempty_str(button):
        raise GraphError(400, 131008, "The parameter interactive['action']['button'] is required.")
    _limit("interactive['action']['button']", button, 20, code=131009)
    sections = action.get("sections")
    if not isinstance(sections, list) or not sections:
        raise GraphError(400, 131008, "The parameter interactive['action']['sections'] is required.")
    if len(sections) > 10:
        raise invalid("Param interactive['action']['sections'] must have at most 10 items", code=131009)
    row_ids: set[str] = set()
    total = 0
    for i, section in enumerate(sections):
        if not isinstance(section, dict):
            raise invalid(f"Param sections[{i}] must be a JSON object")
        title = section.get("title")
        if len(sections) > 1 and not _nonempty_str(title):
            raise GraphError(400, 131008, f"sections[{i}]['title'] is required when there are several sections")
        if title is not None:
            _limit(f"sections[{i}]['title']", title, 24, code=131009)
        rows = section.get("rows")
        if not isinstance(rows, list) or not rows:
            raise GraphError(400, 131008, f"The parameter sections[{i}]['rows'] is required.")
        for j, row in enumerate(rows):
            if not isinstance(row, dict) or not _nonempty_str(row.get("id")) or not _nonempty_str(row.get("title")):
                raise GraphError(400, 131008, f"sections[{i}]['rows'][{j}]: 'id' and 'title' are required")
            _limit(f"sections[{i}]['rows'][{j}]['id']", row["id"], 200, code=131009)
            _limit(f"sections[{i}]['rows'][{j}]['title']", row["title"], 24, code=131009)
            if "description" in row:
                _limit(f"sections[{i}]['rows'][{j}]['description']", row["description"], 72, code=131009)
            if row["id"] in row_ids:
                raise invalid("Row ids must be unique across all sections", code=131009)
            row_ids.add(row["id"])
            total += 1
    if total > 10:
        raise invalid(f"Total row count exceeded: {total} rows, at most 10 across all sections", code=131009)


def _check_cta(action: dict[str, Any]) -> None:
    if action.get("name") != "cta_url":
        raise invalid("Param interactive['action']['name'] must be 'cta_url'")
    params = action.get("parameters")
    if not isinstance(params, dict):
        raise GraphError(400, 131008, "The parameter interactive['action']['parameters'] is required.")
    text, url = params.get("display_text"), params.get("url")
    if not _nonempty_str(text):
        raise GraphError(400, 131008, "The parameter parameters['display_text'] is required.")
    _limit("parameters['display_text']", text, 20, code=131009)
    if url is None:
        raise GraphError(400, 131008, "The parameter parameters['url'] is required.")
    if not (isinstance(url, str) and _URL.match(url)):
        raise invalid("Param parameters['url'] must be a valid http(s) URL", code=131009)


def _nonempty_str(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value)


def _limit(name: str, value: Any, limit: int, *, code: int = 100) -> None:
    if not isinstance(value, str):
        raise invalid(f"Param {name} must be a string")
    if len(value) > limit:
        raise invalid(f"Param {name} must be at most {limit} characters long (got {len(value)})", code=code)


def _required(name: str) -> GraphError:
    return GraphError(
        400, 100, f"The parameter {name} is required.", message=f"(#100) The parameter {name} is required."
    )
