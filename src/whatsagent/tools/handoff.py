"""`HandoffTools`: the agent asks for a person.

    Agent(model=..., tools=[HandoffTools()])

The model gets one tool, ``handoff(reason)``. Calling it moves the conversation to "waiting for a
human" (`whatsagent.handoff`): the user is told (`Handoff.message`), a notification goes out, the bot
stays quiet until an operator takes the conversation over or hands it back. Where no person can take
it (no operator token is set), the tool says so and the agent carries on.
"""

from __future__ import annotations

from pydantic_ai import RunContext
from pydantic_ai.toolsets import FunctionToolset

from whatsagent.agents.context import TurnContext
from whatsagent.handoff import ask_from_turn

INSTRUCTIONS = """\
When the user needs a person from the business (they ask for one, or you cannot help: a complaint, a
refund, anything you are not allowed to decide), call the handoff tool with the reason, then stop."""


class HandoffTools(FunctionToolset[TurnContext]):
    """The ``handoff(reason)`` tool."""

    def __init__(self) -> None:
        super().__init__(instructions=INSTRUCTIONS)
        self.add_function(self.handoff, name="handoff")

    async def handoff(self, ctx: RunContext[TurnContext], reason: str) -> str:
        """Hand the conversation to a person from the business; the user is told one will answer.

        Args:
            reason: Why a person is needed, in a few words, for the person who takes over.
        """
        return await ask_from_turn(ctx.deps, reason)
