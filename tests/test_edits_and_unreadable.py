"""What the user does that is not plain writing reaches the agent in words, or is answered: an edit
("the user edited their message to: …"), a deletion (kept, not answered), a message WhatsApp cannot
hand over (a poll, a view-once: answered with a short "I can't open that kind of message yet" unless
the channel turns that off)."""

from __future__ import annotations

import asyncio
from typing import Any

from whatsagent import TurnContext
from whatsagent.channels.base import Channel
from whatsagent.testing import BotHarness


class Recorder:
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, ctx: TurnContext) -> str:
        self.seen.append(ctx.text)
        return f"got: {ctx.text}"


class QuietHarness(BotHarness):
    """A bot whose channel hands unreadable messages to the agent instead of answering them itself."""

    def build_channel(self, url: str = "") -> Channel:
        channel = super().build_channel(url)
        channel.unsupported_reply = None
        return channel


async def test_a_poll_is_answered_with_the_short_default_and_never_reaches_the_model(tmp_path: Any) -> None:
    agent = Recorder()
    async with BotHarness(agent, tmp_path) as bot:
        ana = bot.user("15551234567", "Ana")
        await ana.send_unsupported("poll_creation")
        [reply] = await ana.wait_for_replies(1)
        assert reply.text == "Sorry, I can't open that kind of message yet."
        await ana.send_text("ok, in words then")
        replies = await ana.wait_for_replies(2)
        assert replies[1].text == "got: ok, in words then"
        assert agent.seen == ["ok, in words then"]


async def test_with_the_default_off_the_agent_reads_what_it_could_not_open(tmp_path: Any) -> None:
    agent = Recorder()
    async with QuietHarness(agent, tmp_path) as bot:
        ana = bot.user("15551234567", "Ana")
        await ana.send_unsupported("view_once")
        [reply] = await ana.wait_for_replies(1)
        assert agent.seen == ["[The user sent a kind of message the bot cannot read (view_once): Message type unknown]"]
        assert reply.text == f"got: {agent.seen[0]}"


async def test_an_edit_reaches_the_agent_and_a_deletion_is_not_answered(tmp_path: Any) -> None:
    agent = Recorder()
    async with BotHarness(agent, tmp_path) as bot:
        ana = bot.user("15551234567", "Ana")
        first = await ana.send_text("meet at 5")
        await ana.wait_for_replies(1)
        await ana.send_message(
            "edit",
            {"original_message_id": first.message_id, "message": {"type": "text", "text": {"body": "meet at 6"}}},
        )
        replies = await ana.wait_for_replies(2)
        assert agent.seen[-1] == "[The user edited their message to: meet at 6]"
        assert replies[1].text == "got: [The user edited their message to: meet at 6]"
        deleted = await ana.send_message("revoke", {"original_message_id": first.message_id})
        assert deleted.status == 200
        await bot.idle()
        assert len(ana.replies) == 2 and len(agent.seen) == 2


class Gated(Recorder):
    """Holds its first turn until released, so the next messages wait together for one turn."""

    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, ctx: TurnContext) -> str:
        if not self.started.is_set():
            self.started.set()
            await self.release.wait()
        return await super().__call__(ctx)


async def queued(bot: BotHarness, agent: Gated, *messages: tuple[str, dict[str, Any]]) -> Any:
    """The user writes `first`, then, while that turn runs, sends `messages` (waiting together)."""
    ana = bot.user("15551234567", "Ana")
    await ana.send_text("first")
    await agent.started.wait()
    sent = []
    for kind, payload in messages:
        if callable(payload):
            payload = payload(sent)
        sent.append(await ana.send_message(kind, payload))
    agent.release.set()
    return ana, sent


async def test_an_edit_of_a_message_not_yet_answered_replaces_it_in_the_turn(tmp_path: Any) -> None:
    agent = Gated()
    async with BotHarness(agent, tmp_path) as bot:
        ana, _ = await queued(
            bot,
            agent,
            ("text", {"body": "meet at 5"}),
            (
                "edit",
                lambda sent: {
                    "original_message_id": sent[0].message_id,
                    "message": {"type": "text", "text": {"body": "meet at 6"}},
                },
            ),
        )
        await ana.wait_for_replies(2)
        await bot.idle()
    assert agent.seen == ["first", "meet at 6"]


async def test_a_message_deleted_before_it_was_answered_leaves_the_turn(tmp_path: Any) -> None:
    agent = Gated()
    async with BotHarness(agent, tmp_path) as bot:
        ana, _ = await queued(
            bot,
            agent,
            ("text", {"body": "oops, wrong chat"}),
            ("revoke", lambda sent: {"original_message_id": sent[0].message_id}),
            ("text", {"body": "hello"}),
        )
        await ana.wait_for_replies(2)
        await bot.idle()
        assert agent.seen == ["first", "hello"]
        assert [r.text for r in ana.replies] == ["got: first", "got: hello"]


async def test_a_turn_whose_messages_were_all_deleted_is_not_answered(tmp_path: Any) -> None:
    agent = Gated()
    async with BotHarness(agent, tmp_path) as bot:
        ana, _ = await queued(
            bot,
            agent,
            ("text", {"body": "never mind"}),
            ("revoke", lambda sent: {"original_message_id": sent[0].message_id}),
        )
        await ana.wait_for_replies(1)
        await bot.idle()
        assert agent.seen == ["first"] and len(ana.replies) == 1
