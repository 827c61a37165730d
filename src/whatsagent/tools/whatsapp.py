"""`WhatsAppTools`: an agent sends WhatsApp messages of every kind to the user it is talking to.

    Agent(model=..., tools=[WhatsAppTools()])

Text, templates, reply buttons (1-3, titles ≤ 20), lists (≤ 10 rows, titles ≤ 24, descriptions ≤ 72), a
CTA URL button, images, documents, locations, contact cards and reactions. Each message is checked
against WhatsApp's limits when the tool is called, and a broken limit comes back to the model as a retry
with the reason ("button title 'Confirm my order now' is 21 characters; WhatsApp allows at most 20"),
so it can fix the call.

Messages are not sent from inside the tool: they join the turn's answer in the outbox (rows with
idempotency keys, written before any send), before the answer's text. A turn replayed after a crash
therefore never sends them twice, and when the final text only repeats what a tool sent, it is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field
from pydantic_ai import ModelRetry, RunContext
from pydantic_ai.toolsets import FunctionToolset

from whatsagent.agents.context import TurnContext
from whatsagent.errors import InvalidMessage
from whatsagent.media.store import MediaNotFound
from whatsagent.messages.outbound import (
    Button,
    ButtonsOut,
    Contact,
    ContactEmail,
    ContactOrganization,
    ContactPhone,
    ContactsOut,
    CtaUrlOut,
    FlowOut,
    ListOut,
    ListRow,
    ListSection,
    LocationOut,
    LocationRequestOut,
    MediaOut,
    OutboundMessage,
    ReactionOut,
    TemplateOut,
    TextOut,
)

ALL_TOOLS = (
    "send_text",
    "send_template",
    "send_buttons",
    "send_list",
    "send_cta_url",
    "send_image",
    "send_document",
    "send_location",
    "send_contacts",
    "send_reaction",
    "send_flow",
    "request_location",
)

INSTRUCTIONS = """\
You can send WhatsApp messages to the user with the send_* tools: reply buttons for 2-3 choices, a list
for up to 10, a link button, images, documents, locations, contact cards, reactions, a WhatsApp Flow
(a form; its answer comes back as the user's next message), and ask for the user's location. When a tool
has already said what you wanted to say, end your turn with no further text."""


class ButtonChoice(BaseModel):
    id: str = Field(description="what comes back when the user taps it, ≤ 256 characters")
    title: str = Field(description="the button's label, ≤ 20 characters")


class RowChoice(BaseModel):
    id: str = Field(description="what comes back when the user picks it, ≤ 200 characters")
    title: str = Field(description="≤ 24 characters")
    description: str | None = Field(default=None, description="≤ 72 characters")


class Section(BaseModel):
    title: str | None = Field(default=None, description="≤ 24 characters; required with several sections")
    rows: list[RowChoice]


class ContactCard(BaseModel):
    name: str
    phone: str | None = Field(default=None, description="in international format, e.g. +14155550123")
    email: str | None = None
    organization: str | None = None


class WhatsAppTools(FunctionToolset[TurnContext]):
    """Tools to send WhatsApp messages to the current user. `include` limits which tools the model gets."""

    def __init__(self, *, include: Sequence[str] = ALL_TOOLS) -> None:
        unknown = set(include) - set(ALL_TOOLS)
        if unknown:
            raise ValueError(f"unknown WhatsApp tools {sorted(unknown)}; choose from {', '.join(ALL_TOOLS)}")
        super().__init__(instructions=INSTRUCTIONS)
        for name in include:
            self.add_function(getattr(self, name), name=name)

    # -- the tools ----------------------------------------------------------------------------------

    async def send_text(self, ctx: RunContext[TurnContext], text: str, reply_to_message_id: str | None = None) -> str:
        """Send a text message (≤ 4096 characters), optionally quoting a message.

        Args:
            text: The message text.
            reply_to_message_id: The id of a message to quote, if any.
        """
        return await _send(ctx, TextOut(body=text, reply_to=reply_to_message_id))

    async def send_template(
        self, ctx: RunContext[TurnContext], name: str, language: str = "en_US", params: list[str] | None = None
    ) -> str:
        """Send an approved message template.

        Args:
            name: The template's name (lowercase letters, digits and underscores).
            language: The template's language code, e.g. en_US.
            params: Values of the body's {{1}}, {{2}}, ... placeholders, in order.
        """
        return await _send(ctx, TemplateOut(name=name, language=language, params=tuple(params or ())))

    async def send_buttons(
        self,
        ctx: RunContext[TurnContext],
        body: str,
        buttons: list[ButtonChoice],
        header: str | None = None,
        footer: str | None = None,
    ) -> str:
        """Send a message with 1 to 3 reply buttons. The user's tap comes back as their next message.

        Args:
            body: The message text (≤ 1024 characters).
            buttons: 1 to 3 buttons with unique ids and titles (titles ≤ 20 characters).
            header: Optional header text (≤ 60 characters).
            footer: Optional footer text (≤ 60 characters).
        """
        message = ButtonsOut(
            body=body,
            buttons=tuple(Button(id=b.id, title=b.title) for b in buttons),
            header=header,
            footer=footer,
        )
        return await _send(ctx, message)

    async def send_list(
        self,
        ctx: RunContext[TurnContext],
        body: str,
        button: str,
        sections: list[Section],
        header: str | None = None,
        footer: str | None = None,
    ) -> str:
        """Send a list message: a button that opens up to 10 rows to choose from.

        Args:
            body: The message text.
            button: The label of the button that opens the list (≤ 20 characters).
            sections: 1 to 10 sections holding at most 10 rows in all.
            header: Optional header text (≤ 60 characters).
            footer: Optional footer text (≤ 60 characters).
        """
        message = ListOut(
            body=body,
            button=button,
            sections=tuple(
                ListSection(
                    title=s.title or "",
                    rows=tuple(ListRow(id=r.id, title=r.title, description=r.description) for r in s.rows),
                )
                for s in sections
            ),
            header=header,
            footer=footer,
        )
        return await _send(ctx, message)

    async def send_cta_url(
        self,
        ctx: RunContext[TurnContext],
        body: str,
        display_text: str,
        url: str,
        header: str | None = None,
        footer: str | None = None,
    ) -> str:
        """Send a message with a button that opens a web page.

        Args:
            body: The message text (≤ 1024 characters).
            display_text: The button's label (≤ 20 characters).
            url: The https:// address the button opens.
            header: Optional header text (≤ 60 characters).
            footer: Optional footer text (≤ 60 characters).
        """
        return await _send(ctx, CtaUrlOut(body=body, display_text=display_text, url=url, header=header, footer=footer))

    async def send_image(self, ctx: RunContext[TurnContext], image: str, caption: str | None = None) -> str:
        """Send an image (JPEG or PNG, ≤ 5 MB; other formats are converted).

        Args:
            image: An https:// URL of the image, or the media key of an image you were given.
            caption: Optional caption (≤ 1024 characters).
        """
        return await _send(ctx, await _medium(ctx, "image", image, caption=caption))

    async def send_document(
        self, ctx: RunContext[TurnContext], document: str, filename: str | None = None, caption: str | None = None
    ) -> str:
        """Send a document (PDF, text, Word, Excel, PowerPoint; ≤ 100 MB).

        Args:
            document: An https:// URL of the file, or the media key of a file you were given.
            filename: The file name the user sees, e.g. invoice.pdf.
            caption: Optional caption (≤ 1024 characters).
        """
        return await _send(ctx, await _medium(ctx, "document", document, caption=caption, filename=filename))

    async def send_location(
        self,
        ctx: RunContext[TurnContext],
        latitude: float,
        longitude: float,
        name: str | None = None,
        address: str | None = None,
    ) -> str:
        """Send a location pin.

        Args:
            latitude: Between -90 and 90.
            longitude: Between -180 and 180.
            name: The place's name.
            address: The place's address.
        """
        return await _send(ctx, LocationOut(latitude=latitude, longitude=longitude, name=name, address=address))

    async def send_contacts(self, ctx: RunContext[TurnContext], contacts: list[ContactCard]) -> str:
        """Send one or more contact cards.

        Args:
            contacts: The contacts, each with a name and a phone number and/or email.
        """
        cards = tuple(
            Contact(
                name=c.name,
                first_name=c.name.split()[0] if c.name.split() else None,
                phones=(ContactPhone(phone=c.phone, label="CELL"),) if c.phone else (),
                emails=(ContactEmail(email=c.email, label="WORK"),) if c.email else (),
                organization=ContactOrganization(company=c.organization) if c.organization else None,
            )
            for c in contacts
        )
        return await _send(ctx, ContactsOut(contacts=cards))

    async def send_reaction(self, ctx: RunContext[TurnContext], emoji: str, message_id: str | None = None) -> str:
        """React with an emoji to a message (by default the user's latest message).

        Args:
            emoji: One emoji, e.g. 👍.
            message_id: The id of the message to react to; leave empty for the user's latest message.
        """
        if not emoji or len(emoji) > 8 or any(ch.isalnum() for ch in emoji):
            raise ModelRetry(f"a reaction is a single emoji such as 👍, not {emoji!r}")
        target = message_id or (ctx.deps.last_message_id if ctx.deps.messages else None)
        if not target:
            raise ModelRetry("there is no message to react to; give message_id")
        return await _send(ctx, ReactionOut(message_id=target, emoji=emoji))

    async def send_flow(
        self,
        ctx: RunContext[TurnContext],
        body: str,
        button: str,
        flow_id: str | None = None,
        flow_name: str | None = None,
        screen: str | None = None,
        data: dict[str, Any] | None = None,
        flow_token: str | None = None,
    ) -> str:
        """Send a WhatsApp Flow: a form the user fills in inside WhatsApp. What they submit arrives as
        their next message ("The user completed a form: {...}"), the fields as structured data.

        Args:
            body: The message text (≤ 1024 characters).
            button: The label of the button that opens the form (≤ 30 characters).
            flow_id: The published flow's id (give this or flow_name).
            flow_name: The published flow's name (give this or flow_id).
            screen: The screen to open first; leave out to start at the flow's first screen.
            data: Initial data for that screen.
            flow_token: Your reference for this form; it comes back with the answer.
        """
        flow = FlowOut(
            body=body,
            cta=button,
            flow_id=flow_id,
            flow_name=flow_name,
            screen=screen,
            data=data,
            flow_token=flow_token,
        )
        return await _send(ctx, flow)

    async def request_location(self, ctx: RunContext[TurnContext], body: str) -> str:
        """Ask the user to share their location, with a "Send location" button. Their location arrives
        as their next message.

        Args:
            body: Why you ask (≤ 1024 characters).
        """
        return await _send(ctx, LocationRequestOut(body=body))


async def _send(ctx: RunContext[TurnContext], message: OutboundMessage) -> str:
    # Checked by the turn's channel, so a broken limit comes back to the model while it can still fix it.
    try:
        if ctx.deps.check is not None:
            ctx.deps.check(message)
    except InvalidMessage as exc:
        raise ModelRetry(str(exc)) from exc
    ctx.deps.send(message)
    return f"Sent the {_kind(message)} to the user."


async def _medium(
    ctx: RunContext[TurnContext], kind: str, ref: str, *, caption: str | None, filename: str | None = None
) -> MediaOut:
    ref = ref.strip()
    if ref.startswith(("https://", "http://")):
        return MediaOut(media_type=kind, link=ref, caption=caption, filename=filename)  # type: ignore[arg-type]
    store = ctx.deps.media_store
    if store is None:
        raise ModelRetry("no media store is configured: give an https:// URL instead")
    try:
        stored = await store.info(ref)
    except MediaNotFound as exc:
        raise ModelRetry(f"{ref!r} is neither an https:// URL nor the media key of a stored file") from exc
    return MediaOut(
        media_type=kind,  # type: ignore[arg-type]
        stored=stored.key,
        mime_type=stored.mime_type,
        caption=caption,
        filename=filename or stored.filename,
    )


def _kind(message: OutboundMessage) -> str:
    return {
        "text": "message",
        "media": getattr(message, "media_type", "file"),
        "buttons": "buttons",
        "list": "list",
        "cta_url": "link button",
        "template": "template",
        "location": "location",
        "contacts": "contact cards",
        "reaction": "reaction",
        "flow": "form",
        "location_request": "location request",
    }.get(message.kind, "message")
