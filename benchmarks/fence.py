"""What owning a lane by fence costs a turn, per store operation, on SQLite and PostgreSQL.

    python -m benchmarks fence [--rounds 2000]

A one-message, one-part turn adds to what it did before: claiming the lane (3 statements in the wake's
first transaction), a token check in each of its writes (answer, finish, the last look for more work:
1 statement each), one transaction per send (the check that the lease still owns the lane and that its
holder lives, and marking the row as attempted: 2 statements), and letting go (1 statement, in the last
look's transaction). Each figure is the mean wall time of one `Database.write` of that operation, run
back to back, next to a plain write of the same size for comparison. PostgreSQL from
``WHATSAGENT_BENCH_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``);
SQLite in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


async def _measure(db: Any, op: Callable[[Any], Any], rounds: int) -> float:
    for _ in range(min(50, rounds)):
        await db.write(op)
    started = time.perf_counter()
    for _ in range(rounds):
        await db.write(op)
    return (time.perf_counter() - started) / rounds * 1e6


async def _suite(db: Any, holder: Any, rounds: int) -> dict[str, float]:
    from whatsagent import fence

    lease = await db.write(lambda conn: fence.acquire(conn, "bench|lease", holder.id))
    assert lease is not None
    plain = text("SELECT 1")
    return {
        "plain write (SELECT 1)": await _measure(db, lambda conn: conn.execute(plain), rounds),
        "claim the lane (acquire)": await _measure(
            db, lambda conn: fence.acquire(conn, f"bench|{holder.id}", holder.id), rounds
        ),
        "token check in a write (guard)": await _measure(
            db, fence.fenced(lease, lambda conn: conn.execute(plain)), rounds
        ),
        "before a send (verify)": await _measure(db, lambda conn: fence.verify(conn, lease), rounds),
        "let go (release)": await _measure(db, lambda conn: fence.release(conn, lease), rounds),
    }


async def _run(url: str, rounds: int) -> dict[str, float]:
    from whatsagent.fence import holder_for
    from whatsagent.store.database import open_database

    db = open_database(url)
    await db.start()
    holder = holder_for(db, url)
    await holder.start()
    try:
        return await _suite(db, holder, rounds)
    finally:
        await holder.stop()
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["SQLite"] = asyncio.run(_run(f"sqlite:///{Path(tmp) / 'fence.db'}", args.rounds))
    server = os.environ.get("WHATSAGENT_BENCH_POSTGRES_URL", DEFAULT_URL)
    try:
        import psycopg

        from whatsagent.queue.procrastinate import conninfo
        from whatsagent.store.migrations import upgrade

        name = f"whatsagent_bench_fence_{os.getpid()}"
        with psycopg.connect(conninfo(server), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        from sqlalchemy.engine import make_url

        url = make_url(server).set(database=name).render_as_string(hide_password=False)
        try:
            upgrade(url)
            results["PostgreSQL"] = asyncio.run(_run(url, args.rounds))
        finally:
            with psycopg.connect(conninfo(server), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception as exc:  # no PostgreSQL here: the SQLite figures still stand
        print(f"(PostgreSQL skipped: {exc})")
    print(f"{'µs per Database.write':34}" + "".join(f"{k:>12}" for k in results))
    for row in next(iter(results.values())):
        print(f"{row:34}" + "".join(f"{results[k][row]:>12.0f}" for k in results))


if __name__ == "__main__":
    main()
