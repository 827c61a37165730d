"""Every cookbook example runs without a model key, against the emulator, and shows what it is for:
buttons and a list appear, a picture is drawn, a memory is recalled after /new, reasoning comes first."""

from __future__ import annotations

import asyncio
import contextlib
import io
import runpy
from pathlib import Path

import pytest
import uvicorn
from PIL import Image

from fakes import media_files
from whatsagent.cli import load_os
from whatsagent.emulator import Emulator
from whatsagent.testing import free_port

ROOT = Path(__file__).parent.parent
KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY", "MISTRAL_API_KEY")


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    for key in (*KEYS, "WHATSAGENT_MODEL", "WHATSAGENT_DATABASE_URL", "WHATSAGENT_MEDIA_DIR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)


@contextlib.asynccontextmanager
async def example(name: str, monkeypatch, *, twilio: bool = False):
    """The example served as its docstring says, against a running emulator; yields the emulator."""
    emulator = Emulator(access_token="emulator-token", app_secret="emulator-app-secret")
    await emulator.start()
    port = free_port()
    if twilio:
        account = emulator.twilio()
        env = {
            "TWILIO_API_BASE_URL": emulator.base_url,
            "TWILIO_ACCOUNT_SID": account.account_sid,
            "TWILIO_AUTH_TOKEN": account.auth_token,
            "TWILIO_FROM_NUMBER": account.from_number,
            "TWILIO_PUBLIC_URL": f"http://127.0.0.1:{port}",
        }
    else:
        env = {
            "WHATSAPP_API_BASE_URL": emulator.base_url,
            "WHATSAPP_ACCESS_TOKEN": "emulator-token",
            "WHATSAPP_PHONE_NUMBER_ID": "100200300",
            "WHATSAPP_VERIFY_TOKEN": "dev",
            "WHATSAPP_APP_SECRET": "emulator-app-secret",
        }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    namespace = runpy.run_path(str(ROOT / "examples" / f"{name}.py"), run_name="example")
    server = uvicorn.Server(uvicorn.Config(namespace["app"], host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                await task
            await asyncio.sleep(0.01)
        emulator.webhook_url = f"http://127.0.0.1:{port}/{'twilio' if twilio else 'whatsapp'}/webhook"
        yield emulator
    finally:
        server.should_exit = True
        await task
        await emulator.stop()


async def test_interactive_takes_an_order_with_a_list_buttons_and_a_link(monkeypatch):
    async with example("interactive", monkeypatch) as emulator:
        ana = emulator.user("15551234567")
        await ana.send_text("hi")
        [menu] = await ana.wait_for_replies(1)
        assert menu.interactive_type == "list" and "Diavola" in [t.title for t in menu.tappables]
        await ana.tap("Diavola")
        [_, sizes] = await ana.wait_for_replies(2)
        assert [t.title for t in sizes.tappables] == ["Small", "Medium", "Large"]
        await ana.tap("Large")
        [*_, confirm] = await ana.wait_for_replies(3)
        assert [t.title for t in confirm.tappables] == ["Confirm", "Change"]
        await ana.tap("Confirm")
        [*_, link] = await ana.wait_for_replies(4)
    assert link.interactive_type == "cta_url"


async def test_image_generation_draws_a_picture_offline(monkeypatch):
    async with example("image_generation", monkeypatch) as emulator:
        ana = emulator.user("15551234567")
        await ana.send_text("a lighthouse at dusk")
        [reply] = await ana.wait_for_replies(1)
        uploaded = emulator.media.get(reply.body["image"]["id"])
    assert reply.type == "image" and "sketch" in reply.body["image"]["caption"]
    assert uploaded is not None and Image.open(io.BytesIO(uploaded.data)).size == (512, 320)


async def test_user_memory_recalls_a_fact_after_new(monkeypatch):
    async with example("user_memory", monkeypatch) as emulator:
        ana = emulator.user("15551234567")
        await ana.send_text("remember: I am vegetarian")
        await ana.wait_for_replies(1)
        await ana.send_text("/new")
        await ana.wait_for_replies(2)
        await ana.send_text("what should I cook tonight?")
        [*_, recalled] = await ana.wait_for_replies(3)
    assert "I am vegetarian" in recalled.text


async def test_reasoning_sends_the_thinking_first(monkeypatch):
    async with example("reasoning", monkeypatch) as emulator:
        ana = emulator.user("15551234567")
        await ana.send_text("what is two plus two")
        thought, answer = await ana.wait_for_replies(2)
    assert thought.text.startswith("_The user asks") and "5 words" in answer.text


async def test_media_describes_a_picture_offline(monkeypatch):
    async with example("media", monkeypatch) as emulator:
        ana = emulator.user("15551234567")
        await ana.send_image(media_files.image_bytes("JPEG", 64, 48), mime_type="image/jpeg", caption="my cat")
        [reply] = await ana.wait_for_replies(1)
    assert "image" in reply.text and "my cat" in reply.text


async def test_twilio_basic_answers_through_the_emulator_in_twilio_mode(monkeypatch):
    async with example("twilio_basic", monkeypatch, twilio=True) as emulator:
        ana = emulator.user("15551234567")
        await ana.send_text("hello twilio")
        [reply] = await ana.wait_for_replies(1)
    assert "hello twilio" in reply.text
    assert "whatsagent emulator --twilio" in (ROOT / "examples" / "twilio_basic.py").read_text()


def test_scale_outs_command_works_from_the_repository_root(monkeypatch):
    for key, value in {
        "WHATSAPP_ACCESS_TOKEN": "t",
        "WHATSAPP_PHONE_NUMBER_ID": "1",
        "WHATSAPP_APP_SECRET": "s",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WHATSAPP_VERIFY_TOKEN", "v")
    monkeypatch.chdir(ROOT)
    assert load_os("examples.scale_out:agent_os").channels[0].phone_number_id == "1"
