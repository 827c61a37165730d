"""show_reasoning sends the model's thinking as an italic message first; a team routes to specialists."""

from __future__ import annotations

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from whatsagent import Agent
from whatsagent.agents.teams import Team
from whatsagent.testing import BotHarness


def thinker(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[ThinkingPart("The user asks for **17 × 3**.\nThat is 51."), TextPart("17 × 3 = 51")])


async def test_reasoning_goes_as_a_separate_italic_message_before_the_answer(tmp_path):
    async with BotHarness(Agent(model=FunctionModel(thinker), show_reasoning=True), tmp_path) as bot:
        ana = bot.user("15551234567")
        await ana.send_text("17 times 3?")
        thought, answer = await ana.wait_for_replies(2)
    assert thought.text.replace("\u2060", "") == "_The user asks for **17 × 3**._\n_That is 51._", "verbatim"
    assert answer.text == "17 × 3 = 51"


async def test_reasoning_is_not_shown_unless_asked_for(tmp_path):
    async with BotHarness(Agent(model=FunctionModel(thinker)), tmp_path) as bot:
        ana = bot.user("15551234567")
        await ana.send_text("17 times 3?")
        await ana.wait_for_replies(1)
        await bot.idle()
        await bot.emulator.settle(60)
    assert [r.text for r in ana.replies] == ["17 × 3 = 51"]


async def test_a_team_routes_to_the_specialist_and_answers_with_what_it_said(tmp_path):
    tasks: list[str] = []

    def billing(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        prompt = [
            p.content for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, UserPromptPart)
        ]
        tasks.append(str(prompt[-1]))
        return ModelResponse(parts=[TextPart("Refund R-7 issued: 20 EUR, 3 days.")])

    def router(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        assert {t.name for t in info.function_tools} == {"ask_billing", "ask_tech_support"}
        last = messages[-1]
        returned = (
            [p.content for p in last.parts if isinstance(p, ToolReturnPart)] if isinstance(last, ModelRequest) else []
        )
        if returned:
            return ModelResponse(parts=[TextPart(f"Good news: {returned[0]}")])
        return ModelResponse(parts=[ToolCallPart("ask_billing", {"task": "Refund order 7 for the user"})])

    team = Team(
        name="Front desk",
        model=FunctionModel(router),
        members=[
            Agent(name="Billing", model=FunctionModel(billing), description="refunds and invoices"),
            Agent(name="Tech support", model=FunctionModel(billing), description="the app"),
        ],
    )
    async with BotHarness(team, tmp_path) as bot:
        ana = bot.user("15551234567")
        await ana.send_text("I want my money back for order 7")
        [reply] = await ana.wait_for_replies(1)
    assert tasks == ["Refund order 7 for the user"]
    assert reply.text == "Good news: Refund R-7 issued: 20 EUR, 3 days."
