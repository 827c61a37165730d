"""Crashes, failing sends and load: no acknowledged message is lost, none is answered twice."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from whatsagent.emulator import Emulator
from whatsagent.sender import SendPolicy
from whatsagent.store.database import open_database
from whatsagent.testing import BotHarness, ServerProcess, emulator_env, wait_idle
from whatsagent.turns import TurnPolicy

ROOT = Path(__file__).resolve().parent.parent


def answered_inputs(user) -> list[str]:
    """Every input line the user's replies echo, in reply order."""
    lines: list[str] = []
    for reply in user.replies:
        assert reply.text.startswith("echo: "), reply.text
        lines.extend(reply.text.removeprefix("echo: ").split("\n"))
    return lines


async def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting until {what}")
        await asyncio.sleep(0.05)


async def assert_left_idle(db: Path) -> None:
    """After its process stopped, a bot left nothing to do: no message waiting for a turn, no turn open,
    no answer unsent (so no answer, duplicate or not, could still go out)."""
    store = open_database(f"sqlite:///{db}")
    await store.start()
    try:
        await wait_idle(store)
    finally:
        await store.close()


async def test_twenty_percent_of_sends_failing_with_429_and_500_lose_nothing_and_double_nothing(tmp_path, echo):
    policy = SendPolicy(base=0.02, cap=0.2)
    async with BotHarness(echo, tmp_path, send_policy=policy) as bot:
        bot.emulator.faults.fail_sends(probability=0.2, errors=[(429, 130429), (500, 131000)], seed=7)
        users = [bot.user(f"1555100{i:04d}", name=f"user{i}") for i in range(20)]
        expected: dict[str, list[str]] = {}
        for round_ in range(3):
            for u in users:
                text = f"{u.wa_id} says {round_}"
                expected.setdefault(u.wa_id, []).append(text)
                assert (await u.send_text(text)).ok
            await asyncio.sleep(0.2)
        await wait_until(lambda: all(len(answered_inputs(u)) >= 3 for u in users), 60, "every message was answered")
        await bot.idle()
        await bot.emulator.settle(60)
        for u in users:
            assert answered_inputs(u) == expected[u.wa_id], f"{u.wa_id}: each message once, in order"
        sends = [r for r in bot.emulator.requests if r.path.endswith("/messages") and "type" in (r.json or {})]
        refused = [r for r in sends if r.status in (429, 500)]
        assert len(refused) >= 5, f"the faults really were injected ({len(refused)} of {len(sends)} sends refused)"


async def test_two_hundred_users_at_once_with_a_slow_model_are_all_acknowledged_and_answered_once(tmp_path):
    async def slow(ctx):
        await asyncio.sleep(2.0)
        return f"echo: {ctx.text}"

    async with BotHarness(slow, tmp_path) as bot:
        users = [bot.user(f"1555200{i:04d}") for i in range(200)]

        async def send(u):
            d = await u.send_text("hello")
            assert d.ok

        # The model takes 2 s per answer; acknowledgements do not wait for it (how fast they are is a
        # benchmark's question: benchmarks/webhooks.py).
        await asyncio.gather(*(send(u) for u in users))
        await wait_until(lambda: all(u.replies for u in users), 300, "all 200 users were answered")
        await bot.idle()
        await bot.emulator.settle(60)
        assert all(len(u.replies) == 1 for u in users)


def slow_echo_server(emulator: Emulator, db: Path, delay: float, grace: float = 10) -> ServerProcess:
    """`tests/apps/slow_echo.py` served in a child process, answering after `delay` seconds."""
    env = {
        **emulator_env(emulator),
        "WHATSAGENT_DATABASE_URL": f"sqlite:///{db}",
        "SLOW_ECHO_DELAY": str(delay),
        "GRACE": str(grace),
        "PYTHONPATH": os.pathsep.join((str(ROOT / "src"), str(ROOT))),  # this tree's whatsagent, and tests.apps
    }
    return ServerProcess("tests.apps.slow_echo:os", env=env, cwd=ROOT)


