"""Running one turn: context, the agent, the answer stored, then sent part by part.

A turn is a small state machine persisted in `turns` (`TurnState`): ``running`` → ``answered`` →
``sent`` (or ``failed``); turns that no agent answers are born ``human`` (a person had the conversation),
``operator`` (an operator's reply) or ``sent`` (a proactive template). Every statement on the `turns`
table is here; `whatsagent.lanes` claims turns through them.

The answer and its outbox rows are committed together before anything is sent, so a crash after the
model ran does not pay for it again, and a replay sends only what was not yet accepted. Every write and
send of a turn is fenced by its lane's lease (`whatsagent.fence`).

Attempts are counted when a turn is claimed, before it runs: a turn that kills its process (a medium
that exhausts memory, a crash in the agent) is set aside once it was started `max_attempts` times — the
user gets `error_text`, the operator a failed turn with the reason (logs, metrics, `turns.error`) — and
the conversation goes on with the next message.

The context is built here, inside the turn and never on the webhook path: media the user sent are
downloaded (size-capped, with a timeout: Meta's media URLs live 5 minutes) into the media store, the
text of quoted messages is looked up, the user's memories are loaded. A turn that is a command
(``/new``, ``/memories``, ``/forget``) is answered without the agent. After the answer is stored, a
memory-capture job is deferred for agents that remember their users.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, bindparam, delete, func, insert, or_, select, text, update

from whatsagent import conversations, inbox, metrics, outbox
from whatsagent import history as history_store
from whatsagent import window as windows
from whatsagent.agents.context import MEDIA_TYPES, InboundMedia, Reply, Responder, TurnContext
from whatsagent.agents.memory import MemoryBook, capture_job, user_ref
from whatsagent.agents.memory import load as load_memories
from whatsagent.channels.base import Channel
from whatsagent.chat_commands import CommandName, Commands
from whatsagent.fence import Lease, fenced
from whatsagent.interrupts import Interrupts, OnNewMessage
from whatsagent.media.limits import MB
from whatsagent.media.references import externalize
from whatsagent.media.store import MediaStore
from whatsagent.messages import Audio, Document, Image, InboundMessage, Reaction, Sticker, User, Video, inbound_adapter
from whatsagent.messages.outbound import OutboundMessage
from whatsagent.queue import WorkQueue
from whatsagent.quotes import quoted_texts
from whatsagent.render import prepare_media, render
from whatsagent.sender import UNREAD, Sender, Unread
from whatsagent.store.database import Database, Prepared
from whatsagent.store.schema import turns

if TYPE_CHECKING:
    from pydantic_ai.messages import ModelMessage

log = logging.getLogger(__name__)
T = TypeVar("T")

Recorded = tuple[list[outbox.OutboxRow], windows.WindowState | Unread | None]
"""A turn's unsent outbox rows, with the conversation's window as read when they were stored."""


class TurnState(enum.StrEnum):
    """The state of a turn (`turns.status`)."""

    RUNNING = "running"
    """Claimed; the agent is answering (or will, when a crashed run is resumed)."""
    ANSWERED = "answered"
    """The answer is stored in the outbox; sends may remain."""
    SENT = "sent"
    """Every part was accepted (or parked for a closed window); a proactive template's turn starts here."""
    FAILED = "failed"
    """Some part could not be sent."""
    HELD = "human"
    """Its messages went to a person who had the conversation (`whatsagent.handoff`): never answered by the agent."""
    OPERATOR = "operator"
    """It carries an operator's reply into the history (no message of the user's is in it)."""


OPEN_STATES = (TurnState.RUNNING, TurnState.ANSWERED)
"""A turn in one of these is resumed before the conversation's next one starts."""


@dataclass
class Turn:
    """One agent run over a batch of a conversation's messages.

    `attempts` counts the runs started, this one included.
    """

    id: int
    conversation: str
    session: int
    status: TurnState
    attempts: int
    channel: str
    user: User
    messages: list[InboundMessage]
    history: list[ModelMessage] = field(default_factory=list)
    """Earlier turns of the session (only for a turn still to be answered)."""


