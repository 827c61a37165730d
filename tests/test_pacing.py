"""Pacing, retries and the invalid-token breaker: WhatsApp's limits respected before it has to refuse."""

from __future__ import annotations

import asyncio
import itertools
import time

import aiohttp
import pytest

from whatsagent import Reply
from whatsagent.errors import SendError
from whatsagent.messages.outbound import TextOut
from whatsagent.pacing import Pacing
from whatsagent.sender import SendPolicy
from whatsagent.testing import BotHarness


def message_sends(bot, to: str | None = None):
    """The bot's message sends (not typing indicators), in arrival order."""
    return [
        r
        for r in bot.emulator.requests
        if r.path.endswith("/messages") and "type" in (r.json or {}) and (to is None or r.json.get("to") == to)
    ]


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_a_number_never_sends_more_than_its_rate_in_any_second():
    pacing = Pacing(rate=200, pair_interval=0)
    stamps: list[float] = []

    async def one() -> None:
        await pacing.acquire("100200300")
        stamps.append(time.monotonic())

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(500)))
    took = time.monotonic() - started
    # Slots are 5 ms apart, so any second holds at most 200 of them; the +1 is timer jitter (the first of
    # 201 slots spanning exactly one second woke a little late).
    assert max_in_window(stamps, 1.0) <= 201
    assert took >= 2.3, f"500 messages at 200/s took only {took:.2f}s"  # how close to 2.5 s: benchmarks/sender_rate


def test_the_rate_is_meta_s_tiers_at_most():
    Pacing(rate=1000)
    with pytest.raises(ValueError, match="1000"):
        Pacing(rate=1001)


async def test_one_user_gets_a_burst_then_one_message_per_pair_interval_while_others_are_not_held_up():
    pacing = Pacing(rate=1000, pair_interval=0.2, pair_burst=2)
    sends: dict[str, list[tuple[float, float]]] = {"ana": [], "bo": []}
    started = time.monotonic()

    async def send(user: str) -> None:
        waited = await pacing.acquire("n", user)
        sends[user].append((time.monotonic() - started, waited))

    await asyncio.gather(*(send("ana") for _ in range(5)), send("bo"))
    # What the pacer made each send wait is computed from its schedule: a busy machine that wakes the
    # tasks late can only shorten it. When they went is real time: never earlier than the schedule.
    ana = sorted(sends["ana"])
    assert all(waited < 0.05 for _, waited in ana[:2]), f"the first two go at once (the burst): {ana}"
    for k, (at, _) in enumerate(ana[2:], start=1):
        assert at > 0.2 * k - 0.03, f"then one per pair interval, never faster: {ana}"
    [(_, bo_waited)] = sends["bo"]
    assert bo_waited < 0.05, "another user's message does not wait behind Ana's"


async def test_a_long_answer_in_parts_is_paced_per_recipient(tmp_path):
    async def five_parts(ctx):
        return Reply(messages=[TextOut(body=f"part {i}") for i in range(5)])

    pacing = Pacing(pair_interval=0.15, pair_burst=2)
    async with BotHarness(five_parts, tmp_path, pacing=pacing) as bot:
        ana = bot.user("15551234567")
        await ana.send_text("tell me everything")
        replies = await ana.wait_for_replies(5)
        assert [r.text for r in replies] == [f"part {i}" for i in range(5)]
        times = [r.time for r in message_sends(bot)]
        # Parts go one after another, each in its slot or later (on a busy machine; the burst then lets the
        # next go at once). The schedule moves on by 0.15 s a part and lends at most one interval (the
        # burst of 2), so parts i and j are at least (j - i - 2) * 0.15 s apart however late any of them is.
        for i, j in [(0, 3), (1, 4), (0, 4)]:
            assert times[j] - times[i] >= (j - i - 2) * 0.15 - 0.02, f"after the burst of 2, parts are paced: {times}"


