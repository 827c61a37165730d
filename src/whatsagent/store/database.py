"""The storage seam: run a function in one transaction, on SQLite or PostgreSQL.

Store operations are plain functions of a SQLAlchemy Core `Connection` (`fn(conn) -> result`), written
once. `SQLiteDatabase` runs writes on one writer thread that groups whatever is waiting into a single
transaction and a single fsync (group commit): concurrent webhooks share a commit instead of queueing
for one each. aiosqlite would hop threads for every statement; owning the writer thread lets a whole
batch run without hops. PostgreSQL runs the same functions through SQLAlchemy's async engine
(psycopg 3) with `run_sync`.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection as Connection  # the store operations' argument, for modules without SQL
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from whatsagent.errors import ConfigurationError, StoreUnavailable
from whatsagent.store import own_file

log = logging.getLogger(__name__)

T = TypeVar("T")
Operation = Callable[[Connection], T]

# A batch larger than this is split: it bounds how long one commit keeps later writers waiting.
MAX_BATCH = 512
# Turn-side writes are committed at most this many at a time, so that an acknowledgement's write (`urgent`)
# never waits behind more than one such batch.
TURN_BATCH = 64


class Prepared:
    """A Core statement compiled once per dialect and run straight on the driver's cursor.

    The hot path (every webhook, every turn) runs a dozen small statements per message; SQLAlchemy's
    per-execution machinery costs ~60 µs each where the driver needs ~20 (measured on SQLite here).
    Statements stay written in Core, portable to PostgreSQL; only execution skips the layers. Values
    must be plain (str, int, float, bool, None); give every bound value a `bindparam` name (and use
    no expanding IN).
    `clause` may be a function of the dialect's name, for dialect-specific constructs (ON CONFLICT).
    """

    __slots__ = ("_cache", "clause")

    def __init__(self, clause: Any) -> None:
        self.clause = clause
        self._cache: dict[str, tuple[str, tuple[str, ...] | None, dict[str, Any]]] = {}

    def _compiled(self, conn: Connection) -> tuple[str, tuple[str, ...] | None, dict[str, Any]]:
        found = self._cache.get(conn.dialect.name)
        if found is None:
            clause = self.clause(conn.dialect.name) if callable(self.clause) else self.clause
            compiled = clause.compile(dialect=conn.dialect)
            positions = tuple(compiled.positiontup) if compiled.positional else None
            defaults = dict(compiled.construct_params(_check=False))  # values bound at construction
            found = self._cache[conn.dialect.name] = (compiled.string, positions, defaults)
        return found

    def _args(self, positions: tuple[str, ...] | None, defaults: dict[str, Any], params: dict[str, Any]) -> Any:
        merged = {**defaults, **params} if defaults else params
        return [merged[name] for name in positions] if positions is not None else merged

    def all(self, conn: Connection, **params: Any) -> list[Any]:
        """Execute with `params`; the rows (tuples) it returns, if any."""
        sql, positions, defaults = self._compiled(conn)
        cursor = conn.connection.cursor()
        try:
            cursor.execute(sql, self._args(positions, defaults, params))
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            cursor.close()

    def first(self, conn: Connection, **params: Any) -> Any:
        rows = self.all(conn, **params)
        return rows[0] if rows else None

    def many(self, conn: Connection, params: list[dict[str, Any]]) -> None:
        """Execute once per parameter set (no rows returned)."""
        if not params:
            return
        sql, positions, defaults = self._compiled(conn)
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(sql, [self._args(positions, defaults, p) for p in params])
        finally:
            cursor.close()


class Database(abc.ABC):
    """Where whatsagent keeps everything. `write` runs `fn` in a transaction and returns once it is
    committed; it raises `StoreUnavailable` when the commit failed."""

    dialect: str

    @property
    def shared(self) -> bool:
        """Whether other processes, on this machine or others, use this store too (PostgreSQL: web and
        worker processes; SQLite is owned by one process, its flock says so). What runs where follows:
        the work queue, how a process proves itself alive to the others, the console's event relay."""
        return self.dialect == "postgresql"

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def write(self, fn: Operation[T], *, urgent: bool = False) -> T:
        """`urgent`: a webhook waits for this commit to be acknowledged; on SQLite it is committed before
        the other writes waiting for the writer thread."""

    @abc.abstractmethod
    async def read(self, fn: Operation[T]) -> T: ...


