"""Templates: the business writes first (API and CLI), the agent continues the conversation, and a refused
template says which one and what is wrong."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp
import pytest

from whatsagent.testing import BotHarness

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "operator-secret"
CHANNEL = "cloudapi:100200300"


async def post_template(bot, body: dict, token: str | None = TOKEN) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{bot.url}/messages/template", json=body, headers=headers) as r,
    ):
        return r.status, await r.json()


def template_sends(bot):
    return [
        r for r in bot.emulator.requests if r.path.endswith("/messages") and (r.json or {}).get("type") == "template"
    ]


async def test_a_proactive_template_reaches_the_user_and_the_agent_continues_from_it(tmp_path):
    seen_history: list[str] = []

    async def agent(ctx):
        seen_history.append(repr(ctx.history))
        return "Great, your order ships tomorrow."

    async with BotHarness(agent, tmp_path, api_token=TOKEN) as bot:
        status, answer = await post_template(
            bot,
            {
                "to": "+1 555-123-4567",
                "template": "order_update",
                "params": ["Ana", "#42"],
                "text": "Hi Ana, your order #42 has shipped.",
            },
        )
        assert status == 200, answer
        assert answer["status"] == "sent" and answer["message_id"].startswith("wamid.")
        assert answer["conversation"] == f"{CHANNEL}|15551234567"
        ana = bot.user("15551234567", name="Ana")
        [template] = await ana.wait_for_replies(1)
        assert template.type == "template" and template.text == "Hi Ana, your order #42 has shipped."

        await ana.send_text("when will it arrive?")
        replies = await ana.wait_for_replies(2)
        assert replies[1].text == "Great, your order ships tomorrow."
        assert "Hi Ana, your order #42 has shipped." in seen_history[0], "the agent sees what it said first"


async def test_the_same_idempotency_key_sends_once(tmp_path, echo):
    async with BotHarness(echo, tmp_path, api_token=TOKEN) as bot:
        body = {"to": "15551234567", "template": "welcome_back", "params": ["Ana"], "key": "campaign-7:ana"}
        first = await post_template(bot, body)
        second = await post_template(bot, body)
        assert first[0] == second[0] == 200
        assert first[1]["message_id"] == second[1]["message_id"]
        assert len(template_sends(bot)) == 1


async def test_the_template_api_is_off_without_a_token_and_refuses_a_wrong_one(tmp_path, echo):
    async with BotHarness(echo, tmp_path) as bot:
        status, answer = await post_template(bot, {"to": "1555", "template": "hello_world"})
        assert status == 404 and "WHATSAGENT_API_TOKEN" in answer["error"]
    async with BotHarness(echo, tmp_path / "2", api_token=TOKEN) as bot:
        status, _ = await post_template(bot, {"to": "1555", "template": "hello_world"}, token="guess")
        assert status == 401
        assert not template_sends(bot)


@pytest.mark.parametrize(
    ("body", "fault", "words"),
    [
        (
            {"template": "order_update", "params": ["Ana"]},
            None,
            "template 'order_update' (en_US) was refused: the number of parameters does not match the "
            "template's placeholders (sent 1 body parameter(s))",
        ),
        (
            {"template": "order_update", "params": ["Ana", "#42"], "language": "pt_BR"},
            None,
            "template 'order_update' (pt_BR) was refused: the template does not exist in this language, or is "
            "not approved yet: check its name and that a pt_BR translation is approved",
        ),
        (
            {"template": "welcome_back", "params": ["Ana"]},
            (400, 132015),
            "template 'welcome_back' (en_US) was refused: the template is paused by Meta for low quality",
        ),
    ],
    ids=["132000-parameter-count", "132001-missing-translation", "132015-paused"],
)
async def test_a_refused_template_names_itself_and_what_is_wrong_and_is_not_retried(tmp_path, echo, body, fault, words):
    async with BotHarness(echo, tmp_path, api_token=TOKEN) as bot:
        if fault is not None:
            bot.emulator.faults.fail_next(1, http_status=fault[0], code=fault[1])
        status, answer = await post_template(bot, {"to": "15551234567", **body})
        assert status == 422
        assert answer["status"] == "failed"
        assert words in answer["error"]
        assert len(template_sends(bot)) == 1, "a template error is permanent: not retried"


async def test_whatsagent_send_sends_a_template_from_the_command_line(tmp_path, echo):
    async with BotHarness(echo, tmp_path, api_token=TOKEN) as bot:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "whatsagent.cli",
            "send",
            "--template",
            "order_update",
            "--to",
            "15551234567",
            "--param",
            "Ana",
            "--param",
            "#42",
            "--url",
            bot.url,
            env={**os.environ, "WHATSAGENT_API_TOKEN": TOKEN},
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        assert "order_update to 15551234567: sent" in (out + err).decode()
        [template] = await bot.user("15551234567").wait_for_replies(1)
        assert template.text == "Hi Ana, your order #42 has shipped."

        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "whatsagent.cli",
            "send",
            "--template",
            "order_update",
            "--to",
            "15551234567",
            "--url",
            bot.url,
            env={**os.environ, "WHATSAGENT_API_TOKEN": TOKEN},
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 1
        assert "number of parameters does not match" in " ".join((out + err).decode().split())
