"""A user writes on WhatsApp; the agent answers, once, in order."""

from __future__ import annotations

import asyncio

from whatsagent.testing import BotHarness


async def test_a_text_message_gets_the_agents_answer(tmp_path, echo):
    async with BotHarness(echo, tmp_path) as bot:
        ana = bot.user("15551234567", name="Ana")
        delivery = await ana.send_text("hello there")
        assert delivery.status == 200
        [reply] = await ana.wait_for_replies(1)
        assert reply.type == "text"
        assert reply.text == "echo: hello there"


async def test_typing_indicator_marks_the_message_read_while_the_agent_thinks(tmp_path, echo):
    async with BotHarness(echo, tmp_path) as bot:
        ana = bot.user("15551234567", name="Ana")
        d = await ana.send_text("hi")
        await ana.wait_for_replies(1)
        assert d.message_id in ana.typing


async def test_a_webhook_posted_twice_is_answered_once(tmp_path, echo):
    async with BotHarness(echo, tmp_path) as bot:
        ana = bot.user("15551234567", name="Ana")
        d = await ana.send_text("only once please")
        again = await bot.emulator.redeliver(d.message_id)
        assert again.status == 200
        await ana.wait_for_replies(1)
        await bot.idle()  # the redelivery was acknowledged, so it is stored: any second turn has run and sent
        await bot.emulator.settle(60)
        assert [r.text for r in ana.replies] == ["echo: only once please"]
        assert echo.seen == ["only once please"]


async def test_the_same_message_rebatched_in_another_envelope_is_answered_once(tmp_path, echo):
    async with BotHarness(echo, tmp_path) as bot:
        ana = bot.user("15551234567", name="Ana")
        bo = bot.user("15557654321", name="Bo")
        first = await ana.send_text("first")
        await ana.wait_for_replies(1)
        other = await bo.send_text("from bo")
        # Meta redelivers Ana's message batched together with Bo's in one new envelope.
        await bot.emulator.redeliver(first.message_id, batch_with=[other.message_id])
        await bo.wait_for_replies(1)
        await bot.idle()
        await bot.emulator.settle(60)
        assert [r.text for r in ana.replies] == ["echo: first"]
        assert [r.text for r in bo.replies] == ["echo: from bo"]


async def test_quick_messages_are_answered_in_order_and_merged_while_a_turn_runs(tmp_path):
    seen: list[str] = []
    first_turn_started = asyncio.Event()
    first_turn_may_finish = asyncio.Event()

    async def agent(ctx):
        seen.append(ctx.text)
        if len(seen) == 1:
            first_turn_started.set()
            await asyncio.wait_for(first_turn_may_finish.wait(), 120)
        return f"echo: {ctx.text}"

    async with BotHarness(agent, tmp_path) as bot:
        ana = bot.user("15551234567", name="Ana")
        assert (await ana.send_text("message 0")).ok
        await asyncio.wait_for(first_turn_started.wait(), 60)  # the agent is thinking about message 0
        for i in range(1, 5):
            assert (await ana.send_text(f"message {i}")).ok
        # All five are stored; the first turn is still running: the four others wait for the next one.
        first_turn_may_finish.set()
        replies = await ana.wait_for_replies(2)
        await bot.idle()
        await bot.emulator.settle(60)
        assert seen == ["message 0", "message 1\nmessage 2\nmessage 3\nmessage 4"]
        assert [r.text for r in replies] == [f"echo: {turn}" for turn in seen]
        assert len(ana.replies) == 2


async def test_five_quick_messages_with_a_model_of_random_latency_are_answered_in_order(tmp_path, slow_echo):
    async with BotHarness(slow_echo, tmp_path) as bot:
        ana = bot.user("15551234567", name="Ana")
        for i in range(5):
            await ana.send_text(f"message {i}")
            await asyncio.sleep(0.03)
        await bot.idle()  # every message was acknowledged, so stored: all their turns have run and sent
        await bot.emulator.settle(60)
        inputs = [line for turn in slow_echo.seen for line in turn.split("\n")]
        assert inputs == [f"message {i}" for i in range(5)], "each message reached the agent once, in order"
        assert [r.text for r in ana.replies] == [f"echo: {turn}" for turn in slow_echo.seen]


async def test_different_users_are_answered_concurrently(tmp_path):
    started: list[str] = []
    all_started = asyncio.Event()
    release = asyncio.Event()

    async def agent(ctx):
        started.append(ctx.user.wa_id)
        if len(started) == 3:
            all_started.set()
        await asyncio.wait_for(release.wait(), 120)
        return "done"

    async with BotHarness(agent, tmp_path) as bot:
        users = [bot.user(f"1555000000{i}") for i in range(3)]
        for u in users:
            await u.send_text("hi")
        # No turn may finish before all three have started: one user's turn does not wait for another's.
        await asyncio.wait_for(all_started.wait(), 60)
        assert sorted(started) == sorted(u.wa_id for u in users), "three turns ran at the same time"
        release.set()
        for u in users:
            await u.wait_for_replies(1)


async def test_reactions_and_system_notices_do_not_get_an_answer(tmp_path, echo):
    async with BotHarness(echo, tmp_path) as bot:
        ana = bot.user("15551234567", name="Ana")
        d = await ana.send_text("hi")
        [reply] = await ana.wait_for_replies(1)
        await ana.react(reply.message_id, "👍")
        await bot.idle()  # the reaction is stored; had it asked for an answer, that answer is sent by now
        await bot.emulator.settle(60)
        assert len(ana.replies) == 1
        # The reaction is context for the next turn, not a turn of its own.
        await ana.send_text("and now?")
        await ana.wait_for_replies(2)
        assert "reacted 👍" in echo.seen[-1]
        assert echo.seen[-1].endswith("and now?")
        assert d.message_id


async def test_a_username_only_user_without_a_phone_number_is_answered(tmp_path, echo):
    async with BotHarness(echo, tmp_path) as bot:
        bo = bot.user(user_id="US.13491208655302741918", name="Bo")
        await bo.send_text("no number here")
        [reply] = await bo.wait_for_replies(1)
        assert reply.text == "echo: no number here"
        assert reply.body.get("recipient") == "US.13491208655302741918"