async def test_kill_9_after_acks_and_before_answers_then_restart_answers_every_message_exactly_once(tmp_path):
    async with Emulator(app_secret="crash-secret", access_token="crash-token") as emu:
        server = slow_echo_server(emu, tmp_path / "bot.db", delay=600)
        await server.start()
        emu.webhook_url = server.webhook_url
        users = [emu.user(f"1555300{i:04d}") for i in range(5)]
        sent: dict[str, list[str]] = {u.wa_id: [] for u in users}
        for i in range(2):
            for u in users:
                text = f"{u.wa_id} #{i}"
                assert (await u.send_text(text)).ok  # acknowledged: durable
                sent[u.wa_id].append(text)
        # Every user's turn is running (the typing indicator is on); the model thinks for ten minutes.
        await wait_until(lambda: all(u.typing for u in users), 60, "every user's turn was running")
        server.kill9()
        assert not any(u.replies for u in users), "killed before any answer went out"

        restarted = slow_echo_server(emu, tmp_path / "bot.db", delay=0.2)
        await restarted.start()
        emu.webhook_url = restarted.webhook_url
        try:
            await wait_until(
                lambda: all(len(answered_inputs(u)) >= 2 for u in users),
                60,
                "every acked message was answered",
            )
        finally:
            await asyncio.to_thread(restarted.terminate)  # the emulator serves its last requests meanwhile
        await assert_left_idle(tmp_path / "bot.db")
        for u in users:
            assert answered_inputs(u) == sent[u.wa_id]


async def test_sigterm_parks_running_turns_exits_within_the_grace_period_and_they_resume(tmp_path):
    async with Emulator(app_secret="term-secret", access_token="term-token") as emu:
        server = slow_echo_server(emu, tmp_path / "bot.db", delay=600, grace=1)
        await server.start()
        emu.webhook_url = server.webhook_url
        ana = emu.user("15554000001")
        assert (await ana.send_text("long question")).ok
        await wait_until(lambda: bool(ana.typing), 60, "the turn was running")  # the model thinks for 10 min
        # Waiting for the model would take ten minutes (`terminate` gives up after one); the 1 s grace
        # period lets it stop, however busy the machine.
        took = await asyncio.to_thread(server.terminate)
        assert took < 60, f"shutdown took {took:.1f}s, far past its 1 s grace period"
        assert not ana.replies

        restarted = slow_echo_server(emu, tmp_path / "bot.db", delay=0.1)
        await restarted.start()
        emu.webhook_url = restarted.webhook_url
        try:
            [reply] = await ana.wait_for_replies(1)
            assert reply.text == "echo: long question"
        finally:
            await asyncio.to_thread(restarted.terminate)  # the emulator serves its last requests meanwhile
        await assert_left_idle(tmp_path / "bot.db")
        assert len(ana.replies) == 1


async def test_a_message_that_kills_the_bot_at_every_try_is_set_aside_after_three_and_the_rest_answered(tmp_path):
    async with Emulator(app_secret="crash-secret", access_token="crash-token") as emu:
        poisoner, neighbour = emu.user("15553100001"), emu.user("15553100002")
        servers = [slow_echo_server(emu, tmp_path / "bot.db", delay=0.0)]
        await servers[0].start()
        emu.webhook_url = servers[0].webhook_url

        async def supervise() -> None:
            """Start the bot again whenever it dies, as systemd would."""
            while True:
                proc = servers[-1].proc
                assert proc is not None
                assert await asyncio.to_thread(proc.wait) == -9
                servers.append(slow_echo_server(emu, tmp_path / "bot.db", delay=0.0))
                servers[-1].spawn()
                emu.webhook_url = servers[-1].webhook_url

        supervisor = asyncio.create_task(supervise())
        try:
            assert (await poisoner.send_text("poison")).ok  # acknowledged, then it kills the process
            [apology] = await poisoner.wait_for_replies(1, timeout=300)
            assert apology.text == TurnPolicy().error_text
            assert (await neighbour.send_text("hello")).ok
            [answer] = await neighbour.wait_for_replies(1, timeout=300)
            assert answer.text == "echo: hello"
            deaths = len(servers) - 1
            assert deaths == TurnPolicy().max_attempts, "set aside after three deaths, counted before each run"
        finally:
            supervisor.cancel()
            servers[-1].terminate()