@dataclass(frozen=True)
class TurnPolicy:
    typing_interval: float = 20.0
    """Re-send the typing indicator this often while the agent thinks (WhatsApp hides it after 25 s)."""
    max_attempts: int = 3
    """Agent runs per turn before the user gets `error_text` instead of an answer."""
    error_text: str = "Sorry, something went wrong on my side and I could not answer that. Please try again."
    max_media_bytes: int = 25 * MB
    """Largest medium a user may send that is downloaded for the agent (WhatsApp allows up to 100 MB)."""
    media_timeout: float = 60.0
    """Seconds to download one medium; Meta's download URLs expire after 5 minutes anyway."""
    commands: Commands = field(default_factory=Commands)
    """The words of ``/new``, ``/memories`` and ``/forget`` (set one to None to turn it off)."""
    on_new_message: OnNewMessage = "merge"
    """When the user writes again while the agent thinks: ``merge`` (answer the rest in the next turn,
    together), ``interrupt`` (start again with every message: one answer) or ``queue`` (one turn per
    message); see `whatsagent.interrupts` for what each costs."""
    max_interrupts: int = 5
    """Times one turn is started again before it is let finish (a user who keeps typing still gets answers)."""
    interrupt_poll: float = 0.5
    """Seconds between two looks for a new message while the agent thinks (for messages stored by another
    process; one that reaches this process is noticed at once)."""


