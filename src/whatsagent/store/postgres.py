"""PostgreSQL: the store for several processes on several machines.

The same store operations as on SQLite (`fn(conn) -> result`), each `write` one transaction on
SQLAlchemy's async engine over psycopg 3 (`AsyncConnection.run_sync`). PostgreSQL commits concurrent
transactions together by itself, so there is no writer thread here; a transaction that lost a deadlock
or a serialization conflict is run again (the operations are plain functions, safe to re-run).

At start-up the schema is migrated to the newest revision (several processes starting at once take
turns), unless ``WHATSAGENT_AUTO_MIGRATE=0``: then `whatsagent db upgrade` is an explicit deployment
step, and a database behind the code is refused with a message saying so.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from whatsagent.errors import ConfigurationError, StoreUnavailable
from whatsagent.privacy import redacted
from whatsagent.store.database import Database, Operation, T
from whatsagent.store.migrations import HEAD, current_revision, sync_url, upgrade_connection

log = logging.getLogger(__name__)

# SQLSTATEs of a transaction PostgreSQL rolled back so that another could go on: run it again.
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
MAX_TRANSACTION_ATTEMPTS = 4


def auto_migrate_enabled() -> bool:
    """``WHATSAGENT_AUTO_MIGRATE=0`` turns start-up migrations off (production runs them as a step)."""
    return os.environ.get("WHATSAGENT_AUTO_MIGRATE", "1").strip().lower() not in ("0", "false", "no", "off")


class PostgresDatabase(Database):
    """PostgreSQL through psycopg 3. `pool_size` + `max_overflow` connections at most per process
    (default 5 + 5, or ``WHATSAGENT_DB_POOL_SIZE`` and ``WHATSAGENT_DB_MAX_OVERFLOW``): store operations
    are short, so a few serve hundreds of concurrent turns. Mind ``max_connections`` (100 by default)
    across all processes, the work queue's own connections included."""

    dialect = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        pool_size: int | None = None,
        max_overflow: int | None = None,
        auto_migrate: bool | None = None,
    ) -> None:
        self.url = sync_url(url)
        self.pool_size = pool_size if pool_size is not None else _env_int("WHATSAGENT_DB_POOL_SIZE", 5)
        self.max_overflow = max_overflow if max_overflow is not None else _env_int("WHATSAGENT_DB_MAX_OVERFLOW", 5)
        self.auto_migrate = auto_migrate_enabled() if auto_migrate is None else auto_migrate
        self._engine: AsyncEngine | None = None

    async def start(self) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise ConfigurationError("PostgreSQL needs psycopg 3: pip install 'whatsagent[postgres]'") from exc
        engine = create_async_engine(
            self.url,
            pool_size=self.pool_size,
            max_overflow=self.max_overflow,
            # No pre-ping: it would add a round trip to every transaction. A connection PostgreSQL dropped
            # fails its next statement instead; SQLAlchemy then discards the pool and the caller retries
            # (a webhook gets 503 and is redelivered, a job is retried).
            pool_recycle=1800,
        )
        try:
            async with engine.connect() as conn:
                if self.auto_migrate:
                    await conn.run_sync(upgrade_connection)
                else:
                    found = await conn.run_sync(current_revision)
                    if found != HEAD:
                        raise ConfigurationError(
                            f"the database schema is at revision {found or 'none'}, this whatsagent "
                            f"needs {HEAD}: run `whatsagent db upgrade` (WHATSAGENT_AUTO_MIGRATE=0 "
                            "leaves migrations to you)"
                        )
        except (OperationalError, InterfaceError, OSError) as exc:
            await engine.dispose()
            raise StoreUnavailable(f"cannot reach PostgreSQL at {redacted(self.url)}: {exc}") from exc
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def write(self, fn: Operation[T], *, urgent: bool = False) -> T:  # one transaction each: nothing to put first
        engine = self._require_engine()
        for attempt in range(1, MAX_TRANSACTION_ATTEMPTS + 1):
            try:
                async with engine.begin() as conn:
                    return await conn.run_sync(fn)
            except DBAPIError as exc:
                if _sqlstate(exc) in RETRYABLE_SQLSTATES and attempt < MAX_TRANSACTION_ATTEMPTS:
                    await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))
                    continue
                raise _as_store_error(exc) from exc
            except PoolTimeout as exc:
                raise StoreUnavailable(f"no free database connection (raise WHATSAGENT_DB_POOL_SIZE?): {exc}") from exc
            except OSError as exc:
                raise StoreUnavailable(f"the store could not commit: {exc}") from exc
        raise AssertionError("unreachable")

    async def read(self, fn: Operation[T]) -> T:
        engine = self._require_engine()
        try:
            async with engine.connect() as conn:
                try:
                    return await conn.run_sync(fn)
                finally:
                    await conn.rollback()
        except DBAPIError as exc:
            raise _as_store_error(exc) from exc
        except PoolTimeout as exc:
            raise StoreUnavailable(f"no free database connection (raise WHATSAGENT_DB_POOL_SIZE?): {exc}") from exc
        except OSError as exc:
            raise StoreUnavailable(f"the store could not be read: {exc}") from exc

    def _require_engine(self) -> AsyncEngine:
        if self._engine is None:
            raise StoreUnavailable("the store is closed")
        return self._engine


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number") from None


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def _as_store_error(exc: DBAPIError) -> BaseException:
    """Lost connections and an unavailable server become `StoreUnavailable` (webhooks answer 503);
    a constraint violation or a bad statement stays itself: it is a bug, not an outage."""
    if isinstance(exc, (OperationalError, InterfaceError)) or exc.connection_invalidated:
        failure = StoreUnavailable(f"the store could not commit: {exc.orig or exc}")
        failure.__cause__ = exc
        return failure
    return exc


# -- procrastinate's queue tables, for retention and erasure (`whatsagent.lifecycle`) ------------------------


def expire_queue_jobs(conn: Connection, cutoff: float) -> int | None:
    """Delete finished work-queue jobs (successful ones are deleted at once; failed ones stay to be looked
    at) with no event since `cutoff`; their events go with them. None on SQLite (no such queue)."""
    if conn.dialect.name != "postgresql":
        return None
    return int(
        conn.execute(
            text(
                "DELETE FROM procrastinate_jobs j WHERE j.status IN ('failed', 'succeeded', 'cancelled', "
                "'aborted') AND NOT EXISTS (SELECT 1 FROM procrastinate_events e WHERE e.job_id = j.id "
                "AND e.at >= to_timestamp(:cutoff))"
            ),
            {"cutoff": cutoff},
        ).rowcount
    )


def erase_queue_jobs(conn: Connection, conversations: list[str], users: list[str]) -> int | None:
    """Delete the jobs (not running) naming these conversations (wake-ups) or users (memory capture).
    None on SQLite (no such queue)."""
    if conn.dialect.name != "postgresql":
        return None
    return int(
        conn.execute(
            text(
                "DELETE FROM procrastinate_jobs WHERE status <> 'doing' AND (lock = ANY(:keys) "
                "OR queueing_lock = ANY(:keys) OR args->>'conversation' = ANY(:keys) OR args->>'user' = ANY(:refs))"
            ),
            {"keys": conversations, "refs": users},
        ).rowcount
    )
