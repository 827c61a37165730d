"""The embedded work queue: asyncio workers in the serving process over the `jobs` table.

For SQLite on one machine (the store's flock makes it one process per file). Semantics are the seam's
(`whatsagent.queue.base`), checked by the same conformance tests as the procrastinate queue.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, delete, func, insert, or_, select, update

from whatsagent.queue.base import Handler, JobSpec, RetryPolicy, Wanted, WorkQueue
from whatsagent.store.database import Database, Prepared
from whatsagent.store.schema import jobs

log = logging.getLogger(__name__)

_ids = itertools.count(1)


@dataclass(eq=False)
class _Job:
    task: str
    args: dict[str, Any]
    lock: str
    queueing_lock: str | None
    scheduled_at: float
    attempts: int = 0
    row_id: int | None = None
    stored: asyncio.Future[None] | None = None
    seq: int = field(default_factory=lambda: next(_ids))


class EmbeddedQueue(WorkQueue):
    """Jobs in the `jobs` table, scheduled in memory by the one process that owns the database."""

    def __init__(self, db: Database, *, concurrency: int = 256, retry: RetryPolicy | None = None) -> None:
        self.db = db
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        self._handlers: Mapping[str, Handler] = {}
        self._lanes: dict[str, collections.deque[_Job]] = {}
        self._active: set[str] = set()
        self._waiting: collections.deque[str] = collections.deque()
        self._queued: dict[str, _Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._running = 0
        self._started = False
        self._stopping = False

    # -- public -------------------------------------------------------------------------------------

    async def start(self, handlers: Mapping[str, Handler], *, wanted: Wanted | None = None) -> None:
        # `wanted` is not swept periodically: every job is deferred by this process, in the moment it
        # commits the work, so none goes missing while it runs; a restart's recovery covers a crash.
        self._handlers = dict(handlers)
        rows = await self.db.read(_load_jobs)
        now = time.time()
        for row in rows:
            job = _Job(
                task=row.task,
                args=orjson.loads(row.args),
                lock=row.lock or f"job:{row.id}",
                queueing_lock=row.queueing_lock,
                scheduled_at=min(row.scheduled_at, now),
                attempts=row.attempts,
                row_id=row.id,
            )
            self._enqueue(job)
        if rows:
            log.info("resuming %d jobs left by the previous run", len(rows))
        self._started = True
        self._stopping = False
        for lock in list(self._lanes):
            self._try_start(lock)

    async def defer_many(self, specs: Sequence[JobSpec]) -> int:
        if not specs:
            return 0
        loop = asyncio.get_running_loop()
        now = time.time()
        added: list[_Job] = []
        for spec in specs:
            if spec.queueing_lock is not None and spec.queueing_lock in self._queued:
                continue
            job = _Job(
                task=spec.task,
                args=spec.args,
                lock=spec.lock or f"job:new:{next(_ids)}",
                queueing_lock=spec.queueing_lock,
                scheduled_at=now + spec.schedule_in,
                # A job the application recovers by itself after a restart needs no row (SQLite is this
                # process's alone): it is queued in memory, with no write to wait for nor delete after.
                stored=None if spec.recovered else loop.create_future(),
            )
            if job.queueing_lock is not None:
                self._queued[job.queueing_lock] = job
            added.append(job)
        if not added:
            return 0
        for job in added:
            self._enqueue(job)
        count = len(added)
        added = [job for job in added if job.stored is not None]
        if not added:
            return count
        try:
            ids = await self.db.write(_insert_jobs(added))
        except BaseException as exc:
            for job in added:
                self._forget(job)
                assert job.stored is not None
                job.stored.set_exception(exc)
                job.stored.exception()  # retrieved: nobody else awaits a job that was never stored
            raise
        for job, row_id in zip(added, ids, strict=True):
            job.row_id = row_id
            assert job.stored is not None
            job.stored.set_result(None)
        return count

    async def sweep(self, wanted: Sequence[JobSpec]) -> int:
        missing = [spec for spec in wanted if spec.lock is None or not self._busy(spec.lock)]
        if missing:
            log.warning("deferring %d jobs that were missing", len(missing))
        return await self.defer_many(missing)

    def _busy(self, lock: str) -> bool:
        """A job of this lock is waiting (due or not, being stored or retrying) or running."""
        return lock in self._active or bool(self._lanes.get(lock))

    async def stop(self, grace: float = 10.0) -> None:
        self._stopping = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("interrupted %d running jobs at shutdown; they resume at the next start", len(pending))
                await asyncio.gather(*pending, return_exceptions=True)
        self._started = False

    async def depth(self) -> int:
        return sum(len(q) for q in self._lanes.values()) + self._running

    # -- scheduling ---------------------------------------------------------------------------------

    def _enqueue(self, job: _Job) -> None:
        lane = self._lanes.get(job.lock)
        if lane is None:
            lane = self._lanes[job.lock] = collections.deque()
        lane.append(job)
        if self._started and len(lane) == 1:
            self._try_start(job.lock)

    def _forget(self, job: _Job) -> None:
        lane = self._lanes.get(job.lock)
        if lane is not None:
            with contextlib.suppress(ValueError):
                lane.remove(job)
            if not lane and job.lock not in self._active:
                del self._lanes[job.lock]
        if job.queueing_lock is not None and self._queued.get(job.queueing_lock) is job:
            del self._queued[job.queueing_lock]

    def _try_start(self, lock: str) -> None:
        if self._stopping or not self._started or lock in self._active:
            return
        lane = self._lanes.get(lock)
        if not lane:
            self._lanes.pop(lock, None)
            return
        head = lane[0]
        delay = head.scheduled_at - time.time()
        if delay > 0:
            if lock not in self._timers:
                loop = asyncio.get_running_loop()
                self._timers[lock] = loop.call_later(delay, self._wake, lock)
            return
        if self._running >= self.concurrency:
            self._waiting.append(lock)
            return
        lane.popleft()
        if head.queueing_lock is not None and self._queued.get(head.queueing_lock) is head:
            del self._queued[head.queueing_lock]
        self._active.add(lock)
        self._running += 1
        task = asyncio.get_running_loop().create_task(self._run(head), name=f"job:{head.task}:{lock}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _wake(self, lock: str) -> None:
        self._timers.pop(lock, None)
        self._try_start(lock)

    async def _run(self, job: _Job) -> None:
        requeued = False
        try:
            if job.stored is not None:
                await job.stored
            handler = self._handlers.get(job.task)
            if handler is None:
                raise LookupError(f"no handler for job task {job.task!r}")
            await handler(job.args)
        except asyncio.CancelledError:
            # Interrupted at shutdown: the row stays; the job runs again at the next start.
            raise
        except Exception as exc:
            job.attempts += 1
            if job.attempts >= self.retry.max_attempts:
                log.error("job %s (%s) failed %d times, giving up: %r", job.task, job.lock, job.attempts, exc)
                await self._finish(job)
            else:
                delay = self.retry.delay(job.attempts)
                log.warning(
                    "job %s (%s) failed (attempt %d), retrying in %.1fs: %r",
                    job.task,
                    job.lock,
                    job.attempts,
                    delay,
                    exc,
                )
                job.scheduled_at = time.time() + delay
                with contextlib.suppress(Exception):
                    await self.db.write(_reschedule(job))
                lane = self._lanes.setdefault(job.lock, collections.deque())
                lane.appendleft(job)
                requeued = True
        else:
            await self._finish(job)
        finally:
            self._active.discard(job.lock)
            self._running -= 1
            if not requeued and not self._lanes.get(job.lock):
                self._lanes.pop(job.lock, None)
            if not self._stopping:
                self._try_start(job.lock)
                while self._waiting and self._running < self.concurrency:
                    self._try_start(self._waiting.popleft())

    async def _finish(self, job: _Job) -> None:
        if job.row_id is not None:
            try:
                await self.db.write(_delete_job(job.row_id))
            except Exception as exc:  # the job ran; at worst it runs again after a restart (handlers are idempotent)
                log.error("could not delete finished job %s: %r", job.row_id, exc)


# -- store operations ---------------------------------------------------------------------------------


def _load_jobs(conn: Connection) -> list[Any]:
    return list(conn.execute(select(jobs).order_by(jobs.c.id)))


_INSERT_JOB = Prepared(
    insert(jobs)
    .values(
        task=bindparam("task"),
        args=bindparam("args"),
        lock=bindparam("lock"),
        queueing_lock=bindparam("queueing_lock"),
        status="todo",
        attempts=0,
        scheduled_at=bindparam("scheduled_at"),
        created_at=bindparam("created_at"),
    )
    .returning(jobs.c.id)
)
_DELETE_JOB = Prepared(delete(jobs).where(jobs.c.id == bindparam("id")))


def _insert_jobs(added: list[_Job]) -> Callable[[Connection], list[int]]:
    def op(conn: Connection) -> list[int]:
        now = time.time()
        return [
            int(
                _INSERT_JOB.first(
                    conn,
                    task=job.task,
                    args=orjson.dumps(job.args).decode(),
                    lock=job.lock,
                    queueing_lock=job.queueing_lock,
                    scheduled_at=job.scheduled_at,
                    created_at=now,
                )[0]
            )
            for job in added
        ]

    return op


def _delete_job(row_id: int) -> Callable[[Connection], None]:
    def op(conn: Connection) -> None:
        _DELETE_JOB.all(conn, id=row_id)

    return op


def _reschedule(job: _Job) -> Callable[[Connection], None]:
    def op(conn: Connection) -> None:
        if job.row_id is not None:
            conn.execute(
                update(jobs).where(jobs.c.id == job.row_id).values(attempts=job.attempts, scheduled_at=job.scheduled_at)
            )

    return op


def erase_jobs(conn: Connection, locks: Collection[str]) -> int:
    """Delete the jobs locked on these conversations (`whatsagent.lifecycle` erasing a user)."""
    return int(conn.execute(delete(jobs).where(or_(jobs.c.lock.in_(locks), jobs.c.queueing_lock.in_(locks)))).rowcount)


def queued_jobs(conn: Connection) -> int | None:
    """How many jobs this queue holds (queued or running: done ones are deleted); None where the store is
    not SQLite (PostgreSQL queues with procrastinate)."""
    if conn.dialect.name != "sqlite":
        return None
    return int(conn.execute(select(func.count()).select_from(jobs)).scalar_one())
