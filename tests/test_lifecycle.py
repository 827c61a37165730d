"""Data lifecycle on both engines: erase one user everywhere (operator API and CLI), and a retention
policy that deletes what is older than N days while the bot keeps answering."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, insert, select, text, update
from typer.testing import CliRunner

from fakes import media_files
from whatsagent.cli import app as cli_app
from whatsagent.lifecycle import RetentionPolicy, apply_retention
from whatsagent.media.store import FileMediaStore
from whatsagent.store.schema import conversations, history, inbox, lanes, memories, outbox, turns, user_identities
from whatsagent.testing import BotHarness

ANA, BEA = "15551230001", "15551230002"
TOKEN = "lifecycle-token"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bot.db'}"
    return str(request.getfixturevalue("postgres_url"))


def harness(agent: Any, tmp_path: Path, database: str, **options: Any) -> BotHarness:
    bot = BotHarness(agent, tmp_path, api_token=TOKEN, media_store=FileMediaStore(tmp_path / "media"), **options)
    bot.database = database
    return bot


async def rows_about(bot: BotHarness, user: str) -> dict[str, int]:
    assert bot.os is not None and bot.os.db is not None

    def op(conn: Any) -> dict[str, int]:
        key = f"%|{user}"
        return {
            "conversations": len(conn.execute(select(conversations.c.key).where(conversations.c.key.like(key))).all()),
            "inbox": len(conn.execute(select(inbox.c.seq).where(inbox.c.conversation.like(key))).all()),
            "turns": len(conn.execute(select(turns.c.id).where(turns.c.conversation.like(key))).all()),
            "history": len(conn.execute(select(history.c.id).where(history.c.conversation.like(key))).all()),
            "outbox": len(conn.execute(select(outbox.c.id).where(outbox.c.conversation.like(key))).all()),
            "memories": len(conn.execute(select(memories.c.id).where(memories.c.user_ref == user)).all()),
            "lanes": len(conn.execute(select(lanes.c.conversation).where(lanes.c.conversation.like(key))).all()),
            "identities": len(
                conn.execute(select(user_identities.c.identifier).where(user_identities.c.user_key == user)).all()
            ),
        }

    return await bot.os.db.read(op)


async def converse(bot: BotHarness, wa_id: str) -> None:
    user = bot.user(wa_id)
    await user.send_text(f"hello from {wa_id}")
    await user.wait_for_replies(1, timeout=30)
    await user.send_image(media_files.image_bytes("PNG", 30 + int(wa_id[-1]), 30), "image/png")
    await user.wait_for_replies(2, timeout=30)
    assert bot.os is not None and bot.os.db is not None
    now = time.time()
    await bot.os.db.write(
        lambda conn: conn.execute(
            insert(memories).values(
                agent="echo", user_ref=wa_id, fact="likes tea", source="tool", created_at=now, updated_at=now
            )
        )
    )


async def test_erasing_a_user_removes_every_row_and_medium_of_theirs_and_nothing_of_anyone_else(
    tmp_path, database, echo
):
    async with harness(echo, tmp_path, database) as bot:
        await converse(bot, ANA)
        await converse(bot, BEA)
        media = tmp_path / "media"
        before = {p.name for p in media.glob("??/*.json")}
        assert len(before) == 2
        beas = await rows_about(bot, BEA)
        assert beas["inbox"] == 2 and beas["outbox"] >= 2 and beas["memories"] == 1
        assert beas["lanes"] == 1 and beas["identities"] >= 1
        async with aiohttp.ClientSession(base_url=bot.url) as http:
            async with http.delete(f"/users/{ANA}") as r:
                assert r.status == 401
            async with http.delete(f"/users/+{ANA}", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                assert r.status == 200
                erased = (await r.json())["erased"]
        assert erased["conversations"] == 1 and erased["inbox"] == 2 and erased["memories"] == 1
        assert erased["media"] == 1
        assert set((await rows_about(bot, ANA)).values()) == {0}
        assert await rows_about(bot, BEA) == beas
        assert len(list(media.glob("??/*.json"))) == 1, "Bea's picture is kept"
        # the erased user can start again, as a new conversation
        ana = bot.user(ANA)
        await ana.send_text("I am back")
        await ana.wait_for_replies(3, timeout=30)


def test_the_cli_erases_a_user_from_a_stopped_bots_sqlite_database(tmp_path, echo):
    database = f"sqlite:///{tmp_path / 'bot.db'}"

    async def setup() -> None:
        async with harness(echo, tmp_path, database) as bot:
            await converse(bot, ANA)

    asyncio.run(setup())
    result = CliRunner().invoke(cli_app, ["erase", ANA, "--database", database, "--media-dir", str(tmp_path / "media")])
    assert result.exit_code == 0, result.output
    assert "1 conversations" in result.output and "1 media" in result.output
    assert not list((tmp_path / "media").glob("??/*.json"))


async def test_retention_deletes_what_is_older_than_its_days_and_the_bot_keeps_answering(tmp_path, database, echo):
    async with harness(echo, tmp_path, database) as bot:
        await converse(bot, ANA)
        assert bot.os is not None and bot.os.db is not None
        if database.startswith("postgresql"):  # a work-queue job that failed for good, kept to be looked at
            await bot.os.db.write(
                lambda conn: conn.execute(
                    text(
                        "WITH j AS (INSERT INTO procrastinate_jobs (queue_name, task_name, args, status) "
                        "VALUES ('whatsagent', 'conversation.wake', '{}', 'failed') RETURNING id) "
                        "INSERT INTO procrastinate_events (job_id, type) SELECT id, 'failed' FROM j"
                    )
                )
            )
        # An answer an operator gave up on is as finished as one sent: it goes with the rest.
        await bot.os.db.write(
            lambda conn: conn.execute(
                update(outbox)
                .where(outbox.c.id == select(func.max(outbox.c.id)).scalar_subquery())
                .values(status="discarded")
            )
        )
        policy = RetentionPolicy(days=30)
        kept = await apply_retention(bot.os.db, policy, bot.os.media_store, now=time.time() + 29 * 86_400)
        assert set(kept.values()) == {0}, "nothing is 30 days old yet"
        later = await apply_retention(bot.os.db, policy, bot.os.media_store, now=time.time() + 31 * 86_400)
        assert later["inbox"] == 2 and later["turns"] == 2 and later["outbox"] >= 2 and later["media"] == 1
        if database.startswith("postgresql"):
            assert later["queued jobs"] == 1
        left = await rows_about(bot, ANA)
        assert (left["inbox"], left["history"], left["outbox"], left["turns"]) == (0, 0, 0, 0)
        ana = bot.user(ANA)
        await ana.send_text("still there?")
        [*_, reply] = await ana.wait_for_replies(3, timeout=30)
        assert reply.text == "echo: still there?"


async def test_the_retention_job_runs_on_its_own(tmp_path, database, echo):
    # A policy of a tenth of a second, checked every tenth of a second: the answered message goes.
    policy = RetentionPolicy(days=0.1 / 86_400, every=0.1)
    async with harness(echo, tmp_path, database, retention=policy) as bot:
        ana = bot.user(ANA)
        await ana.send_text("hello")
        await ana.wait_for_replies(1, timeout=30)
        for _ in range(600):
            if (await rows_about(bot, ANA))["inbox"] == 0:
                break
            await asyncio.sleep(0.05)
        assert (await rows_about(bot, ANA))["inbox"] == 0
