"""WhatsAppTools: each tool produces the exact Graph API body; limits come back to the model as a retry."""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any

import pytest
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from fakes import media_files
from whatsagent import Agent
from whatsagent.testing import BotHarness
from whatsagent.tools import WhatsAppTools


class Script:
    """A model that calls the scripted tools one per step, then answers `final`; it records what the
    tools answered (and the retries the limits asked for)."""

    def __init__(self, calls: list[tuple[str, dict[str, Any]]], final: str = "") -> None:
        self.calls = list(calls)
        self.final = final
        self.returns: list[str] = []
        self.retries: list[str] = []
        self.model = FunctionModel(self._step)

    def _step(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1]
        if isinstance(last, ModelRequest):
            for part in last.parts:
                if isinstance(part, ToolReturnPart):
                    retried = getattr(part, "outcome", None) == "retried"
                    (self.retries if retried else self.returns).append(str(part.content))
                if isinstance(part, RetryPromptPart):
                    self.retries.append(part.model_response())
        if self.calls:
            name, args = self.calls.pop(0)
            return ModelResponse(parts=[ToolCallPart(name, args)])
        return ModelResponse(parts=[TextPart(self.final)])


async def run(tmp_path, calls, final="", user="15551234567", before=None) -> tuple[Script, list[Any]]:
    script = Script(calls, final)
    async with BotHarness(Agent(model=script.model, tools=[WhatsAppTools()]), tmp_path) as bot:
        ana = bot.user(user, name="Ana")
        if before is not None:
            await before(ana)
        await ana.send_text("go")
        expected = len([c for c in calls if c[0] != "fail"]) or 1
        await ana.wait_for_replies(expected)
        await bot.idle()  # anything more the turn sent is in `ana.replies` now
        await bot.emulator.settle(60)
    return script, ana.replies


HEAD = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "15551234567"}


def graph_body(record) -> dict[str, Any]:
    body = dict(record.body)
    body.pop("biz_opaque_callback_data", None)
    return body


async def test_reply_buttons(tmp_path):
    args = {
        "body": "Pick a size",
        "buttons": [{"id": "s", "title": "Small"}, {"id": "l", "title": "Large"}],
        "footer": "Prices include VAT",
    }
    script, [reply] = await run(tmp_path, [("send_buttons", args)])
    assert graph_body(reply) == {
        **HEAD,
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": "Pick a size"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "s", "title": "Small"}},
                    {"type": "reply", "reply": {"id": "l", "title": "Large"}},
                ]
            },
            "footer": {"text": "Prices include VAT"},
        },
    }
    assert script.returns == ["Sent the buttons to the user."]


async def test_a_list(tmp_path):
    rows = [{"id": f"r{i}", "title": f"Option {i}", "description": f"about {i}"} for i in range(2)]
    args = {"body": "Choose", "button": "Options", "sections": [{"rows": rows}]}
    _, [reply] = await run(tmp_path, [("send_list", args)])
    assert graph_body(reply) == {
        **HEAD,
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": "Choose"},
            "action": {"button": "Options", "sections": [{"rows": rows}]},
        },
    }


async def test_a_cta_url_button(tmp_path):
    args = {"body": "Track your parcel", "display_text": "Track", "url": "https://example.com/t/1"}
    _, [reply] = await run(tmp_path, [("send_cta_url", args)])
    assert graph_body(reply)["interactive"] == {
        "type": "cta_url",
        "body": {"text": "Track your parcel"},
        "action": {"name": "cta_url", "parameters": {"display_text": "Track", "url": "https://example.com/t/1"}},
    }


async def test_text_template_location_contacts_and_reaction(tmp_path):
    calls = [
        ("send_text", {"text": "Hello!"}),
        ("send_template", {"name": "hello_world", "language": "en_US"}),
        ("send_location", {"latitude": 38.7, "longitude": -9.14, "name": "Lisbon"}),
        ("send_contacts", {"contacts": [{"name": "Support Desk", "phone": "+14155550123"}]}),
        ("send_reaction", {"emoji": "👍"}),
    ]
    _, replies = await run(tmp_path, calls)
    bodies = {r.type: graph_body(r) for r in replies}
    assert bodies["text"] == {**HEAD, "type": "text", "text": {"body": "Hello!"}}
    assert bodies["template"]["template"] == {"name": "hello_world", "language": {"code": "en_US"}}
    assert bodies["location"]["location"] == {"latitude": 38.7, "longitude": -9.14, "name": "Lisbon"}
    assert bodies["contacts"]["contacts"] == [
        {
            "name": {"formatted_name": "Support Desk", "first_name": "Support"},
            "phones": [{"phone": "+14155550123", "type": "CELL"}],
        }
    ]
    db = sqlite3.connect(tmp_path / "whatsagent.db")
    [(go_id,)] = db.execute("SELECT provider_id FROM inbox WHERE kind = 'text'").fetchall()
    assert bodies["reaction"]["reaction"] == {"message_id": go_id, "emoji": "👍"}, "the user's latest message"


