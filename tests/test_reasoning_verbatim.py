"""show_reasoning sends the model's reasoning as it was written: in italics, with its symbols kept."""

from __future__ import annotations

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ThinkingPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from whatsagent import Agent
from whatsagent.render.markdown import WORD_JOINER, italic_verbatim
from whatsagent.testing import BotHarness

THOUGHT = "6*7 is 42.\nThen call my_helper_fn with *args and ~/path."


def thinker(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[ThinkingPart(THOUGHT), TextPart("42")])


async def test_reasoning_reaches_the_user_verbatim_in_italics(tmp_path):
    async with BotHarness(Agent(model=FunctionModel(thinker), show_reasoning=True), tmp_path) as bot:
        ana = bot.user("15551234567")
        await ana.send_text("6 times 7?")
        thought, answer = await ana.wait_for_replies(2)
    lines = thought.text.split("\n")
    assert all(line.startswith("_") and line.endswith("_") for line in lines)
    shown = "\n".join(line[1:-1] for line in lines).replace(WORD_JOINER, "")
    assert shown == THOUGHT, "nothing stripped: 6*7 and my_helper_fn read as the model wrote them"
    assert answer.text == "42"


def test_symbols_whatsapp_would_pair_inside_the_reasoning_are_defused():
    assert italic_verbatim("a *b* c") == f"_a {WORD_JOINER}*b*{WORD_JOINER} c_"
    assert italic_verbatim("snake_case_name") == "_snake_case_name_"
    assert italic_verbatim("  one\n\n two ") == "_one_\n\n_two_"