class TurnRunner:
    def __init__(
        self,
        db: Database,
        sender: Sender,
        channels: Mapping[str, Channel],
        responders: Mapping[str, Responder],
        policy: TurnPolicy | None = None,
        *,
        media_store: MediaStore | None = None,
        queue: WorkQueue | None = None,
        interrupts: Interrupts | None = None,
    ) -> None:
        self.db = db
        self.sender = sender
        self.channels = channels
        self.responders = responders
        self.policy = policy or TurnPolicy()
        self.media_store = media_store
        self.queue = queue
        self.interrupts = interrupts or Interrupts()

    async def run(
        self, turn: Turn, lease: Lease | None = None, then: Callable[[Connection], T] | None = None
    ) -> T | None:
        """Answer `turn` (or finish sending it), every write and send fenced by `lease`. `then` runs in the
        transaction that records the turn finished (the lane claiming its next turn: one commit, not two);
        its result is returned."""
        channel = self.channels.get(turn.channel)
        if channel is None:
            raise LookupError(f"turn {turn.id} belongs to channel {turn.channel!r}, which this OS does not serve")
        if turn.status == TurnState.RUNNING and turn.attempts > self.policy.max_attempts:
            rows, window = await self._set_aside(
                turn, channel, lease, f"started {turn.attempts - 1} times without finishing"
            )
        elif turn.status == TurnState.RUNNING:
            rows, window = await self._answer(turn, channel, lease)
        else:  # answered before a crash or shutdown: send what is left
            rows, window = await self.db.read(lambda conn: outbox.unsent(conn, turn.id)), UNREAD
            # Parts go one at a time, so only the first unsent one may have gone out unrecorded.
            if rows and await self.sender.sent_before(rows[0]):
                rows = rows[1:]
        ok = True
        for row in rows:
            # Parts go strictly in order: each waits until the previous one was accepted. The first one
            # goes with the window as the transaction that stored it read it; the others read it anew.
            ok = (
                await self.sender.deliver(
                    channel, turn.user, row, conversation=turn.conversation, lease=lease, window=window
                )
                and ok
            )
            window = UNREAD
        return await self.db.write(fenced(lease, _finish(turn.id, TurnState.SENT if ok else TurnState.FAILED, then)))

    async def _set_aside(self, turn: Turn, channel: Channel, lease: Lease | None, reason: str) -> Recorded:
        """A poison turn: the user is told, the operator sees why, the conversation moves on."""
        log.error(
            "turn %d (messages %s) set aside: %s; the user gets an apology",
            turn.id,
            ", ".join(m.id for m in turn.messages),
            reason,
        )
        metrics.turns_set_aside.labels(channel=turn.channel).inc()
        parts = render(Reply(text=self.policy.error_text), channel)
        return await self.db.write(fenced(lease, _record_answer(turn, parts, None, error=reason)))

    def history_turns(self, channel: str) -> int:
        responder = self.responders.get(channel)
        return responder.history_turns if responder is not None else 0

    async def _answer(self, turn: Turn, channel: Channel, lease: Lease | None) -> Recorded:
        responder = self.responders[turn.channel]
        command = self.policy.commands.match(turn.messages)
        if command is not None:
            reply = await self._command(command, turn, responder)
            parts = render(reply, channel)
            return await self.db.write(fenced(lease, _record_answer(turn, parts, None, new_session=command == "new")))
        first_typing: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        typing = asyncio.create_task(self._keep_typing(channel, turn, first_typing))
        ctx: TurnContext | None = None
        try:
            started = time.perf_counter()
            try:
                turn, ctx, reply = await self._think(turn, channel, responder, lease)
                reply.tool_messages = [*ctx.outbound, *reply.tool_messages]
            except Exception as exc:
                if turn.attempts < self.policy.max_attempts:
                    raise  # the lane's job is retried with backoff; the turn stays `running`
                log.exception("turn %d failed %d times", turn.id, turn.attempts)
                return await self._set_aside(turn, channel, lease, f"failed {turn.attempts} times: {exc!r}"[:2000])
            took = time.perf_counter() - started
            metrics.turn_seconds_by(turn.channel).observe(took)
            log.debug("turn %d answered in %.3fs", turn.id, took)
        finally:
            # The answer must not overtake the typing indicator (it would show "typing…" after the
            # answer), so the first one is let finish; the refreshes stop.
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(first_typing), 5)
            typing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await typing
        reply.tool_messages = await prepare_media(reply.tool_messages, self.media_store)
        reply.messages = await prepare_media(reply.messages, self.media_store)
        parts = render(reply, channel)
        messages_json = None
        if reply.new_history:
            new = reply.new_history
            if self.media_store is not None:
                new = await externalize(new, self.media_store)  # history JSON keeps keys, never bytes
            messages_json = history_store.dump(new)
        rows = await self.db.write(fenced(lease, _record_answer(turn, parts, messages_json)))
        await self._defer_capture(turn, responder, messages_json)
        return rows

    async def _think(
        self, turn: Turn, channel: Channel, responder: Responder, lease: Lease | None
    ) -> tuple[Turn, TurnContext, Reply]:
        """Run the agent; with the ``interrupt`` policy, start again (with every message) whenever the
        user writes while it thinks. Returns the turn as finally answered (it may hold more messages)."""
        fetched: dict[str, InboundMedia] = {}
        restarts = 0
        while True:
            ctx = await self._context(turn, channel, responder, fetched)
            if self.policy.on_new_message != "interrupt" or restarts >= self.policy.max_interrupts:
                return turn, ctx, await responder.respond(ctx)
            thinking = asyncio.create_task(responder.respond(ctx))
            wrote_again = asyncio.create_task(self._wrote_again(turn.conversation))
            try:
                await asyncio.wait({thinking, wrote_again}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                wrote_again.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await wrote_again
                if not thinking.done():
                    thinking.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await thinking
            if not thinking.cancelled():
                return turn, ctx, thinking.result()
            extended = await self.db.write(fenced(lease, take_new_messages(turn)))
            restarts += 1
            metrics.turns_interrupted.labels(channel=turn.channel).inc()
            log.debug("turn %d started again with %d messages", turn.id, len(extended.messages))
            turn = extended

    async def _wrote_again(self, conversation: str) -> None:
        """Returns once a message that calls for an answer waits in the conversation's inbox."""
        event = self.interrupts.watch(conversation)
        try:
            while not await self.db.read(lambda conn: inbox.waits(conn, conversation)):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), self.policy.interrupt_poll)
                event.clear()
        finally:
            self.interrupts.unwatch(conversation, event)

    async def _context(
        self, turn: Turn, channel: Channel, responder: Responder, fetched: dict[str, InboundMedia] | None = None
    ) -> TurnContext:
        ctx = TurnContext(
            conversation=turn.conversation,
            channel=turn.channel,
            user=turn.user,
            messages=turn.messages,
            history=turn.history,
            turn_id=turn.id,
            agent=responder.name,
            media_store=self.media_store,
            check=channel.check,
        )
        memory = responder.memory
        if memory is not None:
            ref = user_ref(turn.user.key)
            ctx.memory = MemoryBook(self.db, responder.name, ref, max_facts=memory.max_facts)
            ctx.memories = await self.db.read(lambda conn: load_memories(conn, responder.name, ref))
        fetched = {} if fetched is None else fetched
        for message in turn.messages:
            if isinstance(message, MEDIA_TYPES):
                if message.id not in fetched:  # a turn started again does not download twice
                    fetched[message.id] = await self._fetch(channel, message)
                ctx.media[message.id] = fetched[message.id]
        referred = [m.context.reply_to for m in turn.messages if m.context is not None and m.context.reply_to]
        referred += [m.message_id for m in turn.messages if isinstance(m, Reaction)]
        if referred:
            ctx.quoted = await self.db.read(quoted_texts(turn.conversation, referred))
        return ctx

    async def _fetch(self, channel: Channel, message: Image | Audio | Video | Document | Sticker) -> InboundMedia:
        media = message.media
        kind = message.kind
        voice = isinstance(message, Audio) and message.voice

        def missing(error: str) -> InboundMedia:
            return InboundMedia(message.id, kind, None, media.mime_type, media.size, media.filename, voice, error)

        if self.media_store is None:
            return missing("no media store is configured")
        try:
            data, mime = await asyncio.wait_for(
                channel.download(media, max_bytes=self.policy.max_media_bytes), self.policy.media_timeout
            )
        except TimeoutError:
            return missing(f"the download took longer than {self.policy.media_timeout:g} seconds")
        except Exception as exc:  # the user still gets an answer, about a medium the agent cannot see
            log.warning("medium of message %s not fetched: %s", message.id, exc)
            return missing(str(exc))
        stored = await self.media_store.put(data, mime or media.mime_type or "application/octet-stream", media.filename)
        return InboundMedia(message.id, kind, stored.key, stored.mime_type, stored.size, media.filename, voice)

    async def _command(self, command: CommandName, turn: Turn, responder: Responder) -> Reply:
        words = self.policy.commands
        if command == "new":
            return Reply(text=words.new_text)
        if responder.memory is None:
            return Reply(text=words.memory_off_text)
        book = MemoryBook(self.db, responder.name, user_ref(turn.user.key))
        if command == "forget":
            return Reply(text=words.forget_text.format(count=await book.forget()))
        facts = await book.all()
        if not facts:
            return Reply(text=words.no_memories_text)
        listed = "\n".join(f"{i}. {m.fact}" for i, m in enumerate(facts, 1))
        return Reply(text=f"Here is what I remember about you:\n{listed}\n\nSend {words.forget} to erase it.")

    async def _defer_capture(self, turn: Turn, responder: Responder, messages_json: str | None) -> None:
        memory = responder.memory
        if self.queue is None or memory is None or not memory.capture or messages_json is None:
            return
        if responder.offline:
            return
        # After the commit: a crash in between loses one capture, never the answer (capture is best effort).
        try:
            await self.queue.defer_many(
                [capture_job(channel=turn.channel, turn_id=turn.id, agent=responder.name, user=user_ref(turn.user.key))]
            )
        except Exception as exc:
            log.warning("memory capture for turn %d not scheduled: %s", turn.id, exc)

    async def _keep_typing(self, channel: Channel, turn: Turn, first: asyncio.Future[None]) -> None:
        last = turn.messages[-1].id if turn.messages else None
        try:
            while last is not None:
                try:
                    await channel.typing(turn.user, last)
                except Exception as exc:  # a missing typing indicator must never cost the answer
                    log.debug("typing indicator for turn %d failed: %s", turn.id, exc)
                if not first.done():
                    first.set_result(None)
                await asyncio.sleep(self.policy.typing_interval)
        finally:
            if not first.done():
                first.set_result(None)


