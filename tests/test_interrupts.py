"""A user who writes again while their turn still thinks: with `interrupt` the agent starts again with
everything they said and answers once; `merge` (the default) answers the rest together afterwards;
`queue` answers each message on its own. Nothing is ever sent twice."""

from __future__ import annotations

import asyncio
from typing import Any

from whatsagent import metrics
from whatsagent.testing import BotHarness
from whatsagent.turns import TurnPolicy

CHANNEL = "cloudapi:100200300"


class Thinker:
    """Echoes; its first run thinks until let go (or until it is cancelled)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.first_entered = asyncio.Event()
        self.let_go = asyncio.Event()

    async def __call__(self, ctx: Any) -> str:
        self.calls.append(ctx.text)
        if len(self.calls) == 1:
            self.first_entered.set()
            await self.let_go.wait()
        return "echo: " + " | ".join(ctx.text.split("\n"))


def interrupted() -> float:
    return metrics.turns_interrupted.labels(channel=CHANNEL)._value.get()


async def test_a_message_written_while_the_agent_thinks_starts_it_again_with_both_and_one_answer(tmp_path):
    agent = Thinker()
    before = interrupted()
    async with BotHarness(agent, tmp_path, turn_policy=TurnPolicy(on_new_message="interrupt")) as bot:
        ana = bot.user("15551234567")
        await ana.send_text("what's the weather")
        await agent.first_entered.wait()
        await ana.send_text("in Lisbon")
        [reply] = await ana.wait_for_replies(1)
        await bot.idle()
        await bot.emulator.settle()
        assert agent.calls == ["what's the weather", "what's the weather\nin Lisbon"]
        assert [r.text for r in ana.replies] == ["echo: what's the weather | in Lisbon"]
        assert reply.text == ana.replies[0].text
    assert interrupted() == before + 1


async def test_with_merge_the_first_message_is_answered_and_the_next_one_after(tmp_path):
    agent = Thinker()
    async with BotHarness(agent, tmp_path) as bot:  # merge, the default
        ana = bot.user("15551234567")
        await ana.send_text("one")
        await agent.first_entered.wait()
        await ana.send_text("two")
        await ana.send_text("three")
        agent.let_go.set()
        await ana.wait_for_replies(2)
        await bot.idle()
        await bot.emulator.settle()
        assert [r.text for r in ana.replies] == ["echo: one", "echo: two | three"]


async def test_with_queue_every_message_gets_an_answer_of_its_own_in_order(tmp_path):
    agent = Thinker()
    async with BotHarness(agent, tmp_path, turn_policy=TurnPolicy(on_new_message="queue")) as bot:
        ana = bot.user("15551234567")
        await ana.send_text("one")
        await agent.first_entered.wait()
        await ana.send_text("two")
        await ana.send_text("three")
        agent.let_go.set()
        await ana.wait_for_replies(3)
        await bot.idle()
        await bot.emulator.settle()
        assert [r.text for r in ana.replies] == ["echo: one", "echo: two", "echo: three"]


async def test_a_user_who_keeps_typing_is_answered_once_the_restarts_run_out(tmp_path):
    entered: list[asyncio.Event] = [asyncio.Event() for _ in range(3)]
    calls: list[str] = []
    finish_second = asyncio.Event()

    async def agent(ctx: Any) -> str:
        calls.append(ctx.text)
        n = len(calls)
        if n <= len(entered):
            entered[n - 1].set()
        if n == 1:
            await asyncio.Event().wait()  # only an interruption ends it
        if n == 2:
            await finish_second.wait()
        return "echo: " + " | ".join(ctx.text.split("\n"))

    async with BotHarness(agent, tmp_path, turn_policy=TurnPolicy(on_new_message="interrupt", max_interrupts=1)) as bot:
        ana = bot.user("15551234567")
        await ana.send_text("a")
        await entered[0].wait()
        await ana.send_text("b")
        await entered[1].wait()  # started again with a and b: no more restarts for this turn
        await ana.send_text("c")
        finish_second.set()
        await ana.wait_for_replies(2)
        await bot.idle()
        await bot.emulator.settle()
        assert calls == ["a", "a\nb", "c"]
        assert [r.text for r in ana.replies] == ["echo: a | b", "echo: c"]
