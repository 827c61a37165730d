"""A WhatsApp assistant on Twilio: every message answered once, in order, through the Messages API.

    export TWILIO_ACCOUNT_SID=AC...             # Twilio Console, home page
    export TWILIO_AUTH_TOKEN=...                # same page; it also signs Twilio's webhooks
    export TWILIO_FROM_NUMBER=whatsapp:+14155238886   # your WhatsApp sender (or the sandbox number)
    export TWILIO_PUBLIC_URL=https://bot.example.com  # the scheme and host Twilio calls (your tunnel)
    export WHATSAGENT_MODEL=openai:gpt-4o OPENAI_API_KEY=sk-...   # without them: offline echo mode
    python examples/twilio_basic.py

Then, in the Twilio Console, set the sender's "When a message comes in" webhook to
``$TWILIO_PUBLIC_URL/twilio/webhook`` (HTTP POST). Delivery statuses come back by themselves: each send
asks for them at ``$TWILIO_PUBLIC_URL/twilio/status``.

Without a Twilio account, against the local emulator (it speaks Twilio's wire format with ``--twilio``
and prints these values; chat at http://127.0.0.1:8001):

    whatsagent emulator --twilio &
    export TWILIO_API_BASE_URL=http://127.0.0.1:8001 TWILIO_ACCOUNT_SID=ACeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee \
           TWILIO_AUTH_TOKEN=emulator-twilio-auth-token TWILIO_FROM_NUMBER=whatsapp:+15550001111 \
           TWILIO_PUBLIC_URL=http://127.0.0.1:8000
    python examples/twilio_basic.py
"""

from __future__ import annotations

import os

from whatsagent import Agent, AgentOS
from whatsagent.channels import Twilio

assistant = Agent(
    name="Assistant",
    model=os.environ.get("WHATSAGENT_MODEL"),  # None: the offline model, which echoes and says so
    instructions=["You are chatting on WhatsApp. Be brief and friendly."],
    history_turns=5,
    add_datetime=True,
)

agent_os = AgentOS(
    agents=[assistant],
    # Settings come from TWILIO_* variables; approved Content templates, for messages outside the 24-hour
    # window, are named in TWILIO_CONTENT_SIDS='{"welcome_back": "HX..."}' or content_sids={...}.
    channels=[Twilio(agent=assistant)],
    database=os.environ.get("WHATSAGENT_DATABASE_URL", "sqlite:///whatsagent.db"),
)
app = agent_os.get_app()  # an ASGI app: `uvicorn examples.twilio_basic:app` works too

if __name__ == "__main__":
    agent_os.serve(port=int(os.environ.get("PORT", "8000")))
