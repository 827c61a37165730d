"""Alembic migrations of the one schema, for SQLite and PostgreSQL alike.

`upgrade(url)` brings a database to the newest revision (``whatsagent db upgrade`` runs it); the stores
call `upgrade_connection` at start-up in development. Revisions live in ``versions/``: ``0001`` is the
schema of `whatsagent.store.schema`, ``0002`` procrastinate's tables on PostgreSQL (the scale-out work
queue), later ones follow the schema's changes, each naming the previous head as its `down_revision`.
Several processes starting at once on a fresh PostgreSQL database take turns on an advisory lock, so only
one of them migrates.

After a revision creates tables, the database's statistics are refreshed (``ANALYZE``): PostgreSQL
planned the queue's fetch on a never-analysed table about 7× slower than after one ANALYZE.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
INITIAL = "0001"
_REVISION = re.compile(r"^revision\s*=\s*[\"'](\w+)[\"']", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*=\s*[\"'](\w+)[\"']", re.MULTILINE)


def _newest_revision() -> str:
    """The head of the revision chain, read from the files (without importing Alembic at start-up)."""
    revisions: list[str] = []
    parents: set[str] = set()
    for path in (HERE / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revisions.extend(_REVISION.findall(source))
        parents.update(_DOWN_REVISION.findall(source))
    heads = sorted(set(revisions) - parents)
    if len(heads) != 1 or len(revisions) != len(set(revisions)):
        raise RuntimeError(
            f"whatsagent's migrations have {len(heads)} heads {heads}: each new revision must name the "
            "previous newest one as its down_revision (and have a revision id of its own)"
        )
    return heads[0]


HEAD = _newest_revision()
"""The newest revision; `tests/test_migrations.py` checks that Alembic agrees."""

# pg_advisory_lock key: "whatsagent" as an integer, so that concurrent start-ups migrate one at a time.
_LOCK_KEY = int.from_bytes(b"whatsage", "big") >> 1


def alembic_config(connection: Connection | None = None, url: str | None = None):  # type: ignore[no-untyped-def]
    """An Alembic `Config` for these migrations (for Alembic's own commands: history, downgrade...)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def current_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def revision_of(url: str) -> str | None:
    """The revision the database at `url` is at (None: no whatsagent schema yet)."""
    from sqlalchemy import create_engine

    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            return current_revision(conn)
    finally:
        engine.dispose()


def upgrade_connection(conn: Connection, revision: str = "head") -> bool:
    """Migrate the database behind `conn` to `revision`; True when anything was applied.

    `conn` must not be in a transaction; each migration step commits."""
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_KEY})
        conn.commit()
    try:
        before = current_revision(conn)
        conn.commit()
        if revision == "head" and before == HEAD:
            return False  # the common case at start-up: no need to load Alembic at all
        if revision == "head" and before is None and conn.dialect.name == "sqlite" and _empty(conn):
            # A new SQLite file: the newest schema directly, stamped as head (the same schema, which
            # tests/test_migrations.py checks), sparing Alembic's import at every fresh start.
            _create_head(conn)
            log.info("created the database at revision %s", HEAD)
            _analyze(conn)
            return True
        if before is None and inspect(conn).has_table("inbox"):
            # Created by a version of whatsagent from before migrations: its tables are revision 0001.
            log.info("stamping an existing whatsagent database as revision %s", INITIAL)
            _stamp(conn, INITIAL)
            conn.commit()
        from alembic import command

        command.upgrade(alembic_config(conn), revision)
        conn.commit()
        after = current_revision(conn)
        conn.commit()
        if after != before:
            log.info("database migrated from %s to %s", before or "empty", after)
            _analyze(conn)
            return True
        return False
    finally:
        if postgres:
            conn.rollback()
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
            conn.commit()


def upgrade(url: str, revision: str = "head") -> bool:
    """Migrate the database at `url` (``sqlite:///file.db`` or ``postgresql+psycopg://...``)."""
    engine = create_engine(sync_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return upgrade_connection(conn, revision)
    finally:
        engine.dispose()


def sync_url(url: str) -> str:
    """The URL for a synchronous engine: PostgreSQL goes through psycopg 3 whatever the URL says."""
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _empty(conn: Connection) -> bool:
    return not inspect(conn).get_table_names()


def _create_head(conn: Connection) -> None:
    from whatsagent.store.schema import metadata

    metadata.create_all(conn)
    conn.execute(
        text(
            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
            "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
        )
    )
    conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": HEAD})
    conn.commit()


def _stamp(conn: Connection, revision: str) -> None:
    from alembic import command

    command.stamp(alembic_config(conn), revision)


def _analyze(conn: Connection) -> None:
    conn.execute(text("ANALYZE"))
    conn.commit()
