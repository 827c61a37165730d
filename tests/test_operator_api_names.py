"""The operator API names what it does not know: an unknown channel or agent is a 404 listing the names
this bot serves, never an empty 200."""

from __future__ import annotations

import aiohttp

from whatsagent import Agent
from whatsagent.testing import BotHarness, scripted_model

AUTH = {"Authorization": "Bearer s3cret"}


async def get(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=AUTH) as r:
        return r.status, await r.json()


async def test_unknown_channels_and_agents_are_404s_naming_the_known_ones(tmp_path):
    agent = Agent(name="Chef", model=scripted_model("hello", repeat_last=True), memory=True)
    async with BotHarness(agent, tmp_path, api_token="s3cret") as bot:
        ana = bot.user("15551234567")
        await ana.send_text("hi")
        await ana.wait_for_replies(1)

        status, body = await get(f"{bot.url}/conversations/cloudapi:100200300/15551234567/deliveries")
        assert status == 200 and len(body["messages"]) == 1, "the channel's documented name works"
        status, body = await get(f"{bot.url}/conversations/cloudapi/15551234567/deliveries")
        assert status == 404
        assert body["error"] == "no channel named 'cloudapi'; this bot serves cloudapi:100200300"

        status, body = await get(f"{bot.url}/memories/Chef/15551234567")
        assert status == 200
        status, body = await get(f"{bot.url}/memories/Assistant/15551234567")
        assert status == 404 and body["error"] == "no agent named 'Assistant'; this bot serves Chef"
