"""The 24-hour window: no free-form message is tried outside it; the fallback template goes once, never in
a loop; what was held back reaches the user when they write again."""

from __future__ import annotations

import logging

from whatsagent import Reply
from whatsagent.messages.outbound import TemplateOut, TextOut
from whatsagent.testing import BotHarness
from whatsagent.window import ManualClock, WindowPolicy

DAY = 24 * 3600


def welcome_back(user) -> TemplateOut:
    return TemplateOut(name="welcome_back", params=(user.name or "there",))


def sends(bot, kind: str | None = None):
    return [
        r
        for r in bot.emulator.requests
        if r.path.endswith("/messages") and "type" in (r.json or {}) and (kind is None or r.json["type"] == kind)
    ]


async def settle(bot) -> None:
    """Wait until the bot has done all it will: status webhooks delivered and whatever they caused sent."""
    await bot.idle()
    emulator = getattr(bot, "emulator", None)
    if emulator is not None:  # (the Twilio fake here posts no status callbacks: `auto_status` is off)
        await emulator.settle(60)
        await bot.idle()


async def test_an_answer_ready_after_24_hours_is_not_sent_free_form_the_fallback_goes_and_the_answer_follows(
    tmp_path,
):
    clock = ManualClock()

    async def slow_agent(ctx):
        if ctx.text == "a hard question":
            clock.advance(DAY + 3600)  # the answer took 25 hours
            return "the late answer"
        return f"echo: {ctx.text.splitlines()[0]}"

    window = WindowPolicy(fallback=welcome_back, clock=clock)
    async with BotHarness(slow_agent, tmp_path, window=window) as bot:
        ana = bot.user("15551234567", name="Ana")
        await ana.send_text("a hard question")
        [template] = await ana.wait_for_replies(1)
        assert template.type == "template"
        assert template.text == "Hi Ana, it has been a while. Would you like to pick up where we left off?"
        await settle(bot)
        assert not sends(bot, "text"), "no free-form message was attempted outside the window"

        await ana.tap("Yes, continue")  # her message opens a new window
        replies = await ana.wait_for_replies(3)
        assert [r.text for r in replies[1:]] == ["the late answer", "echo: Yes, continue"]
        await settle(bot)
        assert len(sends(bot, "template")) == 1
        assert len(ana.replies) == 3


async def test_within_the_window_answers_go_free_form_even_near_its_end(tmp_path, echo):
    clock = ManualClock()
    async with BotHarness(echo, tmp_path, window=WindowPolicy(fallback=welcome_back, clock=clock)) as bot:
        ana = bot.user("15551234567", name="Ana")
        await ana.send_text("hi")
        await ana.wait_for_replies(1)
        clock.advance(DAY - 600)
        await ana.send_text("still there?")  # a new message: a new 24 hours
        replies = await ana.wait_for_replies(2)
        assert [r.type for r in replies] == ["text", "text"]


async def test_without_a_fallback_the_answer_is_parked_and_reported(tmp_path, caplog):
    clock = ManualClock()

    async def slow_agent(ctx):
        clock.advance(DAY + 1)
        return "late"

    async with BotHarness(slow_agent, tmp_path, window=WindowPolicy(clock=clock)) as bot:
        ana = bot.user("15551234567")
        with caplog.at_level(logging.WARNING, logger="whatsagent.sender"):
            await ana.send_text("hello")
            await settle(bot)
        assert not ana.replies and not sends(bot)
        assert "parked" in caplog.text and "no fallback template" in caplog.text
        assert "15551234567" not in caplog.text, "phone numbers never appear in logs in full"


