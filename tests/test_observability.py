"""What an operator sees: Prometheus metrics, health and readiness."""

from __future__ import annotations

import aiohttp

from whatsagent.testing import BotHarness


async def test_metrics_count_stored_and_duplicate_messages_and_time_commits_and_turns(tmp_path, echo):
    async with BotHarness(echo, tmp_path) as bot, aiohttp.ClientSession() as http:
        ana = bot.user("15551234567", name="Ana")
        d = await ana.send_text("hi")
        await ana.wait_for_replies(1)
        await bot.emulator.redeliver(d.message_id)
        async with http.get(f"{bot.url}/metrics") as r:
            assert r.status == 200
            text = await r.text()
        channel = bot.channel.name
        assert f'whatsagent_inbound_messages_total{{channel="{channel}",result="stored"}}' in text
        assert f'whatsagent_inbound_messages_total{{channel="{channel}",result="duplicate"}}' in text
        assert "whatsagent_webhook_store_seconds_count" in text
        assert f'whatsagent_turn_seconds_count{{channel="{channel}"}}' in text
        assert "whatsagent_queue_depth" in text
        assert f'whatsagent_sends_total{{channel="{channel}",code="",result="sent"}}' in text


async def test_health_and_readiness(tmp_path, echo):
    async with BotHarness(echo, tmp_path) as bot, aiohttp.ClientSession() as http:
        async with http.get(f"{bot.url}/health") as r:
            assert r.status == 200
        async with http.get(f"{bot.url}/ready") as r:
            assert r.status == 200
            assert (await r.json())["status"] == "ready"
