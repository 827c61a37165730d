"""Webhook payloads recorded by others, replayed through the parser: nothing the agent needs is lost.

`tests/data/pywa/*.json` are pywa's webhook fixtures (github.com/david-lev/pywa, tests/data/updates at
commit 0bcf2f192ff3cf8ae24a425d85f4295e3cca7a62, MIT licence in tests/data/pywa/LICENSE), unchanged.
Every field the agent or the bot's bookkeeping reads is checked against the raw payload, field by
field, so a field dropped by the parser fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from whatsagent.channels.cloudapi.parse import parse_webhook
from whatsagent.messages import (
    Audio,
    ButtonReply,
    CallPermissionReply,
    Contacts,
    Edit,
    FlowReply,
    Image,
    ListReply,
    Location,
    Order,
    Reaction,
    Revoke,
    StatusUpdate,
    Sticker,
    System,
    TemplateButton,
    Text,
    Unsupported,
    Video,
)

DATA = Path(__file__).parent / "data" / "pywa"
CASES = [
    (f"{path.stem}/{name}", payload)
    for path in sorted(DATA.glob("*.json"))
    for name, payload in json.loads(path.read_text()).items()
]
MEDIA = {"image": Image, "video": Video, "audio": Audio, "sticker": Sticker}


def test_every_recorded_payload_is_here() -> None:
    assert len(CASES) == 43


@pytest.mark.parametrize(("name", "payload"), CASES, ids=[c[0] for c in CASES])
def test_a_recorded_payload_keeps_every_field_the_agent_needs(name: str, payload: dict[str, Any]) -> None:
    value = payload["entry"][0]["changes"][0]["value"]
    events = parse_webhook(payload, channel="wa")
    raws = value.get("messages") or value.get("statuses")
    assert len(events) == len(raws)
    for event, raw in zip(events, raws, strict=True):
        if isinstance(event, StatusUpdate):
            check_status(event, raw)
        else:
            check_message(event, raw, value.get("contacts") or [])


def check_status(event: StatusUpdate, raw: dict[str, Any]) -> None:
    assert event.message_id == raw["id"] and event.status == raw["status"]
    assert event.recipient == raw.get("recipient_id")
    assert event.recipient_user_id == raw.get("recipient_user_id")
    assert event.callback_data == raw.get("biz_opaque_callback_data")
    assert [e.code for e in event.errors] == [e["code"] for e in raw.get("errors", [])]
    if "pricing" in raw:
        assert event.pricing is not None and event.pricing.category == raw["pricing"]["category"]


def check_message(event: Any, raw: dict[str, Any], contacts: list[dict[str, Any]]) -> None:
    assert event.id == raw["id"]
    contact = contacts[0] if contacts else {}
    if raw.get("from") and contact.get("wa_id") not in (None, raw["from"]):
        contact = {}  # two fixtures name someone else in `contacts`: not the sender, not merged
    assert event.user.wa_id == (raw.get("from") or contact.get("wa_id"))
    assert event.user.user_id == (raw.get("from_user_id") or contact.get("user_id"))
    if contact:
        assert event.user.name == contact.get("profile", {}).get("name")
        assert event.user.username == contact.get("profile", {}).get("username")
        assert event.user.parent_user_id == contact.get("parent_user_id")
    context = raw.get("context") or {}
    if context.get("id"):
        assert event.context.reply_to == context["id"]
    if context.get("forwarded") or context.get("frequently_forwarded"):
        assert event.context.forwarded
    if "referral" in raw:
        referral = raw["referral"]
        assert event.referral.source_url == referral["source_url"]
        assert event.referral.headline == referral["headline"] and event.referral.ctwa_clid == referral["ctwa_clid"]
    kind = raw["type"]
    body = raw.get(kind)
    if kind == "text":
        assert isinstance(event, Text) and event.body == body["body"]
    elif kind in MEDIA or kind == "document":
        assert event.media.media_id == body["id"] and event.media.mime_type == body["mime_type"]
        assert event.media.caption == body.get("caption") and event.media.url == body.get("url")
        if kind == "audio":
            assert event.voice == body.get("voice", False)
    elif kind == "reaction":
        assert isinstance(event, Reaction) and event.message_id == body["message_id"]
        assert event.emoji == (body.get("emoji") or None)
    elif kind == "location":
        assert isinstance(event, Location)
        assert (event.latitude, event.longitude) == (body["latitude"], body["longitude"])
        assert (event.name, event.address) == (body.get("name"), body.get("address"))
    elif kind == "contacts":
        assert isinstance(event, Contacts) and len(event.contacts) == len(body)
    elif kind == "order":
        assert isinstance(event, Order) and len(event.items) == len(body["product_items"])
    elif kind == "button":
        assert isinstance(event, TemplateButton) and (event.payload, event.text) == (body["payload"], body["text"])
    elif kind == "edit":
        assert isinstance(event, Edit) and event.original_id == body["original_message_id"]
        inner = body["message"]
        assert event.original_kind == inner["type"]
        assert event.text == inner[inner["type"]].get("caption", inner[inner["type"]].get("body"))
    elif kind == "revoke":
        assert isinstance(event, Revoke) and event.original_id == body["original_message_id"]
    elif kind == "system":
        assert isinstance(event, System) and event.system_type == body["type"]
    elif kind == "interactive" and body is not None:
        sub = body["type"]
        reply = body[sub]
        if sub == "button_reply":
            assert isinstance(event, ButtonReply) and (event.button_id, event.title) == (reply["id"], reply["title"])
        elif sub == "list_reply":
            assert isinstance(event, ListReply) and (event.row_id, event.title) == (reply["id"], reply["title"])
            assert event.description == reply.get("description")
        elif sub == "nfm_reply":
            assert isinstance(event, FlowReply) and event.response == json.loads(reply["response_json"])
        elif sub == "call_permission_reply":
            assert isinstance(event, CallPermissionReply) and event.accepted == (reply["response"] == "accept")
            assert event.permanent == reply.get("is_permanent", False)
        else:
            pytest.fail(f"interactive {sub} not checked")
    else:
        assert isinstance(event, Unsupported)
        detail = raw.get("unsupported", {}).get("type")
        assert event.original_type == (detail or kind)
        assert [e.code for e in event.errors] == [e["code"] for e in raw.get("errors", [])] or not raw.get("errors")
