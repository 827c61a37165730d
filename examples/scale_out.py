"""The same assistant, ready to scale out: run it as web and worker processes on PostgreSQL.

    cd examples                                             # whatsagent serve imports from here
    export WHATSAGENT_DATABASE_URL=postgresql+psycopg://whatsagent@db-host/whatsagent
    whatsagent db upgrade                                   # once per release, before the servers start
    whatsagent serve scale_out:agent_os --role web          # behind your load balancer (Meta's webhooks)
    whatsagent serve scale_out:agent_os --role worker       # as many as the turns need

(From the repository's root, ``whatsagent serve examples.scale_out:agent_os`` works the same.)

`compose.yaml` at the root of the repository runs exactly this, with PostgreSQL. Nothing below is
specific to scaling out: the database comes from WHATSAGENT_DATABASE_URL, the role from --role.
"""

from __future__ import annotations

import os

from whatsagent import Agent, AgentOS
from whatsagent.channels import CloudAPI

assistant = Agent(
    name="Assistant",
    model=os.environ.get("WHATSAGENT_MODEL"),  # None: a key in the environment picks a model, else offline
    instructions=["You are a helpful assistant chatting on WhatsApp. Be brief."],
    history_turns=5,
    add_datetime=True,
)

agent_os = AgentOS(agents=[assistant], channels=[CloudAPI(agent=assistant)])
