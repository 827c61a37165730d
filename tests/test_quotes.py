"""A quoted or reacted-to message is looked up only within the quoting user's own conversation."""

from __future__ import annotations

from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from whatsagent import Agent
from whatsagent.testing import BotHarness


class Prompts:
    """A model that records each prompt and answers with a fixed line per user."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.model = FunctionModel(self._answer)

    def _answer(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        request = messages[-1]
        assert isinstance(request, ModelRequest)
        content = [p.content for p in request.parts if isinstance(p, UserPromptPart)][-1]
        prompt = content if isinstance(content, str) else " ".join(map(str, content))
        self.seen.append(prompt)
        secret = "PIN" in prompt and "reply to" not in prompt
        return ModelResponse(parts=[TextPart("noted your secret 1234" if secret else "fine")])


async def test_quoting_or_reacting_to_another_users_message_shows_only_its_id(tmp_path):
    prompts = Prompts()
    async with BotHarness(Agent(model=prompts.model), tmp_path) as bot:
        bea = bot.user("15551230002", name="Bea")
        secret = await bea.send_text("my bank PIN is 1234")
        [bot_to_bea] = await bea.wait_for_replies(1)
        ana = bot.user("15551230001", name="Ana")
        mine = await ana.send_text("remember the blue one")
        await ana.wait_for_replies(1)
        await ana.reply("what did I say?", to=secret.message_id)
        await ana.wait_for_replies(2)
        await ana.react(bot_to_bea.message_id, "👍")
        await ana.reply("and this?", to=bot_to_bea.message_id)
        await ana.wait_for_replies(3)
        await ana.reply("and mine?", to=mine.message_id)
        await ana.wait_for_replies(4)
    anas = prompts.seen[2:]
    assert all("1234" not in p and "PIN" not in p for p in anas), anas
    assert f"reply to message {secret.message_id}" in anas[0]
    assert f"reply to message {bot_to_bea.message_id}" in anas[1]
    assert "reply to the message 'remember the blue one'" in anas[2], "the user's own quotes still read as text"
