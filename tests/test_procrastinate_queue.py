"""What the PostgreSQL side does beyond the common conformance suite: it recovers from processes that
die and from PostgreSQL going away.

A job left running by a worker that stopped sending heartbeats runs again elsewhere; a conversation
whose wake-up was never deferred (its web process died right after the commit) is woken by the sweep;
a worker and the store carry on once PostgreSQL is back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from whatsagent.conversations import WAKE_TASK, conversation_key
from whatsagent.errors import StoreUnavailable
from whatsagent.inbox import Inbox
from whatsagent.messages import Text, User
from whatsagent.queue import JobSpec, RetryPolicy, WorkQueue
from whatsagent.queue.procrastinate import ProcrastinateQueue, WorkerPolicy
from whatsagent.roles import Role, start_work
from whatsagent.store.migrations import sync_url, upgrade
from whatsagent.store.postgres import PostgresDatabase

FAST = WorkerPolicy(
    poll_interval=0.05, heartbeat_interval=0.2, stalled_after=1.0, sweep_interval=1, retry=RetryPolicy(base=0.1)
)


@pytest.fixture
async def migrated(postgres_url: str) -> AsyncIterator[str]:
    await asyncio.to_thread(upgrade, postgres_url)
    yield postgres_url


async def eventually(condition: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what}")
        await asyncio.sleep(0.05)


def execute(url: str, sql: str) -> Any:
    from sqlalchemy import create_engine, text

    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql))
            return result.scalar() if result.returns_rows else None
    finally:
        engine.dispose()


async def test_a_job_left_running_by_a_dead_worker_runs_again_first_in_its_line(migrated: str):
    # A worker that died an hour ago in the middle of a job: its heartbeat stopped, its job is `doing`,
    # and the conversation's next wake-up waits behind it.
    dead = execute(
        migrated, "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 hour') RETURNING id"
    )
    for n, status, worker in ((1, "doing", dead), (2, "todo", "NULL")):
        execute(
            migrated,
            "INSERT INTO procrastinate_jobs (queue_name, task_name, lock, queueing_lock, args, status, worker_id) "
            f"""VALUES ('whatsagent', 'conversation.wake', 'c|1', 'c|1', '{{"n": {n}}}', '{status}', {worker})""",
        )
    ran: list[int] = []

    async def wake(args: dict[str, Any]) -> None:
        ran.append(args["n"])

    queue = ProcrastinateQueue(migrated, policy=FAST)
    await queue.start({"conversation.wake": wake})
    try:
        await eventually(lambda: len(ran) == 2, what=f"both jobs ran: {ran}")
        assert ran == [1, 2], "the dead worker's job kept its place at the head of the conversation's line"
        await eventually(
            lambda: execute(migrated, f"SELECT count(*) FROM procrastinate_workers WHERE id = {dead}") == 0,
            what="the dead worker was pruned",
        )
    finally:
        await queue.stop(1.0)


class DeferFails(WorkQueue):
    """A web process that dies between its commit and its defer."""

    async def start(self, handlers: Any, *, wanted: Any = None) -> None:
        pass

    async def defer_many(self, specs: Sequence[JobSpec]) -> int:
        raise StoreUnavailable("the process died before deferring")

    async def sweep(self, wanted: Sequence[JobSpec]) -> int:
        raise StoreUnavailable("the process died before deferring")

    async def stop(self, grace: float = 10.0) -> None:
        pass

    async def depth(self) -> int:
        return 0


async def test_a_conversation_whose_wake_up_was_lost_is_woken_by_the_sweep(migrated: str):
    db = PostgresDatabase(migrated)
    await db.start()
    try:
        user = User(wa_id="15551234567")
        # The message is stored (the webhook is acknowledged); its wake-up is lost.
        box = Inbox(db, DeferFails())
        accepted = await box.accept([Text(channel="cloudapi", account="1", id="wamid.1", user=user, body="hi")])
        assert accepted.messages == 1
        await box.drain()
        woken: list[str] = []

        async def wake(args: dict[str, Any]) -> None:
            woken.append(args["conversation"])

        queue = ProcrastinateQueue(migrated, policy=FAST)

        async def no_recovery() -> None:  # leave the finding to the sweep, not the start-up recovery
            pass

        await start_work(queue, Role.WORKER, db, {WAKE_TASK: wake}, recover=no_recovery)
        try:
            await eventually(lambda: woken == [conversation_key("cloudapi", user.key)], what="the sweep woke it")
            # This handler leaves the message waiting, so later sweeps (every second here) wake the
            # conversation again, one wake-up at a time: only ever this conversation.
            assert set(woken) == {conversation_key("cloudapi", user.key)}
        finally:
            await queue.stop(1.0)
    finally:
        await db.close()


async def test_the_worker_carries_on_after_postgresql_drops_its_connections(migrated: str):
    ran: list[int] = []

    async def handler(args: dict[str, Any]) -> None:
        ran.append(args["n"])

    queue = ProcrastinateQueue(migrated, policy=FAST)
    await queue.start({"t": handler})
    try:
        await queue.defer("t", {"n": 1})
        await eventually(lambda: ran == [1], what="the first job ran")
        # PostgreSQL goes away for a while (a restart, a failover): connections drop, new ones are refused.
        database = migrated.rsplit("/", 1)[1]
        server = migrated.rsplit("/", 1)[0] + "/postgres"
        execute(server, f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        execute(
            server,
            f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{database}'",
        )
        await asyncio.sleep(2.0)
        execute(server, f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        deadline = time.monotonic() + 20
        while True:
            try:
                await queue.defer("t", {"n": 2})
                break
            except StoreUnavailable:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        await eventually(lambda: 2 in ran, timeout=30, what="a job deferred after the outage ran")
    finally:
        await queue.stop(1.0)


async def test_the_store_answers_unavailable_once_then_reconnects_after_postgresql_drops_it(migrated: str):
    from sqlalchemy import text

    db = PostgresDatabase(migrated)
    await db.start()
    try:
        assert await db.write(lambda conn: conn.execute(text("SELECT 1")).scalar()) == 1
        database = migrated.rsplit("/", 1)[1]
        server = migrated.rsplit("/", 1)[0] + "/postgres"
        execute(server, f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{database}'")
        outcomes = []
        for _ in range(3):
            try:
                outcomes.append(await db.write(lambda conn: conn.execute(text("SELECT 2")).scalar()))
            except StoreUnavailable:  # a webhook would answer 503 and be redelivered
                outcomes.append("unavailable")
        assert outcomes[-1] == 2, outcomes
        assert outcomes.count("unavailable") <= 1, outcomes
    finally:
        await db.close()
