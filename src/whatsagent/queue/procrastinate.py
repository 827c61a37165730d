"""The work queue on PostgreSQL with procrastinate: web and worker processes on many machines.

Each job is a procrastinate job in the ``whatsagent`` queue. `lock=` gives the FIFO and one-at-a-time
per conversation, `queueing_lock=` the single pending wake-up (a defer that procrastinate refuses with
`AlreadyEnqueued` is the no-op case), and a failing job is retried with the `RetryPolicy`'s backoff
keeping its id, hence its place in its lock's line.

Two periodic tasks keep the cluster whole, each run by one worker per tick:
- ``whatsagent.maintain``: jobs left ``doing`` by a worker that is gone go back to ``todo``; the turn
  state machine and the outbox's idempotency keys make the rerun resume where the dead worker stopped.
  "Gone" is proven by the database, never presumed from a late heartbeat: each worker's lane holder
  (`whatsagent.fence`) keeps an advisory lock on a connection of its own, and a job is run again only
  when no live holder vouches for its worker. A paused or starved worker keeps its jobs. It also keeps the
  jobs table's statistics fresh.
- ``whatsagent.sweep``: the jobs the application says should exist (`wanted`: a conversation with
  waiting messages or an open turn needs a wake-up) and that have no live job are deferred (`sweep`). This covers
  a web process that died between committing a webhook and deferring its wake-up, and a defer that
  failed while the database was unreachable.

A job that procrastinate would have to requeue while another job holds its queueing lock (a wake-up
deferred while this one ran) gives up its queueing lock first: the unique index on waiting queueing
locks would refuse the retry otherwise, leaving the job stuck in ``doing``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from procrastinate import App, PsycopgConnector, RetryDecision
from procrastinate import exceptions as procrastinate_errors
from procrastinate.jobs import Job
from procrastinate.manager import JobManager
from procrastinate.retry import BaseRetryStrategy
from procrastinate.worker import Worker
from sqlalchemy.engine import make_url

from whatsagent.errors import StoreUnavailable
from whatsagent.fence import LOCK_SPACE, Holder, PostgresHolder
from whatsagent.queue.base import Handler, JobSpec, RetryPolicy, Wanted, WorkQueue

log = logging.getLogger(__name__)

QUEUE = "whatsagent"
MAINTENANCE_TASK = "whatsagent.maintain"
SWEEP_TASK = "whatsagent.sweep"

MAINTENANCE_PRIORITY = 100
# The jobs table is analysed again once this many rows (or as many as it holds) changed since last time.
STATISTICS_MIN_CHANGES = 500


@dataclass(frozen=True)
class WorkerPolicy:
    """How a worker process takes and watches jobs."""

    poll_interval: float = 0.25
    """Seconds between two looks for due jobs when no notification came (retries and scheduled
    wake-ups are due without one; a lock released by a finished job too)."""
    heartbeat_interval: float = 5.0
    """Seconds between two heartbeats of a worker (procrastinate's bookkeeping; nothing is decided by it)."""
    stalled_after: float = 30.0
    """A worker row silent this long is deleted, but only once its holder is proven gone too."""
    sweep_interval: int = 10
    """Seconds between two runs of the periodic tasks (stalled jobs, conversations without a wake-up)."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    pool_size: int = 5
    """PostgreSQL connections of the queue per process (plus one listening for new jobs on workers)."""


def conninfo(url: str) -> str:
    """A libpq connection string from a SQLAlchemy URL (``postgresql+psycopg://`` → ``postgresql://``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class ProcrastinateQueue(WorkQueue):
    """Jobs in procrastinate's tables on PostgreSQL.

    `work`: whether this process runs jobs (a worker) or only defers them (a web process). `wanted`,
    given to `start`, lists the jobs that should exist (see the module docstring).
    """

    def __init__(
        self,
        url: str,
        *,
        work: bool = True,
        concurrency: int = 64,
        policy: WorkerPolicy | None = None,
        name: str | None = None,
        holder: Holder | None = None,
    ) -> None:
        self.url = url
        self.holder = holder
        self._own_holder = False
        self.work = work
        self.concurrency = concurrency
        self.policy = policy or WorkerPolicy()
        self._wanted: Wanted | None = None
        self.name = name or f"whatsagent-{socket.gethostname()}-{os.getpid()}"
        self.app: App | None = None
        self._worker: Worker | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # -- public -------------------------------------------------------------------------------------

    async def start(self, handlers: Mapping[str, Handler], *, wanted: Wanted | None = None) -> None:
        self._wanted = wanted
        connector = PsycopgConnector(
            conninfo=conninfo(self.url),
            min_size=1,
            max_size=self.policy.pool_size,
            kwargs={"application_name": self.name[:63]},
        )
        if self.work and self.holder is None:
            self.holder = PostgresHolder(self.url)
            await self.holder.start()
            self._own_holder = True
        app = App(connector=connector)
        app.job_manager = _JobManager(connector, self.holder)
        retry = _Backoff(self.policy.retry)
        for task_name, handler in handlers.items():
            app.task(name=task_name, queue=QUEUE, retry=retry)(_run_handler(handler))
        if self.work:
            every = f"*/{max(1, int(self.policy.sweep_interval))} * * * * *"
            # Ahead of any backlog: they are what clears it (a dead worker's jobs, a lost wake-up).
            maintain = app.task(
                name=MAINTENANCE_TASK, queue=QUEUE, queueing_lock=MAINTENANCE_TASK, priority=MAINTENANCE_PRIORITY
            )(self._maintain)
            app.periodic(cron=every)(maintain)
            sweep = app.task(name=SWEEP_TASK, queue=QUEUE, queueing_lock=SWEEP_TASK, priority=MAINTENANCE_PRIORITY)(
                self._sweep_wanted
            )
            app.periodic(cron=every)(sweep)
        try:
            await app.open_async()
        except procrastinate_errors.ConnectorException as exc:
            raise StoreUnavailable(f"the work queue cannot reach PostgreSQL: {exc}") from exc
        self.app = app
        if logging.getLogger("procrastinate").level == logging.NOTSET:
            # procrastinate logs two INFO lines per job; at hundreds of jobs a second that drowns the rest.
            logging.getLogger("procrastinate").setLevel(logging.WARNING)
        if not self.work:
            return
        self._stopping = asyncio.Event()
        self._run_task = asyncio.create_task(self._supervise(app), name=f"procrastinate worker {self.name}")
        self._run_task.add_done_callback(_log_worker_exit)

    async def _supervise(self, app: App) -> None:
        """Run the worker, and run it again if it stops by itself: procrastinate stops a worker whose
        heartbeat or listener lost the database (a PostgreSQL restart, a failover), which would leave
        this process up but idle."""
        delay = 1.0
        while not self._stopping.is_set():
            self._worker = worker = self._new_worker(app)
            vouched = set(self.holder.workers) if self.holder is not None else set()
            started = time.monotonic()
            try:
                await worker.run()
            except Exception as exc:
                log.error("the procrastinate worker failed: %r", exc)
            finally:
                # Its loop has ended, and with it every job it ran: one it could not mark done (the
                # database was gone) is no longer vouched for, so the maintenance task runs it again.
                if self.holder is not None:
                    for worker_id in self.holder.workers - vouched:
                        await self.holder.unbind_worker(worker_id)
            if self._stopping.is_set():
                return
            if time.monotonic() - started > 60:
                delay = 1.0
            log.error("the procrastinate worker stopped by itself; starting it again in %.0fs", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(30.0, delay * 2)

    def _new_worker(self, app: App) -> Worker:
        return Worker(
            app=app,
            queues=[QUEUE],
            name=self.name,
            concurrency=self.concurrency,
            fetch_job_polling_interval=self.policy.poll_interval,
            abort_job_polling_interval=max(5.0, self.policy.poll_interval),
            listen_notify=True,
            delete_jobs="successful",
            install_signal_handlers=False,
            update_heartbeat_interval=self.policy.heartbeat_interval,
            stalled_worker_timeout=self.policy.stalled_after,
        )

    async def defer_many(self, specs: Sequence[JobSpec]) -> int:
        app = self._require_app()
        added = 0
        plain: list[Job] = []
        try:
            for spec in specs:
                job = self._job(app, spec)
                if spec.queueing_lock is None:
                    plain.append(job)
                    continue
                if plain:  # keep the deferral order: what came before goes in first
                    added += len(await app.job_manager.batch_defer_jobs_async(plain))
                    plain = []
                try:
                    await app.job_manager.defer_job_async(job)
                    added += 1
                except procrastinate_errors.AlreadyEnqueued:
                    pass  # a wake-up is already waiting: it will see what this one would have
            if plain:
                added += len(await app.job_manager.batch_defer_jobs_async(plain))
        except procrastinate_errors.ConnectorException as exc:
            raise StoreUnavailable(f"could not defer jobs: {exc}") from exc
        return added

    async def stop(self, grace: float = 10.0) -> None:
        worker, run_task = self._worker, self._run_task
        self._worker = self._run_task = None
        self._stopping.set()
        if worker is not None and run_task is not None and not run_task.done():
            # Running jobs get `grace` seconds; the rest are interrupted and go back to `todo`
            # (the retry strategy requeues a job cancelled at shutdown at once).
            worker.shutdown_graceful_timeout = grace
            worker.stop()
            try:
                await asyncio.wait_for(asyncio.shield(run_task), grace + 15)
            except TimeoutError:
                log.error("the procrastinate worker did not stop within %.0fs; cancelling it", grace + 15)
                run_task.cancel()
                await asyncio.gather(run_task, return_exceptions=True)
            except Exception:
                pass  # already logged by _log_worker_exit
        if self.app is not None:
            await self.app.close_async()
            self.app = None
        if self._own_holder and self.holder is not None:
            await self.holder.stop()
            self.holder = None
            self._own_holder = False

    async def depth(self) -> int:
        """Application jobs waiting or running (the queue's own periodic tasks left out)."""
        app = self._require_app()
        row = await app.connector.execute_query_one_async(
            query="SELECT count(*) AS n FROM procrastinate_jobs WHERE queue_name = %(queue)s "
            "AND status IN ('todo', 'doing') AND task_name <> ALL(%(internal)s)",
            queue=QUEUE,
            internal=[MAINTENANCE_TASK, SWEEP_TASK],
        )
        return int(row["n"])

    # -- periodic tasks -----------------------------------------------------------------------------

    async def _maintain(self, timestamp: int) -> None:
        await self._retry_orphans()
        await self._refresh_statistics()

    async def _retry_orphans(self) -> None:
        """Run again the jobs whose worker is proven gone: no live lane holder vouches for it."""
        app = self._require_app()
        manager = app.job_manager
        orphans = await app.connector.execute_query_all_async(query=_ORPHANED_JOBS, queue=QUEUE)
        for row in orphans:
            log.warning(
                "job %s[%s] (lock %s) was running on a worker that is gone: running it again",
                row["task_name"],
                row["id"],
                row["lock"],
            )
            try:
                await app.connector.execute_query_async(query=_DROP_QUEUEING_LOCK, job_id=row["id"])
                await manager.retry_job_by_id_async(row["id"], retry_at=_in(0.0))
            except procrastinate_errors.ConnectorException as exc:
                log.info("job %s was retried meanwhile: %s", row["id"], exc)  # another worker got there first
        await manager.prune_stalled_workers(self.policy.stalled_after)
        await app.connector.execute_query_async(query=_PRUNE_HOLDERS)
        await app.connector.execute_query_async(query=_PRUNE_VOUCHING)

    async def _refresh_statistics(self) -> None:
        """ANALYZE the jobs table once a good share of it changed. Its size swings from empty to thousands
        of jobs within seconds, faster than autovacuum's minute: on statistics from an emptier moment,
        PostgreSQL sorted every waiting job on each fetch (90 ms with 1,000 waiting, measured here)
        instead of walking the priority index to the first one (0.1 ms)."""
        app = self._require_app()
        row = await app.connector.execute_query_one_async(
            query="SELECT n_mod_since_analyze AS changed, n_live_tup AS live FROM pg_stat_user_tables "
            "WHERE relid = 'procrastinate_jobs'::regclass"
        )
        if row is None or row["changed"] < max(STATISTICS_MIN_CHANGES, row["live"]):
            return
        try:
            await app.connector.execute_query_async(query="ANALYZE procrastinate_jobs")
        except procrastinate_errors.ConnectorException as exc:  # not the table's owner: autovacuum will do
            log.debug("could not analyze procrastinate_jobs: %s", exc)

    async def _sweep_wanted(self, timestamp: int) -> None:
        if self._wanted is not None:
            await self.sweep(await self._wanted())

    async def sweep(self, wanted: Sequence[JobSpec]) -> int:
        if not wanted:
            return 0
        app = self._require_app()
        locks = [spec.lock for spec in wanted if spec.lock is not None]
        rows = await app.connector.execute_query_all_async(
            query="SELECT DISTINCT lock FROM procrastinate_jobs "
            "WHERE lock = ANY(%(locks)s) AND status IN ('todo', 'doing')",
            locks=locks,
        )
        busy = {row["lock"] for row in rows}
        missing = [spec for spec in wanted if spec.lock is None or spec.lock not in busy]
        if not missing:
            return 0
        log.warning("deferring %d jobs that were missing (a process died before deferring?)", len(missing))
        return await self.defer_many(missing)

    # -- helpers ------------------------------------------------------------------------------------

    def _job(self, app: App, spec: JobSpec) -> Job:
        schedule_at = _in(spec.schedule_in) if spec.schedule_in > 0 else None
        return app.configure_task(
            spec.task,
            allow_unknown=True,
            queue=QUEUE,
            lock=spec.lock,
            queueing_lock=spec.queueing_lock,
            schedule_at=schedule_at,
            task_kwargs=spec.args,
        ).job

    def _require_app(self) -> App:
        if self.app is None:
            raise StoreUnavailable("the work queue is not started")
        return self.app


def _run_handler(handler: Handler) -> Callable[..., Awaitable[None]]:
    async def run(**args: Any) -> None:
        await handler(args)

    return run


def _log_worker_exit(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the procrastinate worker stopped", exc_info=task.exception())


class _Backoff(BaseRetryStrategy):
    """The `RetryPolicy` as procrastinate's retry strategy. A job interrupted at shutdown is requeued
    at once: it did not fail, the process stopped under it."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if isinstance(exception, (asyncio.CancelledError, procrastinate_errors.JobAborted)):
            return RetryDecision(retry_at=_in(0.0))
        attempt = job.attempts + 1
        if attempt >= self.policy.max_attempts:
            log.error(
                "job %s[%s] (lock %s) failed %d times, giving up: %r",
                job.task_name,
                job.id,
                job.lock,
                attempt,
                exception,
            )
            return None
        delay = self.policy.delay(attempt)
        log.warning(
            "job %s[%s] (lock %s) failed (attempt %d), retrying in %.1fs: %r",
            job.task_name,
            job.id,
            job.lock,
            attempt,
            delay,
            exception,
        )
        return RetryDecision(retry_at=_in(delay))


def _in(seconds: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)


# A worker is alive while a lane holder that vouches for it keeps its advisory lock (`whatsagent.fence`).
_VOUCHED = (
    "EXISTS (SELECT 1 FROM lane_workers lw WHERE lw.worker_id = {worker} "
    f"AND NOT pg_try_advisory_xact_lock_shared({LOCK_SPACE}, lw.holder))"
)
_ORPHANED_JOBS = (
    "SELECT j.id, j.task_name, j.lock FROM procrastinate_jobs j "
    "WHERE j.queue_name = %(queue)s AND j.status = 'doing' "
    f"AND (j.worker_id IS NULL OR NOT {_VOUCHED.format(worker='j.worker_id')}) ORDER BY j.id"
)
_DROP_QUEUEING_LOCK = (
    "UPDATE procrastinate_jobs SET queueing_lock = NULL WHERE id = %(job_id)s AND status = 'doing' "
    "AND queueing_lock IS NOT NULL"
)
_PRUNE_WORKERS = (
    "DELETE FROM procrastinate_workers w "
    "WHERE w.last_heartbeat < now() - make_interval(secs => %(seconds)s) "
    f"AND NOT {_VOUCHED.format(worker='w.id')} RETURNING w.id AS worker_id"
)
# Holders gone for a minute, and the vouching of workers that are gone: nothing refers to them any more
# but lanes they held (which are free anyway).
_PRUNE_HOLDERS = (
    "DELETE FROM lane_holders h WHERE h.started_at < extract(epoch from now()) - 60 "
    f"AND pg_try_advisory_xact_lock_shared({LOCK_SPACE}, h.id)"
)
_PRUNE_VOUCHING = (
    "DELETE FROM lane_workers lw WHERE NOT EXISTS (SELECT 1 FROM procrastinate_workers w WHERE w.id = lw.worker_id)"
)


class _JobManager(JobManager):
    """Workers are registered with the lane holder that proves them alive, and only workers proven gone
    are pruned. A retried job gives up its queueing lock: another job may hold it already (see module
    doc)."""

    def __init__(self, connector: PsycopgConnector, holder: Holder | None) -> None:
        super().__init__(connector)
        self.holder = holder

    async def register_worker(self) -> int:
        worker_id = await super().register_worker()
        if self.holder is not None:
            await self.holder.bind_worker(worker_id)
        return worker_id

    async def prune_stalled_workers(self, seconds_since_heartbeat: float) -> list[int]:
        rows = await self.connector.execute_query_all_async(query=_PRUNE_WORKERS, seconds=seconds_since_heartbeat)
        return [row["worker_id"] for row in rows]

    async def retry_job(
        self,
        job: Job,
        retry_at: datetime.datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        lock: str | None = None,
    ) -> None:
        if job.queueing_lock is not None:
            await self.connector.execute_query_async(
                query="UPDATE procrastinate_jobs SET queueing_lock = NULL WHERE id = %(job_id)s AND status = 'doing'",
                job_id=job.id,
            )
        await super().retry_job(job, retry_at=retry_at, priority=priority, queue=queue, lock=lock)
