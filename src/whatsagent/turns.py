"""Running one turn: context, the agent, the answer stored, then sent part by part.

A turn is a small state machine persisted in `turns`: ``running`` → ``answered`` → ``sent`` (or
``failed``). The answer and its outbox rows are committed together before anything is sent, so a crash
after the model ran does not pay for it again, and a replay sends only what was not yet accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, insert, update

from whatsagent import history as history_store
from whatsagent import outbox
from whatsagent.agent import Reply, Responder, TurnContext
from whatsagent.channels.base import Channel
from whatsagent.lanes import Turn
from whatsagent.outbound import OutboundMessage
from whatsagent.render import render
from whatsagent.sender import Sender
from whatsagent.store.database import Database, Prepared
from whatsagent.store.schema import history, turns

log = logging.getLogger("whatsagent.turns")


@dataclass(frozen=True)
class TurnPolicy:
    typing_interval: float = 20.0
    """Re-send the typing indicator this often while the agent thinks (WhatsApp hides it after 25 s)."""
    max_attempts: int = 3
    """Agent runs per turn before the user gets `error_text` instead of an answer."""
    error_text: str = "Sorry, something went wrong on my side and I could not answer that. Please try again."


class TurnRunner:
    def __init__(
        self,
        db: Database,
        sender: Sender,
        channels: Mapping[str, Channel],
        responders: Mapping[str, Responder],
        policy: TurnPolicy | None = None,
    ) -> None:
        self.db = db
        self.sender = sender
        self.channels = channels
        self.responders = responders
        self.policy = policy or TurnPolicy()

    async def run(self, turn: Turn) -> None:
        channel = self.channels.get(turn.channel)
        if channel is None:
            raise LookupError(f"turn {turn.id} belongs to channel {turn.channel!r}, which this OS does not serve")
        if turn.status == "running":
            rows = await self._answer(turn, channel)
        else:  # answered before a crash or shutdown: send what is left
            rows = await self.db.read(lambda conn: outbox.unsent(conn, turn.id))
        ok = True
        for row in rows:
            # Parts go strictly in order: each waits until the previous one was accepted.
            ok = await self.sender.deliver(channel, turn.user, row, conversation=turn.conversation) and ok
        await self.db.write(_finish(turn.id, "sent" if ok else "failed"))

    def history_turns(self, channel: str) -> int:
        responder = self.responders.get(channel)
        return responder.history_turns if responder is not None else 0

    async def _answer(self, turn: Turn, channel: Channel) -> list[outbox.OutboxRow]:
        responder = self.responders[turn.channel]
        first_typing: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        typing = asyncio.create_task(self._keep_typing(channel, turn, first_typing))
        try:
            ctx = TurnContext(
                conversation=turn.conversation,
                channel=turn.channel,
                user=turn.user,
                messages=turn.messages,
                history=turn.history,
                turn_id=turn.id,
            )
            started = time.perf_counter()
            try:
                reply = await responder.respond(ctx)
            except Exception:
                if turn.attempts < self.policy.max_attempts:
                    raise  # the lane's job is retried with backoff; the turn stays `running`
                log.exception("turn %d failed %d times; telling the user", turn.id, turn.attempts)
                reply = Reply(text=self.policy.error_text)
            log.debug("turn %d answered in %.3fs", turn.id, time.perf_counter() - started)
        finally:
            # The answer must not overtake the typing indicator (it would show "typing…" after the
            # answer), so the first one is let finish; the refreshes stop.
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(first_typing), 5)
            typing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await typing
        parts = render(reply, channel)
        return await self.db.write(
            _record_answer(turn, parts, history_store.dump(reply.new_history) if reply.new_history else None)
        )

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


_ANSWERED = Prepared(
    update(turns)
    .where(turns.c.id == bindparam("turn"), turns.c.status == "running")
    .values(status="answered", updated_at=bindparam("now"))
)
_HISTORY = Prepared(
    insert(history).values(
        conversation=bindparam("conversation"),
        session=bindparam("session"),
        turn_id=bindparam("turn"),
        messages=bindparam("messages"),
        created_at=bindparam("now"),
    )
)
_FINISH = Prepared(
    update(turns).where(turns.c.id == bindparam("turn")).values(status=bindparam("state"), updated_at=bindparam("now"))
)


def _record_answer(
    turn: Turn, parts: list[OutboundMessage], messages_json: str | None
) -> Callable[[Connection], list[outbox.OutboxRow]]:
    def op(conn: Connection) -> list[outbox.OutboxRow]:
        now = time.time()
        _ANSWERED.all(conn, turn=turn.id, now=now)
        if messages_json is not None:
            _HISTORY.all(
                conn,
                conversation=turn.conversation,
                session=turn.session,
                turn=turn.id,
                messages=messages_json,
                now=now,
            )
        outbox.insert_rows(conn, turn_id=turn.id, conversation=turn.conversation, parts=parts)
        return outbox.unsent(conn, turn.id)

    return op


def _finish(turn_id: int, status: str) -> Callable[[Connection], None]:
    def op(conn: Connection) -> None:
        _FINISH.all(conn, turn=turn_id, state=status, now=time.time())

    return op
