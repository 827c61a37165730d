"""Both work queues keep the same promises: the embedded one on SQLite, procrastinate on PostgreSQL.

A conversation's jobs run one at a time in the order they were deferred; one wake-up waits at most;
a failing job is retried with backoff without losing its place; nothing deferred is lost by a restart;
and a stop lets running jobs finish for a grace period, interrupting (and later resuming) the rest.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from whatsagent.queue import EmbeddedQueue, Handler, JobSpec, RetryPolicy, WorkQueue
from whatsagent.store.database import SQLiteDatabase

RETRY = RetryPolicy(max_attempts=4, base=0.2, cap=2.0)


class Subject:
    """A work queue under test, restartable on the same storage."""

    def __init__(self, kind: str, directory: Path, url: str | None) -> None:
        self.kind = kind
        self.directory = directory
        self.url = url
        self.queue: WorkQueue | None = None
        self._db: SQLiteDatabase | None = None

    async def start(self, handlers: dict[str, Handler]) -> WorkQueue:
        queue: WorkQueue
        if self.kind == "embedded":
            self._db = SQLiteDatabase(self.directory / "queue.db")
            await self._db.start()
            queue = EmbeddedQueue(self._db, concurrency=16, retry=RETRY)
        else:
            from whatsagent.queue.procrastinate import ProcrastinateQueue, WorkerPolicy

            assert self.url is not None
            policy = WorkerPolicy(poll_interval=0.05, retry=RETRY, pool_size=3)
            queue = ProcrastinateQueue(self.url, concurrency=16, policy=policy)
        await queue.start(handlers)
        self.queue = queue
        return queue

    async def stop(self, grace: float = 5.0) -> None:
        if self.queue is not None:
            await self.queue.stop(grace)
            self.queue = None
        if self._db is not None:
            await self._db.close()
            self._db = None


@pytest.fixture(params=["embedded", "procrastinate"])
async def subject(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Subject]:
    url = None
    if request.param == "procrastinate":
        from whatsagent.store.migrations import upgrade

        url = request.getfixturevalue("postgres_url")
        await asyncio.to_thread(upgrade, url)
    s = Subject(request.param, tmp_path, url)
    try:
        yield s
    finally:
        await s.stop(grace=0.5)


async def eventually(condition: Callable[[], bool], timeout: float = 90.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what}")
        await asyncio.sleep(0.02)


async def test_jobs_sharing_a_lock_run_one_at_a_time_in_the_order_they_were_deferred(subject: Subject):
    running: collections.Counter[str] = collections.Counter()
    overlap: list[str] = []
    order: dict[str, list[int]] = collections.defaultdict(list)

    async def handler(args: dict[str, Any]) -> None:
        lock = args["lock"]
        running[lock] += 1
        if running[lock] > 1:
            overlap.append(lock)
        await asyncio.sleep(random.uniform(0, 0.02))
        order[lock].append(args["i"])
        running[lock] -= 1

    queue = await subject.start({"t": handler})
    for i in range(12):
        for lock in ("conv-a", "conv-b"):
            await queue.defer("t", {"i": i, "lock": lock}, lock=lock)
    await eventually(lambda: sum(map(len, order.values())) == 24, what=f"24 jobs ran, got {dict(order)}")
    assert order["conv-a"] == list(range(12))
    assert order["conv-b"] == list(range(12))
    assert overlap == [], "two jobs of one lock never run at once"


async def test_jobs_of_different_locks_run_at_the_same_time(subject: Subject):
    started: set[str] = set()
    all_started = asyncio.Event()

    async def handler(args: dict[str, Any]) -> None:
        started.add(args["lock"])
        if len(started) == 3:
            all_started.set()
        await asyncio.wait_for(all_started.wait(), 10)

    queue = await subject.start({"t": handler})
    for lock in ("a", "b", "c"):
        await queue.defer("t", {"lock": lock}, lock=lock)
    await asyncio.wait_for(all_started.wait(), 10)


async def test_one_wake_up_waits_at_most_and_deferring_while_one_runs_adds_one(subject: Subject):
    runs: list[int] = []
    started: asyncio.Queue[int] = asyncio.Queue()
    release = asyncio.Event()

    async def wake(args: dict[str, Any]) -> None:
        runs.append(args["n"])
        await started.put(args["n"])
        await asyncio.wait_for(release.wait(), 20)

    queue = await subject.start({"wake": wake})
    assert await queue.defer("wake", {"n": 1}, lock="conv", queueing_lock="conv")
    assert await asyncio.wait_for(started.get(), 10) == 1
    # The first one runs: a new wake-up may wait behind it...
    assert await queue.defer("wake", {"n": 2}, lock="conv", queueing_lock="conv")
    # ...but only one: the rest are no-ops, in a batch or alone.
    assert not await queue.defer("wake", {"n": 3}, lock="conv", queueing_lock="conv")
    assert (
        await queue.defer_many(
            [
                JobSpec("wake", {"n": 4}, lock="conv", queueing_lock="conv"),
                JobSpec("wake", {"n": 5}, lock="conv", queueing_lock="other"),
                JobSpec("wake", {"n": 6}, lock="conv", queueing_lock="other"),
            ]
        )
        == 1
    )
    release.set()
    await eventually(lambda: len(runs) == 3, what=f"runs {runs}")
    await asyncio.sleep(0.3)
    assert runs == [1, 2, 5]


async def test_a_failed_job_is_retried_with_backoff_and_keeps_its_place(subject: Subject):
    attempts: collections.Counter[int] = collections.Counter()
    at: dict[int, list[float]] = collections.defaultdict(list)
    done: list[int] = []

    async def handler(args: dict[str, Any]) -> None:
        i = args["i"]
        attempts[i] += 1
        at[i].append(time.monotonic())
        if i == 0 and attempts[i] < 3:
            raise RuntimeError("a transient failure")
        done.append(i)

    queue = await subject.start({"t": handler})
    for i in range(3):
        await queue.defer("t", {"i": i}, lock="conv")
    await eventually(lambda: len(done) == 3, what=f"3 jobs done, got {done}")
    assert done == [0, 1, 2], "the jobs behind the failing one waited for it"
    assert attempts == {0: 3, 1: 1, 2: 1}
    first_wait = at[0][1] - at[0][0]
    second_wait = at[0][2] - at[0][1]
    assert first_wait >= 0.2 * 0.75 - 0.01, "the first retry waited base·2⁰ (±25%)"
    assert second_wait >= 0.4 * 0.75 - 0.01, "the second retry waited base·2¹ (±25%)"
    assert at[1][0] > at[0][2]


async def test_a_job_failing_every_time_is_dropped_and_its_lock_moves_on(subject: Subject):
    attempts: collections.Counter[int] = collections.Counter()
    done: list[int] = []

    async def handler(args: dict[str, Any]) -> None:
        attempts[args["i"]] += 1
        if args["i"] == 0:
            raise RuntimeError("a permanent failure")
        done.append(args["i"])

    queue = await subject.start({"t": handler})
    await queue.defer("t", {"i": 0}, lock="conv")
    await queue.defer("t", {"i": 1}, lock="conv")
    await eventually(lambda: done == [1], timeout=15, what=f"job 1 ran after job 0 gave up: {done}")
    assert attempts[0] == RETRY.max_attempts


async def test_a_failing_wake_up_is_retried_though_another_waits_with_its_queueing_lock(subject: Subject):
    runs: list[int] = []
    started = asyncio.Event()
    release = asyncio.Event()

    async def wake(args: dict[str, Any]) -> None:
        runs.append(args["n"])
        if args["n"] == 1 and runs.count(1) == 1:
            started.set()
            await asyncio.wait_for(release.wait(), 20)
            raise RuntimeError("the model timed out")

    queue = await subject.start({"wake": wake})
    await queue.defer("wake", {"n": 1}, lock="conv", queueing_lock="conv")
    await asyncio.wait_for(started.wait(), 10)
    assert await queue.defer("wake", {"n": 2}, lock="conv", queueing_lock="conv")
    release.set()
    await eventually(lambda: runs == [1, 1, 2], what=f"runs {runs}")


async def test_jobs_deferred_before_a_stop_run_after_the_next_start(subject: Subject):
    ran: list[tuple[str, int]] = []

    async def handler(args: dict[str, Any]) -> None:
        ran.append((args["lock"], args["i"]))

    queue = await subject.start({"t": handler})
    await queue.defer_many(
        [JobSpec("t", {"lock": f"c{i % 2}", "i": i}, lock=f"c{i % 2}", schedule_in=0.8) for i in range(6)]
    )
    await subject.stop()
    assert ran == []
    queue = await subject.start({"t": handler})
    await eventually(lambda: len(ran) == 6, what=f"6 jobs ran after the restart: {ran}")
    assert [i for lock, i in ran if lock == "c0"] == [0, 2, 4]
    assert [i for lock, i in ran if lock == "c1"] == [1, 3, 5]
    # The last job's handler has returned; its bookkeeping follows.
    while await queue.depth() != 0:
        await asyncio.sleep(0.02)


async def test_stop_lets_running_jobs_finish_within_the_grace_period_and_resumes_the_rest(subject: Subject):
    runs: collections.Counter[str] = collections.Counter()
    finished: list[str] = []

    async def handler(args: dict[str, Any]) -> None:
        name = args["name"]
        runs[name] += 1
        if name == "quick":
            await asyncio.sleep(0.3)
        elif runs[name] == 1:
            await asyncio.sleep(60)
        finished.append(name)

    queue = await subject.start({"t": handler})
    await queue.defer("t", {"name": "quick"}, lock="a")
    await queue.defer("t", {"name": "slow"}, lock="b")
    await eventually(lambda: runs["quick"] == 1 and runs["slow"] == 1, what="both started")
    started = time.monotonic()
    await subject.stop(grace=1.0)
    assert time.monotonic() - started < 6.0
    assert finished == ["quick"], "the quick job finished within the grace period; the slow one did not"
    await subject.start({"t": handler})
    await eventually(lambda: "slow" in finished, what="the interrupted job ran again after the restart")
    assert runs == {"quick": 1, "slow": 2}


async def test_a_sweep_defers_only_the_wanted_jobs_whose_lock_has_none_waiting_or_running(subject: Subject):
    ran: list[str] = []
    started = asyncio.Event()
    release = asyncio.Event()

    async def handler(args: dict[str, Any]) -> None:
        ran.append(args["name"])
        if args["name"] == "running":
            started.set()
            await asyncio.wait_for(release.wait(), 20)

    queue = await subject.start({"t": handler})
    await queue.defer("t", {"name": "running"}, lock="busy")
    await asyncio.wait_for(started.wait(), 10)
    await queue.defer("t", {"name": "waiting"}, lock="queued", schedule_in=600)
    wanted = [
        JobSpec("t", {"name": "busy again"}, lock="busy"),
        JobSpec("t", {"name": "queued again"}, lock="queued"),
        JobSpec("t", {"name": "lost"}, lock="lost", queueing_lock="lost"),
        JobSpec("t", {"name": "unlocked"}),
    ]
    assert await queue.sweep(wanted) == 2, "a running or waiting job covers its lock; the others are deferred"
    await eventually(lambda: {"lost", "unlocked"} <= set(ran), what=f"the swept jobs ran: {ran}")
    release.set()
    # Only the job scheduled for later is left once the running one's bookkeeping is done.
    while await queue.depth() != 1:
        await asyncio.sleep(0.02)
    assert await queue.sweep([JobSpec("t", {"name": "busy again"}, lock="busy")]) == 1, "its lock is free now"
    await eventually(lambda: "busy again" in ran, what=f"the swept job ran: {ran}")
    assert sorted(ran) == ["busy again", "lost", "running", "unlocked"]
    assert await queue.sweep([]) == 0


async def test_a_job_the_application_recovers_keeps_its_place_in_its_lock_and_its_queueing_lock(subject: Subject):
    ran: list[str] = []
    release = asyncio.Event()

    async def handler(args: dict[str, Any]) -> None:
        ran.append(args["name"])
        if args["name"] == "first":
            await asyncio.wait_for(release.wait(), 20)

    queue = await subject.start({"t": handler})
    await queue.defer("t", {"name": "first"}, lock="conv")
    await eventually(lambda: ran == ["first"], what=f"the first job started: {ran}")
    wake = JobSpec("t", {"name": "wake"}, lock="conv", queueing_lock="conv", recovered=True)
    assert await queue.defer_many([wake]) == 1
    assert await queue.defer_many([wake]) == 0, "one waits at most with its queueing lock"
    await queue.defer("t", {"name": "last"}, lock="conv")
    release.set()
    await eventually(lambda: len(ran) == 3, what=f"every job ran: {ran}")
    assert ran == ["first", "wake", "last"]


async def test_the_embedded_queue_writes_no_row_for_a_job_the_application_recovers(tmp_path: Path):
    from whatsagent.queue.embedded import queued_jobs

    db = SQLiteDatabase(tmp_path / "queue.db")
    await db.start()
    queue = EmbeddedQueue(db, retry=RETRY)
    ran: list[int] = []

    async def handler(args: dict[str, Any]) -> None:
        ran.append(args["i"])

    try:
        await queue.start({"t": handler})
        later = [JobSpec("t", {"i": i}, lock=f"c{i}", schedule_in=600, recovered=True) for i in range(3)]
        assert await queue.defer_many([*later, JobSpec("t", {"i": 9}, lock="c9", schedule_in=600)]) == 4
        assert await db.read(queued_jobs) == 1, "only the job the application does not recover is stored"
        assert await queue.depth() == 4
        assert await queue.defer_many([JobSpec("t", {"i": 5}, lock="c5", recovered=True)]) == 1
        await eventually(lambda: ran == [5], what=f"the in-memory job ran: {ran}")
        assert await db.read(queued_jobs) == 1
    finally:
        await queue.stop(0.5)
        await db.close()
