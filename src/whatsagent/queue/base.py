"""The work queue seam: durable jobs, at most one running per lock, in the order they were deferred.

Two implementations pass the same conformance tests (`tests/test_workqueue_conformance.py`):
`EmbeddedQueue` (`whatsagent.queue.embedded`: asyncio workers in the serving process over the `jobs`
table, for SQLite on one machine) and `ProcrastinateQueue` (`whatsagent.queue.procrastinate`, on
PostgreSQL) for web and worker processes on many machines.

Semantics, as procrastinate's:
- `lock`: jobs sharing a lock run one at a time, first deferred first run (a conversation's turns).
- `queueing_lock`: while a job with this queueing lock is waiting (not yet running), deferring another
  is a no-op (one pending wake-up per conversation; messages that arrive meanwhile join it).
- a job whose handler raises is retried with exponential backoff, keeping its place in its lock's line;
  after `max_attempts` it is dropped and logged.
- jobs are durable: a job deferred and not finished when the process dies runs again after a restart
  (a job deferred with `recovered=True` because the application's start-up recovery defers it again).
- `sweep`: of the jobs the application says should exist (a wake-up per conversation with work), those
  whose lock has no job waiting or running are deferred. Given `wanted` at `start`, a queue whose jobs
  can go missing between processes sweeps by itself while it runs (procrastinate: a web process that
  died between committing a webhook and deferring its wake-up); the embedded queue defers in the very
  process that committed, so its start-up recovery is all the sweeping it needs.
"""

from __future__ import annotations

import abc
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Handler = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class JobSpec:
    task: str
    args: dict[str, Any]
    lock: str | None = None
    queueing_lock: str | None = None
    schedule_in: float = 0.0
    recovered: bool = False
    """The application finds this job again by itself after a restart (`recover` at a worker's start: a
    conversation's wake-up is found from its waiting messages and open turn), so a queue that owns its
    process's jobs (the embedded one) may keep it in memory only, without a row to write and delete.
    Queues shared between processes (procrastinate) store it like any other."""


Wanted = Callable[[], Awaitable[Sequence[JobSpec]]]
"""The jobs that should exist now (read from the application's own tables)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for failing jobs: base·2^attempt seconds with ±25% jitter, capped."""

    max_attempts: int = 8
    base: float = 1.0
    cap: float = 300.0

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.base * 2 ** max(0, attempt - 1)) * random.uniform(0.75, 1.25)


class WorkQueue(abc.ABC):
    """Where turns, sends and memory jobs wait to run."""

    @abc.abstractmethod
    async def start(self, handlers: Mapping[str, Handler], *, wanted: Wanted | None = None) -> None:
        """Run jobs with these handlers (task name → handler) until `stop`. Jobs left unfinished by a
        previous process are run again. With `wanted`, a queue whose jobs can go missing between
        processes `sweep`s what it returns periodically while it runs jobs."""

    @abc.abstractmethod
    async def defer_many(self, specs: Sequence[JobSpec]) -> int:
        """Store jobs durably; return how many were added (queueing locks skip some)."""

    async def defer(
        self,
        task: str,
        args: dict[str, Any],
        *,
        lock: str | None = None,
        queueing_lock: str | None = None,
        schedule_in: float = 0.0,
    ) -> bool:
        """Store one job durably; False when a waiting job already holds `queueing_lock`."""
        return bool(await self.defer_many([JobSpec(task, args, lock, queueing_lock, schedule_in)])) > 0

    @abc.abstractmethod
    async def sweep(self, wanted: Sequence[JobSpec]) -> int:
        """Defer those of `wanted` whose lock has no job waiting or running (a job without a lock is
        always deferred); return how many were added."""

    @abc.abstractmethod
    async def stop(self, grace: float = 10.0) -> None:
        """Stop starting jobs; let running ones finish for up to `grace` seconds, then interrupt them
        (they run again after the next start)."""

    @abc.abstractmethod
    async def depth(self) -> int:
        """Jobs waiting or running."""
