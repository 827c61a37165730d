"""Channel-neutral outbound messages: what the bot says, before a channel turns it into its wire format.

The outbox stores these as JSON; a channel's sender translates each into a Graph API body or a Twilio
form at send time. Limits are WhatsApp's and are checked by the channel that sends. Nothing here is in a
provider's wire shape: contact cards and template parameters are typed models of their own. Rows stored
before they were (Cloud API-shaped dicts) are still read: `ContactsOut` and `TemplateOut` convert that
shape when they are validated, which is also how callers may still pass it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    reply_to: str | None = None
    """Provider id of a message to quote (Cloud API `context.message_id`)."""

    @property
    def said(self) -> str | None:
        """What the user reads of this message as words (its text, caption or place name), if anything."""
        return None


class TextOut(_Out):
    kind: Literal["text"] = "text"
    body: str
    preview_url: bool = False

    @property
    def said(self) -> str | None:
        return self.body


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

    @property
    def said(self) -> str | None:
        return self.caption or None


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

    @property
    def said(self) -> str | None:
        return self.name or None


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ContactPhone(_Part):
    phone: str | None = None
    label: str | None = None
    """What kind of number: CELL, MAIN, IPHONE, HOME or WORK."""
    wa_id: str | None = None
    """The number's WhatsApp id, which gives the card a "Message" button."""


class ContactEmail(_Part):
    email: str
    label: str | None = None
    """HOME or WORK."""


class ContactUrl(_Part):
    url: str
    label: str | None = None


class ContactAddress(_Part):
    street: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: str | None = None
    country_code: str | None = None
    label: str | None = None


class ContactOrganization(_Part):
    company: str | None = None
    department: str | None = None
    title: str | None = None


class Contact(_Part):
    """One contact card. `name` is the full name as shown; WhatsApp requires it."""

    name: str
    first_name: str | None = None
    last_name: str | None = None
    middle_name: str | None = None
    prefix: str | None = None
    suffix: str | None = None
    phones: tuple[ContactPhone, ...] = ()
    emails: tuple[ContactEmail, ...] = ()
    urls: tuple[ContactUrl, ...] = ()
    addresses: tuple[ContactAddress, ...] = ()
    organization: ContactOrganization | None = None
    birthday: str | None = None
    """YYYY-MM-DD."""


class ContactsOut(_Out):
    kind: Literal["contacts"] = "contacts"
    contacts: tuple[Contact, ...]

    @field_validator("contacts", mode="before")
    @classmethod
    def _read_cloud_api_cards(cls, value: Any) -> Any:
        # Rows stored before cards were typed hold them in the Cloud API shape (`name.formatted_name`).
        if isinstance(value, list | tuple):
            return tuple(_contact_from_graph(c) if _graph_shaped_contact(c) else c for c in value)
        return value


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

    @property
    def said(self) -> str | None:
        return self.body


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

    @property
    def said(self) -> str | None:
        return self.body


class CtaUrlOut(_Out):
    kind: Literal["cta_url"] = "cta_url"
    body: str
    display_text: str
    url: str
    header: str | None = None
    footer: str | None = None

    @property
    def said(self) -> str | None:
        return self.body


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

    @property
    def said(self) -> str | None:
        return self.body


class LocationRequestOut(_Out):
    """A message with a "Send location" button: the user's answer is a `Location`."""

    kind: Literal["location_request"] = "location_request"
    body: str

    @property
    def said(self) -> str | None:
        return self.body


TemplateParameterKind = Literal[
    "text", "currency", "date_time", "image", "video", "document", "location", "payload", "coupon_code", "action"
]


class TemplateParameter(_Part):
    """The value of one template placeholder. Which fields count depends on `kind`:

    - ``text``, ``payload`` (a quick-reply button's payload), ``coupon_code``: `text`;
    - ``currency``: `currency` (ISO 4217), `amount_1000` (the amount times 1000) and `text` as the fallback;
    - ``date_time``: `text`, the date as shown;
    - ``image``, ``video``, ``document``: `link` or `media_id`, and a document's `filename`;
    - ``location``: `latitude`, `longitude`, `place` (its name) and `address`;
    - ``action`` (a Flow button): `flow_token` and `flow_data`.
    """

    kind: TemplateParameterKind = "text"
    text: str | None = None
    name: str | None = None
    """The placeholder's name, for templates with named parameters ({{first_name}})."""
    link: str | None = None
    media_id: str | None = None
    filename: str | None = None
    currency: str | None = None
    amount_1000: int | None = None
    latitude: float | None = None
    longitude: float | None = None
    place: str | None = None
    address: str | None = None
    flow_token: str | None = None
    flow_data: dict[str, Any] | None = None


class TemplateComponent(_Part):
    """The parameters of one part of a template: its header, its body, or one of its buttons."""

    part: Literal["header", "body", "button"]
    parameters: tuple[TemplateParameter, ...] = ()
    button: str | None = None
    """For a button: its kind (quick_reply, url, copy_code, flow, ...)."""
    index: int | None = None
    """For a button: its position among the template's buttons, from 0."""


