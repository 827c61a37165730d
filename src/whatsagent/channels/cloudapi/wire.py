"""Graph API request bodies for each neutral outbound message, with WhatsApp's limits checked first.

A limit broken raises `InvalidMessage` whose text says what to change, so that a model calling a tool
can correct itself ("button title 'Confirm my order' is 18 characters..."). Body shapes and limits are
Meta's (https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/send-messages
and the pages it links for each type: text-messages, interactive-reply-buttons-messages,
interactive-list-messages, interactive-cta-url-messages, reaction-messages; templates at
https://developers.facebook.com/documentation/business-messaging/whatsapp/templates/overview).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from whatsagent.errors import InvalidMessage
from whatsagent.messages import User
from whatsagent.messages.outbound import (
    ButtonsOut,
    Contact,
    ContactsOut,
    CtaUrlOut,
    FlowOut,
    ListOut,
    LocationOut,
    LocationRequestOut,
    MediaOut,
    OutboundMessage,
    ReactionOut,
    TemplateComponent,
    TemplateOut,
    TemplateParameter,
    TextOut,
)

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
BUTTON_BODY_LIMIT = 1024
HEADER_LIMIT = 60
FOOTER_LIMIT = 60
BUTTON_TITLE_LIMIT = 20
FLOW_CTA_LIMIT = 30
MAX_BUTTONS = 3
BUTTON_ID_LIMIT = 256
LIST_ROWS_LIMIT = 10
LIST_SECTIONS_LIMIT = 10
ROW_TITLE_LIMIT = 24
ROW_DESCRIPTION_LIMIT = 72
ROW_ID_LIMIT = 200
SECTION_TITLE_LIMIT = 24
CALLBACK_DATA_LIMIT = 512


def recipient(to: User) -> dict[str, str]:
    """`to` (a wa_id) when known; otherwise the business-scoped user id as `recipient`."""
    if to.wa_id:
        return {"to": to.wa_id}
    if to.user_id:
        return {"recipient": to.user_id}
    raise InvalidMessage("the recipient has neither a wa_id nor a business-scoped user id")


def body_for(to: User, message: OutboundMessage, *, callback_data: str | None = None) -> dict[str, Any]:
    """The JSON body of ``POST /{phone_number_id}/messages`` for `message`."""
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual", **recipient(to)}
    body.update(_content(message))
    if message.reply_to:
        body["context"] = {"message_id": message.reply_to}
    if callback_data:
        body["biz_opaque_callback_data"] = callback_data[:CALLBACK_DATA_LIMIT]
    return body


def _content(m: OutboundMessage) -> dict[str, Any]:
    if isinstance(m, TextOut):
        _limit("text", m.body, TEXT_LIMIT, required=True)
        text: dict[str, Any] = {"body": m.body}
        if m.preview_url:
            text["preview_url"] = True
        return {"type": "text", "text": text}
    if isinstance(m, MediaOut):
        return {"type": m.media_type, m.media_type: _media(m)}
    if isinstance(m, ReactionOut):
        return {"type": "reaction", "reaction": {"message_id": m.message_id, "emoji": m.emoji}}
    if isinstance(m, LocationOut):
        if not (-90 <= m.latitude <= 90 and -180 <= m.longitude <= 180):
            raise InvalidMessage(f"location ({m.latitude}, {m.longitude}) is not a valid latitude/longitude")
        loc: dict[str, Any] = {"latitude": m.latitude, "longitude": m.longitude}
        if m.name:
            loc["name"] = m.name
        if m.address:
            loc["address"] = m.address
        return {"type": "location", "location": loc}
    if isinstance(m, ContactsOut):
        if not m.contacts:
            raise InvalidMessage("a contacts message needs at least one contact")
        for i, c in enumerate(m.contacts):
            if not c.name:
                raise InvalidMessage(f"contact {i + 1} needs name.formatted_name")
        return {"type": "contacts", "contacts": [_contact(c) for c in m.contacts]}
    if isinstance(m, ButtonsOut):
        return {"type": "interactive", "interactive": _buttons(m)}
    if isinstance(m, ListOut):
        return {"type": "interactive", "interactive": _list(m)}
    if isinstance(m, CtaUrlOut):
        _limit("CTA body", m.body, BUTTON_BODY_LIMIT, required=True)
        _limit("CTA display text", m.display_text, BUTTON_TITLE_LIMIT, required=True)
        if not m.url.startswith(("https://", "http://")):
            raise InvalidMessage(f"CTA url {m.url!r} must start with https:// or http://")
        cta: dict[str, Any] = {
            "type": "cta_url",
            "body": {"text": m.body},
            "action": {"name": "cta_url", "parameters": {"display_text": m.display_text, "url": m.url}},
        }
        _header_footer(cta, m.header, m.footer)
        return {"type": "interactive", "interactive": cta}
    if isinstance(m, TemplateOut):
        return {"type": "template", "template": _template(m)}
    if isinstance(m, FlowOut):
        return {"type": "interactive", "interactive": _flow(m)}
    if isinstance(m, LocationRequestOut):
        _limit("location request body", m.body, BUTTON_BODY_LIMIT, required=True)
        request = {"type": "location_request_message", "body": {"text": m.body}, "action": {"name": "send_location"}}
        return {"type": "interactive", "interactive": request}
    raise InvalidMessage(f"the Cloud API channel cannot send {type(m).__name__}")


def _flow(m: FlowOut) -> dict[str, Any]:
    _limit("flow body", m.body, BUTTON_BODY_LIMIT, required=True)
    _limit("flow button label", m.cta, FLOW_CTA_LIMIT, required=True)
    if bool(m.flow_id) == bool(m.flow_name):
        raise InvalidMessage("a flow message needs exactly one of flow_id or flow_name")
    parameters: dict[str, Any] = {"flow_message_version": "3", "flow_cta": m.cta}
    parameters.update({"flow_id": m.flow_id} if m.flow_id else {"flow_name": m.flow_name})
    if m.flow_token:
        parameters["flow_token"] = m.flow_token
    if m.draft:
        parameters["mode"] = "draft"
    if m.screen:
        payload: dict[str, Any] = {"screen": m.screen}
        if m.data:
            payload["data"] = m.data
        parameters.update({"flow_action": "navigate", "flow_action_payload": payload})
    flow: dict[str, Any] = {
        "type": "flow",
        "body": {"text": m.body},
        "action": {"name": "flow", "parameters": parameters},
    }
    _header_footer(flow, m.header, m.footer)
    return flow


def _media(m: MediaOut) -> dict[str, Any]:
    if bool(m.media_id) == bool(m.link):
        raise InvalidMessage("a media message needs exactly one of an uploaded media id or a link")
    media: dict[str, Any] = {"id": m.media_id} if m.media_id else {"link": m.link}
    if m.caption:
        if m.media_type in ("audio", "sticker"):
            raise InvalidMessage(f"WhatsApp does not show captions on {m.media_type} messages")
        _limit("caption", m.caption, CAPTION_LIMIT)
        media["caption"] = m.caption
    if m.media_type == "document" and m.filename:
        media["filename"] = m.filename
    if m.media_type == "audio" and m.voice:
        media["voice"] = True
    return media


def _buttons(m: ButtonsOut) -> dict[str, Any]:
    _limit("button message body", m.body, BUTTON_BODY_LIMIT, required=True)
    if not 1 <= len(m.buttons) <= MAX_BUTTONS:
        raise InvalidMessage(
            f"{len(m.buttons)} buttons given; WhatsApp shows 1 to {MAX_BUTTONS} reply buttons "
            "(use a list message for up to 10 choices)"
        )
    titles = [b.title for b in m.buttons]
    ids = [b.id for b in m.buttons]
    if len(set(titles)) != len(titles):
        raise InvalidMessage(f"button titles must be unique, got {titles}")
    if len(set(ids)) != len(ids):
        raise InvalidMessage(f"button ids must be unique, got {ids}")
    for b in m.buttons:
        _limit(f"button title {b.title!r}", b.title, BUTTON_TITLE_LIMIT, required=True)
        _limit(f"button id {b.id!r}", b.id, BUTTON_ID_LIMIT, required=True)
    interactive: dict[str, Any] = {
        "type": "button",
        "body": {"text": m.body},
        "action": {"buttons": [{"type": "reply", "reply": {"id": b.id, "title": b.title}} for b in m.buttons]},
    }
    _header_footer(interactive, m.header, m.footer)
    return interactive


def _list(m: ListOut) -> dict[str, Any]:
    _limit("list message body", m.body, TEXT_LIMIT, required=True)
    _limit("list button text", m.button, BUTTON_TITLE_LIMIT, required=True)
    if not 1 <= len(m.sections) <= LIST_SECTIONS_LIMIT:
        raise InvalidMessage(f"a list needs 1 to {LIST_SECTIONS_LIMIT} sections, got {len(m.sections)}")
    rows = [r for s in m.sections for r in s.rows]
    if not 1 <= len(rows) <= LIST_ROWS_LIMIT:
        raise InvalidMessage(
            f"a list holds 1 to {LIST_ROWS_LIMIT} rows across all sections, got {len(rows)}; "
            "split the choices or ask a narrowing question first"
        )
    ids = [r.id for r in rows]
    if len(set(ids)) != len(ids):
        raise InvalidMessage(f"row ids must be unique across the list, got {ids}")
    sections = []
    for s in m.sections:
        if len(m.sections) > 1 or s.title:
            _limit(f"section title {s.title!r}", s.title, SECTION_TITLE_LIMIT, required=len(m.sections) > 1)
        rows_out = []
        for r in s.rows:
            _limit(f"row title {r.title!r}", r.title, ROW_TITLE_LIMIT, required=True)
            _limit(f"row id {r.id!r}", r.id, ROW_ID_LIMIT, required=True)
            row: dict[str, Any] = {"id": r.id, "title": r.title}
            if r.description:
                _limit(f"row description for {r.title!r}", r.description, ROW_DESCRIPTION_LIMIT)
                row["description"] = r.description
            rows_out.append(row)
        section: dict[str, Any] = {"rows": rows_out}
        if s.title:
            section["title"] = s.title
        sections.append(section)
    interactive: dict[str, Any] = {
        "type": "list",
        "body": {"text": m.body},
        "action": {"button": m.button, "sections": sections},
    }
    _header_footer(interactive, m.header, m.footer)
    return interactive


def _template(m: TemplateOut) -> dict[str, Any]:
    if not m.name or len(m.name) > 512 or not all(c.islower() or c.isdigit() or c == "_" for c in m.name):
        raise InvalidMessage(f"template name {m.name!r} must be lowercase letters, digits and underscores")
    template: dict[str, Any] = {"name": m.name, "language": {"code": m.language}}
    components = [_component(c) for c in m.components]
    if m.params:
        if any(c.part == "body" for c in m.components):
            raise InvalidMessage("give template body parameters either as params or as a body component, not both")
        components.insert(0, {"type": "body", "parameters": [{"type": "text", "text": p} for p in m.params]})
    if components:
        template["components"] = components
    return template


def _component(c: TemplateComponent) -> dict[str, Any]:
    component: dict[str, Any] = {"type": c.part}
    if c.button is not None:
        component["sub_type"] = c.button
    if c.index is not None:
        component["index"] = c.index
    component["parameters"] = [_parameter(p) for p in c.parameters]
    return component


def _parameter(p: TemplateParameter) -> dict[str, Any]:
    value: Any
    if p.kind in ("text", "payload", "coupon_code"):
        value = p.text or ""
    elif p.kind in ("image", "video", "document"):
        value = {"id": p.media_id} if p.media_id else {"link": p.link}
        if p.kind == "document" and p.filename:
            value["filename"] = p.filename
    elif p.kind == "currency":
        value = {"fallback_value": p.text, "code": p.currency, "amount_1000": p.amount_1000}
    elif p.kind == "date_time":
        value = {"fallback_value": p.text}
    elif p.kind == "location":
        value = {"latitude": p.latitude, "longitude": p.longitude, "name": p.place, "address": p.address}
    else:  # action: a Flow button
        value = {"flow_token": p.flow_token, "flow_action_data": p.flow_data}
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if v is not None}
    parameter: dict[str, Any] = {"type": p.kind, p.kind: value}
    if p.name:
        parameter["parameter_name"] = p.name
    return parameter


def _contact(c: Contact) -> dict[str, Any]:
    names = {"first_name": c.first_name, "last_name": c.last_name, "middle_name": c.middle_name}
    names |= {"prefix": c.prefix, "suffix": c.suffix}
    card: dict[str, Any] = {"name": {"formatted_name": c.name, **{k: v for k, v in names.items() if v}}}
    for key, items in (("phones", c.phones), ("emails", c.emails), ("urls", c.urls), ("addresses", c.addresses)):
        if items:
            card[key] = [_labelled(item) for item in items]
    if c.organization is not None:
        card["org"] = c.organization.model_dump(exclude_none=True)
    if c.birthday:
        card["birthday"] = c.birthday
    return card


def _labelled(item: BaseModel) -> dict[str, Any]:
    # The neutral `label` is the Cloud API's `type` (CELL, WORK, HOME, ...).
    fields = item.model_dump(exclude_none=True)
    if "label" in fields:
        fields["type"] = fields.pop("label")
    return fields


def _header_footer(interactive: dict[str, Any], header: str | None, footer: str | None) -> None:
    if header:
        _limit("header", header, HEADER_LIMIT)
        interactive["header"] = {"type": "text", "text": header}
    if footer:
        _limit("footer", footer, FOOTER_LIMIT)
        interactive["footer"] = {"text": footer}


def _limit(what: str, value: str | None, limit: int, *, required: bool = False) -> None:
    if not value:
        if required:
            raise InvalidMessage(f"{what} is required and must not be empty")
        return
    if len(value) > limit:
        raise InvalidMessage(
            f"{what} is {len(value)} characters; WhatsApp allows at most {limit}. Shorten it and try again."
        )
