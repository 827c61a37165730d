"""The agent: what answers a turn.

`whatsagent.Agent` is a thin configuration over a `pydantic_ai.Agent`. A user may instead hand the OS
their own `pydantic_ai.Agent`, or any async callable taking a `TurnContext` and returning text or a
`Reply` (so agents written with other frameworks plug in too).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic_ai.messages import ModelMessage

from whatsagent.messages import InboundMessage, Text, User
from whatsagent.outbound import OutboundMessage

if TYPE_CHECKING:
    import pydantic_ai
    from pydantic_ai.models import Model


@dataclass
class TurnContext:
    """Everything a turn knows: who, what they just said, and the conversation so far."""

    conversation: str
    channel: str
    user: User
    messages: list[InboundMessage]
    """This turn's inbound messages, in arrival order (several when the user wrote in quick succession)."""
    history: list[ModelMessage] = field(default_factory=list)
    """Earlier turns of this conversation, oldest first, as pydantic-ai messages."""
    turn_id: int = 0
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def text(self) -> str:
        """The turn's input as one text: text bodies as they are, other kinds described in words."""
        return "\n".join(m.body if isinstance(m, Text) else m.describe() for m in self.messages)

    @property
    def last_message_id(self) -> str:
        return self.messages[-1].id


@dataclass
class Reply:
    """A turn's answer: text (Markdown welcome; it is rendered for WhatsApp) and any other messages."""

    text: str | None = None
    messages: list[OutboundMessage] = field(default_factory=list)
    new_history: list[ModelMessage] = field(default_factory=list)
    """The pydantic-ai messages this turn added, kept so later turns have the context."""


class Responder(Protocol):
    """What the OS calls once per turn."""

    name: str
    history_turns: int

    async def respond(self, ctx: TurnContext) -> Reply: ...


class Agent:
    """An agent that answers on WhatsApp.

    `model` is a pydantic-ai model string (``"openai:gpt-4o"``, ``"anthropic:claude-sonnet-4-5"``, ...)
    or a pydantic-ai `Model`; `instructions` its system instructions; `history_turns` how many past
    turns go into its context; `add_datetime` adds the current date and time to its instructions.
    """

    def __init__(
        self,
        *,
        name: str = "Assistant",
        model: str | Model | None = None,
        instructions: str | Sequence[str] | None = None,
        history_turns: int = 5,
        add_datetime: bool = False,
        tools: Sequence[Any] = (),
        model_settings: dict[str, Any] | None = None,
        retries: int = 1,
    ) -> None:
        if history_turns < 0:
            raise ValueError("history_turns must be 0 or more")
        self.name = name
        self.model = model
        self.instructions = [instructions] if isinstance(instructions, str) else list(instructions or [])
        self.history_turns = history_turns
        self.add_datetime = add_datetime
        self.tools = list(tools)
        self.model_settings = model_settings
        self.retries = retries
        self._agent: pydantic_ai.Agent[TurnContext, str] | None = None

    @property
    def pydantic_agent(self) -> pydantic_ai.Agent[TurnContext, str]:
        """The underlying pydantic-ai agent, built on first use (provider SDKs load only then)."""
        if self._agent is None:
            self._agent = self._build()
        return self._agent

    def _build(self) -> pydantic_ai.Agent[TurnContext, str]:
        import pydantic_ai

        from whatsagent.offline import offline_model

        model = self.model if self.model is not None else offline_model()
        agent: pydantic_ai.Agent[TurnContext, str] = pydantic_ai.Agent(
            model,
            name=self.name,
            deps_type=TurnContext,
            instructions="\n".join(self.instructions) or None,
            tools=self.tools,
            model_settings=self.model_settings,  # type: ignore[arg-type]
            retries=self.retries,
        )
        if self.add_datetime:

            @agent.instructions
            def _now(ctx: pydantic_ai.RunContext[TurnContext]) -> str:
                return f"The current date and time is {ctx.deps.now.strftime('%A %Y-%m-%d %H:%M %Z')}."

        return agent

    async def respond(self, ctx: TurnContext) -> Reply:
        result = await self.pydantic_agent.run(ctx.text, message_history=ctx.history or None, deps=ctx)
        return Reply(text=result.output, new_history=result.new_messages())


class _PydanticAgent:
    """A user's own `pydantic_ai.Agent`, answering with text."""

    def __init__(self, agent: pydantic_ai.Agent[Any, Any], history_turns: int) -> None:
        self.agent = agent
        self.name = agent.name or "agent"
        self.history_turns = history_turns

    async def respond(self, ctx: TurnContext) -> Reply:
        result = await self.agent.run(ctx.text, message_history=ctx.history or None)
        output = result.output
        return Reply(text=output if isinstance(output, str) else str(output), new_history=result.new_messages())


class _Callable:
    """An async function ``(TurnContext) -> str | Reply | None``."""

    def __init__(self, fn: Callable[[TurnContext], Awaitable[str | Reply | None]], history_turns: int) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", "agent")
        self.history_turns = history_turns

    async def respond(self, ctx: TurnContext) -> Reply:
        out = await self.fn(ctx)
        if out is None:
            return Reply()
        if isinstance(out, str):
            return Reply(text=out)
        if isinstance(out, Reply):
            return out
        raise TypeError(f"agent {self.name!r} returned {type(out).__name__}; return a str, a Reply or None")


def as_responder(agent: Any, *, history_turns: int = 5) -> Responder:
    """Accept a `whatsagent.Agent`, a `pydantic_ai.Agent` or an async callable."""
    if isinstance(agent, Agent):
        return agent
    try:
        import pydantic_ai

        if isinstance(agent, pydantic_ai.Agent):
            return _PydanticAgent(agent, history_turns)
    except ImportError:  # pragma: no cover - pydantic-ai is a dependency
        pass
    if inspect.iscoroutinefunction(agent) or inspect.iscoroutinefunction(type(agent).__call__):
        return _Callable(agent, history_turns)
    raise TypeError(
        f"cannot serve {agent!r}: pass a whatsagent.Agent, a pydantic_ai.Agent, or an async function "
        "(TurnContext) -> str | Reply"
    )
