"""Handoff on PostgreSQL with a web process and two worker processes: a takeover through the web process
waits for the bot turn running on a worker to finish (it answers what came before), then no worker
answers the conversation; the operator's reply goes out; handed back, a worker answers again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import create_engine, text

from scale_out_cluster import Cluster, turn_events
from whatsagent.store.migrations import sync_url

TOKEN = "cluster-operator"


async def call(url: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Operator": "Rosa"}
    async with aiohttp.ClientSession() as http, http.request(method, url + path, json=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


@pytest.mark.timeout(600)
async def test_takeover_on_two_workers_lets_the_running_turn_finish_then_no_worker_answers(
    postgres_url: str, tmp_path: Path
):
    turn_log = tmp_path / "turns.log"
    async with Cluster(
        postgres_url,
        tmp_path,
        webs=1,
        workers=2,
        model_latency=(1.0, 1.5),
        turn_log=turn_log,
        env={"WHATSAGENT_API_TOKEN": TOKEN},
    ) as cluster:
        web = cluster.web_processes[0].url
        ana = cluster.emulator.user("15551234567", name="Ana")
        await ana.send_text("hi")
        await ana.wait_for_replies(1)
        _, listed = await call(web, "GET", "/operator/conversations")
        [conversation] = [c["id"] for c in listed["conversations"]]

        # A second turn is running on a worker when the operator takes over.
        await ana.send_text("what are your hours?")
        while sum(1 for _, event, _ in turn_events(turn_log) if event == "start") < 2:
            await asyncio.sleep(0.02)
        status, answer = await call(web, "POST", f"/operator/conversations/{conversation}/takeover")
        assert status == 200 and answer == {"mode": "human", "bot_turn_running": False}
        # It finished, answered, before the takeover returned.
        assert [r.text for r in ana.replies] == ["echo: hi", "echo: what are your hours?"]

        for n in range(3):
            await ana.send_text(f"taken over {n}")
        await cluster.wait_idle(postgres_url)
        assert len(ana.replies) == 2  # no worker answered while a person had it
        engine = create_engine(sync_url(postgres_url))
        try:
            with engine.connect() as conn:
                held = conn.execute(text("SELECT count(*) FROM turns WHERE status = 'human'")).scalar()
                waiting = conn.execute(text("SELECT count(*) FROM inbox WHERE turn_id IS NULL")).scalar()
        finally:
            engine.dispose()
        assert held and held >= 1 and waiting == 0

        status, answer = await call(web, "POST", f"/operator/conversations/{conversation}/reply", {"text": "Rosa here"})
        assert status == 200 and answer["status"] == "sent"
        assert ana.last_reply.text == "Rosa here"

        await call(web, "POST", f"/operator/conversations/{conversation}/hand-back")
        await ana.send_text("back to the bot")
        await ana.wait_for_replies(4)
        assert ana.last_reply.text == "echo: back to the bot"


@pytest.mark.timeout(600)
async def test_a_console_on_the_web_process_hears_the_turns_workers_run(postgres_url: str, tmp_path: Path):
    from whatsagent.emulator import StatusPolicy

    async with Cluster(postgres_url, tmp_path, webs=1, workers=1, env={"WHATSAGENT_API_TOKEN": TOKEN}) as cluster:
        cluster.emulator.statuses = StatusPolicy(until=None)  # no status webhooks: the web hears only the message
        web = cluster.web_processes[0].url
        heard: asyncio.Queue[str] = asyncio.Queue()
        ready = asyncio.Event()

        async def viewer() -> None:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with aiohttp.ClientSession() as http, http.get(web + "/operator/events", headers=headers) as resp:
                async for line in resp.content:
                    if line.startswith(b"event: ready"):
                        ready.set()
                    elif line.startswith(b"data: ") and b"conversation" in line:
                        await heard.put(json.loads(line[6:])["conversation"])

        watching = asyncio.create_task(viewer())
        try:
            await asyncio.wait_for(ready.wait(), 60)
            ana = cluster.emulator.user("15551234567", name="Ana")
            await ana.send_text("hi")
            await ana.wait_for_replies(1)
            # The message (stored by the web process), then the turn's start and end (run by the worker).
            changed: list[str] = []
            while len(changed) < 3:
                found = await asyncio.wait_for(heard.get(), 60)
                if found != "*":  # "refresh everything" (the relay (re)connected)
                    changed.append(found)
            assert len(set(changed)) == 1, changed
        finally:
            watching.cancel()
