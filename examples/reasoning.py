"""An agent that shows its reasoning: a separate, italic message before each answer.

    whatsagent emulator &
    export WHATSAPP_API_BASE_URL=http://127.0.0.1:8001 WHATSAPP_ACCESS_TOKEN=emulator-token \
           WHATSAPP_PHONE_NUMBER_ID=100200300 WHATSAPP_VERIFY_TOKEN=dev WHATSAPP_APP_SECRET=emulator-app-secret
    export ANTHROPIC_API_KEY=...              # without a key: a scripted stand-in shows its (scripted) thinking
    python examples/reasoning.py

The model must return its thinking: here Claude with extended thinking on. Other thinking models work
the same way (OpenAI reasoning models need `openai_reasoning_summary` in model_settings).
"""

from __future__ import annotations

import os

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ThinkingPart
from pydantic_ai.models.function import AgentInfo

from whatsagent import Agent, AgentOS
from whatsagent.agents.offline import said, stand_in
from whatsagent.channels import CloudAPI


def scripted_thinker(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """No model key: a scripted stand-in (not an AI) whose "thinking" shows how reasoning is sent."""
    question = said(messages).split("\n")[0]
    thinking = f"The user asks: {question!r}.\nI am a scripted stand-in, so I can only count its words."
    answer = f"Your message has {len(question.split())} words. (Scripted: set ANTHROPIC_API_KEY for real thinking.)"
    return ModelResponse(parts=[ThinkingPart(thinking), TextPart(answer)])


claude = os.environ.get("ANTHROPIC_API_KEY")
reasoning_agent = Agent(
    name="Reasoning agent",
    model=os.environ.get("WHATSAGENT_MODEL")
    or ("anthropic:claude-sonnet-4-5" if claude else stand_in(scripted_thinker)),
    model_settings={"anthropic_thinking": {"type": "enabled", "budget_tokens": 2048}} if claude else None,
    instructions=["Think step by step, then answer briefly. Use tables only when they help."],
    show_reasoning=True,
    add_datetime=True,
)

agent_os = AgentOS(
    agents=[reasoning_agent], channels=[CloudAPI(agent=reasoning_agent)], database="sqlite:///whatsagent.db"
)
app = agent_os.get_app()

if __name__ == "__main__":
    agent_os.serve(port=int(os.environ.get("PORT", "8000")))
