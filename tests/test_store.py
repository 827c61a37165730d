"""The SQLite store: group commit, failures that lose nothing, one owner per file."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import IntegrityError

from whatsagent.errors import ConfigurationError, StoreUnavailable
from whatsagent.store.database import SQLiteDatabase, open_database
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
