"""agno's WhatsApp interface under the same load as whatsagent (`benchmarks/side_by_side.py` runs it).

Runs in its own venv (agno from PyPI), never imported by whatsagent. agno's Graph API address is a module
constant, pointed here at the benchmark's fake Graph API; its model talks to the same fake OpenAI.

    BENCH_GRAPH_URL=... BENCH_OPENAI_URL=... WHATSAPP_*=... python benchmarks/agno_app.py PORT
"""

import os
import sys

import uvicorn
from agno.agent import Agent
from agno.models.openai import OpenAIChat
from agno.os import AgentOS
from agno.os.interfaces.whatsapp import Whatsapp, helpers

helpers._BASE_URL = os.environ["BENCH_GRAPH_URL"]

agent = Agent(
    name="bench",
    model=OpenAIChat(id="gpt-4o-mini", base_url=os.environ["BENCH_OPENAI_URL"], api_key="bench"),
    instructions="Answer briefly.",
)
agent_os = AgentOS(agents=[agent], interfaces=[Whatsapp(agent=agent)])
app = agent_os.get_app()

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
