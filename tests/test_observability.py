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


def test_the_per_message_series_are_looked_up_once_and_are_the_labelled_children():
    from whatsagent import metrics

    sent = metrics.sends_by("obs-test", "sent", "")
    assert sent is metrics.sends_by("obs-test", "sent", "")
    assert sent is metrics.sends.labels(channel="obs-test", result="sent", code="")
    assert metrics.inbound_by("obs-test", "stored") is metrics.inbound.labels(channel="obs-test", result="stored")
    assert metrics.turn_seconds_by("obs-test") is metrics.turn_seconds.labels(channel="obs-test")
    before = metrics.sends.labels(channel="obs-test", result="sent", code="")._value.get()
    sent.inc()
    assert metrics.sends.labels(channel="obs-test", result="sent", code="")._value.get() == before + 1
