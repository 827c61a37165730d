"""The SQLite store: group commit, failures that lose nothing, one owner per file."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import IntegrityError

from whatsagent.errors import ConfigurationError, StoreUnavailable
from whatsagent.store.database import SQLiteDatabase, _Write, open_database
from whatsagent.store.schema import jobs


def insert_job(name: str):
    def op(conn):
        conn.execute(
            jobs.insert().values(task=name, args="{}", status="todo", attempts=0, scheduled_at=0.0, created_at=0.0)
        )
        return name

    return op


def job_names(conn) -> list[str]:
    return [r.task for r in conn.execute(select(jobs.c.task).order_by(jobs.c.id))]


async def test_concurrent_writes_share_commits(tmp_path):
    db = SQLiteDatabase(tmp_path / "s.db")
    await db.start()
    commits = 0

    def count(_conn):
        nonlocal commits
        commits += 1

    assert db._engine is not None
    event.listen(db._engine, "commit", count)
    try:
        results = await asyncio.gather(*(db.write(insert_job(f"job{i}")) for i in range(200)))
        assert results == [f"job{i}" for i in range(200)]
        assert len(await db.read(job_names)) == 200
        assert commits < 100, f"200 concurrent writes took {commits} commits"
    finally:
        await db.close()


async def test_one_failing_write_does_not_sink_the_others_in_its_batch(tmp_path):
    db = SQLiteDatabase(tmp_path / "s.db")
    await db.start()

    def broken(conn):
        conn.execute(text("INSERT INTO jobs (id, task) VALUES (NULL, NULL)"))  # violates NOT NULL

    try:
        outcomes = await asyncio.gather(
            db.write(insert_job("a")), db.write(broken), db.write(insert_job("b")), return_exceptions=True
        )
        assert outcomes[0] == "a" and outcomes[2] == "b"
        assert isinstance(outcomes[1], IntegrityError)
        assert await db.read(job_names) == ["a", "b"]
    finally:
        await db.close()


async def test_a_commit_that_fails_is_reported_as_store_unavailable_and_nothing_is_kept(tmp_path):
    db = SQLiteDatabase(tmp_path / "s.db")
    await db.start()
    assert db._engine is not None

    def fail_commit(_conn):
        raise OSError("disk I/O error")

    event.listen(db._engine, "commit", fail_commit)
    try:
        with pytest.raises(StoreUnavailable, match="could not commit"):
            await db.write(insert_job("lost"))
        event.remove(db._engine, "commit", fail_commit)
        assert await db.read(job_names) == []
        assert await db.write(insert_job("kept")) == "kept"
    finally:
        await db.close()


async def test_a_second_process_on_the_same_sqlite_file_is_refused_with_advice(tmp_path):
    first = SQLiteDatabase(tmp_path / "s.db")
    await first.start()
    try:
        with pytest.raises(ConfigurationError, match="PostgreSQL"):
            await SQLiteDatabase(tmp_path / "s.db").start()
    finally:
        await first.close()
    again = SQLiteDatabase(tmp_path / "s.db")
    await again.start()
    await again.close()


def test_an_in_memory_or_unknown_database_is_refused():
    with pytest.raises(ConfigurationError, match="needs a file"):
        open_database("sqlite:///:memory:")
    with pytest.raises(ConfigurationError, match="not supported"):
        open_database("mysql://localhost/x")


async def test_wal_and_full_synchronous_are_in_force(tmp_path):
    db = SQLiteDatabase(tmp_path / "s.db")
    await db.start()
    try:
        mode = await db.read(lambda c: c.exec_driver_sql("PRAGMA journal_mode").scalar())
        sync = await db.read(lambda c: c.exec_driver_sql("PRAGMA synchronous").scalar())
        assert mode == "wal"
        assert sync == 2  # FULL
    finally:
        await db.close()


async def _writer_held(db: SQLiteDatabase) -> tuple[asyncio.Future[None], threading.Event]:
    """Occupy the writer thread with a write that waits for the returned event: what is written meanwhile
    queues, as it does behind a long batch under load."""
    held, release = threading.Event(), threading.Event()

    def hold(_conn) -> None:
        held.set()
        release.wait(30)

    blocked = asyncio.ensure_future(db.write(hold))
    await asyncio.to_thread(held.wait, 30)
    return blocked, release


async def test_a_webhooks_write_is_committed_before_the_turn_writes_queued_ahead_of_it(tmp_path):
    db = SQLiteDatabase(tmp_path / "s.db")
    await db.start()
    try:
        blocked, release = await _writer_held(db)
        turn_writes = [asyncio.ensure_future(db.write(insert_job(f"turn{i}"))) for i in range(200)]
        await asyncio.sleep(0)  # the turn writes are queued first
        webhook = asyncio.ensure_future(db.write(insert_job("webhook"), urgent=True))
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(blocked, webhook, *turn_writes)
        names = await db.read(job_names)
        assert names[0] == "webhook", "the acknowledgement's write went first"
        assert names[1:] == [f"turn{i}" for i in range(200)], "the others keep their order"
    finally:
        await db.close()


async def test_turn_writes_still_commit_while_webhook_writes_keep_coming(tmp_path):
    """Webhook writes always waiting (each one's operation queues the next) do not starve the others."""
    db = SQLiteDatabase(tmp_path / "s.db")
    await db.start()
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(50)]
    order: list[str] = []

    def webhook(i: int):
        def op(conn) -> None:
            order.append(f"webhook{i}")
            if i + 1 < len(futures):  # the next one is waiting before this batch ends
                db._queue.put(_Write(webhook(i + 1), futures[i + 1], loop, True))

        return op

    def turn(conn) -> None:
        order.append("turn")

    try:
        blocked, release = await _writer_held(db)
        turn_write = asyncio.ensure_future(db.write(turn))
        first = asyncio.ensure_future(db.write(webhook(0), urgent=True))
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(blocked, turn_write, first, *futures[1:])
        assert order.index("turn") < order.index("webhook2"), order[:5]
    finally:
        await db.close()