async def test_the_pair_rate_limit_is_retried_after_4_to_the_n_times_the_base(tmp_path, echo):
    policy = SendPolicy(pair_limit_base=0.05)
    async with BotHarness(echo, tmp_path, send_policy=policy) as bot:
        bot.emulator.faults.fail_next(3, http_status=400, code=131056)
        ana = bot.user("15551234567")
        await ana.send_text("hi")
        [reply] = await ana.wait_for_replies(1)
        assert reply.text == "echo: hi"
        sends = message_sends(bot)
        assert [s.status for s in sends] == [400, 400, 400, 200]
        gaps = [b.time - a.time for a, b in itertools.pairwise(sends)]
        # 0.05·4^n with ±25% jitter: ~0.05, ~0.2, ~0.8 (at least; a busy machine may add to each)
        for gap, expected in zip(gaps, (0.05, 0.2, 0.8), strict=True):
            assert gap >= expected * 0.75, gaps
        await bot.idle()
        await bot.emulator.settle(60)
        assert len(ana.replies) == 1


async def test_throughput_429s_are_retried_with_growing_backoff_and_the_user_gets_one_answer(tmp_path, echo):
    policy = SendPolicy(base=0.05)
    async with BotHarness(echo, tmp_path, send_policy=policy) as bot:
        bot.emulator.faults.fail_next(2, http_status=429, code=130429)
        ana = bot.user("15551234567")
        await ana.send_text("hi")
        [reply] = await ana.wait_for_replies(1)
        assert reply.text == "echo: hi"
        sends = message_sends(bot)
        assert [s.status for s in sends] == [429, 429, 200]
        first, second = (b.time - a.time for a, b in itertools.pairwise(sends))
        assert first >= 0.0375 and second >= 0.075, "the backoff grows (a busy machine may add to each)"


def test_retry_after_from_the_provider_wins_over_the_backoff():
    policy = SendPolicy(base=0.5)
    error = SendError("slow down", code=20429, http_status=429, retryable=True, retry_after=7.0)
    assert 7.0 <= policy.delay(error, attempt=1) <= 7.5
    assert 7.0 <= policy.delay(error, attempt=5) <= 7.5


async def test_a_permanent_error_is_not_retried_and_is_recorded(tmp_path, echo):
    async with BotHarness(echo, tmp_path, send_policy=SendPolicy(base=0.01)) as bot:
        bot.emulator.faults.fail_next(1, http_status=400, code=131026)
        ana = bot.user("15551234567")
        await ana.send_text("hi")
        await bot.idle()  # a retry would keep the answer's row waiting, and the bot busy, until sent
        await bot.emulator.settle(60)
        assert not ana.replies
        assert [s.status for s in message_sends(bot)] == [400]


async def get_json(url: str) -> dict:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return await r.json()


async def wait_for_health(bot, status: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while (health := await get_json(f"{bot.url}/health"))["status"] != status:
        if time.monotonic() > deadline:
            raise AssertionError(f"health still {health} after {timeout:g}s, not {status!r}")
        await asyncio.sleep(0.02)
    return health


async def test_an_invalid_token_stops_sending_says_so_in_health_and_resumes_once_accepted(tmp_path, echo):
    policy = SendPolicy(token_cool_down=1.0)
    async with BotHarness(echo, tmp_path, send_policy=policy) as bot:
        bot.emulator.faults.fail_sends(1.0, errors=[(401, 190)])  # until cleared below
        users = [bot.user(f"155512300{i:02d}") for i in range(3)]
        for u in users:
            await u.send_text(f"hi from {u.wa_id}")
        health = await wait_for_health(bot, "degraded")
        [channel_status] = health["sending"].values()
        assert channel_status["sending"] is False and channel_status["reason"] == "access token refused"
        assert "190" not in str(health), "why the token was refused stays in the logs: /health answers anyone"
        ready = await get_json(f"{bot.url}/ready")
        assert ready["status"] == "ready", "webhooks are still taken in while sending is stopped"
        async with aiohttp.ClientSession() as http, http.get(f"{bot.url}/metrics") as r:
            assert 'whatsagent_sending_stopped{channel="cloudapi:100200300"} 1' in await r.text()

        bot.emulator.faults.clear()  # the token is accepted again
        for u in users:
            [reply] = await u.wait_for_replies(1)
            assert reply.text == f"echo: hi from {u.wa_id}"
        refused = [s for s in message_sends(bot) if s.status == 401]
        # Without the breaker three conversations would retry all along; with it: the sends in flight when
        # it tripped, then one probe per cool-down (1 s, 2 s, 4 s, ...): 6 only if the refusal lasted 7 s.
        assert len(refused) <= 6, f"{len(refused)} sends with a refused token"
        await wait_for_health(bot, "ok")
        await bot.idle()
        await bot.emulator.settle(60)
        assert all(len(u.replies) == 1 for u in users)
