"""The agent: what answers a turn.

`whatsagent.Agent` is a thin configuration over a `pydantic_ai.Agent`. A user may instead hand the OS
their own `pydantic_ai.Agent`, or any async callable taking a `TurnContext` and returning text or a
`Reply` (so agents written with other frameworks plug in too); `as_responder` adapts each to the
`Responder` the OS calls, applying the user's edits and deletions within a turn first.

The model sees the turn as `whatsagent.agents.prompt` builds it, plus the user's memories and, when
asked for, their number and the message id in the instructions.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from whatsagent.agents.context import MEDIA_TYPES, DelegatingResponder, Reply, Responder, TurnContext
from whatsagent.agents.prompt import build_prompt, files_from, reasoning_of
from whatsagent.media.capabilities import Capabilities, capabilities_for_model, provider_of
from whatsagent.messages import Edit, InboundMessage, Revoke, Text, Unsupported

if TYPE_CHECKING:
    import pydantic_ai
    from pydantic_ai.exceptions import UnexpectedModelBehavior
    from pydantic_ai.messages import UserContent
    from pydantic_ai.models import Model

    from whatsagent.agents.memory import UserMemory
    from whatsagent.agents.models import ResolvedModel
    from whatsagent.media.transcribe import Transcriber

log = logging.getLogger(__name__)


class Agent:
    """An agent that answers on WhatsApp.

    `model`: a pydantic-ai model string (``"openai:gpt-4o"``, ``"anthropic:claude-sonnet-4-5"``,
    ``"google:gemini-2.5-flash"``, ``"groq:..."``), a pydantic-ai `Model`, or with `base_url` (and
    `api_key`) the model's name on an OpenAI-compatible server (Ollama, vLLM, LM Studio, OpenRouter).
    Without one, ``WHATSAGENT_MODEL`` or a provider key in the environment picks it; with neither, the
    clearly labelled offline model answers (see `whatsagent.agents.models`).

    `instructions`: system instructions; `history_turns`: past turns in context; `add_datetime`: the
    current date and time in the instructions; `memory`: ``True`` or a `UserMemory` to remember facts
    about each user; `tools`: functions or pydantic-ai toolsets (`WhatsAppTools`, `ImageTools`);
    `show_reasoning`: the model's reasoning as a separate italic message before the answer;
    `add_user_number` / `add_message_id`: the user's WhatsApp number and the incoming message id in the
    instructions (off by default); `transcriber`: speech to text for voice notes a model cannot hear
    (by default the model's provider's own, when it has one: OpenAI, Groq);
    `capabilities`: override what media the model takes; `retries`: how many times a tool call the
    model got wrong (a button title too long, an argument missing) goes back to it with the reason; if it
    is still wrong, the turn is answered without tools (the model is told why, and answers in words).
    """

    def __init__(
        self,
        *,
        name: str = "Assistant",
        model: str | Model | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        instructions: str | Sequence[str] | None = None,
        history_turns: int = 5,
        add_datetime: bool = False,
        tools: Sequence[Any] = (),
        model_settings: dict[str, Any] | None = None,
        retries: int = 3,
        memory: bool | UserMemory = False,
        show_reasoning: bool = False,
        add_user_number: bool = False,
        add_message_id: bool = False,
        transcriber: Transcriber | None = None,
        capabilities: Capabilities | None = None,
        description: str | None = None,
    ) -> None:
        from whatsagent.agents.memory import UserMemory

        if history_turns < 0:
            raise ValueError("history_turns must be 0 or more")
        self.name = name
        self.model = model
        self.base_url = base_url
        self.api_key = api_key
        self.instructions = [instructions] if isinstance(instructions, str) else list(instructions or [])
        self.history_turns = history_turns
        self.add_datetime = add_datetime
        self.tools = list(tools)
        self.model_settings = model_settings
        self.retries = retries
        self.memory: UserMemory | None = (
            memory if isinstance(memory, UserMemory) else UserMemory() if memory is True else None
        )
        self.show_reasoning = show_reasoning
        self.add_user_number = add_user_number
        self.add_message_id = add_message_id
        self.transcriber = transcriber
        self.capabilities = capabilities
        self.description = description
        """What this agent is good at (a team's router reads it)."""
        self._resolved: ResolvedModel | None = None
        self._default_transcriber: Transcriber | Literal[False] | None = False
        self._agent: pydantic_ai.Agent[TurnContext, str | None] | None = None

    @property
    def resolved(self) -> ResolvedModel:
        """The model this agent runs on (resolved on first use; no provider SDK is imported for a string)."""
        if self._resolved is None:
            from whatsagent.agents.models import resolve_model

            self._resolved = resolve_model(
                self.model, base_url=self.base_url, api_key=self.api_key, capabilities=self.capabilities
            )
            if self._resolved.offline:
                log.warning(
                    "agent %r runs in OFFLINE MODE: no model is configured and no provider key is in the "
                    "environment; it only echoes what it receives. Set model=... (e.g. 'openai:gpt-4o') and "
                    "its key (e.g. OPENAI_API_KEY).",
                    self.name,
                )
        return self._resolved

    def check(self) -> list[str]:
        """Start-up checks: raises `ConfigurationError` naming what is missing (a provider key, an image
        model that cannot draw); returns warnings worth a line in the log."""
        from whatsagent.agents.models import missing_key
        from whatsagent.errors import ConfigurationError

        resolved = self.resolved
        if resolved.offline:
            return []
        key = missing_key(resolved) if self.api_key is None else None
        if key is not None:
            raise ConfigurationError(
                f"agent {self.name!r} uses {resolved.provider}:{resolved.name} but {key} is not set: "
                "export it, or pass api_key=... to Agent"
            )
        # The user's tools are functions or pydantic-ai toolsets, not a whatsagent type: those that can
        # check their own settings (`ImageTools`: an image model that cannot draw) offer `check()`.
        for tool in self.tools:
            check = getattr(tool, "check", None)
            if callable(check):
                check()
        warnings = []
        if not resolved.capabilities.audio and self.voice_transcriber is None:
            warnings.append(
                f"agent {self.name!r} ({resolved.label}) cannot listen to voice notes and has no transcriber: "
                "they reach it as a description only. Pass transcriber=OpenAITranscriber(...) "
                "(from whatsagent.media) to transcribe them."
            )
        return warnings

    @property
    def voice_transcriber(self) -> Transcriber | None:
        """The `transcriber` given, else one from the model's own provider when it offers speech to text
        (OpenAI, Groq, an OpenAI model behind `base_url`) and its key is at hand; None when the model
        hears audio itself."""
        if self.transcriber is not None:
            return self.transcriber
        if self._default_transcriber is False:
            self._default_transcriber = self._transcriber_from_provider()
        return self._default_transcriber

    def _transcriber_from_provider(self) -> Transcriber | None:
        from whatsagent.agents.models import is_openai_model
        from whatsagent.media.transcribe import OpenAITranscriber

        resolved = self.resolved
        if resolved.offline or resolved.capabilities.audio:
            return None
        if self.base_url is not None:
            if not is_openai_model(resolved.name):
                return None  # Ollama, vLLM...: no /audio/transcriptions to count on
            proxy_key = self.api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
            return OpenAITranscriber(api_key=proxy_key, base_url=self.base_url)
        if resolved.provider in ("openai", "openai-chat", "openai-responses", "azure"):
            key: str | None = self.api_key or os.environ.get("OPENAI_API_KEY")
            return OpenAITranscriber(api_key=key) if key else None
        if resolved.provider == "groq":
            key = self.api_key or os.environ.get("GROQ_API_KEY")
            if key:
                return OpenAITranscriber(
                    api_key=key, base_url="https://api.groq.com/openai/v1", model="whisper-large-v3-turbo"
                )
        return None

    @property
    def offline(self) -> bool:
        """True when no model is configured and the labelled offline model answers."""
        return self.resolved.offline

    @property
    def pydantic_agent(self) -> pydantic_ai.Agent[TurnContext, str | None]:
        """The underlying pydantic-ai agent, built on first use (provider SDKs load only then)."""
        if self._agent is None:
            self._agent = self._build()
        return self._agent

    def _toolsets(self) -> tuple[list[Any], list[Any]]:
        from pydantic_ai.toolsets import AbstractToolset

        tools = [t for t in self.tools if not isinstance(t, AbstractToolset)]
        toolsets = [t for t in self.tools if isinstance(t, AbstractToolset)]
        if self.memory is not None and self.memory.tools:
            from whatsagent.agents.memory import memory_toolset

            toolsets.append(memory_toolset())
        return tools, toolsets

    def _build(self) -> pydantic_ai.Agent[TurnContext, str | None]:
        import pydantic_ai

        from whatsagent.model_http import build_model
        from whatsagent.turn_details import TURN_DETAILS

        tools, toolsets = self._toolsets()
        agent: pydantic_ai.Agent[TurnContext, str | None] = pydantic_ai.Agent(  # type: ignore[misc]
            build_model(self.resolved.model),  # a model string's provider: shared, built once
            name=self.name,
            deps_type=TurnContext,
            # None: a model that said everything through tools (buttons, an image) may end with no text.
            output_type=str | None,  # type: ignore[arg-type]
            instructions="\n".join(self.instructions) or None,
            tools=tools,
            toolsets=toolsets or None,
            model_settings=self.model_settings,  # type: ignore[arg-type]
            retries=self.retries,
            # The turn's details (`whatsagent.tracing`): built in, a run-time capability costs more per run.
            capabilities=[TURN_DETAILS],
        )

        # async: pydantic-ai runs a sync instructions function in a worker thread, twice per model request.
        @agent.instructions
        async def _context(ctx: pydantic_ai.RunContext[TurnContext]) -> str | None:
            return self.context_instructions(ctx.deps)

        return agent

    def context_instructions(self, ctx: TurnContext) -> str | None:
        """The per-turn instructions: date and time, the user's number and message id, their memories."""
        lines = []
        if self.add_datetime:
            lines.append(f"The current date and time is {ctx.now.strftime('%A %Y-%m-%d %H:%M %Z')}.")
        if self.add_user_number and (ctx.user.wa_id or ctx.user.user_id):
            number = f"+{ctx.user.wa_id}" if ctx.user.wa_id else ctx.user.user_id
            lines.append(f"The user's WhatsApp number is {number}.")
        username = next((m.user.username for m in reversed(ctx.messages) if m.user.username), None)
        if username:
            lines.append(f"The user's WhatsApp username is {username}.")
        if self.add_message_id and ctx.messages:
            lines.append(f"The id of the user's latest message is {ctx.last_message_id}.")
        if self.memory is not None and ctx.memories:
            lines.append("What you remember about this user from earlier conversations (memory id: fact):")
            lines.extend(f"- {m.id}: {m.fact}" for m in ctx.memories)
        return "\n".join(lines) or None

    async def respond(self, ctx: TurnContext) -> Reply:
        from pydantic_ai.exceptions import UnexpectedModelBehavior  # loaded after ready, not at start-up

        resolved = self.resolved
        prompt = await build_prompt(
            ctx, resolved.provider, resolved.name, resolved.capabilities, transcriber=self.voice_transcriber
        )
        try:
            result = await self.pydantic_agent.run(prompt, message_history=ctx.history or None, deps=ctx)
        except UnexpectedModelBehavior as exc:
            if not _tool_retries_exhausted(exc):
                raise
            # The model kept getting a tool call wrong: rather than failing the turn (and apologising
            # after three re-runs), it answers in words, told why its tools are gone for this turn.
            log.warning("agent %r: %s; answering this turn without tools", self.name, exc.message)
            reason = exc.message.split(". Consider")[0]
            note = f"(Your tools could not be used this turn: {reason}. Answer the user in plain text.)"
            retry_prompt: str | list[UserContent] = f"{prompt}\n{note}" if isinstance(prompt, str) else [*prompt, note]
            with self.pydantic_agent.override(tools=[], toolsets=[]):
                result = await self.pydantic_agent.run(retry_prompt, message_history=ctx.history or None, deps=ctx)
        new = result.new_messages()
        return Reply(
            text=result.output,
            messages=await files_from(new, ctx),
            new_history=new,
            reasoning=reasoning_of(new) if self.show_reasoning else None,
        )


def _tool_retries_exhausted(exc: UnexpectedModelBehavior) -> bool:
    return exc.message.startswith("Tool ") and "exceeded max retries" in exc.message


class _PydanticAgent:
    """A user's own `pydantic_ai.Agent`, answering with text (and media, when its model takes them).
    It has no memory, is never the offline model, and checks nothing at start-up."""

    memory: UserMemory | None = None
    offline = False
    resolved: ResolvedModel | None = None

    def __init__(self, agent: pydantic_ai.Agent[Any, Any], history_turns: int) -> None:
        self.agent = agent
        self.name = agent.name or "agent"
        self.history_turns = history_turns
        model = agent.model
        self._provider, self._model_name = provider_of(model) if model is not None else ("", "")
        self._capabilities = capabilities_for_model(model) if model is not None else None

    def check(self) -> list[str]:
        return []

    async def respond(self, ctx: TurnContext) -> Reply:
        prompt: str | list[UserContent] = ctx.text
        if ctx.media and self._capabilities is not None:
            prompt = await build_prompt(ctx, self._provider, self._model_name, self._capabilities)
        # Tools written for whatsagent (WhatsAppTools, ImageTools) need the turn: give it when asked for.
        deps = ctx if self.agent.deps_type is TurnContext else None
        from whatsagent.turn_details import run_capabilities  # the turn's details: theirs is built without them

        result = await self.agent.run(
            prompt, message_history=ctx.history or None, deps=deps, capabilities=run_capabilities()
        )
        output = result.output
        new = result.new_messages()
        return Reply(
            text=output if isinstance(output, str) else str(output),
            messages=await files_from(new, ctx),
            new_history=new,
        )


class _Callable:
    """An async function ``(TurnContext) -> str | Reply | None``: no memory, never the offline model,
    nothing to check at start-up."""

    memory: UserMemory | None = None
    offline = False
    resolved: ResolvedModel | None = None

    def __init__(self, fn: Callable[[TurnContext], Awaitable[str | Reply | None]], history_turns: int) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", "agent")
        self.history_turns = history_turns

    def check(self) -> list[str]:
        return []

    async def respond(self, ctx: TurnContext) -> Reply:
        out = await self.fn(ctx)
        if out is None:
            return Reply()
        if isinstance(out, str):
            return Reply(text=out)
        if isinstance(out, Reply):
            return out
        raise TypeError(f"agent {self.name!r} returned {type(out).__name__}; return a str, a Reply or None")


class _TurnFilter(DelegatingResponder):
    """What every responder gets first: the turn's messages with the user's edits and deletions of
    messages not yet answered applied (an edit replaces the message it edits, a deleted message leaves
    the turn; a turn left empty is not answered), and, with `unsupported_text`, a turn of nothing but
    messages WhatsApp could not hand over answered with that text, without a model call."""

    def __init__(self, inner: Responder, unsupported_text: str | None) -> None:
        super().__init__(inner)
        self.unsupported_text = unsupported_text

    async def respond(self, ctx: TurnContext) -> Reply:
        messages = apply_edits(ctx.messages)
        if ctx.messages and not messages:
            return Reply()  # the user deleted everything they said
        if self.unsupported_text and messages and all(isinstance(m, Unsupported) for m in messages):
            return Reply(text=self.unsupported_text)
        if len(messages) != len(ctx.messages):
            ctx = replace(ctx, messages=messages)
        return await self.inner.respond(ctx)


def apply_edits(messages: list[InboundMessage]) -> list[InboundMessage]:
    """The turn's messages as the user now means them: an `Edit` of a message in the same turn replaces
    that message's text (or caption), a `Revoke` removes it; edits and deletions of messages answered
    earlier stay, for the agent to read ("the user edited their message to: …")."""
    ids = {m.id for m in messages}
    edits = {m.original_id: m for m in messages if isinstance(m, Edit) and m.original_id in ids}
    revoked = {m.original_id for m in messages if isinstance(m, Revoke) and m.original_id in ids}
    out: list[InboundMessage] = []
    for message in messages:
        if message.id in revoked or (isinstance(message, Revoke) and message.original_id in ids):
            continue
        if isinstance(message, Edit) and message.original_id in ids:
            continue
        edit = edits.get(message.id)
        if edit is not None and edit.text is not None:
            if isinstance(message, Text):
                message = message.model_copy(update={"body": edit.text})
            elif isinstance(message, MEDIA_TYPES):
                message = message.model_copy(update={"media": message.media.model_copy(update={"caption": edit.text})})
        out.append(message)
    return out


def as_responder(agent: Any, *, history_turns: int = 5, unsupported_reply: str | None = None) -> Responder:
    """Accept a `whatsagent.Agent`, a `pydantic_ai.Agent` or an async callable; edits and deletions
    within a turn are applied first, and with `unsupported_reply`, a turn of only unreadable messages is
    answered with that text instead."""
    return _TurnFilter(_responder(agent, history_turns), unsupported_reply)


def _responder(agent: Any, history_turns: int) -> Responder:
    if isinstance(agent, Agent):
        return agent
    # A user's own pydantic_ai.Agent means pydantic-ai is loaded; if it is not, nothing here loads it. While
    # another thread still imports it (a running server's warm-up), the module has no `Agent` yet, and
    # nobody holds one.
    pydantic_agent = getattr(sys.modules.get("pydantic_ai"), "Agent", None)
    if pydantic_agent is not None and isinstance(agent, pydantic_agent):
        return _PydanticAgent(agent, history_turns)
    if inspect.iscoroutinefunction(agent) or inspect.iscoroutinefunction(type(agent).__call__):
        return _Callable(agent, history_turns)
    raise TypeError(
        f"cannot serve {agent!r}: pass a whatsagent.Agent, a pydantic_ai.Agent, or an async function "
        "(TurnContext) -> str | Reply"
    )
