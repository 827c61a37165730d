"""Delivery status: status webhooks move each message forward whatever order they arrive in; the operator
reads them per conversation and in metrics; a failure is logged with the message it answered."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from whatsagent.emulator.statuses import StatusPolicy
from whatsagent.emulator.webhooks import envelope
from whatsagent.testing import BotHarness

TOKEN = "operator-secret"
CHANNEL = "cloudapi:100200300"


async def deliveries(bot, user: str = "15551234567", token: str | None = TOKEN) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{bot.url}/conversations/{CHANNEL}/{user}/deliveries", headers=headers) as r,
    ):
        return r.status, await r.json()


async def post_status(bot, reply, status: str, errors: list[dict] | None = None) -> None:
    item = {
        "id": reply.message_id,
        "status": status,
        "timestamp": str(int(time.time())),
        "recipient_id": "15551234567",
        "biz_opaque_callback_data": reply.callback_data,
    }
    if errors:
        item["errors"] = errors
    emu = bot.emulator
    payload = envelope(emu.waba_id, emu.phone_number_id, emu.display_phone_number, statuses=[item])
    status_code, _ = await emu.post_webhook(payload)
    assert status_code == 200


async def delivery_of(bot, expected: str, timeout: float = 60.0) -> dict:
    """The one message's row once its delivery reads `expected`; fails if it never does."""
    deadline = time.monotonic() + timeout
    while True:
        _, answer = await deliveries(bot)
        [row] = answer["messages"]
        if row["delivery"] == expected:
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"delivery still {row['delivery']!r}, not {expected!r}, after {timeout:g}s: {row}")
        await asyncio.sleep(0.05)


async def test_statuses_arriving_newest_first_leave_the_message_read(tmp_path, echo):
    async with BotHarness(echo, tmp_path, api_token=TOKEN) as bot:
        bot.emulator.statuses = StatusPolicy(out_of_order=True)  # read, then delivered, then sent
        ana = bot.user("15551234567")
        await ana.send_text("hi")
        await ana.wait_for_replies(1)
        row = await delivery_of(bot, "read")
        assert row["status"] == "sent" and row["delivery"] == "read"
        assert row["kind"] == "text" and row["message"]["body"] == "echo: hi"
        await bot.idle()
        await bot.emulator.settle(60)  # every status webhook was answered: the older ones changed nothing
        _, answer = await deliveries(bot)
        assert [row["delivery"] for row in answer["messages"]] == ["read"]


async def test_a_read_without_delivered_counts_as_delivered_and_read(tmp_path, echo):
    async with BotHarness(echo, tmp_path, api_token=TOKEN) as bot:
        ana = bot.user("15551234567")
        await ana.send_text("hi")
        [reply] = await ana.wait_for_replies(1)
        await post_status(bot, reply, "read")
        assert (await delivery_of(bot, "read"))["delivery"] == "read"
        await post_status(bot, reply, "delivered")  # late
        await post_status(bot, reply, "sent")  # later still
        _, answer = await deliveries(bot)  # each status was stored before its webhook was answered
        assert [row["delivery"] for row in answer["messages"]] == ["read"]


async def test_failed_after_sent_is_final_logged_with_the_inbound_message_and_counted(tmp_path, echo, caplog):
    async with BotHarness(echo, tmp_path, api_token=TOKEN) as bot:
        bot.emulator.statuses = "sent"
        ana = bot.user("15551234567")
        inbound = await ana.send_text("hi")
        [reply] = await ana.wait_for_replies(1)
        await delivery_of(bot, "sent")
        error = {
            "code": 131026,
            "title": "Message undeliverable",
            "message": "Message undeliverable",
            "error_data": {"details": "The user is not on WhatsApp."},
        }
        with caplog.at_level(logging.ERROR, logger="whatsagent.inbox"):
            await post_status(bot, reply, "failed", [error])
            row = await delivery_of(bot, "failed")
        assert row["delivery"] == "failed" and row["error_code"] == 131026
        assert "The user is not on WhatsApp." in row["error"]
        assert f"answering {inbound.message_id}" in caplog.text
        assert "15551234567" not in caplog.text

        await post_status(bot, reply, "delivered")  # arrives after the failure: changes nothing
        await bot.idle()
        await bot.emulator.settle(60)
        _, answer = await deliveries(bot)
        assert [row["delivery"] for row in answer["messages"]] == ["failed"]

        async with aiohttp.ClientSession() as http, http.get(f"{bot.url}/metrics") as r:
            assert r.headers["content-type"].startswith("text/plain")
            text = await r.text()
        assert f'whatsagent_delivery_statuses_total{{channel="{CHANNEL}",status="failed"}}' in text
        assert f'whatsagent_sends_total{{channel="{CHANNEL}",code="",result="sent"}}' in text


async def test_the_delivery_api_needs_the_operator_token(tmp_path, echo):
    async with BotHarness(echo, tmp_path) as bot:
        status, _ = await deliveries(bot)
        assert status == 404
    async with BotHarness(echo, tmp_path / "2", api_token=TOKEN) as bot:
        status, _ = await deliveries(bot, token="nope")
        assert status == 401


async def test_a_turn_that_fails_every_time_is_set_aside_and_the_delivery_api_says_why(tmp_path):
    from whatsagent import metrics
    from whatsagent.queue import RetryPolicy
    from whatsagent.turns import TurnPolicy

    async def broken(ctx):
        raise RuntimeError("the model's provider is down")

    before = metrics.turns_set_aside.labels(channel=CHANNEL)._value.get()
    async with BotHarness(broken, tmp_path, api_token=TOKEN) as bot:
        assert bot.os is not None and bot.os.queue is not None
        bot.os.queue.retry = RetryPolicy(base=0.01)  # type: ignore[attr-defined]
        ana = bot.user("15551234567")
        await ana.send_text("hello")
        [apology] = await ana.wait_for_replies(1)
        assert apology.text == TurnPolicy().error_text
        await bot.idle()  # the emulator has the apology before the bot records it as sent
        _, answer = await deliveries(bot)
        [row] = answer["messages"]
        assert row["status"] == "sent"
        assert "failed 3 times" in row["turn_error"] and "provider is down" in row["turn_error"]
    assert metrics.turns_set_aside.labels(channel=CHANNEL)._value.get() == before + 1
