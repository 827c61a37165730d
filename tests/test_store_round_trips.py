"""What one answered message costs the store: the commits on its path, counted (load-independent).

Each commit is a round trip to the SQLite writer thread (or to PostgreSQL), so the hot path keeps them
few: the webhook's store, the lane's claim of the turn, the answer, the send's start (fenced), the send
recorded, and the turn finished in the same transaction that lets go of the lane or claims the next turn.
The sender's check of the 24-hour window before the answer's first part reads what the answer's own
transaction saw, instead of a read of its own (a hop to a reader thread).
A conversation's wake-up is not a row of its own (start-up recovery finds its work in the inbox).
"""

from __future__ import annotations

from typing import Any

from whatsagent.store.database import Database
from whatsagent.testing import BotHarness


def _count_writes(db: Database, monkeypatch: Any, method: str = "write") -> list[object]:
    calls: list[object] = []
    original = getattr(db, method)

    async def counted(fn: Any, **options: Any) -> Any:
        calls.append(fn)
        return await original(fn, **options)

    monkeypatch.setattr(db, method, counted)
    return calls


async def test_an_answered_message_costs_six_commits(tmp_path, echo, monkeypatch):
    async with BotHarness(echo, tmp_path) as bot:
        ana = bot.user("15551234567", name="Ana")
        await ana.send_text("warm up")
        await ana.wait_for_replies(1)
        await bot.idle()
        assert bot.os is not None and bot.os.db is not None
        writes = _count_writes(bot.os.db, monkeypatch)
        reads = _count_writes(bot.os.db, monkeypatch, "read")
        await ana.send_text("hello")
        await ana.wait_for_replies(2)
        assert [r.text for r in ana.replies] == ["echo: warm up", "echo: hello"]
        # The sender's look at the 24-hour window comes with the answer's transaction: no read of its own.
        assert reads == [], reads
        await bot.idle()
        assert len(writes) == 6, writes


async def test_a_lane_claims_its_next_turn_as_it_finishes_the_last(tmp_path, monkeypatch):
    import asyncio

    from whatsagent import TurnContext

    first_started = asyncio.Event()
    release = asyncio.Event()

    async def agent(ctx: TurnContext) -> str:
        if ctx.text == "one":
            first_started.set()
            await release.wait()
        return f"got {ctx.text}"

    async with BotHarness(agent, tmp_path) as bot:
        ana = bot.user("15551234567", name="Ana")
        assert bot.os is not None and bot.os.db is not None
        writes = _count_writes(bot.os.db, monkeypatch)
        await ana.send_text("one")
        await asyncio.wait_for(first_started.wait(), 30)
        await ana.send_text("two")  # waits in the inbox while the first turn thinks
        release.set()
        await ana.wait_for_replies(2)
        await bot.idle()
        assert [r.text for r in ana.replies] == ["got one", "got two"]
        # Two webhooks; the lane's claim; per turn its answer, send start, send recorded and finish (the
        # first turn's finish claims the second turn, the second's lets go of the lane); and the wake-up the
        # second webhook queued behind the running lane, which finds nothing left.
        assert len(writes) == 2 + 1 + 2 * 4 + 1, " ".join(getattr(w, "__qualname__", "?") for w in writes)


# Off the message path: the log line of a send that failed for good names the message it answered.
_MAY_SCAN = {"inbox._LAST_PROVIDER_ID"}


def test_no_statement_of_the_message_path_reads_a_whole_table(tmp_path):
    """Each turn's statements find their rows through an index: a full scan costs the writer thread time
    in proportion to everything ever stored (the inbox grows with every message)."""
    from sqlalchemy import create_engine

    from whatsagent import conversations, fence, history, identity, inbox, outbox, turns, window
    from whatsagent.store.database import Prepared
    from whatsagent.store.migrations import upgrade_connection

    engine = create_engine(f"sqlite:///{tmp_path / 'plans.db'}")
    scans: dict[str, list[str]] = {}
    checked = 0
    with engine.connect() as conn:
        upgrade_connection(conn)
        for module in (conversations, fence, history, identity, inbox, outbox, turns, window):
            for name, value in vars(module).items():
                if not isinstance(value, Prepared):
                    continue
                sql, _positions, _defaults = value._compiled(conn)
                if sql.startswith("SET "):
                    continue  # a PostgreSQL setting, no table read
                plan = conn.connection.execute("EXPLAIN QUERY PLAN " + sql, [None] * sql.count("?")).fetchall()
                checked += 1
                full = [
                    str(step[-1])
                    for step in plan
                    if str(step[-1]).startswith("SCAN ") and " INDEX " not in str(step[-1])
                ]
                if full:
                    scans[f"{module.__name__.rsplit('.', 1)[-1]}.{name}"] = full
    engine.dispose()
    assert checked > 30
    assert set(scans) <= _MAY_SCAN, scans
