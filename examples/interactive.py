"""Buttons and lists: a pizza order taken with reply buttons, a menu list and a link button.

    whatsagent emulator &                     # tap the buttons on the chat page at http://127.0.0.1:8001
    export WHATSAPP_API_BASE_URL=http://127.0.0.1:8001 WHATSAPP_ACCESS_TOKEN=emulator-token \
           WHATSAPP_PHONE_NUMBER_ID=100200300 WHATSAPP_VERIFY_TOKEN=dev WHATSAPP_APP_SECRET=emulator-app-secret
    export OPENAI_API_KEY=sk-...
    python examples/interactive.py

The model sends interactive messages with `WhatsAppTools`; a button or row the user taps comes back as
their next message, with its title and id. A limit broken (a 21-character button title, 11 rows) goes
back to the model with the reason, and it fixes the call.
"""

from __future__ import annotations

import os

from whatsagent import Agent, AgentOS
from whatsagent.channels import CloudAPI
from whatsagent.tools import WhatsAppTools

waiter = Agent(
    name="Pizzeria",
    model=os.environ.get("WHATSAGENT_MODEL"),
    instructions=[
        "You take pizza orders on WhatsApp for Luigi's.",
        "Show the menu as a list (margherita, diavola, quattro formaggi, funghi, vegana; ids like 'pizza-diavola').",
        "Ask the size with reply buttons (Small, Medium, Large).",
        "Confirm the order with buttons Confirm / Change, and at the end send a link button to "
        "https://example.com/track to follow the delivery.",
    ],
    tools=[WhatsAppTools()],
    history_turns=10,
)

agent_os = AgentOS(agents=[waiter], channels=[CloudAPI(agent=waiter)], database="sqlite:///whatsagent.db")
app = agent_os.get_app()

if __name__ == "__main__":
    agent_os.serve(port=int(os.environ.get("PORT", "8000")))
