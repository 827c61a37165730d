"""Teams: an agent that routes each request to specialist agents, served like any agent.

    billing = Agent(name="Billing", model="openai:gpt-4o-mini", description="invoices, refunds, payments")
    tech = Agent(name="Tech support", model="anthropic:claude-sonnet-4-5", description="the app and devices")
    team = Team(name="Front desk", model="openai:gpt-4o", members=[billing, tech])
    AgentOS(agents=[team], channels=[CloudAPI(agent=team)])

It is pydantic-ai's agent delegation: the router gets one tool per member (``ask_billing``...), calls it
with a self-contained task, and the member runs with the same turn (so its WhatsApp tools reach the same
user, through the same outbox) and the same usage budget. The router answers the user with what the
specialists said; history, memory and commands work as for any `Agent`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic_ai import RunContext
from pydantic_ai.toolsets import FunctionToolset

from whatsagent.agents.agent import Agent
from whatsagent.agents.context import TurnContext

ROUTER_INSTRUCTIONS = """\
You lead a team of specialists. For each request, decide who can best answer and ask them with their
tool, giving a complete, self-contained task (they do not see the conversation). Then answer the user
yourself, briefly, with what you learned. Answer directly only small talk and questions about the team."""


class Team(Agent):
    """An `Agent` whose model routes to `members` (each a `whatsagent.Agent` with a `description`)."""

    def __init__(self, *, members: Sequence[Agent], name: str = "Team", **options: Any) -> None:
        if not members:
            raise ValueError("a Team needs at least one member agent")
        tools = {_tool_name(m) for m in members}
        if len(tools) != len(members):
            raise ValueError("team members need distinct names")
        instructions = options.pop("instructions", None)
        own = [instructions] if isinstance(instructions, str) else list(instructions or [])
        roster = "\n".join(f"- {_tool_name(m)}: {m.name} — {m.description or 'no description'}" for m in members)
        super().__init__(name=name, instructions=[ROUTER_INSTRUCTIONS, f"Your team:\n{roster}", *own], **options)
        self.members = list(members)

    def _toolsets(self) -> tuple[list[Any], list[Any]]:
        tools, toolsets = super()._toolsets()
        toolsets.append(self._delegation())
        return tools, toolsets

    def _delegation(self) -> FunctionToolset[TurnContext]:
        toolset: FunctionToolset[TurnContext] = FunctionToolset()
        for member in self.members:
            toolset.add_function(_ask(member), name=_tool_name(member), description=_describe(member))
        return toolset


def _tool_name(member: Agent) -> str:
    return "ask_" + (re.sub(r"[^a-z0-9]+", "_", member.name.lower()).strip("_") or "member")


def _describe(member: Agent) -> str:
    return f"Ask {member.name} ({member.description or 'a specialist'}). Give a complete task; returns their answer."


def _ask(member: Agent) -> Any:
    async def ask(ctx: RunContext[TurnContext], task: str) -> str:
        result = await member.pydantic_agent.run(task, deps=ctx.deps, usage=ctx.usage)
        return result.output or "(they sent their answer to the user directly)"

    return ask
