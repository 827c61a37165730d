"""What a turn knows and what it answers: the types every agent, tool and responder shares.

`TurnContext` is who wrote, what they just said (typed, channel-neutral messages), the conversation so
far and what is remembered about them; `Reply` is the answer; `Responder` is what the OS calls once per
turn (a `whatsagent.Agent`, a user's own `pydantic_ai.Agent` or an async function, adapted by
`whatsagent.agents.agent.as_responder`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from whatsagent.media.limits import MediaKind
from whatsagent.messages import (
    Audio,
    Document,
    Image,
    InboundMessage,
    Reaction,
    Sticker,
    Text,
    User,
    Video,
)
from whatsagent.messages.outbound import OutboundMessage

if TYPE_CHECKING:
    from pydantic_ai.messages import ModelMessage

    from whatsagent.agents.memory import Memory, MemoryBook, UserMemory
    from whatsagent.agents.models import ResolvedModel
    from whatsagent.media.store import MediaStore

MEDIA_TYPES = (Image, Audio, Video, Document, Sticker)


@dataclass(frozen=True)
class InboundMedia:
    """A medium the user sent this turn, fetched by the turn (never on the webhook path) and kept in the
    media store under `key`; `key` is None when it could not be fetched, and `error` says why."""

    message_id: str
    kind: MediaKind
    key: str | None
    mime_type: str | None
    size: int | None
    filename: str | None = None
    voice: bool = False
    error: str | None = None


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
    agent: str = ""
    """Name of the agent answering."""
    media: dict[str, InboundMedia] = field(default_factory=dict)
    """Media of this turn's messages, by inbound message id."""
    media_store: MediaStore | None = None
    quoted: dict[str, str] = field(default_factory=dict)
    """Short text of messages this turn's messages quote or react to, by provider message id."""
    memories: list[Memory] = field(default_factory=list)
    """What is remembered about this user (when the agent has memory)."""
    memory: MemoryBook | None = None
    """Add, update and delete this user's memories (agentic memory tools use it)."""
    check: Callable[[OutboundMessage], None] | None = None
    """The turn's channel's `Channel.check`: raises `InvalidMessage` for a message it cannot send as given."""
    outbound: list[OutboundMessage] = field(default_factory=list)
    """Messages tools sent this turn. They go through the outbox with the answer (idempotency keys), before
    it, so a replayed turn never sends them twice."""

    @property
    def text(self) -> str:
        """The turn's input as one text: text bodies as they are, other kinds described in words."""
        return "\n".join(describe(m, self) for m in self.messages)

    @property
    def last_message_id(self) -> str:
        return self.messages[-1].id

    def send(self, message: OutboundMessage) -> None:
        """Send `message` to the user with this turn's answer (before the answer's text)."""
        self.outbound.append(message)

    def latest_image(self) -> InboundMedia | None:
        """The last image the user sent this turn, if any was stored."""
        images = [m for m in self.media.values() if m.kind in ("image", "sticker") and m.key]
        return images[-1] if images else None


def describe(message: InboundMessage, ctx: TurnContext | None = None) -> str:
    """A message as readable text for a model: text as it is, other kinds described, quotes shown."""
    text = message.body if isinstance(message, Text) else message.describe()
    quoted = ctx.quoted if ctx is not None else {}
    if isinstance(message, Reaction) and message.message_id in quoted:
        text = text.replace(f"message {message.message_id}", f"the message {quoted[message.message_id]!r}")
    if message.context is not None:
        if message.context.reply_to:
            snippet = quoted.get(message.context.reply_to)
            about = f"the message {snippet!r}" if snippet else f"message {message.context.reply_to}"
            text = f"{text}\n[This is a reply to {about}]"
        if message.context.frequently_forwarded:
            text += "\n[Forwarded many times]"
        elif message.context.forwarded:
            text += "\n[Forwarded]"
    if message.referral is not None and (message.referral.headline or message.referral.source_url):
        text += f"\n[The user came from an ad: {message.referral.headline or message.referral.source_url}]"
    return text


@dataclass
class Reply:
    """A turn's answer: text (Markdown welcome; it is rendered for WhatsApp) and any other messages."""

    text: str | None = None
    messages: list[OutboundMessage] = field(default_factory=list)
    """Messages sent after the text (a medium may take the text as its caption)."""
    new_history: list[ModelMessage] = field(default_factory=list)
    """The pydantic-ai messages this turn added, kept so later turns have the context."""
    reasoning: str | None = None
    """The model's reasoning, sent as a separate italic message before the answer (`show_reasoning`)."""
    tool_messages: list[OutboundMessage] = field(default_factory=list)
    """Messages tools sent during the run: they go before the text, and a text repeating one is dropped."""


class Responder(Protocol):
    """What the OS calls once per turn, and everything it reads of it.

    A `whatsagent.Agent` has all of it; a user's own `pydantic_ai.Agent` or async function, adapted by
    `as_responder`, has no memory, is never offline and checks nothing at start-up. Wrappers (edits
    applied, traced, handed to a person) forward each member to what they wrap.
    """

    @property
    def name(self) -> str:
        """The agent's name: memories, history and the console are kept per agent name."""
        ...

    @property
    def history_turns(self) -> int:
        """How many earlier turns of the conversation reach it."""
        ...

    @property
    def memory(self) -> UserMemory | None:
        """What it remembers about each user, and how; None when it remembers nothing."""
        ...

    @property
    def offline(self) -> bool:
        """True when it runs the labelled offline model (no model configured): nothing is learnt from
        its turns."""
        ...

    @property
    def resolved(self) -> ResolvedModel | None:
        """The model it runs on, when the OS knows it (a `whatsagent.Agent`); None otherwise."""
        ...

    def check(self) -> list[str]:
        """Start-up checks: raises `ConfigurationError` naming what is missing; returns warnings worth a
        line in the log."""
        ...

    async def respond(self, ctx: TurnContext) -> Reply: ...


class DelegatingResponder:
    """A responder around another (`inner`): it answers in its own way (`respond`), and is the inner one
    in everything else the OS reads."""

    def __init__(self, inner: Responder) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def history_turns(self) -> int:
        return self.inner.history_turns

    @property
    def memory(self) -> UserMemory | None:
        return self.inner.memory

    @property
    def offline(self) -> bool:
        return self.inner.offline

    @property
    def resolved(self) -> ResolvedModel | None:
        return self.inner.resolved

    def check(self) -> list[str]:
        return self.inner.check()

    async def respond(self, ctx: TurnContext) -> Reply:
        return await self.inner.respond(ctx)
