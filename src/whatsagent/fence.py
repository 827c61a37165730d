"""Who may run a conversation's turn: decided by the database, never by a clock.

A conversation's lane is owned by one *holder* at a time: a serving process that runs turns. Claiming the
lane bumps its fencing token (`lanes.token`). Every write a turn makes (its state, the answer, outbox
rows, history) runs in a transaction that first checks, under a row lock, that the token is still the one
it claimed with; every send first checks that and that its holder still lives. A worker that was paused,
starved or cut off and comes back late finds the token moved on: it can neither write nor send.

A lane held by another holder is claimed only once the database proves that holder gone:
- on PostgreSQL each holder keeps a session-level advisory lock on its id for as long as its connection
  lives (`PostgresHolder`). PostgreSQL drops it when that connection dies: at once for a killed process,
  after TCP keepalives give up (about 15 s) for a vanished machine. A paused process (SIGSTOP) keeps its
  connection, hence its lanes: it is slow, not dead, and nobody answers its conversations behind its back.
  Its conversations wait for it; correctness never rests on a heartbeat being on time.
- on SQLite one process owns the file (an flock), so the current process's holder is the only live one
  (`ProcessHolder`).

Procrastinate's stalled-job recovery rests on the same proof (`whatsagent.queue.procrastinate`):
a job is run again only when its worker's holder is gone.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, delete, text

from whatsagent.errors import StoreUnavailable, WhatsAgentError
from whatsagent.store.database import Database, Prepared
from whatsagent.store.schema import lanes

log = logging.getLogger(__name__)

T = TypeVar("T")

# First key of the advisory locks holders keep on PostgreSQL (the second is the holder's id): "wa\x00\x01".
LOCK_SPACE = 0x77610001


class FenceLost(WhatsAgentError):
    """Another holder claimed the lane (or this process lost its database session): the turn stops and
    writes and sends nothing more; the lane's new owner carries on from what was committed."""


@dataclass(frozen=True)
class Lease:
    """A claim on a conversation's lane: valid while `lanes.token` is still `token`."""

    conversation: str
    holder: int
    token: int


def _alive(dialect: str, holder: str) -> str:
    """SQL that is true while `holder` (a column or parameter) lives.

    PostgreSQL: a holder keeps an exclusive advisory lock on (LOCK_SPACE, id) on its own connection; a
    shared try-lock fails exactly while it does. (When it succeeds, the holder is gone, and the shared lock
    lasts until the end of this transaction: harmless, ids are never reused.) SQLite: only this process's
    holder (`:me`) lives."""
    if dialect == "postgresql":
        taken = f"pg_try_advisory_xact_lock_shared({LOCK_SPACE}, CAST({holder} AS integer))"
        return f"(CASE WHEN {holder} IS NULL THEN false ELSE NOT {taken} END)"
    return f"({holder} IS NOT NULL AND {holder} = :me)"


_ENSURE = Prepared(
    lambda d: text(
        "INSERT INTO lanes (conversation, holder, token) VALUES (:conversation, NULL, 0) ON CONFLICT DO NOTHING"
    )
)
_OWNER = Prepared(
    lambda d: text(
        f"SELECT holder, token, {_alive(d, 'holder')}, {_alive(d, ':me')} FROM lanes "
        "WHERE conversation = :conversation" + (" FOR UPDATE" if d == "postgresql" else "")
    )
)
_TAKE = Prepared(
    text("UPDATE lanes SET holder = :me, token = :token, claimed_at = :now WHERE conversation = :conversation")
)
_TOKEN = Prepared(
    lambda d: text(
        "SELECT token FROM lanes WHERE conversation = :conversation" + (" FOR SHARE" if d == "postgresql" else "")
    )
)
_VERIFY = Prepared(
    lambda d: text(
        f"SELECT token, {_alive(d, ':me')} FROM lanes WHERE conversation = :conversation"
        + (" FOR SHARE" if d == "postgresql" else "")
    )
)
_RELEASE = Prepared(
    text("UPDATE lanes SET holder = NULL WHERE conversation = :conversation AND token = :token AND holder = :me")
)


def acquire(conn: Connection, conversation: str, holder: int) -> Lease | None:
    """Claim the conversation's lane for `holder`: a new lease with the next token, or None while another
    live holder owns it (that owner takes whatever waits before it lets go). Raises `StoreUnavailable`
    when `holder` itself is gone (its database session died): it must not claim anything until it is back."""
    _ENSURE.all(conn, conversation=conversation)
    owner, token, owner_alive, me_alive = _OWNER.first(conn, conversation=conversation, me=holder)
    if not me_alive:  # a passing state: the holder registers anew, and the job is retried
        raise StoreUnavailable(f"lane holder {holder} lost its database session; it cannot claim lanes until back")
    if owner is not None and owner != holder and owner_alive:
        return None
    token = int(token) + 1
    _TAKE.all(conn, conversation=conversation, me=holder, token=token, now=time.time())
    return Lease(conversation, holder, token)


