"""An agent that draws: "draw a lighthouse at dusk", or send a photo and say "make it look like winter".

    whatsagent emulator &
    export WHATSAPP_API_BASE_URL=http://127.0.0.1:8001 WHATSAPP_ACCESS_TOKEN=emulator-token \
           WHATSAPP_PHONE_NUMBER_ID=100200300 WHATSAPP_VERIFY_TOKEN=dev WHATSAPP_APP_SECRET=emulator-app-secret
    export OPENAI_API_KEY=sk-...              # gpt-image-1 draws; or IMAGE_MODEL=google:gemini-2.5-flash-image
    python examples/image_generation.py

The picture goes through the media store, is checked against WhatsApp's limits (converted if needed),
uploaded, and sent as an image whose caption is the agent's answer. A refused prompt is explained.
"""

from __future__ import annotations

import os

from whatsagent import Agent, AgentOS
from whatsagent.channels import CloudAPI
from whatsagent.tools import ImageTools

image_agent = Agent(
    name="Image generator",
    model=os.environ.get("WHATSAGENT_MODEL"),
    instructions=["You create and edit pictures for the user. Keep your answers to one short sentence."],
    tools=[ImageTools(os.environ.get("IMAGE_MODEL", "openai:gpt-image-1"))],
    history_turns=3,
)

agent_os = AgentOS(agents=[image_agent], channels=[CloudAPI(agent=image_agent)], database="sqlite:///whatsagent.db")
app = agent_os.get_app()

if __name__ == "__main__":
    agent_os.serve(port=int(os.environ.get("PORT", "8000")))
