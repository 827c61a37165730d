"""New turns start only while the event loop is responsive; none is lost or reordered by waiting."""

from __future__ import annotations

import asyncio
import time

from whatsagent.admission import LagGate
from whatsagent.testing import BotHarness


async def test_a_turn_waits_while_the_loop_is_busy_and_starts_once_it_is_free():
    gate = LagGate(max_lag=0.02)
    busy = True
    cycles = 0

    async def hog() -> None:
        # Agent work holding the loop: every step runs 50 ms before the next callback gets a chance.
        nonlocal cycles
        while busy:
            time.sleep(0.05)
            cycles += 1
            await asyncio.sleep(0)

    hogging = asyncio.create_task(hog())
    await asyncio.sleep(0)
    admitted = asyncio.create_task(gate.admit())
    while cycles < 10:
        await asyncio.sleep(0)
    assert not admitted.done(), "a turn was admitted while every callback waited 50 ms"
    busy = False
    await hogging
    await admitted
    assert gate.delayed == 1


async def test_a_turn_that_waited_max_wait_starts_even_while_the_loop_stays_busy():
    gate = LagGate(max_lag=0.02, max_wait=0.2)
    busy = True

    async def hog() -> None:
        while busy:
            time.sleep(0.05)
            await asyncio.sleep(0)

    hogging = asyncio.create_task(hog())
    await asyncio.sleep(0)
    try:
        await gate.admit()  # returns although every callback still waits 50 ms
        assert busy and not hogging.done()
    finally:
        busy = False
        await hogging


async def test_waiting_turns_are_admitted_in_arrival_order():
    gate = LagGate(max_lag=0.02)
    order: list[int] = []
    busy = True

    async def hog() -> None:
        while busy:
            time.sleep(0.03)
            await asyncio.sleep(0)

    hogging = asyncio.create_task(hog())
    await asyncio.sleep(0)

    async def turn(i: int) -> None:
        await gate.admit()
        order.append(i)

    turns = [asyncio.create_task(turn(i)) for i in range(5)]
    for _ in range(5):
        await asyncio.sleep(0)
    busy = False
    await hogging
    await asyncio.gather(*turns)
    assert order == [0, 1, 2, 3, 4]


async def test_with_admission_every_message_is_answered_once_in_order(tmp_path):
    async def echo(ctx) -> str:
        return f"got {ctx.text}"

    async with BotHarness(echo, tmp_path, admission_lag=0.001) as bot:
        users = [bot.user(f"155512300{i:02d}") for i in range(20)]
        await asyncio.gather(*(u.send_text(f"hello {i}") for i, u in enumerate(users)))
        for i, u in enumerate(users):
            replies = await u.wait_for_replies(1)
            assert [r.text for r in replies] == [f"got hello {i}"]