def guard(conn: Connection, lease: Lease) -> None:
    """Raise `FenceLost` unless `lease` still owns its lane. On PostgreSQL the row stays share-locked to
    the end of the transaction, so no claim can slip in between this check and the commit."""
    found = _TOKEN.first(conn, conversation=lease.conversation)
    if found is None or int(found[0]) != lease.token:
        raise FenceLost(f"the lane of {lease.conversation!r} was claimed by another holder (token {lease.token})")


def verify(conn: Connection, lease: Lease) -> None:
    """`guard`, and that the lease's holder still lives: what a send checks before it goes out."""
    found = _VERIFY.first(conn, conversation=lease.conversation, me=lease.holder)
    if found is None or int(found[0]) != lease.token:
        raise FenceLost(f"the lane of {lease.conversation!r} was claimed by another holder (token {lease.token})")
    if not found[1]:
        raise FenceLost(f"holder {lease.holder} lost its database session while owning {lease.conversation!r}")


def fenced(lease: Lease | None, op: Callable[[Connection], T]) -> Callable[[Connection], T]:
    """`op` in a transaction that first checks `lease` (no lease: unfenced, for writes outside a lane)."""
    if lease is None:
        return op

    def run(conn: Connection) -> T:
        guard(conn, lease)
        return op(conn)

    return run


def release(conn: Connection, lease: Lease) -> None:
    """Let go of the lane (a no-op if it was claimed by another meanwhile)."""
    _RELEASE.all(conn, conversation=lease.conversation, token=lease.token, me=lease.holder)


def erase(conn: Connection, conversations: Collection[str]) -> int:
    """Delete these conversations' lanes (`whatsagent.lifecycle`): a turn of theirs running right now is
    fenced off, it writes and sends nothing more."""
    return int(conn.execute(delete(lanes).where(lanes.c.conversation.in_(conversations))).rowcount)


