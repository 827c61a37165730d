"""A WhatsApp assistant on the Cloud API: history, the date, and every message answered once, in order.

Run it against the local emulator (no Meta account, no phone):

    whatsagent emulator &                     # WhatsApp's stand-in; chat with the bot at http://127.0.0.1:8001
    export WHATSAPP_API_BASE_URL=http://127.0.0.1:8001 WHATSAPP_ACCESS_TOKEN=emulator-token \
           WHATSAPP_PHONE_NUMBER_ID=100200300 WHATSAPP_VERIFY_TOKEN=dev WHATSAPP_APP_SECRET=emulator-app-secret
    export OPENAI_API_KEY=sk-...              # without a key: the offline model, which echoes and says so
    python examples/basic.py                  # the webhook is http://127.0.0.1:8000/whatsapp/webhook

For real WhatsApp, drop WHATSAPP_API_BASE_URL and use your Meta app's token, phone number id and app
secret, then point the app's webhook at https://<your host>/whatsapp/webhook.
"""

from __future__ import annotations

import os

from whatsagent import Agent, AgentOS
from whatsagent.channels import CloudAPI

assistant = Agent(
    name="Assistant",
    model=os.environ.get("WHATSAGENT_MODEL"),  # None: a key in the environment picks a model, else offline
    instructions=["You are a helpful assistant chatting on WhatsApp. Be brief."],
    history_turns=5,  # the last 5 turns go into the context; "/new" starts afresh
    add_datetime=True,
)

agent_os = AgentOS(agents=[assistant], channels=[CloudAPI(agent=assistant)], database="sqlite:///whatsagent.db")
app = agent_os.get_app()  # an ASGI app: `uvicorn examples.basic:app` works too

if __name__ == "__main__":
    agent_os.serve(port=int(os.environ.get("PORT", "8000")))
