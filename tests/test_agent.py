"""The agent side of a turn: which agents can be served, what they see, and what they remember."""

from __future__ import annotations

import pydantic_ai
import pytest
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from whatsagent import Agent, Reply
from whatsagent.agents.agent import as_responder
from whatsagent.testing import BotHarness


def prompts(messages: list[ModelMessage]) -> list[str]:
    return [
        part.content
        for m in messages
        if isinstance(m, ModelRequest)
        for part in m.parts
        if isinstance(part, UserPromptPart) and isinstance(part.content, str)
    ]


class Recorder:
    """A FunctionModel that answers 'you said <last prompt>' and records every context it saw."""

    def __init__(self) -> None:
        self.contexts: list[list[str]] = []
        self.instructions: list[str | None] = []
        self.model = FunctionModel(self._answer)

    def _answer(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen = prompts(messages)
        self.contexts.append(seen)
        self.instructions.append(info.instructions)
        return ModelResponse(parts=[TextPart(f"you said {seen[-1]}")])


async def test_a_whatsagent_agent_keeps_the_last_n_turns_in_context(tmp_path):
    model = Recorder()
    agent = Agent(model=model.model, instructions="Be brief.", history_turns=2)
    async with BotHarness(agent, tmp_path) as bot:
        ana = bot.user("15551234567", name="Ana")
        for i in range(4):
            await ana.send_text(f"turn {i}")
            await ana.wait_for_replies(i + 1)
        assert [r.text for r in ana.replies] == [f"you said turn {i}" for i in range(4)]
        assert model.contexts[0] == ["turn 0"]
        assert model.contexts[1] == ["turn 0", "turn 1"]
        assert model.contexts[3] == ["turn 1", "turn 2", "turn 3"], "only the last 2 turns, then the new one"
        assert model.instructions[0] == "Be brief."


async def test_one_users_history_is_never_shown_to_another(tmp_path):
    model = Recorder()
    async with BotHarness(Agent(model=model.model), tmp_path) as bot:
        ana, bo = bot.user("15551234567"), bot.user("15557654321")
        await ana.send_text("my secret is 42")
        await ana.wait_for_replies(1)
        await bo.send_text("what is the secret?")
        await bo.wait_for_replies(1)
        assert model.contexts[-1] == ["what is the secret?"]


async def test_add_datetime_puts_the_current_date_in_the_instructions(tmp_path):
    model = Recorder()
    async with BotHarness(Agent(model=model.model, instructions="Hi.", add_datetime=True), tmp_path) as bot:
        ana = bot.user("15551234567")
        await ana.send_text("what day is it?")
        await ana.wait_for_replies(1)
        assert "The current date and time is" in (model.instructions[0] or "")


async def test_a_users_own_pydantic_ai_agent_is_served_with_history(tmp_path):
    model = Recorder()
    own = pydantic_ai.Agent(model.model, instructions="mine")
    async with BotHarness(own, tmp_path) as bot:
        ana = bot.user("15551234567")
        await ana.send_text("one")
        await ana.wait_for_replies(1)
        await ana.send_text("two")
        await ana.wait_for_replies(2)
        assert model.contexts[-1] == ["one", "two"]
        assert ana.replies[-1].text == "you said two"


async def test_an_async_callable_can_answer_with_a_reply_or_nothing(tmp_path):
    async def agent(ctx):
        if ctx.text == "quiet":
            return None
        return Reply(text=f"**{ctx.user.name}**, got it")

    async with BotHarness(agent, tmp_path) as bot:
        ana = bot.user("15551234567", name="Ana")
        await ana.send_text("quiet")
        await bot.idle()  # the turn has run and sent whatever it answered
        await bot.emulator.settle(60)
        assert ana.replies == []
        await ana.send_text("loud")
        [reply] = await ana.wait_for_replies(1)
        assert reply.text == "*Ana*, got it", "Markdown bold is rendered as WhatsApp bold"


def test_every_kind_of_agent_answers_the_questions_the_os_asks_of_it():
    async def by_hand(ctx):
        return "hi"

    user_agent = pydantic_ai.Agent(FunctionModel(lambda messages, info: ModelResponse(parts=[TextPart("hi")])))
    for plain in (as_responder(by_hand), as_responder(user_agent)):
        assert (plain.memory, plain.offline, plain.resolved, plain.check()) == (None, False, None, [])
    agent = Agent(name="Remembers", model=FunctionModel(lambda messages, info: ModelResponse(parts=[])), memory=True)
    served = as_responder(agent)
    assert served.name == "Remembers" and served.memory is agent.memory and served.memory is not None
    assert not served.offline and served.resolved is agent.resolved and served.check() == agent.check()


def test_anything_else_is_refused_with_a_clear_error():
    def not_async(ctx):
        return "x"

    with pytest.raises(TypeError, match="async function"):
        as_responder(not_async)


async def test_media_and_other_kinds_reach_the_agent_as_a_short_description(tmp_path, echo):
    async with BotHarness(echo, tmp_path) as bot:
        ana = bot.user("15551234567", name="Ana")
        await ana.send_location(52.52, 13.405, name="Alexanderplatz")
        await ana.wait_for_replies(1)
        assert "shared a location" in echo.seen[-1] and "Alexanderplatz" in echo.seen[-1]
        await ana.send_image(b"\x89PNG\r\n\x1a\n" + b"0" * 100, mime_type="image/png", caption="my cat")
        await ana.wait_for_replies(2)
        assert "sent an image" in echo.seen[-1] and "my cat" in echo.seen[-1]
        assert "not supported" not in " ".join(r.text for r in ana.replies).lower()


async def test_an_agent_that_keeps_failing_gets_the_user_an_apology_once(tmp_path):
    from whatsagent.queue import RetryPolicy
    from whatsagent.turns import TurnPolicy

    calls = 0

    async def broken(ctx):
        nonlocal calls
        calls += 1
        raise RuntimeError("model provider is down")

    async with BotHarness(broken, tmp_path, turn_policy=TurnPolicy(max_attempts=2)) as bot:
        bot.os.queue.retry = RetryPolicy(base=0.01)
        ana = bot.user("15551234567")
        await ana.send_text("hello?")
        [reply] = await ana.wait_for_replies(1)
        assert "something went wrong" in reply.text
        await bot.idle()  # no attempt is left to run, nothing more to send
        await bot.emulator.settle(60)
        assert calls == 2 and len(ana.replies) == 1
