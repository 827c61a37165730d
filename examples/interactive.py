"""Buttons and lists: a pizza order taken with reply buttons, a menu list and a link button.

    whatsagent emulator &                     # tap the buttons on the chat page at http://127.0.0.1:8001
    export WHATSAPP_API_BASE_URL=http://127.0.0.1:8001 WHATSAPP_ACCESS_TOKEN=emulator-token \
           WHATSAPP_PHONE_NUMBER_ID=100200300 WHATSAPP_VERIFY_TOKEN=dev WHATSAPP_APP_SECRET=emulator-app-secret
    export OPENAI_API_KEY=sk-...              # without a key: a scripted stand-in (not an AI) takes the order
    python examples/interactive.py

The model sends interactive messages with `WhatsAppTools`; a button or row the user taps comes back as
their next message, with its title and id. A limit broken (a 21-character button title, 11 rows) goes
back to the model with the reason, and it fixes the call.
"""

from __future__ import annotations

import os

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo

from whatsagent import Agent, AgentOS
from whatsagent.agents.models import model_in_environment
from whatsagent.agents.offline import said, stand_in, tool_ran
from whatsagent.channels import CloudAPI
from whatsagent.tools import WhatsAppTools

PIZZAS = ("Margherita", "Diavola", "Quattro formaggi", "Funghi", "Vegana")
SIZES = ("Small", "Medium", "Large")


def scripted_waiter(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """No model key: a scripted waiter (not an AI) showing the list, the buttons and the link button."""
    if tool_ran(messages):
        return ModelResponse(parts=[TextPart("")])  # the tool's message said it all
    text = said(messages)
    if "id 'pizza-" in text:
        call = ToolCallPart(
            "send_buttons",
            {"body": "Which size?", "buttons": [{"id": f"size-{s.lower()}", "title": s} for s in SIZES]},
        )
    elif "id 'size-" in text:
        confirm = [{"id": "confirm", "title": "Confirm"}, {"id": "change", "title": "Change"}]
        call = ToolCallPart("send_buttons", {"body": "One pizza coming up. Confirm?", "buttons": confirm})
    elif "id 'confirm'" in text:
        link = {"body": "Ordered! Follow your pizza here.", "display_text": "Track my order"}
        call = ToolCallPart("send_cta_url", {**link, "url": "https://example.com/track"})
    else:
        rows = [{"id": f"pizza-{p.lower().replace(' ', '-')}", "title": p} for p in PIZZAS]
        menu = {"body": "Welcome to Luigi's (a scripted demo waiter)! What would you like?", "button": "Menu"}
        call = ToolCallPart("send_list", {**menu, "sections": [{"title": "Pizzas", "rows": rows}]})
    return ModelResponse(parts=[call])


waiter = Agent(
    name="Pizzeria",
    model=model_in_environment() or stand_in(scripted_waiter),
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
