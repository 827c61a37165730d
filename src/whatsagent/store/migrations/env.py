"""Alembic's entry point: run the revisions on the connection `upgrade_connection` hands over, or on
the configured URL (Alembic's own command line, offline ``--sql`` mode)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from whatsagent.store.schema import metadata

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    if connection is not None:
        _run_on(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            _run_on(conn)
            conn.commit()
    finally:
        engine.dispose()


def _run_on(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters tables by copying them; Alembic's batch mode does that for us.
        render_as_batch=connection.dialect.name == "sqlite",
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
