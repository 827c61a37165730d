"""A tool call the model gets wrong goes back to it as an error it can fix; a model that never gets it
right still answers the user, in words, instead of an apology."""

from __future__ import annotations

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

from whatsagent import Agent
from whatsagent.testing import BotHarness
from whatsagent.tools import WhatsAppTools

TOO_LONG = {"body": "Pick one", "buttons": [{"id": "y", "title": "Yes, confirm my order now"}]}
FIXED = {"body": "Pick one", "buttons": [{"id": "y", "title": "Confirm"}]}


class Stubborn:
    """Calls send_buttons with a too-long title `wrong` times, then with a fixed one; answers in text
    when it has no tools. Records the retry reasons and which tools each request offered."""

    def __init__(self, wrong: int) -> None:
        self.wrong = wrong
        self.reasons: list[str] = []
        self.tools_offered: list[list[str]] = []
        self.model = FunctionModel(self._step)

    def _step(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.tools_offered.append([t.name for t in info.function_tools])
        last = messages[-1]
        if isinstance(last, ModelRequest):
            for part in last.parts:
                if isinstance(part, RetryPromptPart):
                    self.reasons.append(part.model_response())
                elif isinstance(part, ToolReturnPart) and part.outcome == "retried":
                    self.reasons.append(str(part.content))
                elif isinstance(part, ToolReturnPart):
                    return ModelResponse(parts=[TextPart("")])  # the buttons said it all
        if not info.function_tools:
            return ModelResponse(parts=[TextPart("Reply 'yes' to confirm your order.")])
        if self.wrong:
            self.wrong -= 1
            return ModelResponse(parts=[ToolCallPart("send_buttons", TOO_LONG)])
        return ModelResponse(parts=[ToolCallPart("send_buttons", FIXED)])


async def test_two_invalid_tool_calls_in_a_row_are_fixed_by_the_model(tmp_path):
    model = Stubborn(wrong=2)
    async with BotHarness(Agent(model=model.model, tools=[WhatsAppTools()]), tmp_path) as bot:
        ana = bot.user("15551234567")
        await ana.send_text("confirm my order")
        [reply] = await ana.wait_for_replies(1)
        await bot.emulator.settle()
        assert reply.body["interactive"]["action"]["buttons"][0]["reply"]["title"] == "Confirm"
        assert len(model.reasons) == 2 and all("20" in r for r in model.reasons), model.reasons
        assert len(ana.replies) == 1


async def test_a_model_that_never_gets_the_tool_right_answers_without_it(tmp_path):
    model = Stubborn(wrong=100)
    async with BotHarness(Agent(model=model.model, tools=[WhatsAppTools()]), tmp_path) as bot:
        ana = bot.user("15551234567")
        await ana.send_text("confirm my order")
        [reply] = await ana.wait_for_replies(1)
        await bot.emulator.settle()
        assert reply.text == "Reply 'yes' to confirm your order."
        assert "something went wrong" not in " ".join(r.text or "" for r in ana.replies)
        assert len(ana.replies) == 1
        # 1 call + 3 retries with tools, then one run without them: no re-run of the turn.
        assert [bool(t) for t in model.tools_offered] == [True] * 4 + [False]
