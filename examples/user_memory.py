"""A personal assistant that remembers each user across conversations.

    whatsagent emulator &
    export WHATSAPP_API_BASE_URL=http://127.0.0.1:8001 WHATSAPP_ACCESS_TOKEN=emulator-token \
           WHATSAPP_PHONE_NUMBER_ID=100200300 WHATSAPP_VERIFY_TOKEN=dev WHATSAPP_APP_SECRET=emulator-app-secret
    export OPENAI_API_KEY=sk-...
    export WHATSAGENT_API_TOKEN=change-me     # turns on GET/DELETE /memories/{agent}/{wa_id}
    python examples/user_memory.py

Say "I'm vegetarian and I live in Porto", then "/new", then "what should I cook tonight?". After each turn
a job extracts facts (one row per fact) off the answer's path; the agent can also remember, correct and
forget facts with its memory tools. Users type "/memories" to see what is remembered and "/forget" to
erase it. Set WHATSAGENT_USER_HASH_SECRET to key memories by a keyed hash instead of the phone number.
"""

from __future__ import annotations

import os

from whatsagent import Agent, AgentOS, UserMemory
from whatsagent.channels import CloudAPI

personal_agent = Agent(
    name="Personal assistant",
    model=os.environ.get("WHATSAGENT_MODEL"),
    instructions=[
        "You are a personal assistant on WhatsApp. Use what you remember about the user to personalise",
        "your answers, and ask about their preferences when it helps.",
    ],
    memory=UserMemory(capture=True, tools=True),  # automatic capture and agentic memory
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
