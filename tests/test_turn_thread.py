"""Turns on their own event-loop thread (`AgentOS(turn_thread=True)`): webhooks are acknowledged while a
turn holds its loop, and the user stories (answers, order, exactly once, handoff, interrupts, the console's
events) hold as on one loop."""

from __future__ import annotations

import asyncio
import threading

import aiohttp
import pytest

import test_answering
import test_handoff
import test_resilience
from whatsagent import AgentOS
from whatsagent.agents.context import TurnContext
from whatsagent.channels import CloudAPI
from whatsagent.errors import ConfigurationError
from whatsagent.testing import BotHarness
from whatsagent.turns import TurnPolicy

TOKEN = "operator-secret"


async def test_a_webhook_is_acknowledged_while_a_turn_blocks_the_turn_loop(tmp_path):
    thinking, release = threading.Event(), threading.Event()
    seen: list[str] = []

    async def agent(ctx: TurnContext) -> str:
        seen.append(ctx.text)
        if len(seen) == 1:
            thinking.set()
            release.wait()  # blocks the turn loop itself, not just this turn, until the test says so
        return f"echo: {ctx.text}"

    async with BotHarness(agent, tmp_path, turn_thread=True) as bot, aiohttp.ClientSession() as http:
        assert bot.os is not None and bot.os._turns is not None
        ana = bot.user("15551234567")
        assert (await ana.send_text("first")).ok
        await asyncio.to_thread(thinking.wait)
        try:
            # The turn loop runs nothing else now; the web loop still takes in and acknowledges webhooks.
            assert (await ana.send_text("second")).ok  # the emulator's webhook got its 200
            async with http.get(f"{bot.url}/health") as r:
                assert r.status == 200
            assert not release.is_set()
        finally:
            release.set()
        replies = await ana.wait_for_replies(2)
        await bot.idle()
        await bot.emulator.settle()
        assert [r.text for r in replies] == ["echo: first", "echo: second"]
        assert seen == ["first", "second"]
        assert len(ana.replies) == 2


@pytest.mark.parametrize("turn_thread", [False, True])
async def test_bursts_of_many_users_are_answered_once_each_in_order(tmp_path, echo, turn_thread):
    policy = TurnPolicy(on_new_message="queue")
    async with BotHarness(echo, tmp_path, turn_policy=policy, turn_thread=turn_thread) as bot:
        users = [bot.user(f"1555000{i:04d}") for i in range(12)]
        await asyncio.gather(*(u.send_text(f"{i}-{n}") for i, u in enumerate(users) for n in range(3)))
        for i, user in enumerate(users):
            replies = await user.wait_for_replies(3)
            assert [r.text for r in replies] == [f"echo: {i}-{n}" for n in range(3)]
        await bot.idle()
        for user in users:
            assert len(user.replies) == 3


async def test_a_restart_with_the_turn_thread_resumes_and_answers(tmp_path, echo):
    async with BotHarness(echo, tmp_path, turn_thread=True) as bot:
        user = bot.user("15551234567")
        await user.send_text("before")
        await user.wait_for_replies(1)
        await bot.restart()
        assert bot.os is not None and bot.os._turns is not None
        await user.send_text("after")
        replies = await user.wait_for_replies(2)
        assert [r.text for r in replies] == ["echo: before", "echo: after"]


async def test_the_operator_api_and_console_events_run_on_the_turn_loop(tmp_path, echo):
    async with (
        BotHarness(echo, tmp_path, turn_thread=True, api_token=TOKEN) as bot,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
    ):
        assert bot.os is not None
        async with http.get(f"{bot.url}/operator/events") as events:
            assert events.status == 200
            assert (await events.content.readline()).startswith(b"event: ready")
            await events.content.readline()
            user = bot.user("15551234567")
            await user.send_text("hello")  # published by the webhook path on the web loop, seen on the turn loop
            line = await events.content.readline()
            while not line.startswith(b"data: "):  # the ready event's end, keep-alives
                line = await events.content.readline()
            assert b"conversation" in line
        await user.wait_for_replies(1)
        async with http.get(f"{bot.url}/operator/conversations") as r:
            assert r.status == 200
            assert len((await r.json())["conversations"]) == 1
        async with http.get(f"{bot.url}/ready") as r:
            assert r.status == 200
        async with http.get(f"{bot.url}/metrics") as r:
            assert r.status == 200


