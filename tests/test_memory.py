"""Memory and context: /new, facts captured after a turn, agentic memory tools, /memories, /forget, the API."""

from __future__ import annotations

import sqlite3

import aiohttp
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from whatsagent import Agent
from whatsagent.agents.memory import UserMemory, user_ref
from whatsagent.testing import BotHarness


def prompts(messages: list[ModelMessage]) -> list[str]:
    return [
        p.content
        for m in messages
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, UserPromptPart) and isinstance(p.content, str)
    ]


class Chat:
    """The answering model: records contexts and instructions; calls `remember` when told 'remember: X'."""

    def __init__(self) -> None:
        self.contexts: list[list[str]] = []
        self.instructions: list[str] = []
        self.model = FunctionModel(self._answer)

    def _answer(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1]
        if isinstance(last, ModelRequest) and any(isinstance(p, ToolReturnPart) for p in last.parts):
            returned = [p.content for p in last.parts if isinstance(p, ToolReturnPart)]
            return ModelResponse(parts=[TextPart(f"done: {returned[0]}")])
        seen = prompts(messages)
        self.contexts.append(seen)
        self.instructions.append(info.instructions or "")
        if seen[-1].startswith("remember: "):
            return ModelResponse(parts=[ToolCallPart("remember", {"fact": seen[-1].removeprefix("remember: ")})])
        return ModelResponse(parts=[TextPart(f"you said {seen[-1]}")])


