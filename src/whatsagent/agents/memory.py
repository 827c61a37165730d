"""User memory: short facts about each user, one row per fact, kept across conversations.

Three ways in and out:
- automatic capture: after each answered turn a ``memory.capture`` job (its own job on the work queue,
  off the answer's path) asks a model what the turn taught about the user, and adds, updates or deletes
  facts;
- agentic memory: tools the agent calls itself (`remember`, `update_memory`, `forget_memory`);
- the user: ``/memories`` shows what is remembered, ``/forget`` erases it (`whatsagent.chat_commands`), and
  the operator API (``GET``/``DELETE /memories/{agent}/{user}``, `whatsagent.operator_api`) does the same.

Memories are scoped to (agent, user): one user never sees another's. `user_ref` is the user's WhatsApp
id, or a keyed hash of it when the operator sets ``WHATSAGENT_USER_HASH_SECRET`` (`user_ref`), so the
memories table then holds no phone number.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field
from sqlalchemy import Connection, bindparam, delete, insert, select, update

from whatsagent import history
from whatsagent.agents.context import TurnContext
from whatsagent.queue import JobSpec
from whatsagent.store.database import Database, Prepared
from whatsagent.store.schema import memories

if TYPE_CHECKING:
    from pydantic_ai import RunContext
    from pydantic_ai.models import Model
    from pydantic_ai.toolsets import FunctionToolset

log = logging.getLogger(__name__)

MEMORY_TASK = "memory.capture"
MAX_FACT_CHARS = 500
"""A fact is a sentence, not a transcript: longer ones are refused (tools) or cut (capture)."""

CAPTURE_INSTRUCTIONS = """\
You maintain a short list of facts about a WhatsApp user, to personalise later conversations.
From the latest exchange, decide what to remember: lasting facts about the user (name, preferences,
circumstances, plans, what they asked you to remember). Skip small talk, one-off questions and anything
about the assistant itself. Update a fact that changed (by its id), delete one that is no longer true,
and add new ones as short third-person sentences ("Prefers tea over coffee."). Change nothing when the
exchange taught nothing new."""


@dataclass(frozen=True)
class UserMemory:
    """How an agent remembers its users. `Agent(memory=True)` is `UserMemory()`.

    `capture`: after each turn, a job extracts facts (with `model`, default the agent's own model);
    `tools`: the agent may add, update and delete facts itself; `max_facts`: facts kept per user (the
    oldest go first) and put in context.
    """

    capture: bool = True
    tools: bool = True
    model: str | Model | None = None
    instructions: str = CAPTURE_INSTRUCTIONS
    max_facts: int = 100


@dataclass(frozen=True)
class Memory:
    id: int
    fact: str
    source: str
    created_at: float
    updated_at: float


def user_ref(user_key: str, secret: str | None = None) -> str:
    """What memories are keyed by: the user's key, or with a secret (argument or
    ``WHATSAGENT_USER_HASH_SECRET``) its HMAC-SHA256, so the table holds no phone numbers."""
    secret = secret if secret is not None else os.environ.get("WHATSAGENT_USER_HASH_SECRET")
    if not secret:
        return user_key
    digest = hmac.new(secret.encode(), user_key.encode(), hashlib.sha256).hexdigest()
    return f"hmac:{digest}"


# -- the store ---------------------------------------------------------------------------------------

_LIST = Prepared(
    select(memories.c.id, memories.c.fact, memories.c.source, memories.c.created_at, memories.c.updated_at)
    .where(memories.c.agent == bindparam("agent"), memories.c.user_ref == bindparam("user"))
    .order_by(memories.c.id)
)
_ADD = Prepared(
    insert(memories)
    .values(
        agent=bindparam("agent"),
        user_ref=bindparam("user"),
        fact=bindparam("fact"),
        source=bindparam("source"),
        created_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
    .returning(memories.c.id)
)
_UPDATE = Prepared(
    update(memories)
    .where(
        memories.c.id == bindparam("id"),
        memories.c.agent == bindparam("agent"),
        memories.c.user_ref == bindparam("user"),
    )
    .values(fact=bindparam("fact"), updated_at=bindparam("now"))
    .returning(memories.c.id)
)
_DELETE = Prepared(
    delete(memories)
    .where(
        memories.c.id == bindparam("id"),
        memories.c.agent == bindparam("agent"),
        memories.c.user_ref == bindparam("user"),
    )
    .returning(memories.c.id)
)
_FORGET = Prepared(
    delete(memories)
    .where(memories.c.agent == bindparam("agent"), memories.c.user_ref == bindparam("user"))
    .returning(memories.c.id)
)


def load(conn: Connection, agent: str, user: str) -> list[Memory]:
    return [Memory(*row) for row in _LIST.all(conn, agent=agent, user=user)]


@dataclass(frozen=True)
class Changes:
    added: list[int]
    updated: list[int]
    deleted: list[int]


def apply(
    agent: str,
    user: str,
    *,
    add: Sequence[str] = (),
    update: Mapping[int, str] | None = None,
    remove: Sequence[int] = (),
    source: str = "capture",
    max_facts: int = 100,
) -> Callable[[Connection], Changes]:
    """One transaction of memory edits for (agent, user). Ids of another user's facts match nothing.
    A fact already remembered word for word is not added twice (a replayed turn adds nothing)."""

    def op(conn: Connection) -> Changes:
        now = time.time()
        existing = {m.fact.strip().casefold(): m.id for m in load(conn, agent, user)}
        added, updated, deleted = [], [], []
        for memory_id in remove:
            if _DELETE.first(conn, id=memory_id, agent=agent, user=user):
                deleted.append(memory_id)
        for memory_id, fact in (update or {}).items():
            if _UPDATE.first(conn, id=memory_id, agent=agent, user=user, fact=fact[:MAX_FACT_CHARS], now=now):
                updated.append(memory_id)
        for fact in add:
            fact = fact.strip()[:MAX_FACT_CHARS]
            if not fact or fact.casefold() in existing:
                continue
            row = _ADD.first(conn, agent=agent, user=user, fact=fact, source=source, now=now)
            existing[fact.casefold()] = row[0]
            added.append(row[0])
        kept = load(conn, agent, user)
        for old in kept[: max(0, len(kept) - max_facts)]:
            _DELETE.all(conn, id=old.id, agent=agent, user=user)
        return Changes(added, updated, deleted)

    return op


def forget(agent: str, user: str) -> Callable[[Connection], int]:
    def op(conn: Connection) -> int:
        return len(_FORGET.all(conn, agent=agent, user=user))

    return op


class MemoryBook:
    """One user's memories with one agent: what the agentic memory tools write through."""

    def __init__(self, db: Database, agent: str, user: str, *, max_facts: int = 100) -> None:
        self.db = db
        self.agent = agent
        self.user = user
        self.max_facts = max_facts

    async def all(self) -> list[Memory]:
        return await self.db.read(lambda conn: load(conn, self.agent, self.user))

    async def add(self, fact: str, *, source: str = "tool") -> int | None:
        changes = await self.db.write(apply(self.agent, self.user, add=[fact], source=source, max_facts=self.max_facts))
        return changes.added[0] if changes.added else None

    async def update(self, memory_id: int, fact: str) -> bool:
        changes = await self.db.write(apply(self.agent, self.user, update={memory_id: fact}))
        return bool(changes.updated)

    async def delete(self, memory_id: int) -> bool:
        changes = await self.db.write(apply(self.agent, self.user, remove=[memory_id]))
        return bool(changes.deleted)

    async def forget(self) -> int:
        return await self.db.write(forget(self.agent, self.user))