class Holder(abc.ABC):
    """This process, as an owner of lanes. `running` is the conversations this process runs right now:
    the database tells holders apart, this set tells two tasks of one process apart."""

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.workers: set[int] = set()
        """The work-queue workers this holder vouches for."""

    @property
    @abc.abstractmethod
    def id(self) -> int:
        """The current holder id; raises `StoreUnavailable` while this process has no live one."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    async def bind_worker(self, worker_id: int) -> None:  # noqa: B027 (only PostgreSQL's holder vouches for workers)
        """Vouch for a work-queue worker of this process: its jobs are not run again while we live."""

    async def unbind_worker(self, worker_id: int) -> None:  # noqa: B027
        """Stop vouching for a worker whose loop has ended: jobs it left `doing` may be run again."""


def _name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:255]


_NEW_HOLDER = Prepared(text("INSERT INTO lane_holders (name, started_at) VALUES (:name, :now) RETURNING id"))


class ProcessHolder(Holder):
    """SQLite: the one process that owns the database file. Every earlier holder died with its process."""

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
        self._id: int | None = None

    @property
    def id(self) -> int:
        if self._id is None:
            raise StoreUnavailable("this process holds no lanes yet (not started)")
        return self._id

    async def start(self) -> None:
        self._id = int((await self.db.write(lambda conn: _NEW_HOLDER.first(conn, name=_name(), now=time.time())))[0])

    async def stop(self) -> None:
        self._id = None


@dataclass(frozen=True)
class HolderPolicy:
    """How a PostgreSQL holder keeps, and watches, the session that proves it alive."""

    ping_interval: float = 2.0
    """Seconds between two checks that the session lives (a lost one is replaced by a new holder)."""
    ping_timeout: float = 5.0
    keepalive_idle: int = 5
    """TCP keepalives on both ends: a machine that vanished is declared gone after idle + interval·count s."""
    keepalive_interval: int = 2
    keepalive_count: int = 3


class PostgresHolder(Holder):
    """A dedicated PostgreSQL connection holding an advisory lock on this holder's id.

    If the connection is lost (PostgreSQL restarted, the network cut), the lock is gone with it and every
    lease taken under it is fenced off: a new connection registers a new holder for new claims."""

    def __init__(self, url: str, policy: HolderPolicy | None = None) -> None:
        super().__init__()
        self.url = url
        self.policy = policy or HolderPolicy()
        self._conn: Any = None
        self._id: int | None = None
        self._watch: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def id(self) -> int:
        if self._id is None:
            raise StoreUnavailable("this worker's database session that proves it alive is down; reconnecting")
        return self._id

    async def start(self) -> None:
        await self._connect()
        self._watch = asyncio.create_task(self._keep(), name="whatsagent lane holder")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        await self._drop()

    async def bind_worker(self, worker_id: int) -> None:
        self.workers.add(worker_id)
        async with self._lock:
            if self._conn is not None and self._id is not None:
                await self._vouch(self._conn, self._id, [worker_id])

    async def unbind_worker(self, worker_id: int) -> None:
        self.workers.discard(worker_id)
        async with self._lock:
            if self._conn is not None:
                with contextlib.suppress(Exception):  # a lost session vouches for nobody anyway
                    await self._conn.execute("DELETE FROM lane_workers WHERE worker_id = %s", (worker_id,))

    @staticmethod
    async def _vouch(conn: Any, holder: int, workers: list[int]) -> None:
        for worker_id in workers:
            await conn.execute(
                "INSERT INTO lane_workers (worker_id, holder) VALUES (%s, %s) "
                "ON CONFLICT (worker_id) DO UPDATE SET holder = excluded.holder",
                (worker_id, holder),
            )

    async def _connect(self) -> None:
        import psycopg

        from whatsagent.queue.procrastinate import conninfo

        p = self.policy
        try:
            conn = await psycopg.AsyncConnection.connect(
                conninfo(self.url),
                autocommit=True,
                connect_timeout=5,
                application_name="whatsagent-holder",
                keepalives=1,
                keepalives_idle=p.keepalive_idle,
                keepalives_interval=p.keepalive_interval,
                keepalives_count=p.keepalive_count,
            )
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"cannot open the lane holder's session: {exc}") from exc
        try:
            # PostgreSQL's side of the keepalives: it notices a vanished peer, and drops its locks, in seconds.
            await conn.execute(f"SET tcp_keepalives_idle = {int(p.keepalive_idle)}")
            await conn.execute(f"SET tcp_keepalives_interval = {int(p.keepalive_interval)}")
            await conn.execute(f"SET tcp_keepalives_count = {int(p.keepalive_count)}")
            cur = await conn.execute(
                "INSERT INTO lane_holders (name, started_at) VALUES (%s, %s) RETURNING id",
                (_name(), time.time()),
            )
            row = await cur.fetchone()
            assert row is not None
            holder = int(row[0])
            await conn.execute("SELECT pg_advisory_lock(%s::integer, %s::integer)", (LOCK_SPACE, holder))
            # Named after the holder: an operator (or a test) finds the session that keeps it alive.
            await conn.execute(f"SET application_name = 'whatsagent-holder-{holder}'")
            await self._vouch(conn, holder, sorted(self.workers))  # a new holder vouches for the old one's workers
        except BaseException:
            await conn.close()
            raise
        self._conn, self._id = conn, holder
        log.debug("lane holder %d registered", holder)

    async def _let_go_of_stale_lanes(self) -> None:
        """Lanes this holder owns but no task of this process runs (a release that failed with the store
        down): let go, so that a wake-up on another worker does not leave them to an owner that is not
        coming. Also proves the session alive. A conversation claimed while this runs was added to
        `running` first, so it is never let go of by mistake."""
        assert self._conn is not None
        await self._conn.execute(
            "UPDATE lanes SET holder = NULL WHERE holder = %s AND NOT (conversation = ANY(%s))",
            (self._id, sorted(self.running)),
        )

    async def _drop(self) -> None:
        conn, self._conn, self._id = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _keep(self) -> None:
        delay = 0.5
        while True:
            await asyncio.sleep(self.policy.ping_interval)
            if self._conn is not None:
                try:
                    async with self._lock:
                        await asyncio.wait_for(self._let_go_of_stale_lanes(), self.policy.ping_timeout)
                    continue
                except Exception as exc:
                    log.error("lane holder %s lost its database session (%r): its lanes are fenced off", self._id, exc)
                    await self._drop()
            try:
                await self._connect()
                log.info("lane holder %d registered after the database came back", self._id)
                delay = 0.5
            except Exception as exc:
                log.warning("lane holder cannot reach the database yet: %s", exc)
                await asyncio.sleep(delay)
                delay = min(10.0, delay * 2)


def holder_for(db: Database, url: str, policy: HolderPolicy | None = None) -> Holder:
    """The holder for this store: a PostgreSQL session, or this process on SQLite."""
    return PostgresHolder(url, policy) if db.shared else ProcessHolder(db)
