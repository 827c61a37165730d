"""Scale-out: answered messages per second with 1, 2 and 4 worker processes on PostgreSQL.

    python -m benchmarks scale-out [--workers 1,2,4] [--latency 0,0.2] [--messages 1500] [--concurrency 64]

Each run starts a fresh database, 2 web processes behind a round-robin load balancer and N workers
(``whatsagent serve --role``, the bot of `tests/scale_out_app.py`), then has distinct users each send one
message through the emulator, 64 webhooks in flight, and times the first send to the last answer
accepted by the emulator. Everything shares this machine: the emulator, the load balancer and the
users run in this process, PostgreSQL next to them; `nproc` bounds what more workers can add. Needs
PostgreSQL: ``WHATSAGENT_BENCH_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the cluster harness and the bot it serves

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _fresh_database(server: str, name: str) -> str:
    import psycopg
    from sqlalchemy.engine import make_url

    from whatsagent.queue.procrastinate import conninfo

    with psycopg.connect(conninfo(server), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def _drop_database(server: str, name: str) -> None:
    import psycopg

    from whatsagent.queue.procrastinate import conninfo

    with psycopg.connect(conninfo(server), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def run_once(
    server: str, workers: int, latency: float, messages: int, concurrency: int, pool: int
) -> dict[str, float]:
    from scale_out_cluster import Cluster

    name = f"whatsagent_bench_{os.getpid()}_{workers}_{int(latency * 1000)}"
    url = _fresh_database(server, name)
    try:
        with tempfile.TemporaryDirectory() as directory:
            async with Cluster(
                url,
                Path(directory),
                webs=2,
                workers=workers,
                model_latency=(latency, latency),
                concurrency=concurrency,
                # Meta's top throughput tier: the benchmark measures whatsagent, not the default tier's pacing.
                env={
                    "WHATSAGENT_DB_POOL_SIZE": str(pool),
                    "WHATSAGENT_DB_MAX_OVERFLOW": "0",
                    "SCALE_SEND_RATE": "1000",
                },
            ) as cluster:
                emulator = cluster.emulator
                users = [emulator.user(f"1999{i:07d}") for i in range(messages)]
                sent_at: dict[str, float] = {}
                slots = asyncio.Semaphore(64)

                async def send(i: int) -> None:
                    async with slots:
                        sent_at[users[i].key] = time.perf_counter()
                        delivery = await users[i].send_text(f"message {i}")
                        if delivery.status != 200:
                            raise RuntimeError(f"webhook answered {delivery.status}: {delivery.body}")

                started = time.perf_counter()
                await asyncio.gather(*(send(i) for i in range(messages)))
                acked = time.perf_counter()
                deadline = time.monotonic() + 600
                while sum(1 for u in users if u.replies) < messages:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"only {sum(1 for u in users if u.replies)} of {messages} answered")
                    await asyncio.sleep(0.05)
                finished = max(u.replies[0].time for u in users)
                # Emulator timestamps are wall-clock; convert the send times to the same clock.
                offset = time.time() - time.perf_counter()
                latencies = sorted(u.replies[0].time - (sent_at[u.key] + offset) for u in users)
                elapsed = finished - (started + offset)
                return {
                    "answered_per_s": messages / elapsed,
                    "acked_per_s": messages / (acked - started),
                    "p50": statistics.median(latencies),
                    "p95": latencies[int(len(latencies) * 0.95) - 1],
                    "elapsed": elapsed,
                }
    finally:
        _drop_database(server, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4", help="worker process counts to try")
    parser.add_argument("--latency", default="0,0.2", help="model latencies in seconds")
    parser.add_argument("--messages", type=int, default=1500, help="messages (one per user) per run")
    parser.add_argument("--concurrency", type=int, default=64, help="turns one worker runs at once")
    parser.add_argument("--pool", type=int, default=8, help="store connections per process")
    args = parser.parse_args()
    server = os.environ.get("WHATSAGENT_BENCH_POSTGRES_URL", DEFAULT_URL)
    print(f"{os.cpu_count()} cores; 2 web processes; {args.messages} messages per run; concurrency {args.concurrency}")
    print(f"{'model':>8} {'workers':>7} {'answered/s':>11} {'acked/s':>8} {'p50 s':>6} {'p95 s':>6}")
    for latency in (float(x) for x in args.latency.split(",")):
        for workers in (int(x) for x in args.workers.split(",")):
            result = asyncio.run(run_once(server, workers, latency, args.messages, args.concurrency, args.pool))
            print(
                f"{latency * 1000:>6.0f}ms {workers:>7} {result['answered_per_s']:>11.0f} "
                f"{result['acked_per_s']:>8.0f} {result['p50']:>6.2f} {result['p95']:>6.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
