"""Migrations bring either engine to exactly the schema the code uses, once, however many start at once."""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner

from whatsagent.errors import ConfigurationError
from whatsagent.store import migrations
from whatsagent.store.schema import metadata


def schema_differences(url: str) -> list[object]:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = create_engine(migrations.sync_url(url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "compare_server_default": True,
                    "include_name": lambda name, type_, parent: (
                        not (name or "").startswith(("procrastinate", "alembic"))
                    ),
                },
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def revision_of(url: str) -> str | None:
    engine = create_engine(migrations.sync_url(url))
    try:
        with engine.connect() as conn:
            return migrations.current_revision(conn)
    finally:
        engine.dispose()


def test_head_is_alembics_newest_revision():
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(migrations.alembic_config()).get_current_head() == migrations.HEAD


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_migrations_build_exactly_the_schema_of_the_code(engine: str, tmp_path: Path, request: pytest.FixtureRequest):
    url = f"sqlite:///{tmp_path / 'm.db'}" if engine == "sqlite" else request.getfixturevalue("postgres_url")
    if engine == "sqlite":
        # Through Alembic's revisions, not the shortcut a fresh SQLite file takes at start-up.
        from alembic import command

        sqlite_engine = create_engine(url)
        with sqlite_engine.connect() as conn:
            command.upgrade(migrations.alembic_config(conn), "head")
            conn.commit()
        sqlite_engine.dispose()
    else:
        assert migrations.upgrade(url) is True
    assert migrations.upgrade(url) is False, "a second upgrade has nothing to do"
    assert revision_of(url) == migrations.HEAD
    assert schema_differences(url) == []


def test_a_fresh_sqlite_file_gets_the_same_schema_at_start_up(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert migrations.upgrade(url) is True
    assert revision_of(url) == migrations.HEAD
    assert schema_differences(url) == []


def test_a_database_from_before_migrations_is_adopted_not_recreated(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    # What the first release made with create_all: revision 0001's tables, no alembic_version.
    migrations.upgrade(url, migrations.INITIAL)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(text("INSERT INTO conversations (key, channel, account, user_key, last_inbound_at, created_at) "
                          "VALUES ('c|1', 'c', 'a', '1', 0, 0)"))  # fmt: skip
    engine.dispose()
    assert migrations.upgrade(url) is True
    assert revision_of(url) == migrations.HEAD
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM conversations")).scalar() == 1
    engine.dispose()


def test_postgresql_gets_procrastinates_queue_and_fresh_statistics(postgres_url: str):
    migrations.upgrade(postgres_url)
    engine = create_engine(migrations.sync_url(postgres_url))
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            assert {"procrastinate_jobs", "procrastinate_workers", "procrastinate_events"} <= tables
            analysed = conn.execute(
                text("SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'procrastinate_jobs'")
            ).scalar()
            assert analysed, "the queue's tables were analysed after creation"
    finally:
        engine.dispose()


def test_processes_starting_together_migrate_once(postgres_url: str):
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        results = list(pool.map(lambda _: migrations.upgrade(postgres_url), range(5)))
    assert results.count(True) == 1
    assert revision_of(postgres_url) == migrations.HEAD


async def test_with_auto_migrate_off_an_unmigrated_database_is_refused_with_the_fix(postgres_url: str):
    from whatsagent.store.postgres import PostgresDatabase

    db = PostgresDatabase(postgres_url, auto_migrate=False)
    with pytest.raises(ConfigurationError, match="whatsagent db upgrade"):
        await db.start()
    await asyncio.to_thread(migrations.upgrade, postgres_url)
    db = PostgresDatabase(postgres_url, auto_migrate=False)
    await db.start()
    await db.close()


def test_the_db_upgrade_command_migrates_the_database_it_is_given(postgres_url: str):
    from whatsagent.cli import app

    result = CliRunner().invoke(app, ["db", "upgrade", "--database", postgres_url])
    assert result.exit_code == 0, result.output
    assert f"migrated to revision {migrations.HEAD}" in result.output
    again = CliRunner().invoke(app, ["db", "upgrade"], env={"WHATSAGENT_DATABASE_URL": postgres_url})
    assert again.exit_code == 0, again.output
    assert "already at" in again.output