def upsert_insert(dialect: str, table: Any) -> Any:
    """``INSERT`` with ``ON CONFLICT`` support for the dialect (SQLite and PostgreSQL spell it alike)."""
    from sqlalchemy.dialects import postgresql, sqlite

    return (sqlite if dialect == "sqlite" else postgresql).insert(table)


def open_database(url: str) -> Database:
    """The database for a URL: ``sqlite:///path/to.db`` or ``postgresql+psycopg://...``."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if not path or path == ":memory:":
            raise ConfigurationError(
                f"database {url!r}: whatsagent needs a file so that nothing acknowledged is lost; "
                "use e.g. sqlite:///whatsagent.db"
            )
        return SQLiteDatabase(path)
    if url.startswith(("postgresql", "postgres")):
        from whatsagent.store.postgres import PostgresDatabase

        return PostgresDatabase(url)
    raise ConfigurationError(
        f"database {url!r} is not supported: use sqlite:///file.db or postgresql+psycopg://user@host/db"
    )


class _Write:
    __slots__ = ("fn", "future", "loop", "urgent")

    def __init__(
        self, fn: Operation[Any], future: asyncio.Future[Any], loop: asyncio.AbstractEventLoop, urgent: bool
    ) -> None:
        self.fn = fn
        self.future = future
        self.loop = loop
        self.urgent = urgent


class SQLiteDatabase(Database):
    """SQLite in WAL mode with ``synchronous=FULL`` (a commit survives power loss), one writer thread
    with group commit, and a small pool of reader threads (WAL lets them read while it writes).

    One process owns the file: a second server on the same file is refused at start-up (scale out on
    PostgreSQL instead)."""

    dialect = "sqlite"

    def __init__(self, path: str | os.PathLike[str], *, readers: int = 2) -> None:
        self.path = Path(path)
        self._readers = readers
        self._engine: Engine | None = None
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._reader_pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._lock_file: Any = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._take_ownership()
        engine = create_engine(f"sqlite:///{self.path}", poolclass=NullPool)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.execute("PRAGMA cache_size=-16000")
            cur.close()

        self._engine = engine
        await asyncio.to_thread(_migrate, engine)
        self._writer = threading.Thread(target=self._write_loop, name="whatsagent-sqlite-writer", daemon=True)
        self._writer.start()
        self._reader_pool = ThreadPoolExecutor(self._readers, thread_name_prefix="whatsagent-sqlite-reader")

    def _take_ownership(self) -> None:
        self._lock_file = own_file(
            str(self.path),
            f"{self.path} is already served by another whatsagent process. SQLite serves one "
            "process; to run several, use PostgreSQL (WHATSAGENT_DATABASE_URL=postgresql+psycopg://...).",
        )

    async def close(self) -> None:
        if self._writer is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._writer.join, 30)
            self._writer = None
        if self._reader_pool is not None:
            self._reader_pool.shutdown(wait=True)
            self._reader_pool = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    async def write(self, fn: Operation[T], *, urgent: bool = False) -> T:
        if self._writer is None:
            raise StoreUnavailable("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Write(fn, future, loop, urgent))
        return await future

    async def read(self, fn: Operation[T]) -> T:
        if self._reader_pool is None:
            raise StoreUnavailable("the store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader_pool, self._read, fn)

    def _read(self, fn: Operation[T]) -> T:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            assert self._engine is not None
            conn = self._local.conn = self._engine.connect()
        try:
            return fn(conn)
        finally:
            conn.rollback()

    # -- the writer thread --------------------------------------------------------------------------

    def _write_loop(self) -> None:
        """Commit what is waiting, urgent writes (acknowledgements) first, all of them in one batch, then
        up to `TURN_BATCH` of the others; and again. Each batch runs Python on this thread, which under load
        waits for the interpreter at every statement (the event loop holds it between its switches, 5 ms):
        so batches of turn-side writes stay small, and a webhook's commit waits for at most one of them."""
        assert self._engine is not None
        conn = self._engine.connect()
        urgent: list[_Write] = []
        waiting: collections.deque[_Write] = collections.deque()  # the others, in arrival order

        def take(item: _Write | None) -> bool:
            """Sort `item` in; False for the stop sign."""
            if item is None:
                return False
            (urgent if item.urgent else waiting).append(item)
            return True

        stopping = False
        try:
            while True:
                if not waiting and not stopping:
                    stopping = not take(self._queue.get())
                while not stopping:
                    try:
                        stopping = not take(self._queue.get_nowait())
                    except queue.Empty:
                        break
                for start in range(0, len(urgent), MAX_BATCH):
                    self._commit_batch(conn, urgent[start : start + MAX_BATCH])
                urgent.clear()
                if waiting:  # one batch of the others, even while webhooks keep coming: turns go on
                    self._commit_batch(conn, [waiting.popleft() for _ in range(min(TURN_BATCH, len(waiting)))])
                elif stopping:
                    return
        finally:
            conn.close()

    def _commit_batch(self, conn: Connection, batch: list[_Write]) -> None:
        done: list[tuple[_Write, Any, BaseException | None]] = []
        _begin(conn)
        try:
            for w in batch:
                done.append((w, w.fn(conn), None))
        except Exception:
            with contextlib.suppress(Exception):
                conn.rollback()
            # One operation raised: run each alone, so one bad write does not sink the others.
            self._resolve([self._commit_one(conn, w) for w in batch])
            return
        try:
            conn.commit()
        except Exception as exc:
            with contextlib.suppress(Exception):
                conn.rollback()
            # The commit itself failed (disk full, I/O error): nothing in the batch is durable.
            log.error("store commit failed for %d writes: %s", len(batch), exc)
            self._resolve([(w, None, _as_store_error(exc)) for w in batch])
            return
        self._resolve(done)

    def _commit_one(self, conn: Connection, w: _Write) -> tuple[_Write, Any, BaseException | None]:
        _begin(conn)
        try:
            result = w.fn(conn)
            conn.commit()
            return (w, result, None)
        except Exception as exc:
            with contextlib.suppress(Exception):
                conn.rollback()
            return (w, None, _as_store_error(exc))

    @staticmethod
    def _resolve(results: list[tuple[_Write, Any, BaseException | None]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Write, Any, BaseException | None]]] = {}
        for r in results:
            by_loop.setdefault(r[0].loop, []).append(r)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, items)


def _migrate(engine: Engine) -> None:
    from whatsagent.store.migrations import upgrade_connection

    with engine.connect() as conn:
        upgrade_connection(conn)


def _begin(conn: Connection) -> None:
    # Prepared statements write through the driver's cursor, so SQLAlchemy would not know a transaction
    # is open and its commit would do nothing: open it explicitly.
    if not conn.in_transaction():
        conn.begin()


def _settle(items: list[tuple[_Write, Any, BaseException | None]]) -> None:
    for w, result, error in items:
        if w.future.done():
            continue
        if error is not None:
            w.future.set_exception(error)
        else:
            w.future.set_result(result)


def _as_store_error(exc: Exception) -> BaseException:
    """Failures of the database itself become `StoreUnavailable`; a bug in an operation stays itself."""
    if isinstance(exc, (OperationalError, OSError)):
        failure = StoreUnavailable(f"the store could not commit: {exc}")
        failure.__cause__ = exc
        return failure
    return exc
