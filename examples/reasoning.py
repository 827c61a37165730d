"""An agent that shows its reasoning: a separate, italic message before each answer.

    whatsagent emulator &
    export WHATSAPP_API_BASE_URL=http://127.0.0.1:8001 WHATSAPP_ACCESS_TOKEN=emulator-token \
           WHATSAPP_PHONE_NUMBER_ID=100200300 WHATSAPP_VERIFY_TOKEN=dev WHATSAPP_APP_SECRET=emulator-app-secret
    export ANTHROPIC_API_KEY=...
    python examples/reasoning.py

The model must return its thinking: here Claude with extended thinking on. Other thinking models work
the same way (OpenAI reasoning models need `openai_reasoning_summary` in model_settings).
"""

from __future__ import annotations

import os

from whatsagent import Agent, AgentOS
from whatsagent.channels import CloudAPI

claude = os.environ.get("ANTHROPIC_API_KEY")
reasoning_agent = Agent(
    name="Reasoning agent",
    model=os.environ.get("WHATSAGENT_MODEL", "anthropic:claude-sonnet-4-5" if claude else None),
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
