"""The store keeps its promises on both engines: SQLite (embedded) and PostgreSQL (scale-out).

A redelivered message is stored once however it is batched and however many copies race; a status is
recorded once per message and state; a conversation's waiting messages become one turn, in order, and
a turn left open by a crash is resumed before any new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from whatsagent.conversations import conversation_key
from whatsagent.inbox import Inbox
from whatsagent.lanes import claim, open_conversations
from whatsagent.messages import Reaction, StatusUpdate, Text, User
from whatsagent.queue import Handler, JobSpec, Wanted, WorkQueue
from whatsagent.store.database import Database, SQLiteDatabase
from whatsagent.store.schema import inbox, statuses, turns

CHANNEL = "cloudapi"
ACCOUNT = "100200300"
ANA = User(wa_id="15551234567", name="Ana")
BO = User(wa_id="15557654321", name="Bo")


class RecordingQueue(WorkQueue):
    """Remembers what was deferred; runs nothing."""

    def __init__(self) -> None:
        self.deferred: list[JobSpec] = []

    async def start(self, handlers: dict[str, Handler], *, wanted: Wanted | None = None) -> None:  # type: ignore[override]
        pass

    async def sweep(self, wanted: Sequence[JobSpec]) -> int:
        waiting = {spec.lock for spec in self.deferred}  # nothing runs: every job deferred is waiting
        return await self.defer_many([spec for spec in wanted if spec.lock is None or spec.lock not in waiting])

    async def defer_many(self, specs: Sequence[JobSpec]) -> int:
        self.deferred.extend(specs)
        return len(specs)

    async def stop(self, grace: float = 10.0) -> None:
        pass

    async def depth(self) -> int:
        return len(self.deferred)


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    database: Database
    if request.param == "sqlite":
        database = SQLiteDatabase(tmp_path / "store.db")
    else:
        from whatsagent.store.postgres import PostgresDatabase

        database = PostgresDatabase(request.getfixturevalue("postgres_url"))
    await database.start()
    try:
        yield database
    finally:
        await database.close()


def text(wamid: str, body: str, user: User = ANA) -> Text:
    return Text(channel=CHANNEL, account=ACCOUNT, id=wamid, user=user, body=body)


def status(message_id: str, state: str) -> StatusUpdate:
    return StatusUpdate(channel=CHANNEL, account=ACCOUNT, message_id=message_id, status=state)  # type: ignore[arg-type]


def no_history(_channel: str) -> int:
    return 0


async def count(db: Database, table) -> int:  # type: ignore[no-untyped-def]
    return await db.read(lambda conn: conn.execute(select(func.count()).select_from(table)).scalar_one())


async def test_a_redelivered_message_is_stored_once_however_it_is_batched(db: Database):
    queue = RecordingQueue()
    box = Inbox(db, queue)
    first = await box.accept([text("wamid.1", "hello")])
    assert (first.messages, first.duplicates) == (1, 0)
    again = await box.accept([text("wamid.1", "hello")])
    assert (again.messages, again.duplicates) == (0, 1)
    # Still waiting for its turn: the redelivery wakes the conversation again (a no-op behind the pending
    # wake-up's queueing lock; it heals a wake-up lost in a crash between commit and defer).
    assert again.conversations == [conversation_key(CHANNEL, ANA.key)]
    rebatched = await box.accept([text("wamid.2", "from bo", BO), text("wamid.1", "hello")])
    assert (rebatched.messages, rebatched.duplicates) == (1, 1)
    assert await count(db, inbox) == 2
    await box.drain()
    assert {spec.lock for spec in queue.deferred} == {
        conversation_key(CHANNEL, ANA.key),
        conversation_key(CHANNEL, BO.key),
    }


async def test_a_redelivered_message_already_answered_wakes_nobody(db: Database):
    from sqlalchemy import update

    box = Inbox(db, RecordingQueue())
    await box.accept([text("wamid.done", "hello")])
    await db.write(lambda conn: conn.execute(update(inbox).values(turn_id=1)))  # consumed by a turn
    again = await box.accept([text("wamid.done", "hello")])
    assert (again.messages, again.duplicates, again.conversations) == (0, 1, [])


async def test_copies_of_a_message_racing_each_other_are_stored_once(db: Database):
    box = Inbox(db, RecordingQueue())
    results = await asyncio.gather(*(box.accept([text("wamid.race", "once")]) for _ in range(12)))
    assert sum(r.messages for r in results) == 1
    assert sum(r.duplicates for r in results) == 11
    assert await count(db, inbox) == 1


async def test_a_status_is_recorded_once_per_message_and_state(db: Database):
    box = Inbox(db, RecordingQueue())
    assert (await box.accept([status("wamid.out1", "sent")])).statuses == 1
    assert (await box.accept([status("wamid.out1", "sent")])).statuses == 0
    both = await box.accept([status("wamid.out1", "read"), status("wamid.out1", "delivered")])
    assert both.statuses == 2
    assert (await box.accept([status("wamid.out1", "delivered")])).statuses == 0
    assert await count(db, statuses) == 3


async def test_waiting_messages_become_one_turn_in_arrival_order(db: Database):
    box = Inbox(db, RecordingQueue())
    for i in range(3):
        await box.accept([text(f"wamid.{i}", f"message {i}")])
    await box.accept([text("wamid.bo", "not Ana's", BO)])
    key = conversation_key(CHANNEL, ANA.key)
    turn = await db.write(claim(key, no_history))
    assert turn is not None
    assert turn.status == "running"
    assert [m.body for m in turn.messages] == ["message 0", "message 1", "message 2"]  # type: ignore[union-attr]
    assert turn.user.wa_id == ANA.wa_id


async def test_an_open_turn_is_resumed_before_a_new_one_starts(db: Database):
    box = Inbox(db, RecordingQueue())
    key = conversation_key(CHANNEL, ANA.key)
    await box.accept([text("wamid.1", "first")])
    first = await db.write(claim(key, no_history))
    assert first is not None
    await box.accept([text("wamid.2", "second")])
    # The worker died mid-turn: the next claim resumes the same turn, counting the attempt.
    resumed = await db.write(claim(key, no_history))
    assert resumed is not None
    assert (resumed.id, resumed.attempts) == (first.id, 2)
    assert [m.id for m in resumed.messages] == ["wamid.1"]
    await db.write(lambda conn: conn.execute(update(turns).where(turns.c.id == first.id).values(status="sent")))
    second = await db.write(claim(key, no_history))
    assert second is not None and second.id != first.id
    assert [m.id for m in second.messages] == ["wamid.2"]
    await db.write(lambda conn: conn.execute(update(turns).where(turns.c.id == second.id).values(status="sent")))
    assert await db.write(claim(key, no_history)) is None


async def test_conversations_with_unfinished_work_are_found_for_recovery(db: Database):
    box = Inbox(db, RecordingQueue())
    ana, bo = conversation_key(CHANNEL, ANA.key), conversation_key(CHANNEL, BO.key)
    await box.accept([text("wamid.a", "waiting", ANA)])
    await box.accept([text("wamid.b", "claimed", BO)])
    turn = await db.write(claim(bo, no_history))
    assert turn is not None
    assert await db.read(open_conversations) == sorted([ana, bo])
    await db.write(lambda conn: conn.execute(update(turns).where(turns.c.id == turn.id).values(status="sent")))
    # A reaction alone calls for no answer.
    await box.accept([Reaction(channel=CHANNEL, account=ACCOUNT, id="wamid.r", user=BO, message_id="x", emoji="👍")])
    assert await db.read(open_conversations) == [ana]
