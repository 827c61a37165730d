"""Simulated WhatsApp users: they write to the bot, tap its buttons, and read its replies.

Each action posts a real signed webhook to the bot, shaped as Meta shapes it (Cloud API docs, Webhooks:
https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/overview;
pywa's webhook fixtures, tests/data/updates in https://github.com/david-lev/pywa), and
returns the `Delivery` (the wamid and the bot's HTTP answer).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from whatsagent.emulator.state import Delivery, InboundRecord, OutboundRecord, Tappable

if TYPE_CHECKING:
    from whatsagent.emulator.server import Emulator

WINDOW_SECONDS = 24 * 3600
"""The customer service window a user message opens (Cloud API docs, Send messages:
https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/send-messages)."""


class SimulatedUser:
    """A WhatsApp user: known by `wa_id` (a phone number's WhatsApp id) and/or a business-scoped
    `user_id` (BSUID, e.g. ``US.1234``); username-only users have no `wa_id`."""

    def __init__(self, emulator: Emulator, wa_id: str | None, user_id: str | None, name: str | None) -> None:
        if not wa_id and not user_id:
            raise ValueError("a simulated user needs a wa_id or a user_id (BSUID)")
        self._emulator = emulator
        self.wa_id = wa_id
        self.user_id = user_id
        self.name = name
        self.username: str | None = None
        """The user's WhatsApp username, shown in `contacts[].profile.username`."""
        self.number_withheld = False
        """Webhooks leave the number out (Meta does so for users with a username and no recent contact)."""
        self.replies: list[OutboundRecord] = []
        """The bot's accepted messages to this user, in acceptance order."""
        self.sent: list[InboundRecord] = []
        """The messages this user sent, in order."""
        self.typing: list[str] = []
        """Inbound wamids the bot showed the typing indicator on."""
        self.read: list[str] = []
        """Inbound wamids the bot marked read (a typing indicator marks read too)."""
        self.last_message_at: float | None = None
        self.window_closed = False
        self.window_sync_error = False
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    @property
    def key(self) -> str:
        """The id conversations with this user are keyed on: the wa_id, else the BSUID."""
        return self.wa_id or self.user_id or ""

    @property
    def shown_wa_id(self) -> str | None:
        """The number webhooks show for this user: none when withheld or username-only."""
        return None if self.number_withheld else self.wa_id

    @property
    def window_open(self) -> bool:
        if self.window_closed or self.last_message_at is None:
            return False
        return time.time() - self.last_message_at < WINDOW_SECONDS

    def __repr__(self) -> str:
        return f"SimulatedUser(wa_id={self.wa_id!r}, user_id={self.user_id!r}, name={self.name!r})"

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "wa_id": self.wa_id,
            "user_id": self.user_id,
            "username": self.username,
            "number_withheld": self.number_withheld,
            "name": self.name,
            "window_open": self.window_open,
        }

    # -- writing to the bot -------------------------------------------------------------------------

    async def send_text(self, text: str, *, forwarded: bool = False) -> Delivery:
        context = {"forwarded": True} if forwarded else None
        return await self.send_message("text", {"body": text}, context=context)

    async def reply(self, text: str, *, to: str) -> Delivery:
        """Quote-reply to the message `to` (a wamid of the bot's or the user's own)."""
        return await self.send_message("text", {"body": text}, context=self._quote(to))

    async def send_image(self, data: bytes, mime_type: str = "image/jpeg", caption: str | None = None) -> Delivery:
        return await self._send_media("image", data, mime_type, caption=caption)

    async def send_audio(self, data: bytes, mime_type: str = "audio/ogg; codecs=opus", voice: bool = True) -> Delivery:
        return await self._send_media("audio", data, mime_type, voice=voice)

    async def send_video(self, data: bytes, mime_type: str = "video/mp4", caption: str | None = None) -> Delivery:
        return await self._send_media("video", data, mime_type, caption=caption)

    async def send_document(
        self,
        data: bytes,
        filename: str,
        mime_type: str = "application/pdf",
        caption: str | None = None,
    ) -> Delivery:
        return await self._send_media("document", data, mime_type, caption=caption, filename=filename)

    async def send_sticker(self, data: bytes, mime_type: str = "image/webp", animated: bool = False) -> Delivery:
        return await self._send_media("sticker", data, mime_type, animated=animated)

    async def send_location(
        self,
        latitude: float,
        longitude: float,
        name: str | None = None,
        address: str | None = None,
        url: str | None = None,
    ) -> Delivery:
        loc: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
        for key, value in (("name", name), ("address", address), ("url", url)):
            if value is not None:
                loc[key] = value
        return await self.send_message("location", loc)

    async def send_contacts(self, contacts: Sequence[dict[str, Any] | tuple[str, str]]) -> Delivery:
        """Share contact cards: Cloud API dicts, or (formatted name, phone) pairs."""
        cards = []
        for card in contacts:
            if isinstance(card, tuple):
                name, phone = card
                digits = "".join(ch for ch in phone if ch.isdigit())
                cards.append(
                    {
                        "name": {"formatted_name": name, "first_name": name.split()[0] if name else name},
                        "phones": [{"phone": phone, "wa_id": digits, "type": "CELL"}],
                    }
                )
            else:
                cards.append(card)
        return await self.send_message("contacts", cards)

    async def react(self, message_id: str, emoji: str) -> Delivery:
        return await self.send_message("reaction", {"message_id": message_id, "emoji": emoji})

    async def unreact(self, message_id: str, *, omit_emoji: bool = False) -> Delivery:
        """Remove a reaction: Meta sends `emoji: ""`, or no `emoji` at all (pywa's webhook fixtures,
        tests/data/updates/message.json in https://github.com/david-lev/pywa)."""
        payload: dict[str, Any] = {"message_id": message_id}
        if not omit_emoji:
            payload["emoji"] = ""
        return await self.send_message("reaction", payload)

    async def send_unsupported(self, original_type: str = "poll_creation") -> Delivery:
        """A message WhatsApp cannot hand to a bot (a poll, an edit, …): type `unsupported`."""
        errors = [
            {
                "code": 131051,
                "title": "Message type unknown",
                "message": "Message type unknown",
                "error_data": {"details": "Message type is currently not supported."},
            }
        ]
        return await self.send_message("unsupported", {"type": original_type}, errors=errors)

    async def tap(self, choice: str, *, on: str | None = None) -> Delivery:
        """Tap a reply button, a list row or a template quick-reply button, by title or id, on the bot's
        latest message that has any (or on the message `on`). Sends the real interactive reply."""
        candidates = [r for r in reversed(self.replies) if r.tappables and (on is None or r.message_id == on)]
        if not candidates:
            where = f"message {on}" if on else "any message to this user"
            raise LookupError(f"the bot has sent no buttons or list to tap on {where}")
        message = candidates[0]
        options = message.tappables
        chosen: Tappable | None = next((t for t in options if t.title == choice), None) or next(
            (t for t in options if t.id == choice), None
        )
        if chosen is None:
            titles = ", ".join(repr(t.title) for t in options)
            raise LookupError(f"no button or row {choice!r} on the bot's message; it offers {titles}")
        context = self._quote(message.message_id)
        if chosen.kind == "button":
            payload = {"type": "button_reply", "button_reply": {"id": chosen.id, "title": chosen.title}}
            return await self.send_message("interactive", payload, context=context)
        if chosen.kind == "row":
            row: dict[str, Any] = {"id": chosen.id, "title": chosen.title}
            if chosen.description:
                row["description"] = chosen.description
            return await self.send_message("interactive", {"type": "list_reply", "list_reply": row}, context=context)
        return await self.send_message("button", {"payload": chosen.payload, "text": chosen.title}, context=context)

    async def complete_flow(self, response: dict[str, Any], *, on: str | None = None) -> Delivery:
        """Fill in and submit the WhatsApp Flow of the bot's latest flow message (or of message `on`):
        an interactive `nfm_reply` whose `response_json` carries the fields and the flow's token."""
        message = self._latest_interactive("flow", on)
        params = message.body["interactive"]["action"].get("parameters") or {}
        answer = dict(response)
        if params.get("flow_token"):
            answer.setdefault("flow_token", params["flow_token"])
        reply = {"name": "flow", "body": "Sent", "response_json": json.dumps(answer)}
        payload = {"type": "nfm_reply", "nfm_reply": reply}
        return await self.send_message("interactive", payload, context=self._quote(message.message_id))

    async def share_location(
        self, latitude: float, longitude: float, *, on: str | None = None, name: str | None = None
    ) -> Delivery:
        """Answer the bot's location request (its latest, or message `on`) with a location."""
        message = self._latest_interactive("location_request_message", on)
        location: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
        if name:
            location["name"] = name
        return await self.send_message("location", location, context=self._quote(message.message_id))

    async def answer_call_request(
        self, accept: bool = True, *, permanent: bool = False, on: str | None = None
    ) -> Delivery:
        """Answer the bot's call-permission request: allow calls (for 7 days, or `permanent`) or not."""
        message = self._latest_interactive("call_permission_request", on)
        reply: dict[str, Any] = {
            "response": "accept" if accept else "reject",
            "is_permanent": permanent,
            "response_source": "user_action",
        }
        if accept and not permanent:
            reply["expiration_timestamp"] = int(time.time()) + 7 * 24 * 3600
        payload = {"type": "call_permission_reply", "call_permission_reply": reply}
        return await self.send_message("interactive", payload, context=self._quote(message.message_id))

    async def order_product(self, product_retailer_id: str, *, quantity: int = 1, on: str | None = None) -> Delivery:
        """Pick a product from the bot's latest product, product list or catalog message (or message
        `on`) and send the cart, as WhatsApp's app does (an `order` message)."""
        record = None
        for kind in ("product", "product_list", "catalog_message"):
            try:
                record = self._latest_interactive(kind, on)
                break
            except LookupError:
                continue
        if record is None:
            raise LookupError("the bot has sent no product, product list or catalog to order from")
        action = record.body["interactive"].get("action") or {}
        found = [action.get("product_retailer_id")] + [
            item.get("product_retailer_id")
            for section in action.get("sections") or []
            for item in section.get("product_items") or []
        ]
        offered = {str(sku) for sku in found if sku}
        if offered and product_retailer_id not in offered:
            raise LookupError(f"{product_retailer_id!r} is not offered; the message offers {sorted(offered)}")
        item = {"product_retailer_id": product_retailer_id, "quantity": quantity, "item_price": 1, "currency": "USD"}
        order = {"catalog_id": action.get("catalog_id") or "catalog", "text": "", "product_items": [item]}
        return await self.send_message("order", order, context=self._quote(record.message_id))

    def _latest_interactive(self, kind: str, on: str | None) -> OutboundRecord:
        for record in reversed(self.replies):
            if on is not None and record.message_id != on:
                continue
            if record.type == "interactive" and record.body["interactive"].get("type") == kind:
                return record
        where = f"message {on}" if on else "any message to this user"
        raise LookupError(f"the bot has sent no {kind} ({where})")

    async def send_message(
        self,
        type: str,
        payload: Any,
        *,
        context: dict[str, Any] | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> Delivery:
        """Send any `messages[]` item of this `type` with this payload (the escape hatch for kinds the
        helpers above do not cover, e.g. `order` or `system`)."""
        return await self._emulator._user_message(self, type, payload, context=context, errors=errors)

    # -- reading the bot's replies ------------------------------------------------------------------

    async def wait_for_replies(self, count: int = 1, timeout: float = 60.0) -> list[OutboundRecord]:
        """Wait until the bot has had `count` messages to this user accepted; return the first `count`."""
        if len(self.replies) < count:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry = (count, future)
            self._waiters.append(entry)
            try:
                await asyncio.wait_for(future, timeout)
            except TimeoutError:
                got = [f"{r.type}: {r.text!r}" for r in self.replies]
                raise TimeoutError(
                    f"{self!r} got {len(self.replies)} of {count} replies within {timeout:g}s: {got}"
                ) from None
            finally:
                if entry in self._waiters:
                    self._waiters.remove(entry)
        return self.replies[:count]

    @property
    def last_reply(self) -> OutboundRecord | None:
        return self.replies[-1] if self.replies else None

    def _add_reply(self, record: OutboundRecord) -> None:
        self.replies.append(record)
        if self._waiters:
            n = len(self.replies)
            for count, future in self._waiters:
                if count <= n and not future.done():
                    future.set_result(None)

    async def _send_media(self, kind: str, data: bytes, mime_type: str, **extra: Any) -> Delivery:
        item = self._emulator.media.put(data, mime_type, extra.get("filename"))
        payload: dict[str, Any] = {}
        if extra.get("caption") is not None:
            payload["caption"] = extra["caption"]
        if kind == "document":
            payload["filename"] = extra["filename"]
        payload.update({"mime_type": mime_type, "sha256": item.sha256_b64, "id": item.id})
        if kind == "audio":
            # WhatsApp records voice notes as OGG/Opus; any other audio arrives as an audio file.
            payload["voice"] = bool(extra.get("voice")) and mime_type.split(";")[0].strip().lower() == "audio/ogg"
        if kind == "sticker":
            payload["animated"] = bool(extra.get("animated"))
        return await self.send_message(kind, payload)

    def _quote(self, message_id: str) -> dict[str, Any]:
        sender = self._emulator.display_phone_number
        inbound = self._emulator.inbound.get(message_id)
        if inbound is not None:
            sender = inbound.user
        return {"from": sender, "id": message_id}
