"""Conversation lanes: one turn at a time per conversation, consuming its messages in the order written.

A wake-up job claims the conversation's lane (`whatsagent.fence`: a fencing token in the database, never a
timer), then claims every message waiting in the conversation's inbox into one turn — messages that
arrived while the previous turn ran, or within the merge window, become one agent input — runs it, and
repeats until nothing waits; the lane is let go in the same transaction that finds nothing waiting, so a
message is either seen by the owner or finds the lane free. A wake-up that finds the lane owned by a live
holder does nothing: that owner takes what waits. A turn left open by a crash (``running`` or
``answered``) is resumed before any new one starts. While a person has the conversation (`whatsagent.handoff`:
mode ``human`` or ``waiting``), waiting messages are claimed into a turn no agent answers.

Order within a merged turn: the provider's timestamp, then arrival. WhatsApp's timestamps have one-second
resolution, so two messages written in the same second keep the order their webhooks arrived in; a
message whose webhook arrives after its successor's turn was claimed (Meta redelivering it late) is
answered in the next turn.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from whatsagent import conversations, fence, history, inbox, metrics, turns
from whatsagent.conversations import ConversationMode, wake_job
from whatsagent.fence import FenceLost, Holder, Lease
from whatsagent.messages import InboundMessage, Text, inbound_adapter
from whatsagent.privacy import masked
from whatsagent.queue import WorkQueue
from whatsagent.store.database import Connection, Database
from whatsagent.turns import Turn, TurnState

if TYPE_CHECKING:
    from pydantic_ai.messages import ModelMessage

log = logging.getLogger(__name__)
T = TypeVar("T")

# A lane hands its conversation back to the queue after this many turns in a row, so that one very
# chatty user cannot hold a worker forever.
MAX_TURNS_PER_WAKE = 16

HELD_NOTE = "[A person from the business is handling the conversation; the assistant did not answer]"


def claim(
    conversation: str, history_turns: Callable[[str], int], *, one_per_turn: bool = False
) -> Callable[[Connection], Turn | None]:
    """Resume the conversation's open turn, or open a new one over all its waiting messages (or, with
    `one_per_turn`, those up to the first that calls for an answer); with the last
    `history_turns(channel)` turns of context when the agent still has to answer."""

    def op(conn: Connection) -> Turn | None:
        conv = conversations.find(conn, conversation)
        if conv is None:
            return None
        session = conv.session
        now = time.time()
        open_turn = turns.open_turn(conn, conversation)
        if open_turn is not None:
            turn_id, session, status, attempts = open_turn
            attempts += 1 if status == TurnState.RUNNING else 0
            turns.count_attempt(conn, turn_id, attempts, now)
        else:
            waiting = inbox.waiting(conn, conversation)
            if waiting is None or not waiting[2]:
                return None  # nothing waits, or only messages that do not call for an answer (reactions...)
            first_seq, last_seq, _ = waiting
            if conv.mode != ConversationMode.BOT:  # a person has the conversation: its messages are theirs
                hold(conn, conversation, session, first_seq, last_seq, now)
                return None
            if one_per_turn:
                last_seq = inbox.first_waiting(conn, conversation) or last_seq
            turn_id = turns.insert_turn(
                conn,
                conversation,
                session,
                TurnState.RUNNING,
                first_seq=first_seq,
                last_seq=last_seq,
                attempts=1,
                now=now,
            )
            if not inbox.assign(conn, conversation, last_seq, turn_id):
                raise AssertionError(f"turn {turn_id} of {conversation!r} claimed no message")  # never runs empty
            status, attempts = TurnState.RUNNING, 1
        return Turn(
            id=turn_id,
            conversation=conversation,
            session=session,
            status=status,
            attempts=attempts,
            channel=conv.channel,
            user=conv.user,
            messages=turns.in_written_order(inbox.payloads_of_turn(conn, conversation, turn_id)),
            history=history.load(conn, conversation, session, history_turns(conv.channel))
            if status == TurnState.RUNNING
            else [],
        )

    return op


def hold(conn: Connection, conversation: str, session: int, first_seq: int, last_seq: int, now: float) -> None:
    """A person has the conversation (`whatsagent.handoff`): consume its waiting messages into a turn no
    agent answers; they join the history so that the agent, handed the conversation back, knows what was
    said."""
    turn_id = turns.insert_turn(
        conn, conversation, session, TurnState.HELD, first_seq=first_seq, last_seq=last_seq, now=now
    )
    payloads = inbox.assign(conn, conversation, last_seq, turn_id)
    said = "\n".join(_said(inbound_adapter.validate_json(p)) for p in payloads)
    from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart  # loaded after ready

    messages: list[ModelMessage] = [
        ModelRequest(parts=[UserPromptPart(said)]),
        ModelResponse(parts=[TextPart(HELD_NOTE)]),
    ]
    history.append(conn, conversation, session, turn_id, history.dump(messages), now)


def _said(message: InboundMessage) -> str:
    return message.body if isinstance(message, Text) else message.describe()


def open_conversations(conn: Connection) -> list[str]:
    """Conversations with an open turn or a waiting message that calls for an answer."""
    return sorted(turns.unfinished_conversations(conn) | inbox.waiting_conversations(conn))


def _next_turn(
    conversation: str,
    holder: int,
    lease: Lease | None,
    history_turns: Callable[[str], int],
    one_per_turn: bool,
    *,
    guarded: bool = False,
) -> Callable[[Connection], tuple[Lease | None, Turn | None]]:
    """One transaction: claim the lane (first time) or check the lease (later; `guarded`: the transaction
    checked it already, finishing the previous turn), then claim the next turn; when nothing waits, let go
    of the lane in the same transaction."""
    claim_turn = claim(conversation, history_turns, one_per_turn=one_per_turn)

    def op(conn: Connection) -> tuple[Lease | None, Turn | None]:
        held = lease
        if held is None:
            held = fence.acquire(conn, conversation, holder)
            if held is None:
                return None, None  # a live holder owns the lane: it takes what waits
        elif not guarded:
            fence.guard(conn, held)
        turn = claim_turn(conn)
        if turn is None:
            fence.release(conn, held)
        return held, turn

    return op


class RunTurn(Protocol):
    """Runs a turn under the lane's lease; `then` runs in the transaction that records it finished, after
    that transaction checked the lease, and its result is returned (`TurnRunner.run`)."""

    def __call__(self, turn: Turn, lease: Lease, then: Callable[[Connection], T], /) -> Awaitable[T]: ...


class Lanes:
    """The handler of conversation wake-up jobs."""

    def __init__(
        self,
        db: Database,
        queue: WorkQueue,
        run_turn: RunTurn,
        history_turns: Callable[[str], int],
        holder: Holder,
        *,
        one_per_turn: bool = False,
    ) -> None:
        self.db = db
        self.queue = queue
        self.run_turn = run_turn
        self.history_turns = history_turns
        self.holder = holder
        self.one_per_turn = one_per_turn
        """`TurnPolicy(on_new_message="queue")`: each message that calls for an answer gets its own turn."""

    async def wake(self, args: dict[str, Any]) -> None:
        conversation = args["conversation"]
        if conversation in self.holder.running:
            return  # this process runs the lane right now, and takes what waits before it lets go
        self.holder.running.add(conversation)
        try:
            await self._run(conversation)
        finally:
            self.holder.running.discard(conversation)

    async def _run(self, conversation: str) -> None:
        lease: Lease | None = None
        try:
            lease, turn = await self.db.write(
                _next_turn(conversation, self.holder.id, None, self.history_turns, self.one_per_turn)
            )
            if lease is None:
                log.debug("lane %s is owned by a live holder: leaving it to its owner", conversation)
                return
            held: Lease = lease
            for _ in range(MAX_TURNS_PER_WAKE - 1):
                if turn is None:
                    return  # let go: nothing waits
                # The transaction that records the turn finished (under the lease) claims the next one, or
                # lets go of the lane when nothing waits.
                next_turn = _next_turn(
                    conversation, self.holder.id, held, self.history_turns, self.one_per_turn, guarded=True
                )
                _, turn = await self.run_turn(turn, held, next_turn)
            if turn is None:
                return
            await self.run_turn(turn, held, lambda conn: fence.release(conn, held))
            lease = None
            await self.queue.defer_many([wake_job(conversation)])
        except FenceLost as exc:
            metrics.lanes_lost.inc()
            # The lane's new owner resumes from what was committed; nothing more is written or sent here.
            log.warning("stopped a turn of %s: %s", masked(conversation), exc)
        except Exception:
            if lease is not None:
                # Let another worker (or this one's retry) take the lane now rather than at this process's end.
                with contextlib.suppress(Exception):
                    await self.db.write(lambda conn: fence.release(conn, lease))  # type: ignore[arg-type]
            raise

    async def recover(self) -> int:
        """Wake every conversation left with work by a previous run (crash, deploy)."""
        pending = await self.db.read(open_conversations)
        if pending:
            log.info("waking %d conversations with unfinished work", len(pending))
            await self.queue.defer_many([wake_job(c) for c in pending])
        return len(pending)
