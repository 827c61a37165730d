"""Neutral outbound messages as Twilio Messages API form fields
(https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource).

Twilio's Messages API sends text, media by URL, locations (`PersistentAction`) and Content templates
(`ContentSid` + `ContentVariables`). Interactive messages (buttons, lists, CTA links) exist on Twilio only
as pre-approved Content templates, so ad-hoc ones are sent as readable text instead; reactions and
quoted replies have no Messages API field at all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping

from whatsagent.errors import InvalidMessage
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
    TemplateOut,
    TextOut,
)

logger = logging.getLogger(__name__)

Form = list[tuple[str, str]]


def message_form(
    message: OutboundMessage,
    *,
    content_sids: Mapping[str, str],
    media_url: Callable[[MediaOut], str],
) -> Form:
    """The fields that say what to send (everything but `From`, `To` and `StatusCallback`).

    `media_url` turns a MediaOut into a URL Twilio can fetch (its `link`, or a signed whatsagent URL for
    a stored medium). Raises `InvalidMessage` for what Twilio cannot send (a template with no Content SID
    configured included).
    """
    if isinstance(message, TextOut):
        return [("Body", message.body)]
    if isinstance(message, MediaOut):
        form = [("MediaUrl", media_url(message))]
        if message.caption:
            form.insert(0, ("Body", message.caption))
        return form
    if isinstance(message, TemplateOut):
        return template_form(message, content_sids)
    if isinstance(message, LocationOut):
        # Twilio's location message: `geo:<lat>,<long>|<label>` with the place's name as Body.
        label = message.address or ""
        action = f"geo:{message.latitude},{message.longitude}" + (f"|{label}" if label else "")
        return [("Body", message.name or message.address or "📍"), ("PersistentAction", action)]
    if isinstance(message, ButtonsOut):
        options = [f"{i}. {b.title}" for i, b in enumerate(message.buttons, 1)]
        return [("Body", _join(message.header, message.body, "\n".join(options), message.footer))]
    if isinstance(message, ListOut):
        rows = [row for section in message.sections for row in section.rows]
        lines = [f"{i}. {r.title}" + (f" — {r.description}" if r.description else "") for i, r in enumerate(rows, 1)]
        return [("Body", _join(message.header, message.body, "\n".join(lines), message.footer))]
    if isinstance(message, CtaUrlOut):
        link = f"{message.display_text}: {message.url}"
        return [("Body", _join(message.header, message.body, link, message.footer))]
    if isinstance(message, ContactsOut):
        return [("Body", "\n\n".join(_contact_card(c) for c in message.contacts))]
    if isinstance(message, ReactionOut):
        raise InvalidMessage("Twilio's Messages API cannot send reactions")
    if isinstance(message, LocationRequestOut):
        return [("Body", f"{message.body}\n(Share your location: 📎 → Location)")]
    if isinstance(message, FlowOut):
        raise InvalidMessage("WhatsApp Flows go through Twilio only as a Content template (ContentSid)")
    raise InvalidMessage(f"the Twilio channel cannot send {type(message).__name__}")


def template_form(message: TemplateOut, content_sids: Mapping[str, str]) -> Form:
    """A Content template: `ContentSid` and `ContentVariables`, a JSON string of ``{"1": ..., "2": ...}``.
    Outside the window Body and MediaUrl must be left out (https://www.twilio.com/docs/api/errors/63016)."""
    sid = content_sids.get(message.name)
    if sid is None and message.name.startswith("HX"):
        sid = message.name
    if sid is None:
        raise InvalidMessage(
            f"no Content SID for template {message.name!r}: add it to content_sids "
            f'(or TWILIO_CONTENT_SIDS, e.g. {{"{message.name}": "HX..."}})'
        )
    params = message.body_texts()  # Twilio numbers only the body's variables
    form = [("ContentSid", sid)]
    if params:
        variables = {str(i): value for i, value in enumerate(params, 1)}
        form.append(("ContentVariables", json.dumps(variables, ensure_ascii=False, separators=(",", ":"))))
    return form


def _join(*parts: str | None) -> str:
    return "\n\n".join(p for p in parts if p)


def _contact_card(contact: Contact) -> str:
    phones = [p.phone or p.wa_id for p in contact.phones]
    emails = [e.email for e in contact.emails]
    lines = [contact.name or "Contact", *(p for p in phones if p), *(e for e in emails if e)]
    return "\n".join(lines)