class TemplateOut(_Out):
    """An approved template. `params` is the short form for positional body parameters ({{1}}, {{2}},
    ...); `components` gives header, body and button parameters in full. Twilio maps `name` to a Content
    SID."""

    kind: Literal["template"] = "template"
    name: str
    language: str = "en_US"
    params: tuple[str, ...] = ()
    components: tuple[TemplateComponent, ...] = ()

    @field_validator("components", mode="before")
    @classmethod
    def _read_cloud_api_components(cls, value: Any) -> Any:
        # Rows stored before components were typed (and the proactive API's callers) use the Cloud API
        # shape: {"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}.
        if isinstance(value, list | tuple):
            return tuple(_component_from_graph(c) if _graph_shaped_component(c) else c for c in value)
        return value

    def body_texts(self) -> tuple[str, ...]:
        """The body's parameters as text, in order: `params`, else the body component's."""
        if self.params:
            return self.params
        for component in self.components:
            if component.part == "body":
                return tuple(p.text or "" for p in component.parameters)
        return ()

    def parameter_counts(self) -> str:
        """What was given, for an error message: ``2 body parameter(s), 1 header parameter(s)``."""
        counts: list[str] = []
        if self.params:
            counts.append(f"{len(self.params)} body parameter(s)")
        for component in self.components:
            counts.append(f"{len(component.parameters)} {component.part} parameter(s)")
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


# -- the Cloud API shape of rows stored before contacts and template parameters were typed ------------


def _graph_shaped_contact(card: Any) -> bool:
    return isinstance(card, Mapping) and isinstance(card.get("name"), Mapping)


def _labelled(items: Any, model: type[BaseModel]) -> list[dict[str, Any]]:
    # Cloud API calls the label `type`; keys the model does not know are left behind.
    fields = model.model_fields
    found = []
    for item in items if isinstance(items, list | tuple) else ():
        if isinstance(item, Mapping):
            entry = {("label" if k == "type" else k): v for k, v in item.items()}
            entry = {k: v for k, v in entry.items() if k in fields and v is not None}
            if all(k in entry for k, f in fields.items() if f.is_required()):
                found.append(entry)
    return found


def _contact_from_graph(card: Mapping[str, Any]) -> dict[str, Any]:
    name = card["name"]
    contact: dict[str, Any] = {
        "name": name.get("formatted_name") or "",
        **{k: name[k] for k in ("first_name", "last_name", "middle_name", "prefix", "suffix") if name.get(k)},
        "phones": _labelled(card.get("phones"), ContactPhone),
        "emails": _labelled(card.get("emails"), ContactEmail),
        "urls": _labelled(card.get("urls"), ContactUrl),
        "addresses": _labelled(card.get("addresses"), ContactAddress),
    }
    org = card.get("org")
    if isinstance(org, Mapping):
        contact["organization"] = {k: v for k, v in org.items() if k in ContactOrganization.model_fields}
    if card.get("birthday"):
        contact["birthday"] = card["birthday"]
    return contact


def _graph_shaped_component(component: Any) -> bool:
    return isinstance(component, Mapping) and "type" in component and "part" not in component


_MEDIA_KINDS = ("image", "video", "document")


def _parameter_from_graph(parameter: Any) -> Any:
    if not isinstance(parameter, Mapping) or "type" not in parameter:
        return parameter
    kind = str(parameter["type"]).lower()
    found: dict[str, Any] = {"kind": kind}
    if parameter.get("parameter_name"):
        found["name"] = parameter["parameter_name"]
    value = parameter.get(kind)
    if kind in ("text", "payload", "coupon_code"):
        found["text"] = value
    elif kind in _MEDIA_KINDS and isinstance(value, Mapping):
        found.update(link=value.get("link"), media_id=value.get("id"), filename=value.get("filename"))
    elif kind == "currency" and isinstance(value, Mapping):
        found.update(text=value.get("fallback_value"), currency=value.get("code"), amount_1000=value.get("amount_1000"))
    elif kind == "date_time" and isinstance(value, Mapping):
        found["text"] = value.get("fallback_value")
    elif kind == "location" and isinstance(value, Mapping):
        found.update(
            latitude=value.get("latitude"),
            longitude=value.get("longitude"),
            place=value.get("name"),
            address=value.get("address"),
        )
    elif kind == "action" and isinstance(value, Mapping):
        found.update(flow_token=value.get("flow_token"), flow_data=value.get("flow_action_data"))
    return {k: v for k, v in found.items() if v is not None}


def _component_from_graph(component: Mapping[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {
        "part": str(component["type"]).lower(),
        "parameters": tuple(_parameter_from_graph(p) for p in component.get("parameters") or ()),
    }
    if component.get("sub_type") is not None:
        found["button"] = component["sub_type"]
    if component.get("index") is not None:
        found["index"] = component["index"]
    return found
