"""An assistant that sees images, hears voice notes, watches videos and reads documents.

    whatsagent emulator &                     # then send a photo or a voice note from http://127.0.0.1:8001
    export WHATSAPP_API_BASE_URL=http://127.0.0.1:8001 WHATSAPP_ACCESS_TOKEN=emulator-token \
           WHATSAPP_PHONE_NUMBER_ID=100200300 WHATSAPP_VERIFY_TOKEN=dev WHATSAPP_APP_SECRET=emulator-app-secret
    export GOOGLE_API_KEY=...                 # Gemini takes images, audio (voice notes as they are), video, PDF
    python examples/media.py

Media are downloaded by the turn (never on the webhook path; size-capped), kept in the media store
(``./whatsagent-media`` beside the database) and given to the model in a form its provider takes. With a
model that cannot hear (say openai:gpt-4o), voice notes are transcribed first: the `transcriber` below.
"""

from __future__ import annotations

import os

from whatsagent import Agent, AgentOS
from whatsagent.channels import CloudAPI
from whatsagent.media import OpenAITranscriber

model = os.environ.get("WHATSAGENT_MODEL", "google:gemini-2.5-flash" if os.environ.get("GOOGLE_API_KEY") else None)

media_agent = Agent(
    name="Media analyst",
    model=model,
    instructions=[
        "You analyse the images, audio, videos and documents users send on WhatsApp.",
        "Describe what matters in two or three sentences, then answer their question.",
    ],
    history_turns=3,
    # For models that cannot listen; Gemini hears voice notes itself and never calls it.
    transcriber=OpenAITranscriber() if os.environ.get("OPENAI_API_KEY") else None,
)

agent_os = AgentOS(agents=[media_agent], channels=[CloudAPI(agent=media_agent)], database="sqlite:///whatsagent.db")
app = agent_os.get_app()

if __name__ == "__main__":
    agent_os.serve(port=int(os.environ.get("PORT", "8000")))
