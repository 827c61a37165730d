"""Two WhatsApp numbers, two agents, one server: sales and support, each with its own credentials, secret
and webhook path. Conversations, history and memories are kept per agent, channel and user.

Against two local emulators (one per number):

    whatsagent emulator --port 8001 --phone-number-id 111 --webhook-url http://127.0.0.1:8000/sales/webhook &
    whatsagent emulator --port 8002 --phone-number-id 222 --webhook-url http://127.0.0.1:8000/support/webhook &
    export OPENAI_API_KEY=sk-...
    python examples/multiple_numbers.py       # chat pages: http://127.0.0.1:8001 and http://127.0.0.1:8002

For real numbers, set SALES_* and SUPPORT_* (ACCESS_TOKEN, PHONE_NUMBER_ID, APP_SECRET, VERIFY_TOKEN, and
API_BASE_URL=https://graph.facebook.com) and point each number's webhook at its path.
"""

from __future__ import annotations

import os

from whatsagent import Agent, AgentOS, Team
from whatsagent.channels import CloudAPI

model = os.environ.get("WHATSAGENT_MODEL")

sales = Agent(
    name="Sales",
    model=model,
    instructions=["You sell Luigi's catering. Be warm and brief; ask for the date and the number of guests."],
    description="prices, menus, bookings",
)
billing = Agent(name="Billing", model=model, description="invoices, refunds, payments")
tech = Agent(name="Tech", model=model, description="the ordering app and the website")
# The support number is served by a team: a front desk that routes to its specialists.
support = Team(name="Support", model=model, members=[billing, tech])


def number(prefix: str, port: int, phone_number_id: str) -> dict[str, str]:
    env = os.environ.get
    return {
        "access_token": env(f"{prefix}_ACCESS_TOKEN", "emulator-token"),
        "phone_number_id": env(f"{prefix}_PHONE_NUMBER_ID", phone_number_id),
        "app_secret": env(f"{prefix}_APP_SECRET", "emulator-app-secret"),
        "verify_token": env(f"{prefix}_VERIFY_TOKEN", "dev"),
        "api_base_url": env(f"{prefix}_API_BASE_URL", f"http://127.0.0.1:{port}"),
    }


agent_os = AgentOS(
    agents=[sales, support],
    channels=[
        CloudAPI(agent=sales, name="sales", prefix="/sales", **number("SALES", 8001, "111")),
        CloudAPI(agent=support, name="support", prefix="/support", **number("SUPPORT", 8002, "222")),
    ],
    database="sqlite:///whatsagent.db",
)
app = agent_os.get_app()

if __name__ == "__main__":
    agent_os.serve(port=int(os.environ.get("PORT", "8000")))
