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


OPERATOR_ROUTES = [
    ("GET", "/operator/conversations"),
    ("GET", "/operator/conversations/abc"),
    ("POST", "/operator/conversations/abc/takeover"),
    ("GET", "/operator/conversations/abc/memories"),
    ("POST", "/operator/outbox/1/retry"),
    ("GET", "/operator/events"),
    ("GET", "/memories/Chef/15551234567"),
    ("DELETE", "/memories/Chef/15551234567"),
    ("POST", "/messages/template"),
    ("GET", "/conversations/cloudapi:100200300/15551234567/deliveries"),
    ("DELETE", "/users/15551234567"),
]


async def status_of(method: str, url: str, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as http, http.request(method, url, headers=headers) as r:
        return r.status


async def test_every_operator_route_is_off_without_a_token_and_refuses_a_wrong_one(tmp_path, monkeypatch):
    monkeypatch.delenv("WHATSAGENT_API_TOKEN", raising=False)
    agent = Agent(name="Chef", model=scripted_model("hello", repeat_last=True), memory=True)
    async with BotHarness(agent, tmp_path / "off") as bot:
        for method, path in OPERATOR_ROUTES:
            assert await status_of(method, bot.url + path, AUTH) == 404, f"{method} {path} is off without a token"
    async with BotHarness(agent, tmp_path / "on", api_token="s3cret") as bot:
        for method, path in OPERATOR_ROUTES:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                assert await status_of(method, bot.url + path, headers) == 401, f"{method} {path} with {headers}"