async def test_131047_refused_at_once_parks_the_answer_and_sends_the_fallback_once(tmp_path):
    emulator_ref = {}

    async def agent(ctx):
        if ctx.text == "first":
            # WhatsApp's window closed while the agent thought (our clock has not noticed: Meta decides).
            emulator_ref["emu"].close_window(ctx.user.wa_id, synchronous=True)
            return Reply(messages=[TextOut(body="part 1"), TextOut(body="part 2")])
        return f"echo: {ctx.text.splitlines()[0]}"

    async with BotHarness(agent, tmp_path, window=WindowPolicy(fallback=welcome_back)) as bot:
        emulator_ref["emu"] = bot.emulator
        ana = bot.user("15551234567", name="Ana")
        await ana.send_text("first")
        [template] = await ana.wait_for_replies(1)
        assert template.type == "template"
        await settle(bot)
        texts = sends(bot, "text")
        assert [r.status for r in texts] == [400], "part 1 was refused with 131047; part 2 was not even tried"
        assert len(sends(bot, "template")) == 1

        await ana.tap("Yes, continue")
        replies = await ana.wait_for_replies(4)
        assert [r.text for r in replies[1:]] == ["part 1", "part 2", "echo: Yes, continue"]
        await settle(bot)
        assert len(sends(bot, "template")) == 1 and len(ana.replies) == 4


async def test_131047_arriving_later_in_a_failed_status_triggers_the_fallback_once_for_all_parts(tmp_path):
    emulator_ref = {}

    async def agent(ctx):
        if ctx.text == "first":
            emulator_ref["emu"].close_window(ctx.user.wa_id)  # accepted now, failed later (Meta's way)
            return Reply(messages=[TextOut(body=f"part {i}") for i in range(3)])
        return f"echo: {ctx.text.splitlines()[0]}"

    async with BotHarness(agent, tmp_path, window=WindowPolicy(fallback=welcome_back)) as bot:
        emulator_ref["emu"] = bot.emulator
        ana = bot.user("15551234567", name="Ana")
        await ana.send_text("first")
        await settle(bot)
        # The accepted parts each failed with 131047 in a status webhook; one fallback, no loop. How many
        # parts went before the first failure came back depends on the machine's pace: the rest was held.
        sent = len(ana.replies) - 1
        assert [r.type for r in ana.replies] == ["text"] * sent + ["template"] and sent >= 1
        assert [r.text for r in ana.replies[:sent]] == [f"part {i}" for i in range(sent)]
        assert all(r.status == "failed" for r in ana.replies[:sent])
        assert len(sends(bot, "template")) == 1

        await ana.tap("Yes, continue")
        replies = await ana.wait_for_replies(sent + 5)
        assert [r.text for r in replies[sent + 1 :]] == ["part 0", "part 1", "part 2", "echo: Yes, continue"]
        await settle(bot)
        assert len(sends(bot, "template")) == 1 and len(ana.replies) == sent + 5


async def test_a_fallback_template_that_fails_is_reported_by_name_and_never_retried_in_a_loop(tmp_path, caplog):
    clock = ManualClock()

    async def slow_agent(ctx):
        clock.advance(DAY + 1)
        return Reply(messages=[TextOut(body="a"), TextOut(body="b")])

    window = WindowPolicy(fallback=TemplateOut(name="no_such_template"), clock=clock)
    async with BotHarness(slow_agent, tmp_path, window=window) as bot:
        ana = bot.user("15551234567")
        with caplog.at_level(logging.ERROR, logger="whatsagent.sender"):
            await ana.send_text("hello")
            await settle(bot)
        templates = sends(bot, "template")
        assert len(templates) == 1 and templates[0].status == 404
        assert not sends(bot, "text")
        assert "template 'no_such_template' (en_US) was refused" in caplog.text
        assert "does not exist in this language" in caplog.text


async def test_twilio_63016_parks_the_answer_without_retrying_and_it_follows_when_the_user_writes(tmp_path):
    from test_twilio_e2e import TwilioBot, echo_agent

    async with TwilioBot(echo_agent(), tmp_path) as bot:
        bot.twilio.fail_next("63016")
        await bot.say("hello after two days")
        [row] = await bot.wait_for_outbox(lambda rows: rows[0].status == "parked")
        assert row.error_code is None or row.error_code == 63016
        assert len(bot.twilio.refused) == 1 and bot.twilio.sends == [], "63016 is not retried"

        await bot.say("anyone there?")  # a new window
        replies = await bot.wait_for_replies(2)
        assert [r.body for r in replies] == ["echo: hello after two days", "echo: anyone there?"]
        await settle(bot)
        assert len(bot.twilio.refused) == 1 and len(bot.replies()) == 2
