"""An agent that draws: "draw a lighthouse at dusk", or send a photo and say "make it look like winter".

    whatsagent emulator &
    export WHATSAPP_API_BASE_URL=http://127.0.0.1:8001 WHATSAPP_ACCESS_TOKEN=emulator-token \
           WHATSAPP_PHONE_NUMBER_ID=100200300 WHATSAPP_VERIFY_TOKEN=dev WHATSAPP_APP_SECRET=emulator-app-secret
    export OPENAI_API_KEY=sk-...              # gpt-image-1 draws; or IMAGE_MODEL=google:gemini-2.5-flash-image
    python examples/image_generation.py       # without a key: a scripted stand-in sketches a card offline

The picture goes through the media store, is checked against WhatsApp's limits (converted if needed),
uploaded, and sent as an image whose caption is the agent's answer. A refused prompt is explained.
"""

from __future__ import annotations

import os

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo

from whatsagent import Agent, AgentOS
from whatsagent.agents.models import model_in_environment
from whatsagent.agents.offline import SketchImageModel, said, stand_in, tool_ran
from whatsagent.channels import CloudAPI
from whatsagent.tools import ImageTools


def scripted_artist(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """No model key: a scripted stand-in (not an AI) that asks for a picture of whatever the user wrote."""
    if tool_ran(messages):
        return ModelResponse(parts=[TextPart("Here is your sketch (drawn offline, not by an AI).")])
    return ModelResponse(parts=[ToolCallPart("generate_image", {"prompt": said(messages).split("\n")[0]})])


model = model_in_environment()
image_model = os.environ.get("IMAGE_MODEL", "openai:gpt-image-1") if model else SketchImageModel()
image_agent = Agent(
    name="Image generator",
    model=model or stand_in(scripted_artist),
    instructions=["You create and edit pictures for the user. Keep your answers to one short sentence."],
    tools=[ImageTools(image_model)],
    history_turns=3,
)

agent_os = AgentOS(agents=[image_agent], channels=[CloudAPI(agent=image_agent)], database="sqlite:///whatsagent.db")
app = agent_os.get_app()

if __name__ == "__main__":
    agent_os.serve(port=int(os.environ.get("PORT", "8000")))