def test_the_turn_thread_is_refused_on_postgresql(echo):
    channel = CloudAPI(access_token="t", phone_number_id="1", verify_token="v", app_secret="s")
    os_ = AgentOS(channels=[channel], agents=[echo], database="postgresql+psycopg://h/db", turn_thread=True)
    with pytest.raises(ConfigurationError, match="SQLite only"):
        asyncio.run(os_.start())


async def test_a_new_message_interrupts_a_thinking_turn_across_the_loops(tmp_path):
    """The inbox (web loop) tells the thinking turn (turn loop) to start again."""
    calls: list[str] = []
    entered, let_go = threading.Event(), threading.Event()

    async def agent(ctx: TurnContext) -> str:
        calls.append(ctx.text)
        if len(calls) == 1:
            entered.set()
            await asyncio.to_thread(let_go.wait)  # thinks (without blocking its loop) until cancelled
        return "echo: " + " | ".join(ctx.text.split("\n"))

    policy = TurnPolicy(on_new_message="interrupt")
    try:
        async with BotHarness(agent, tmp_path, turn_policy=policy, turn_thread=True) as bot:
            ana = bot.user("15551234567")
            await ana.send_text("what's the weather")
            await asyncio.to_thread(entered.wait)
            await ana.send_text("in Lisbon")
            await ana.wait_for_replies(1)
            await bot.idle()
            await bot.emulator.settle()
            assert calls == ["what's the weather", "what's the weather\nin Lisbon"]
            assert [r.text for r in ana.replies] == ["echo: what's the weather | in Lisbon"]
    finally:
        let_go.set()  # the cancelled run's thread


# The user stories of other files, run again with the turn thread on (`WHATSAGENT_TURN_THREAD`, which
# server processes started by a test inherit).


@pytest.fixture
def on_turn_thread(monkeypatch):
    monkeypatch.setenv("WHATSAGENT_TURN_THREAD", "1")


async def test_answering_a_webhook_posted_twice_once(on_turn_thread, tmp_path, echo):
    await test_answering.test_a_webhook_posted_twice_is_answered_once(tmp_path, echo)


async def test_answering_five_quick_messages_in_order(on_turn_thread, tmp_path, slow_echo):
    await test_answering.test_five_quick_messages_with_a_model_of_random_latency_are_answered_in_order(
        tmp_path, slow_echo
    )


async def test_handoff_takeover_reply_and_hand_back(on_turn_thread, tmp_path):
    await test_handoff.test_takeover_stops_the_bot_the_operator_answers_and_hand_back_resumes_with_the_history(tmp_path)


async def test_handoff_failed_message_retried_or_discarded(on_turn_thread, tmp_path, echo):
    await test_handoff.test_a_failed_message_is_retried_or_discarded_by_the_operator(tmp_path, echo)


async def test_resilience_failing_sends_lose_and_double_nothing(on_turn_thread, tmp_path, echo):
    await test_resilience.test_twenty_percent_of_sends_failing_with_429_and_500_lose_nothing_and_double_nothing(
        tmp_path, echo
    )


async def test_resilience_kill_9_then_restart_answers_exactly_once(on_turn_thread, tmp_path):
    await test_resilience.test_kill_9_after_acks_and_before_answers_then_restart_answers_every_message_exactly_once(
        tmp_path
    )


async def test_resilience_sigterm_parks_and_resumes(on_turn_thread, tmp_path):
    await test_resilience.test_sigterm_parks_running_turns_exits_within_the_grace_period_and_they_resume(tmp_path)


def test_turns_run_on_the_same_kind_of_loop_as_the_server():
    """Under uvicorn with uvloop (``uvicorn[standard]``), the turn loop is uvloop's too."""
    import uvloop

    from whatsagent.turn_thread import TurnThread

    async def kinds() -> tuple[type, type]:
        turns = TurnThread()
        turns.start()
        try:
            return type(asyncio.get_running_loop()), type(await turns.run(_running_loop()))
        finally:
            await turns.stop()

    server_kind, turn_kind = uvloop.run(kinds())
    assert server_kind is uvloop.Loop and turn_kind is uvloop.Loop
    server_kind, turn_kind = asyncio.run(kinds())
    assert turn_kind is server_kind and not issubclass(turn_kind, uvloop.Loop)


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()
