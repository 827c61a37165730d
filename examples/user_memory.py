"""A personal assistant that remembers each user across conversations.

    whatsagent emulator &
    export WHATSAPP_API_BASE_URL=http://127.0.0.1:8001 WHATSAPP_ACCESS_TOKEN=emulator-token \
           WHATSAPP_PHONE_NUMBER_ID=100200300 WHATSAPP_VERIFY_TOKEN=dev WHATSAPP_APP_SECRET=emulator-app-secret
    export OPENAI_API_KEY=sk-...              # without a key: a scripted stand-in remembers "remember: ..." facts
    export WHATSAGENT_API_TOKEN=change-me     # turns on GET/DELETE /memories/{agent}/{wa_id}
    python examples/user_memory.py

Say "I'm vegetarian and I live in Porto", then "/new", then "what should I cook tonight?". After each turn
a job extracts facts (one row per fact) off the answer's path; the agent can also remember, correct and
forget facts with its memory tools. Users type "/memories" to see what is remembered and "/forget" to
erase it. Set WHATSAGENT_USER_HASH_SECRET to key memories by a keyed hash instead of the phone number.
"""

from __future__ import annotations

import os

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo

from whatsagent import Agent, AgentOS, UserMemory
from whatsagent.agents.models import model_in_environment
from whatsagent.agents.offline import said, stand_in, tool_ran
from whatsagent.channels import CloudAPI


def scripted_memory(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """No model key: a scripted stand-in (not an AI). "remember: <fact>" stores the fact with the memory
    tool; anything else is answered with what is remembered, across /new."""
    if tool_ran(messages):
        return ModelResponse(parts=[TextPart("Noted, I will remember that.")])
    text = said(messages).strip()
    if text.lower().startswith("remember:"):
        return ModelResponse(parts=[ToolCallPart("remember", {"fact": text.split(":", 1)[1].strip()})])
    known = [line[2:].split(": ", 1)[-1] for line in (info.instructions or "").splitlines() if line.startswith("- ")]
    recalled = "; ".join(known) if known else "nothing yet (say 'remember: ...')"
    return ModelResponse(parts=[TextPart(f"(scripted, not an AI) What I remember about you: {recalled}")])


model = model_in_environment()
personal_agent = Agent(
    name="Personal assistant",
    model=model or stand_in(scripted_memory),
    instructions=[
        "You are a personal assistant on WhatsApp. Use what you remember about the user to personalise",
        "your answers, and ask about their preferences when it helps.",
    ],
    # Automatic capture (a model extracts facts after each turn) and agentic memory tools.
    memory=UserMemory(capture=model is not None, tools=True),
    history_turns=5,
    add_datetime=True,
)

agent_os = AgentOS(
    agents=[personal_agent],
    channels=[CloudAPI(agent=personal_agent)],
    database="sqlite:///whatsagent.db",
)
app = agent_os.get_app()

if __name__ == "__main__":
    agent_os.serve(port=int(os.environ.get("PORT", "8000")))
