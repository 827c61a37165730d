"""The served webhook path is bounded: header and body deadlines, a body budget, loopback by default."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from whatsagent import AgentOS, cli
from whatsagent.channels import CloudAPI, body
from whatsagent.testing import free_port

SECRET = "serving-secret"


async def quiet(ctx: Any) -> None:
    return None


@pytest.fixture
async def served(tmp_path: Any) -> AsyncIterator[tuple[str, int]]:
    channel = CloudAPI(
        agent=quiet,
        access_token="t",
        phone_number_id="1",
        verify_token="v",
        app_secret=SECRET,
        api_base_url="http://127.0.0.1:9",
    )
    agent_os = AgentOS(channels=[channel], database=f"sqlite:///{tmp_path / 'bot.db'}")
    port = free_port()
    task = asyncio.create_task(agent_os.serve_async(port=port, log_level="warning", header_timeout=0.5))
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            try:
                async with http.get(f"http://127.0.0.1:{port}/ready") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    try:
        yield "127.0.0.1", port
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def raw(host: str, port: int, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(data)
    await writer.drain()
    return reader, writer


async def test_a_client_trickling_its_headers_is_disconnected_at_the_header_deadline(served):
    reader, writer = await raw(*served, b"POST /whatsapp/webhook HTTP/1.1\r\nHost: x\r\nX-Slow: a")
    # the server closes the connection: the read ends (EOF), with no response
    assert await asyncio.wait_for(reader.read(), 60) == b""
    writer.close()


async def test_a_body_that_does_not_arrive_in_time_is_answered_408(served, monkeypatch):
    monkeypatch.setattr(body, "BODY_TIMEOUT", 0.5)
    reader, writer = await raw(*served, b"POST /whatsapp/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    answer = await asyncio.wait_for(reader.read(), 60)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    writer.close()


async def test_large_bodies_past_the_process_budget_are_answered_503_and_small_ones_still_pass(served, monkeypatch):
    monkeypatch.setattr(body, "BODY_BUDGET", 100_000)
    header = b"POST /whatsapp/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
    _, holder = await raw(*served, header + b"x" * (body.SMALL_BODY + 90_000))
    for _ in range(600):  # until the server holds those bytes
        if body._Budget.held >= 90_000:
            break
        await asyncio.sleep(0.05)
    assert body._Budget.held >= 90_000
    reader, writer = await raw(*served, header + b"y" * (body.SMALL_BODY + 50_000))
    answer = await asyncio.wait_for(reader.readline(), 60)
    assert answer.startswith(b"HTTP/1.1 503"), answer
    writer.close()
    # an ordinary webhook still goes through: refused for its signature, not for want of memory
    small = b'{"object": "whatsapp_business_account"}'
    request = f"POST /whatsapp/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: {len(small)}\r\n\r\n"
    reader, writer = await raw(*served, request.encode() + small)
    answer = await asyncio.wait_for(reader.readline(), 60)
    assert answer.startswith(b"HTTP/1.1 401"), answer
    holder.close()
    writer.close()


def test_serve_listens_on_loopback_unless_told_otherwise():
    assert inspect.signature(cli.serve).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(AgentOS.serve).parameters["host"].default == "127.0.0.1"