async def test_an_image_and_a_document_by_link(tmp_path):
    calls = [
        ("send_image", {"image": "https://example.com/cat.png", "caption": "a cat"}),
        ("send_document", {"document": "https://example.com/menu.pdf", "filename": "menu.pdf"}),
    ]
    _, [image, document] = await run(tmp_path, calls)
    assert graph_body(image)["image"] == {"link": "https://example.com/cat.png", "caption": "a cat"}
    assert graph_body(document)["document"] == {"link": "https://example.com/menu.pdf", "filename": "menu.pdf"}


async def test_the_users_own_image_is_sent_back_by_its_media_key(tmp_path):
    photo = media_files.image_bytes("JPEG", 80, 60)
    key = hashlib.sha256(photo).hexdigest()
    script = Script([("send_image", {"image": key, "caption": "yours"})])
    async with BotHarness(Agent(model=script.model, tools=[WhatsAppTools()]), tmp_path) as bot:
        ana = bot.user("15551234567")
        await ana.send_image(photo, mime_type="image/jpeg")
        [reply] = await ana.wait_for_replies(1)
        uploaded = bot.emulator.media.get(reply.body["image"]["id"])
    assert uploaded is not None and uploaded.data == photo, "uploaded from the media store at send time"
    assert reply.body["image"]["caption"] == "yours"


@pytest.mark.parametrize(
    ("tool", "args", "reason"),
    [
        (
            "send_buttons",
            {"body": "Pick", "buttons": [{"id": "a", "title": "Confirm my order now!"}]},
            "is 21 characters; WhatsApp allows at most 20. Shorten it",
        ),
        (
            "send_buttons",
            {"body": "Pick", "buttons": [{"id": str(i), "title": f"B{i}"} for i in range(4)]},
            "4 buttons given",
        ),
        (
            "send_list",
            {
                "body": "Pick",
                "button": "Open",
                "sections": [{"rows": [{"id": str(i), "title": f"Row {i}"} for i in range(11)]}],
            },
            "got 11",
        ),
        (
            "send_list",
            {"body": "Pick", "button": "Open", "sections": [{"rows": [{"id": "x", "title": "A" * 25}]}]},
            "is 25 characters; WhatsApp allows at most 24",
        ),
        (
            "send_list",
            {
                "body": "Pick",
                "button": "Open",
                "sections": [{"rows": [{"id": "x", "title": "A", "description": "d" * 73}]}],
            },
            "at most 72",
        ),
        ("send_cta_url", {"body": "x", "display_text": "Go", "url": "ftp://x"}, "must start with https://"),
        ("send_image", {"image": "not-a-key"}, "neither an https:// URL nor the media key"),
        ("send_reaction", {"emoji": "yes"}, "single emoji"),
    ],
)
async def test_a_broken_limit_comes_back_to_the_model_as_a_useful_retry(tmp_path, tool, args, reason):
    # Nothing is cut or dropped silently: the model is told why and tries again (here it writes instead).
    script, [reply] = await run(tmp_path, [(tool, args)], final="Sorry, plain text then.")
    assert reason in script.retries[0]
    assert reply.type == "text" and reply.text == "Sorry, plain text then."


async def test_when_a_tool_sent_the_answer_the_text_is_not_sent_again(tmp_path):
    calls = [
        (
            "send_buttons",
            {
                "body": "Do you want the red or the blue one?",
                "buttons": [{"id": "r", "title": "Red"}, {"id": "b", "title": "Blue"}],
            },
        )
    ]
    _, replies = await run(tmp_path, calls, final="Do you want the red or the blue one?")
    await_all = [r.type for r in replies]
    assert await_all == ["interactive"]


async def test_tool_sends_go_through_the_outbox_with_idempotency_keys(tmp_path):
    _, [sent, text] = await run(tmp_path, [("send_text", {"text": "first"})], final="and the answer")
    assert (sent.text, text.text) == ("first", "and the answer"), "tool messages go before the answer"
    db = sqlite3.connect(tmp_path / "whatsagent.db")
    rows = db.execute("SELECT idempotency_key, status FROM outbox ORDER BY position").fetchall()
    assert [status for _, status in rows] == ["sent", "sent"]
    assert all(key.startswith("turn:") for key, _ in rows)
    assert sent.body["biz_opaque_callback_data"] == rows[0][0]


async def test_a_turn_run_again_after_a_failure_never_sends_a_tools_message_twice(tmp_path):
    from whatsagent.queue import RetryPolicy

    runs = 0

    def flaky(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        nonlocal runs
        last = messages[-1]
        if isinstance(last, ModelRequest) and any(isinstance(p, ToolReturnPart) for p in last.parts):
            runs += 1
            if runs == 1:
                raise RuntimeError("the provider fell over after the tool ran")
            return ModelResponse(parts=[TextPart("All set.")])
        return ModelResponse(parts=[ToolCallPart("send_text", {"text": "Your table is booked for 8 pm."})])

    async with BotHarness(Agent(model=FunctionModel(flaky), tools=[WhatsAppTools()]), tmp_path) as bot:
        bot.os.queue.retry = RetryPolicy(base=0.01)
        ana = bot.user("15551234567")
        await ana.send_text("book it")
        await ana.wait_for_replies(2)
        await bot.idle()  # the second run is over: a resend of the tool's message would be in by now
        await bot.emulator.settle(60)
    assert runs == 2, "the turn really ran twice"
    assert [r.text for r in ana.replies] == ["Your table is booked for 8 pm.", "All set."]