# -- agentic memory ----------------------------------------------------------------------------------


def memory_toolset() -> FunctionToolset[TurnContext]:
    """Tools an agent calls to manage what it remembers about the current user."""
    # pydantic-ai reads the tools' signatures in this module's globals: RunContext is bound there now
    # (the first turn), with pydantic-ai itself, rather than at start-up.
    global RunContext
    from pydantic_ai import ModelRetry, RunContext
    from pydantic_ai.toolsets import FunctionToolset

    toolset: FunctionToolset[TurnContext] = FunctionToolset(
        instructions=(
            "When the user tells you something lasting about themselves, or asks you to remember something, "
            "call `remember`. Correct a remembered fact with `update_memory` and remove a wrong one with "
            "`forget_memory`, using the memory ids shown in your instructions."
        )
    )

    def book(ctx: RunContext[TurnContext]) -> MemoryBook:
        if ctx.deps.memory is None:
            raise ModelRetry("memory is not available in this conversation; answer without it")
        return ctx.deps.memory

    @toolset.tool
    async def remember(ctx: RunContext[TurnContext], fact: str) -> str:
        """Remember a short fact about the user for later conversations.

        Args:
            fact: One short third-person sentence, e.g. "Is vegetarian."
        """
        if len(fact) > MAX_FACT_CHARS:
            raise ModelRetry(f"the fact is {len(fact)} characters; keep it under {MAX_FACT_CHARS}")
        memory_id = await book(ctx).add(fact)
        return f"Remembered (memory {memory_id})." if memory_id else "This was already remembered."

    @toolset.tool
    async def update_memory(ctx: RunContext[TurnContext], memory_id: int, fact: str) -> str:
        """Replace a remembered fact with a corrected one.

        Args:
            memory_id: The id of the memory, as listed in your instructions.
            fact: The corrected fact.
        """
        if await book(ctx).update(memory_id, fact):
            return f"Memory {memory_id} updated."
        raise ModelRetry(f"there is no memory {memory_id} for this user; use an id from your instructions")

    @toolset.tool
    async def forget_memory(ctx: RunContext[TurnContext], memory_id: int) -> str:
        """Forget a remembered fact that is wrong or that the user wants forgotten.

        Args:
            memory_id: The id of the memory, as listed in your instructions.
        """
        if await book(ctx).delete(memory_id):
            return f"Memory {memory_id} forgotten."
        raise ModelRetry(f"there is no memory {memory_id} for this user; use an id from your instructions")

    return toolset