# -- the turns table: every statement on it -------------------------------------------------------------

_OPEN_TURN = Prepared(
    select(turns.c.id, turns.c.session, turns.c.status, turns.c.attempts)
    .where(turns.c.conversation == bindparam("key"), or_(*(turns.c.status == state.value for state in OPEN_STATES)))
    .order_by(turns.c.id)
    .limit(1)
)
_COUNT_ATTEMPT = Prepared(
    update(turns).where(turns.c.id == bindparam("turn")).values(attempts=bindparam("n"), updated_at=bindparam("now"))
)
_INSERT = Prepared(
    insert(turns)
    .values(
        conversation=bindparam("key"),
        session=bindparam("session"),
        status=bindparam("status"),
        first_seq=bindparam("first"),
        last_seq=bindparam("last"),
        attempts=bindparam("attempts"),
        created_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
    .returning(turns.c.id)
)
_EXTEND = Prepared(
    update(turns)
    .where(turns.c.id == bindparam("turn"), turns.c.status == TurnState.RUNNING.value)
    .values(last_seq=bindparam("last"), updated_at=bindparam("now"))
)
_ANSWERED = Prepared(
    update(turns)
    .where(turns.c.id == bindparam("turn"), turns.c.status == TurnState.RUNNING.value)
    .values(status=TurnState.ANSWERED.value, error=bindparam("error"), updated_at=bindparam("now"))
)
_FINISH = Prepared(
    update(turns).where(turns.c.id == bindparam("turn")).values(status=bindparam("state"), updated_at=bindparam("now"))
)
# Spelled as the partial index's predicate (a constant, not parameters), so that PostgreSQL uses it even in
# a prepared statement's generic plan: the sweep then reads only unfinished rows.
_UNFINISHED = select(turns.c.conversation).where(text("status IN ('running', 'answered')"))
assert {*OPEN_STATES} == {"running", "answered"}, "the sweep's predicate spells the open states"
_FAILED_SINCE = Prepared(
    select(func.count())
    .select_from(turns)
    .where(
        turns.c.conversation == bindparam("key"),
        turns.c.status == TurnState.FAILED.value,
        turns.c.updated_at > bindparam("since"),
    )
)


def open_turn(conn: Connection, conversation: str) -> tuple[int, int, TurnState, int] | None:
    """The conversation's turn left open (by a crash, or still running): id, session, state, attempts."""
    found = _OPEN_TURN.first(conn, key=conversation)
    if found is None:
        return None
    turn_id, session, status, attempts = found
    return turn_id, session, TurnState(status), attempts


def count_attempt(conn: Connection, turn_id: int, attempts: int, now: float) -> None:
    _COUNT_ATTEMPT.all(conn, turn=turn_id, n=attempts, now=now)


def insert_turn(
    conn: Connection,
    conversation: str,
    session: int,
    state: TurnState,
    *,
    first_seq: int = 0,
    last_seq: int = 0,
    attempts: int = 0,
    now: float,
) -> int:
    """A new turn of the conversation's `session`; its id."""
    (turn_id,) = _INSERT.first(
        conn,
        key=conversation,
        session=session,
        status=state.value,
        first=first_seq,
        last=last_seq,
        attempts=attempts,
        now=now,
    )
    return int(turn_id)


def extend(conn: Connection, turn_id: int, last_seq: int, now: float) -> None:
    """A running turn took messages up to `last_seq` too."""
    _EXTEND.all(conn, turn=turn_id, last=last_seq, now=now)


def unfinished_conversations(conn: Connection) -> set[str]:
    """Conversations with a turn still running or sending."""
    return {r[0] for r in conn.execute(_UNFINISHED)}


def count_open(conn: Connection) -> int:
    """How many turns are running or sending, in every conversation."""
    return int(
        conn.execute(select(func.count()).select_from(turns).where(turns.c.status.in_(OPEN_STATES))).scalar_one()
    )


def failed_since(conn: Connection, conversation: str, since: float) -> int:
    """How many of the conversation's turns failed after `since`."""
    return int(_FAILED_SINCE.first(conn, key=conversation, since=since)[0])


def of_conversation(conn: Connection, conversation: str, limit: int) -> list[dict[str, Any]]:
    """The conversation's latest turns, newest first."""
    rows = conn.execute(
        select(
            turns.c.id,
            turns.c.status,
            turns.c.attempts,
            turns.c.error,
            turns.c.first_seq,
            turns.c.last_seq,
            turns.c.created_at,
            turns.c.updated_at,
        )
        .where(turns.c.conversation == conversation)
        .order_by(turns.c.id.desc())
        .limit(limit)
    ).mappings()
    return [dict(r) for r in rows]


def errors(conn: Connection, turn_ids: Collection[int]) -> dict[int, str]:
    """Why each of these turns was set aside (a poison turn), for those that were."""
    if not turn_ids:
        return {}
    found = conn.execute(select(turns.c.id, turns.c.error).where(turns.c.id.in_(turn_ids), turns.c.error.is_not(None)))
    return {turn_id: error for turn_id, error in found}


def ids_of(conn: Connection, conversations_: Collection[str]) -> list[int]:
    """The ids of every turn of these conversations."""
    return list(conn.execute(select(turns.c.id).where(turns.c.conversation.in_(conversations_))).scalars())


def expire(conn: Connection, cutoff: float) -> int:
    """Delete finished turns last changed before `cutoff`; how many."""
    return int(
        conn.execute(delete(turns).where(turns.c.status.not_in(OPEN_STATES), turns.c.updated_at < cutoff)).rowcount
    )


def erase(conn: Connection, conversations_: Collection[str]) -> int:
    return int(conn.execute(delete(turns).where(turns.c.conversation.in_(conversations_))).rowcount)


def take_new_messages(turn: Turn) -> Callable[[Connection], Turn]:
    """A running turn started again (the user wrote while it thought): it takes every message waiting
    since, and is to be answered with all of them."""

    def op(conn: Connection) -> Turn:
        taken = inbox.take(conn, turn.conversation, turn.id)
        if taken:
            extend(conn, turn.id, max(taken), time.time())
        return dataclasses.replace(
            turn, messages=in_written_order(inbox.payloads_of_turn(conn, turn.conversation, turn.id))
        )

    return op


def in_written_order(payloads: list[str]) -> list[InboundMessage]:
    """A turn's messages by the provider's timestamp, then arrival (payloads come in arrival order and the
    sort is stable)."""
    messages = [inbound_adapter.validate_json(payload) for payload in payloads]
    return sorted(messages, key=lambda m: m.timestamp)


def _record_answer(
    turn: Turn,
    parts: list[OutboundMessage],
    messages_json: str | None,
    *,
    new_session: bool = False,
    error: str | None = None,
) -> Callable[[Connection], Recorded]:
    """The turn answered with `parts`: its unsent outbox rows, and the conversation's 24-hour window as
    this transaction sees it (the sender's check before the first row, without a read of its own)."""

    def op(conn: Connection) -> Recorded:
        now = time.time()
        # `error`: why a poison turn was set aside (its answer is the apology).
        _ANSWERED.all(conn, turn=turn.id, error=error, now=now)
        if new_session:
            conversations.new_session(conn, turn.conversation)
        if messages_json is not None:
            history_store.append(conn, turn.conversation, turn.session, turn.id, messages_json, now)
        outbox.insert_rows(conn, turn_id=turn.id, conversation=turn.conversation, parts=parts)
        return outbox.unsent(conn, turn.id), windows.state(turn.conversation)(conn)

    return op


def _finish(
    turn_id: int, status: TurnState, then: Callable[[Connection], T] | None = None
) -> Callable[[Connection], T | None]:
    def op(conn: Connection) -> T | None:
        _FINISH.all(conn, turn=turn_id, state=status.value, now=time.time())
        return then(conn) if then is not None else None

    return op
