"""Channel-neutral outbound messages: what the bot says, before a channel turns it into its wire format.

The outbox stores these as JSON; a channel's sender translates each into a Graph API body or a Twilio
form at send time. Limits are WhatsApp's and are checked by the channel that sends.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    reply_to: str | None = None
    """Provider id of a message to quote (Cloud API `context.message_id`)."""


class TextOut(_Out):
    kind: Literal["text"] = "text"
    body: str
    preview_url: bool = False


class MediaOut(_Out):
    """An image, audio, video, document or sticker. Exactly one of `media_id` (already uploaded),
    `link` (a public URL) or `stored` (a key in whatsagent's media store, uploaded at send time)."""

    kind: Literal["media"] = "media"
    media_type: Literal["image", "audio", "video", "document", "sticker"]
    media_id: str | None = None
    link: str | None = None
    stored: str | None = None
    mime_type: str | None = None
    caption: str | None = None
    filename: str | None = None
    voice: bool = False


class ReactionOut(_Out):
    kind: Literal["reaction"] = "reaction"
    message_id: str
    emoji: str


class LocationOut(_Out):
    kind: Literal["location"] = "location"
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


class ContactsOut(_Out):
    kind: Literal["contacts"] = "contacts"
    contacts: tuple[dict[str, Any], ...]
    """Contact cards in the Cloud API shape (`name.formatted_name`, `phones`, ...)."""


class Button(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    title: str


class ButtonsOut(_Out):
    kind: Literal["buttons"] = "buttons"
    body: str
    buttons: tuple[Button, ...]
    header: str | None = None
    footer: str | None = None


class ListRow(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    title: str
    description: str | None = None


class ListSection(BaseModel):
    model_config = ConfigDict(frozen=True)
    title: str
    rows: tuple[ListRow, ...]


class ListOut(_Out):
    kind: Literal["list"] = "list"
    body: str
    button: str
    sections: tuple[ListSection, ...]
    header: str | None = None
    footer: str | None = None


class CtaUrlOut(_Out):
    kind: Literal["cta_url"] = "cta_url"
    body: str
    display_text: str
    url: str
    header: str | None = None
    footer: str | None = None


class FlowOut(_Out):
    """A WhatsApp Flow: a form the user fills in inside WhatsApp, opened by a button. Its answer comes
    back as a `FlowReply` (interactive `nfm_reply`) with the form's fields as `response`."""

    kind: Literal["flow"] = "flow"
    body: str
    cta: str
    """The button's label (≤ 30 characters)."""
    flow_id: str | None = None
    flow_name: str | None = None
    flow_token: str | None = None
    """Echoed back in the answer, to tell apart forms sent to the same user."""
    screen: str | None = None
    """The first screen to open (`navigate`); None starts the flow's own first screen."""
    data: dict[str, Any] | None = None
    """Initial data for that screen."""
    draft: bool = False
    header: str | None = None
    footer: str | None = None


class LocationRequestOut(_Out):
    """A message with a "Send location" button: the user's answer is a `Location`."""

    kind: Literal["location_request"] = "location_request"
    body: str


class TemplateOut(_Out):
    """An approved template. `components` are in the Cloud API shape; `params` is the short form for
    positional body parameters ({{1}}, {{2}}, ...). Twilio maps `name` to a Content SID."""

    kind: Literal["template"] = "template"
    name: str
    language: str = "en_US"
    params: tuple[str, ...] = ()
    components: tuple[dict[str, Any], ...] = ()

    def parameter_counts(self) -> str:
        """What was given, for an error message: ``2 body parameter(s), 1 header parameter(s)``."""
        counts: list[str] = []
        if self.params:
            counts.append(f"{len(self.params)} body parameter(s)")
        for component in self.components:
            kind = str(component.get("type", "")).lower()
            params = component.get("parameters") or []
            counts.append(f"{len(params)} {kind} parameter(s)")
        return ", ".join(counts) or "no parameters"


OutboundMessage = Annotated[
    TextOut
    | MediaOut
    | ReactionOut
    | LocationOut
    | ContactsOut
    | ButtonsOut
    | ListOut
    | CtaUrlOut
    | TemplateOut
    | FlowOut
    | LocationRequestOut,
    Field(discriminator="kind"),
]

outbound_adapter: TypeAdapter[OutboundMessage] = TypeAdapter(OutboundMessage)


class SendResult(BaseModel):
    """What a provider answered to an accepted send."""

    model_config = ConfigDict(frozen=True)
    message_id: str
    """The provider's id of the new message (a wamid, a Twilio SID); status webhooks refer to it."""
    recipient: str | None = None
