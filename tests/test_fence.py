"""A conversation's lane has one owner, decided by the database: a worker that lost it writes and sends
nothing, and a worker that is merely slow (paused, starved) never loses it to a late heartbeat."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from whatsagent import fence, metrics
from whatsagent.conversations import conversation_key
from whatsagent.errors import StoreUnavailable
from whatsagent.fence import FenceLost, PostgresHolder, ProcessHolder
from whatsagent.store.database import Database, SQLiteDatabase
from whatsagent.store.migrations import sync_url, upgrade
from whatsagent.store.postgres import PostgresDatabase
from whatsagent.testing import BotHarness

CONVERSATION = "cloudapi|15551234567"


def sql(url: str, statement: str) -> Any:
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement))
            return result.scalar() if result.returns_rows else None
    finally:
        engine.dispose()


@pytest.fixture
async def postgres(postgres_url: str) -> AsyncIterator[tuple[Database, str]]:
    await asyncio.to_thread(upgrade, postgres_url)
    db = PostgresDatabase(postgres_url)
    await db.start()
    try:
        yield db, postgres_url
    finally:
        await db.close()


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[Database]:
    db = SQLiteDatabase(tmp_path / "fence.db")
    await db.start()
    try:
        yield db
    finally:
        await db.close()


async def acquire(db: Database, holder: int, conversation: str = CONVERSATION) -> fence.Lease | None:
    return await db.write(lambda conn: fence.acquire(conn, conversation, holder))


def bump_session(conversation: str) -> Any:
    """A write a turn makes (here: /new's session bump), to be fenced."""
    from whatsagent.store.schema import conversations

    def op(conn: Any) -> None:
        conn.execute(
            conversations.insert().values(
                key=conversation,
                channel="cloudapi",
                account="1",
                user_key="15551234567",
                session=7,
                last_inbound_at=0.0,
                created_at=0.0,
            )
        )

    return op


async def test_a_live_holder_keeps_its_lane_however_long_it_is_silent(postgres):
    db, url = postgres
    paused, other = PostgresHolder(url), PostgresHolder(url)
    await paused.start()
    await other.start()
    try:
        lease = await acquire(db, paused.id)
        assert lease is not None and lease.token == 1
        # However late its heartbeats (a SIGSTOP, a starved machine), its connection lives: nobody else
        # may run the conversation.
        sql(url, "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour'")
        assert await acquire(db, other.id) is None
        assert await acquire(db, other.id) is None
        await db.write(fence.fenced(lease, bump_session(CONVERSATION)))  # its writes still land
    finally:
        await paused.stop()
        await other.stop()


async def test_a_holder_proven_gone_loses_its_lanes_and_can_neither_write_nor_send(postgres):
    db, url = postgres
    gone, successor = PostgresHolder(url), PostgresHolder(url)
    await gone.start()
    await successor.start()
    try:
        old = await acquire(db, gone.id)
        assert old is not None
        # Its connection dies (a kill -9, a network cut): PostgreSQL drops its advisory lock.
        assert cut(url, gone.id) == 1
        new = None
        while new is None:  # the terminated backend's locks go with it
            new = await acquire(db, successor.id)
            await asyncio.sleep(0.01)
        assert new.token == old.token + 1
        with pytest.raises(FenceLost):
            await db.write(fence.fenced(old, bump_session(CONVERSATION)))
        assert sql(url, "SELECT count(*) FROM conversations") == 0, "the fenced write left nothing behind"
        with pytest.raises(FenceLost):
            await db.write(lambda conn: fence.verify(conn, old))  # what every send checks first
        await db.write(lambda conn: fence.verify(conn, new))
    finally:
        await gone.stop()
        await successor.stop()


def cut(url: str, holder: int) -> int:
    """Kill the session that keeps `holder` alive, as a kill -9 or a network cut would."""
    return sql(
        url,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE application_name = 'whatsagent-holder-{holder}' AND datname = current_database()",
    )


async def test_a_holder_whose_session_died_claims_nothing_until_it_registers_again(postgres):
    db, url = postgres
    holder = PostgresHolder(url)
    await holder.start()
    try:
        dead_id = holder.id
        assert cut(url, dead_id) == 1
        with pytest.raises(StoreUnavailable):
            await acquire(db, dead_id)
        while True:  # the holder notices and registers anew, as a new holder
            try:
                new_id = holder.id
            except StoreUnavailable:
                new_id = None
            if new_id is not None and new_id != dead_id:
                break
            await asyncio.sleep(0.05)
        assert await acquire(db, new_id) is not None
    finally:
        await holder.stop()


async def test_on_sqlite_a_task_that_outlived_its_claim_cannot_write_late(sqlite):
    db = sqlite
    holder = ProcessHolder(db)
    await holder.start()
    stale = await acquire(db, holder.id)
    # The same process claims the lane again (a cancelled or timed-out turn task was replaced).
    fresh = await acquire(db, holder.id)
    assert stale is not None and fresh is not None and fresh.token == stale.token + 1
    with pytest.raises(FenceLost):
        await db.write(fence.fenced(stale, bump_session(CONVERSATION)))
    with pytest.raises(FenceLost):
        await db.write(lambda conn: fence.verify(conn, stale))
    await db.write(fence.fenced(fresh, bump_session(CONVERSATION)))
    # A restarted process is a new holder: the old one's lanes are free to claim.
    successor = ProcessHolder(db)
    await successor.start()
    taken = await acquire(db, successor.id)
    assert taken is not None and taken.token == fresh.token + 1


class Gate:
    """A model that waits, mid-turn, until the test lets it answer."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.go = asyncio.Event()

    async def __call__(self, ctx: Any) -> str:
        if "hold" in ctx.text and not self.go.is_set():
            self.entered.set()
            await self.go.wait()
        return "echo: " + " | ".join(ctx.text.split("\n"))


async def lost_lanes() -> float:
    return metrics.lanes_lost._value.get()


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
async def test_a_turn_whose_lane_was_claimed_by_another_sends_nothing_and_the_owner_answers_once(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
):
    url = None
    if engine == "postgresql":
        url = request.getfixturevalue("postgres_url")
    gate = Gate()
    async with BotHarness(gate, tmp_path, database=url) as bot:
        assert bot.os is not None and bot.os.db is not None and bot.os.holder is not None
        db = bot.os.db
        user = bot.user("15557654321")
        assert bot.channel is not None
        conversation = conversation_key(bot.channel.name, user.wa_id)
        before = await lost_lanes()
        await user.send_text("hold on")
        await gate.entered.wait()
        # Another owner claims the lane while the turn thinks: on PostgreSQL a second worker after this
        # one's session was cut; on SQLite a new task of the same process after this one timed out.
        if engine == "postgresql":
            assert url is not None
            assert cut(url, bot.os.holder.id) == 1
            other = PostgresHolder(url)
            await other.start()
        else:
            other = ProcessHolder(db)
            other._id = bot.os.holder.id  # the same process, another task
        lease = None
        while lease is None:
            lease = await acquire(db, other.id, conversation)
            await asyncio.sleep(0.01)
        gate.go.set()
        while await lost_lanes() == before:  # the turn finds its lease gone and stops
            await asyncio.sleep(0.01)
        await bot.emulator.settle()
        assert user.replies == [], "nothing was sent by the turn that lost its lane"
        # The new owner lets go; the next message wakes the conversation and the open turn is resumed.
        await db.write(lambda conn: fence.release(conn, lease))
        if engine == "postgresql":
            await other.stop()
        await user.send_text("and then")
        while len(user.replies) < 2:
            await asyncio.sleep(0.02)
        await bot.idle(60)
        await bot.emulator.settle()
        assert [r.text for r in user.replies] == ["echo: hold on", "echo: and then"]