def extractor() -> FunctionModel:
    """The capture model: 'I am X' becomes the fact 'Is X.'"""

    def capture(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        text = "\n".join(prompts(messages))
        facts = [
            "Is " + line.split("I am ", 1)[1].strip(" .") + "."
            for line in text.splitlines()
            if line.startswith("User: ") and "I am " in line
        ]
        return ModelResponse(parts=[ToolCallPart(info.output_tools[0].name, {"add": facts})])

    return FunctionModel(capture)


async def memories_of(bot: BotHarness, user: str) -> list[str]:
    """The user's stored memories, once the bot is idle (memory is captured by a queued job, after the answer)."""
    await bot.idle()
    db = sqlite3.connect(bot.database.split("///")[1])
    return [r[0] for r in db.execute("SELECT fact FROM memories WHERE user_ref = ?", (user,)).fetchall()]


async def test_new_starts_a_fresh_conversation_and_keeps_the_old_one_stored(tmp_path):
    chat = Chat()
    async with BotHarness(Agent(model=chat.model), tmp_path) as bot:
        ana = bot.user("15551234567")
        await ana.send_text("my name is Ana")
        await ana.wait_for_replies(1)
        await ana.send_text("/new")
        await ana.wait_for_replies(2)
        assert "new conversation" in ana.replies[1].text.lower()
        await ana.send_text("what is my name?")
        await ana.wait_for_replies(3)
    assert chat.contexts[-1] == ["what is my name?"], "the old session left the context"
    assert len(chat.contexts) == 2, "/new is answered without the model"
    db = sqlite3.connect(tmp_path / "whatsagent.db")
    assert db.execute("SELECT session FROM conversations").fetchone() == (1,)
    assert db.execute("SELECT session, count(*) FROM history GROUP BY session").fetchall() == [(0, 1), (1, 1)]


async def test_a_captured_memory_is_in_a_later_conversation_and_not_in_another_users(tmp_path):
    chat = Chat()
    agent = Agent(model=chat.model, memory=UserMemory(model=extractor(), tools=False))
    async with BotHarness(agent, tmp_path) as bot:
        ana, bo = bot.user("15551234567"), bot.user("15557654321")
        await ana.send_text("I am vegetarian")
        await ana.wait_for_replies(1)
        assert await memories_of(bot, "15551234567") == ["Is vegetarian."]
        await ana.send_text("/new")
        await ana.wait_for_replies(2)
        await ana.send_text("what should I cook tonight?")
        await ana.wait_for_replies(3)
        assert chat.contexts[-1] == ["what should I cook tonight?"], "a new conversation..."
        assert "Is vegetarian." in chat.instructions[-1], "...that still knows the user"
        await bo.send_text("what should I cook tonight?")
        await bo.wait_for_replies(1)
        assert "vegetarian" not in chat.instructions[-1], "one user's memories are never another's"


async def test_the_agent_remembers_with_a_tool_and_the_user_sees_and_erases_it(tmp_path):
    chat = Chat()
    async with BotHarness(Agent(model=chat.model, memory=UserMemory(capture=False)), tmp_path) as bot:
        ana = bot.user("15551234567")
        await ana.send_text("remember: Allergic to peanuts.")
        await ana.wait_for_replies(1)
        assert ana.replies[0].text.startswith("done: Remembered (memory 1)")
        await ana.send_text("/memories")
        await ana.wait_for_replies(2)
        assert "1. Allergic to peanuts." in ana.replies[1].text
        await ana.send_text("hello")
        await ana.wait_for_replies(3)
        assert "1: Allergic to peanuts." in chat.instructions[-1]
        await ana.send_text("/forget")
        await ana.wait_for_replies(4)
        assert "forgotten everything" in ana.replies[3].text and "(1 facts)" in ana.replies[3].text
        await ana.send_text("/memories")
        await ana.wait_for_replies(5)
        assert "don't remember anything" in ana.replies[4].text


async def test_the_memory_api_shows_and_erases_a_users_memories_behind_a_token(tmp_path):
    chat = Chat()
    agent = Agent(name="Chef", model=chat.model, memory=UserMemory(capture=False))
    async with BotHarness(agent, tmp_path, api_token="s3cret") as bot:
        ana = bot.user("15551234567")
        await ana.send_text("remember: Likes basil.")
        await ana.wait_for_replies(1)
        url = f"{bot.url}/memories/Chef/15551234567"
        auth = {"Authorization": "Bearer s3cret"}
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as r:
                assert r.status == 401
            async with http.get(url, headers=auth) as r:
                assert [m["fact"] for m in (await r.json())["memories"]] == ["Likes basil."]
            async with http.delete(url, headers=auth) as r:
                assert await r.json() == {"erased": 1}
            async with http.get(url, headers=auth) as r:
                assert (await r.json())["memories"] == []


async def test_memories_can_be_keyed_by_a_keyed_hash_instead_of_the_number(tmp_path, monkeypatch):
    monkeypatch.setenv("WHATSAGENT_USER_HASH_SECRET", "pepper")
    chat = Chat()
    async with BotHarness(Agent(model=chat.model, memory=UserMemory(capture=False)), tmp_path) as bot:
        ana = bot.user("15551234567")
        await ana.send_text("remember: Lives in Lisbon.")
        await ana.wait_for_replies(1)
    db = sqlite3.connect(tmp_path / "whatsagent.db")
    [(ref,)] = db.execute("SELECT user_ref FROM memories").fetchall()
    assert ref == user_ref("15551234567", "pepper") and "15551234567" not in ref


async def test_memory_commands_say_so_when_the_agent_keeps_no_memories(tmp_path):
    async with BotHarness(Agent(model=Chat().model), tmp_path) as bot:
        ana = bot.user("15551234567")
        await ana.send_text("/memories")
        [reply] = await ana.wait_for_replies(1)
        assert reply.text == "I don't keep memories about you."


async def test_the_users_number_and_message_id_reach_the_context_only_when_asked(tmp_path):
    chat = Chat()
    agent = Agent(model=chat.model, add_user_number=True, add_message_id=True)
    async with BotHarness(agent, tmp_path) as bot:
        ana = bot.user("15551234567")
        delivery = await ana.send_text("hi")
        await ana.wait_for_replies(1)
    assert "The user's WhatsApp number is +15551234567." in chat.instructions[0]
    assert f"The id of the user's latest message is {delivery.message_id}." in chat.instructions[0]

    quiet = Chat()
    async with BotHarness(Agent(model=quiet.model), tmp_path / "off") as bot:
        ana = bot.user("15551234567")
        await ana.send_text("hi")
        await ana.wait_for_replies(1)
    assert "15551234567" not in quiet.instructions[0], "off by default"
