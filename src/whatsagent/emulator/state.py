"""What the emulator remembers: every request the bot made, every message either side sent.

Records are plain dataclasses so tests can read them directly (`ana.replies[0].text`). The chat page
gets the same facts as JSON through `to_json()`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

OutboundStatus = Literal["accepted", "sent", "delivered", "read", "played", "failed"]

_STATUS_RANK = {"accepted": 0, "sent": 1, "delivered": 2, "read": 3, "played": 4, "failed": 5}


@dataclass(slots=True)
class RequestRecord:
    """One request the bot made to the emulated Graph API."""

    method: str
    path: str
    json: Any
    time: float
    status: int = 0
    """The HTTP status the emulator answered (0 while the request is in flight)."""


@dataclass(slots=True)
class Delivery:
    """The result of posting one webhook to the bot."""

    message_id: str | None
    status: int
    """HTTP status the bot answered; 0 when the bot could not be reached at all."""
    body: str

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass(slots=True)
class Tappable:
    """Something the user can tap on a bot message: a reply button, a list row, a template button."""

    kind: Literal["button", "row", "template_button"]
    id: str
    title: str
    description: str | None = None
    payload: str | None = None


@dataclass(slots=True)
class OutboundRecord:
    """A message the bot sent that the emulator accepted (HTTP 200 and a wamid)."""

    message_id: str
    to: str
    """The recipient's key: the wa_id, or the BSUID for username-only users."""
    type: str
    body: dict[str, Any]
    """The request JSON as the bot sent it."""
    time: float = field(default_factory=time.time)
    status: OutboundStatus = "accepted"
    errors: list[dict[str, Any]] = field(default_factory=list)
    rendered: str | None = None
    """The text a user would read for a template (parameters substituted)."""
    template: dict[str, Any] | None = None
    """The template definition a template send used, for the chat page."""
    reaction: str | None = None
    """The user's reaction to this message ("" or None when there is none)."""

    @property
    def text(self) -> str | None:
        """What the user reads: the text body, a media caption, an interactive body, a rendered template."""
        body = self.body
        kind = self.type
        if kind == "text":
            return _get(body, "text", "body")
        if kind in ("image", "video", "document", "audio", "sticker"):
            return _get(body, kind, "caption")
        if kind == "interactive":
            return _get(body, "interactive", "body", "text")
        if kind == "template":
            return self.rendered
        if kind == "location":
            loc = body.get("location") or {}
            return loc.get("name") or loc.get("address")
        if kind == "reaction":
            return _get(body, "reaction", "emoji")
        return None

    @property
    def interactive_type(self) -> str | None:
        return _get(self.body, "interactive", "type") if self.type == "interactive" else None

    @property
    def context_id(self) -> str | None:
        """The message this one quotes (`context.message_id`), if any."""
        ctx = self.body.get("context")
        return ctx.get("message_id") if isinstance(ctx, dict) else None

    @property
    def callback_data(self) -> str | None:
        return self.body.get("biz_opaque_callback_data")

    @property
    def media(self) -> dict[str, Any] | None:
        """The media object (`id` or `link`, caption, filename) of a media message."""
        if self.type in ("image", "video", "document", "audio", "sticker"):
            media = self.body.get(self.type)
            return media if isinstance(media, dict) else None
        return None

    @property
    def tappables(self) -> list[Tappable]:
        """Buttons and list rows a user can tap on this message."""
        if self.type == "interactive":
            inter = self.body["interactive"]
            action = inter.get("action") or {}
            if inter.get("type") == "button":
                return [Tappable("button", b["reply"]["id"], b["reply"]["title"]) for b in action.get("buttons", [])]
            if inter.get("type") == "list":
                return [
                    Tappable("row", r["id"], r["title"], r.get("description"))
                    for s in action.get("sections", [])
                    for r in s.get("rows", [])
                ]
            return []
        if self.type == "template" and self.template:
            payloads = _template_payloads(self.body)
            out = []
            index = 0
            for comp in self.template.get("components", []):
                if comp.get("type") != "BUTTONS":
                    continue
                for button in comp.get("buttons", []):
                    if button.get("type") == "QUICK_REPLY":
                        text = button["text"]
                        out.append(Tappable("template_button", text, text, payload=payloads.get(index, text)))
                    index += 1
            return out
        return []

    def advance(self, status: OutboundStatus) -> bool:
        """Move to `status` if it is further along; a late `delivered` never undoes `read`."""
        if _STATUS_RANK[status] > _STATUS_RANK[self.status]:
            self.status = status
            return True
        return False

    def to_json(self) -> dict[str, Any]:
        return {
            "direction": "out",
            "id": self.message_id,
            "to": self.to,
            "type": self.type,
            "body": self.body,
            "time": self.time,
            "status": self.status,
            "errors": self.errors,
            "text": self.text,
            "template": self.template,
            "reaction": self.reaction,
        }


@dataclass(slots=True)
class InboundRecord:
    """A message a simulated user sent (or a raw webhook posted through `post_webhook`)."""

    message_id: str
    user: str
    """The sender's key: the wa_id, or the BSUID for username-only users."""
    message: dict[str, Any]
    """The `messages[]` item as it went out in the webhook."""
    raw: bytes | None = None
    """The exact bytes of the first webhook that carried it, for byte-identical redelivery."""
    time: float = field(default_factory=time.time)
    deliveries: list[int] = field(default_factory=list)
    """HTTP status of every delivery attempt, in order."""
    read: bool = False
    reaction: str | None = None
    """The bot's reaction to this message."""

    @property
    def type(self) -> str:
        return str(self.message.get("type", ""))

    def to_json(self) -> dict[str, Any]:
        return {
            "direction": "in",
            "id": self.message_id,
            "from": self.user,
            "type": self.type,
            "message": self.message,
            "time": self.time,
            "deliveries": self.deliveries,
            "read": self.read,
            "reaction": self.reaction,
        }


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _template_payloads(body: dict[str, Any]) -> dict[int, str]:
    payloads: dict[int, str] = {}
    for comp in _get(body, "template", "components") or []:
        if str(comp.get("type")).lower() == "button" and str(comp.get("sub_type")).lower() == "quick_reply":
            for param in comp.get("parameters") or []:
                if param.get("type") == "payload":
                    payloads[int(comp.get("index", 0))] = str(param.get("payload"))
    return payloads
