"""Scaled out: 2 web and 3 worker processes on PostgreSQL answer 200 users, each message once, in order,
though Meta redelivers and a worker is killed with kill -9 in the middle of turns."""

from __future__ import annotations

import asyncio
import collections
import random
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from scale_out_cluster import Cluster, in_flight, turn_events
from whatsagent.store.migrations import sync_url

USERS = 200
MESSAGES = 5


def lines_of(replies) -> list[str]:  # type: ignore[no-untyped-def]
    """What the echo model answered, message by message: 'echo: a | b' covers messages a and b."""
    return [line for reply in replies for line in (reply.text or "").removeprefix("echo: ").split(" | ")]


@pytest.mark.timeout(900)
async def test_web_and_worker_processes_answer_every_message_once_in_order_through_a_worker_crash(
    postgres_url: str, tmp_path: Path
):
    turn_log = tmp_path / "turns.log"
    async with Cluster(
        postgres_url, tmp_path, webs=2, workers=3, model_latency=(0.05, 0.6), turn_log=turn_log
    ) as cluster:
        emulator = cluster.emulator
        emulator.faults.duplicate_webhooks(0.05, seed=7)  # Meta's concurrent duplicate deliveries
        emulator.statuses = "sent"  # what tells a resumed turn that its last send went through
        users = [emulator.user(f"1555{i:07d}", name=f"user {i}") for i in range(USERS)]
        sent_ids: list[str] = []
        redelivered = 0
        refused: set[int] = set()

        async def converse(i: int) -> None:
            nonlocal redelivered
            rng = random.Random(i)
            await asyncio.sleep(rng.uniform(0, 2.0))
            for j in range(MESSAGES):
                delivery = await users[i].send_text(f"u{i} m{j}")
                assert delivery.message_id is not None
                if not delivery.ok:  # Meta redelivers it later, perhaps after the next message
                    refused.add(i)
                sent_ids.append(delivery.message_id)
                if rng.random() < 0.1:  # the byte-identical webhook again, to either web process
                    await emulator.redeliver(delivery.message_id)
                    redelivered += 1
                if rng.random() < 0.05 and len(sent_ids) > 1:  # re-batched with someone else's message
                    await emulator.redeliver(delivery.message_id, batch_with=[rng.choice(sent_ids[:-1])])
                    redelivered += 1
                await asyncio.sleep(rng.uniform(0, 0.4))

        async def kill_a_worker_mid_turn() -> tuple[int, set[int]]:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                events = turn_events(turn_log)
                finished = sum(1 for _, event, _ in events if event == "end")
                running = in_flight(events)
                candidates = [p for p in cluster.worker_processes if running.get(p.pid)]
                if finished >= 100 and candidates:
                    victim = max(candidates, key=lambda p: len(running[p.pid]))
                    cluster.kill(victim)
                    # Read again after the kill: a turn may have finished between the look and the kill.
                    return victim.pid, set(in_flight(turn_events(turn_log)).get(victim.pid, set()))
                await asyncio.sleep(0.02)
            raise AssertionError("no worker was ever mid-turn")

        started = time.monotonic()
        killer = asyncio.create_task(kill_a_worker_mid_turn())
        await asyncio.gather(*(converse(i) for i in range(USERS)))
        victim, interrupted = await killer

        def answered(i: int) -> bool:
            return len(lines_of(users[i].replies)) >= MESSAGES

        deadline = time.monotonic() + 600  # a guard against a hang, not a latency target
        while not all(answered(i) for i in range(USERS)):
            if time.monotonic() > deadline:
                missing = [i for i in range(USERS) if not answered(i)]
                pytest.fail(f"{len(missing)} users not fully answered, e.g. {missing[:5]}\n{cluster.logs()}")
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        await cluster.wait_idle(postgres_url)  # nothing left that could send a duplicate
        await emulator.settle()

        for i, user in enumerate(users):
            written = [f"u{i} m{j}" for j in range(MESSAGES)]
            got = lines_of(user.replies)
            # A refused webhook reaches the bot only when Meta redelivers it: once each, in arrival order.
            assert (sorted(got) if i in refused else got) == written, f"user {i} got {[r.text for r in user.replies]}"
        keys = collections.Counter(r.callback_data for user in users for r in user.replies)
        assert [k for k, n in keys.items() if n > 1] == [], "no outbox row was sent twice"

        events = turn_events(turn_log)
        finished_elsewhere = {turn for pid, event, turn in events if event == "end" and pid != victim}
        assert interrupted, "the killed worker was in the middle of turns"
        assert interrupted <= finished_elsewhere, "its interrupted turns were answered by the other workers"

        engine = create_engine(sync_url(postgres_url))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM inbox")).scalar() == USERS * MESSAGES
            assert conn.execute(text("SELECT count(*) FROM inbox WHERE turn_id IS NULL")).scalar() == 0
            assert conn.execute(text("SELECT count(*) FROM turns WHERE status <> 'sent'")).scalar() == 0
            stuck = conn.execute(
                text("SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'conversation.wake'")
            ).scalar()  # finished jobs are deleted: none left waiting, running or failed
            assert stuck == 0
            # Sends the killed worker made but never recorded, which status webhooks proved went out.
            confirmed = conn.execute(
                text("SELECT count(*) FROM outbox WHERE status = 'sent' AND provider_message_id IS NULL")
            ).scalar()
        engine.dispose()
        print(
            f"\n{USERS * MESSAGES} messages ({redelivered} redelivered) answered in {elapsed:.1f}s by "
            f"{len({t for _, _, t in events})} turns; worker {victim} killed with {len(interrupted)} turns in flight, "
            f"{confirmed} of its sends confirmed by status webhooks instead of sent again"
        )
