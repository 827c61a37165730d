"""WhatsApp Flows and location requests, end to end: the agent sends a form (or asks where the user is)
with `WhatsAppTools`, the emulator's user fills it in (or shares a location), and the next turn has the
answer as structured data."""

from __future__ import annotations

from typing import Any

from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from whatsagent import Agent, TurnContext
from whatsagent.messages import FlowReply, Location
from whatsagent.testing import BotHarness
from whatsagent.tools import WhatsAppTools


class Model:
    """Asks with a tool on the first turn; afterwards answers with what the turn received."""

    def __init__(self, tool: str, args: dict[str, Any]) -> None:
        self.tool, self.args = tool, args
        self.model = FunctionModel(self._step)
        self.seen: list[Any] = []
        self.asked = False

    def _step(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1]
        if isinstance(last, ModelRequest) and any(isinstance(p, ToolReturnPart) for p in last.parts):
            return ModelResponse(parts=[TextPart("")])  # the tool's message said it all
        if not self.asked:
            self.asked = True
            return ModelResponse(parts=[ToolCallPart(self.tool, self.args)])
        return ModelResponse(parts=[TextPart("thanks")])


def recording(model: Model) -> Agent:
    agent = Agent(model=model.model, tools=[WhatsAppTools()])
    respond = agent.respond

    async def spy(ctx: TurnContext) -> Any:
        model.seen.extend(ctx.messages)
        return await respond(ctx)

    agent.respond = spy  # type: ignore[method-assign]
    return agent


async def test_a_flow_is_sent_and_its_answer_arrives_as_structured_data(tmp_path: Any) -> None:
    model = Model(
        "send_flow",
        {"body": "Book a table", "button": "Book now", "flow_id": "1234", "screen": "BOOKING", "flow_token": "bk-1"},
    )
    async with BotHarness(recording(model), tmp_path) as bot:
        ana = bot.user("15551234567", "Ana")
        await ana.send_text("I'd like a table")
        [form] = await ana.wait_for_replies(1)
        interactive = form.body["interactive"]
        assert interactive["type"] == "flow" and interactive["body"] == {"text": "Book a table"}
        assert interactive["action"]["parameters"] == {
            "flow_message_version": "3",
            "flow_cta": "Book now",
            "flow_id": "1234",
            "flow_token": "bk-1",
            "flow_action": "navigate",
            "flow_action_payload": {"screen": "BOOKING"},
        }
        model.seen.clear()
        await ana.complete_flow({"guests": 4, "time": "20:00"})
        await ana.wait_for_replies(2)
        [answer] = model.seen
        assert isinstance(answer, FlowReply) and answer.context is not None
        assert answer.response == {"guests": 4, "time": "20:00", "flow_token": "bk-1"}
        assert answer.context.reply_to == form.message_id


async def test_a_location_request_is_answered_with_the_users_location(tmp_path: Any) -> None:
    model = Model("request_location", {"body": "Where should we deliver?"})
    async with BotHarness(recording(model), tmp_path) as bot:
        ana = bot.user("15551234567", "Ana")
        await ana.send_text("deliver please")
        [request] = await ana.wait_for_replies(1)
        assert request.body["interactive"] == {
            "type": "location_request_message",
            "body": {"text": "Where should we deliver?"},
            "action": {"name": "send_location"},
        }
        model.seen.clear()
        await ana.share_location(52.52, 13.405, name="Home")
        await ana.wait_for_replies(2)
        [where] = model.seen
        assert isinstance(where, Location) and (where.latitude, where.longitude) == (52.52, 13.405)
