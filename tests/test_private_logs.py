"""A full run's logs, at DEBUG with uvicorn's access log on, hold no full phone number and no secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import aiohttp

from whatsagent.emulator import Emulator
from whatsagent.privacy import scrubbed
from whatsagent.testing import VERIFY_TOKEN, ServerProcess, emulator_env, free_port

ROOT = Path(__file__).resolve().parent.parent
NUMBER = "15551234567"
API_TOKEN = "operator-token-0123456789"


def test_numbers_and_credentials_are_scrubbed_from_any_text():
    assert scrubbed(f"GET /memories/bot/{NUMBER} HTTP/1.1") == "GET /memories/bot/…4567 HTTP/1.1"
    assert scrubbed("hub.mode=subscribe&hub.verify_token=s3cret&hub.challenge=1") == (
        "hub.mode=subscribe&hub.verify_token=***&hub.challenge=1"
    )
    assert scrubbed(f"job wake (lock cloudapi:100200300|{NUMBER})") == "job wake (lock cloudapi:100200300|…4567)"
    assert scrubbed("Authorization: Bearer EAAGxyz") == "Authorization: Bearer ***"
    assert scrubbed("whatsapp:+6285176810035") == "whatsapp:+…0035"
    assert len(scrubbed("x" * 700_000)) < 2100


async def test_a_full_conversation_logs_no_full_number_no_token_and_no_long_line(tmp_path):
    log = tmp_path / "bot.log"
    async with Emulator() as emu:
        env = {
            **os.environ,
            **emulator_env(emu),
            "WHATSAGENT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
            "WHATSAGENT_API_TOKEN": API_TOKEN,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        server = ServerProcess("tests.apps.slow_echo:os", env=env, cwd=ROOT, log=log)
        port = server.port = free_port()
        command = [sys.executable, "-m", "whatsagent.cli", "serve", "tests.apps.slow_echo:os"]
        with open(log, "wb") as out:
            server.proc = subprocess.Popen(
                [*command, "--port", str(port), "--log-level", "debug"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        await server.wait_ready()
        emu.webhook_url = server.webhook_url
        try:
            ana = emu.user(NUMBER, "Ana")
            await ana.send_text("hello, my number is in every id")
            await ana.wait_for_replies(1, timeout=60)
            long_id = await ana.send_text("and a long one")
            await ana.wait_for_replies(2, timeout=60)
            auth = {"Authorization": f"Bearer {API_TOKEN}"}
            async with aiohttp.ClientSession(base_url=server.url) as http:
                query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"}
                async with http.get("/whatsapp/webhook", params=query) as r:
                    assert r.status == 200
                async with http.get(f"/memories/Assistant/{NUMBER}", headers=auth) as r:
                    assert r.status < 500
                async with http.get(f"/conversations/cloudapi/{NUMBER}/deliveries", headers=auth) as r:
                    assert r.status < 500
                async with http.get("/whatsapp/webhook", params={**query, "hub.verify_token": "wrong-guess"}) as r:
                    assert r.status == 403
        finally:
            server.terminate()
    text = log.read_text(errors="replace")
    assert "GET /whatsapp/webhook?hub.mode=subscribe&hub.verify_token=***" in text, "the access log was captured"
    assert long_id.message_id
    for secret in (NUMBER, VERIFY_TOKEN, "wrong-guess", API_TOKEN, emu.access_token, emu.app_secret):
        assert secret not in text, f"{secret!r} is in the logs"
    assert max(len(line) for line in text.splitlines()) < 5000