# -- automatic capture -------------------------------------------------------------------------------


class _Edit(BaseModel):
    id: int
    fact: str


class MemoryChanges(BaseModel):
    """What the latest exchange changes in what is remembered about the user."""

    add: list[str] = Field(default_factory=list, description="new facts, one short sentence each")
    update: list[_Edit] = Field(default_factory=list, description="remembered facts that changed, by id")
    delete: list[int] = Field(default_factory=list, description="ids of remembered facts no longer true")


def capture_job(*, channel: str, turn_id: int, agent: str, user: str) -> JobSpec:
    # One capture at a time per user and agent, in turn order: later turns see earlier captures.
    return JobSpec(
        MEMORY_TASK,
        {"channel": channel, "turn": turn_id, "agent": agent, "user": user},
        lock=f"memory|{agent}|{user}",
    )


def transcript(messages_json: str) -> str:
    """A turn's exchange as plain lines (``User: ...`` / ``Assistant: ...``); media as their references."""
    from pydantic_ai.messages import ModelMessagesTypeAdapter, ModelRequest, ModelResponse, TextPart, UserPromptPart

    lines = []
    for message in ModelMessagesTypeAdapter.validate_json(messages_json):
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart):
                    content = part.content if isinstance(part.content, str) else " ".join(map(str, part.content))
                    lines.append(f"User: {content}")
        elif isinstance(message, ModelResponse):
            text = "".join(p.content for p in message.parts if isinstance(p, TextPart)).strip()
            if text:
                lines.append(f"Assistant: {text}")
    return "\n".join(lines)


class MemoryCapture:
    """The handler of ``memory.capture`` jobs: extract facts from one answered turn."""

    def __init__(self, db: Database, agents_by_channel: Mapping[str, Any]) -> None:
        self.db = db
        self.agents_by_channel = agents_by_channel
        self._extractors: dict[int, Any] = {}

    def _extractor(self, agent: Any) -> Any:
        import pydantic_ai

        found = self._extractors.get(id(agent))
        if found is None:
            config: UserMemory = agent.memory
            from whatsagent.model_http import build_model

            # A model string gets its provider over the process's shared HTTP client, as agents' models do.
            model = build_model(config.model) if config.model is not None else agent.resolved.model
            found = self._extractors[id(agent)] = pydantic_ai.Agent(
                model, output_type=MemoryChanges, instructions=config.instructions, name=f"{agent.name} memory"
            )
        return found

    async def run(self, args: dict[str, Any]) -> None:
        agent = self.agents_by_channel.get(args["channel"])
        config: UserMemory | None = agent.memory if agent is not None else None
        if agent is None or config is None or not config.capture or agent.offline:
            return
        raw = await self.db.read(lambda conn: history.of_turn(conn, args["turn"]))
        if raw is None:
            return  # the turn stored no history (a command, an error reply): nothing to learn
        exchange = transcript(raw)
        if not exchange:
            return
        known = await self.db.read(lambda conn: load(conn, args["agent"], args["user"]))
        remembered = "\n".join(f"- {m.id}: {m.fact}" for m in known) or "(nothing yet)"
        prompt = f"Remembered so far (id: fact):\n{remembered}\n\nThe latest exchange:\n{exchange}"
        result = await self._extractor(agent).run(prompt)
        changes: MemoryChanges = result.output
        if not (changes.add or changes.update or changes.delete):
            return
        applied = await self.db.write(
            apply(
                args["agent"],
                args["user"],
                add=changes.add,
                update={e.id: e.fact for e in changes.update},
                remove=changes.delete,
                max_facts=config.max_facts,
            )
        )
        log.info(
            "memory for turn %s: %d added, %d updated, %d deleted",
            args["turn"],
            len(applied.added),
            len(applied.updated),
            len(applied.deleted),
        )


def erase_user(conn: Connection, refs: Collection[str]) -> int:
    """Delete every fact remembered about a user (by every agent), known by any of `refs` (`whatsagent.lifecycle`)."""
    return int(conn.execute(delete(memories).where(memories.c.user_ref.in_(refs))).rowcount)
