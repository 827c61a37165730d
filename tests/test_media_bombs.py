"""Media that decode into something huge are refused within bounds, off the event loop, and the user
still gets an answer: a .docx that inflates to 400 MB, an hour of silent Opus in 1.3 MB, a one-bit PNG
of 169 megapixels."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from fakes import bombs
from whatsagent.emulator import Emulator
from whatsagent.media import bounds
from whatsagent.media.convert import OutputTooLarge, _transcode_audio, fit_image
from whatsagent.media.model_input import to_model_input
from whatsagent.media.office import office_text
from whatsagent.media.sniff import DOCX
from whatsagent.testing import ServerProcess, emulator_env

ROOT = Path(__file__).resolve().parent.parent
PEAK_LIMIT_MB = 300


def test_a_docx_that_inflates_to_hundreds_of_megabytes_is_refused_at_the_cap():
    bomb = bombs.docx_bomb(inflated=64 * 1024 * 1024)
    assert len(bomb) < 200_000
    with pytest.raises(bounds.OverCap, match="unpacks to more than 16 MB"):
        office_text(bomb, DOCX)


def test_a_docx_with_too_many_parts_is_refused_before_it_is_opened():
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
        for index in range(bounds.MAX_ARCHIVE_MEMBERS + 1):
            archive.writestr(f"word/media/{index}", b"")
    with pytest.raises(bounds.OverCap, match="parts"):
        office_text(out.getvalue(), DOCX)


def test_an_ordinary_docx_is_still_read():
    assert office_text(bombs.docx(["Dear Ana,", "the invoice is attached."]), DOCX) == (
        "Dear Ana,\nthe invoice is attached."
    )


async def test_the_docx_bomb_reaches_the_model_as_one_line():
    content = await to_model_input("openai", "gpt-4o", "document", bombs.docx_bomb(), DOCX, "A document.")
    assert content == (
        "A document. (The document could not be opened: the document unpacks to more than 16 MB of markup, "
        "more than is read here.)"
    )


def test_audio_conversion_stops_at_the_size_asked_for():
    with pytest.raises(OutputTooLarge):
        _transcode_audio(bombs.silent_opus(20), "wav", 16_000, 100_000)  # 20 s of WAV is 640 KB


async def test_an_hour_of_silent_opus_reaches_an_audio_model_as_one_line():
    hour = bombs.silent_opus(3600)
    assert len(hour) < 2_000_000
    content = await to_model_input("openai-chat", "gpt-audio", "audio", hour, "audio/ogg", "A voice note.")
    assert content == (
        "A voice note. (The audio could not be opened: the recording is over 30 minutes long, the most converted here.)"
    )


async def test_a_one_bit_png_of_169_megapixels_is_refused_before_its_pixels_are_decoded():
    png = bombs.one_bit_png(13_000, 13_000)
    assert len(png) < 50_000
    with pytest.raises(bounds.OverCap, match="13000×13000 pixels"):
        await fit_image(png, ("image/jpeg",), 5_000_000)


def peak_rss_mb(pid: int) -> float:
    """The process's high-water resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak memory from /proc")
async def test_the_bot_answers_every_bomb_and_its_peak_memory_stays_well_below_300_mb(tmp_path):
    docx, opus, png = bombs.docx_bomb(), bombs.silent_opus(3600), bombs.one_bit_png(13_000, 13_000)
    async with Emulator() as emu:
        env = {**emulator_env(emu), "WHATSAGENT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}"}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])
        server = ServerProcess("tests.apps.media_bot:os", env=env, cwd=ROOT, log=tmp_path / "bot.log")
        await server.start()
        emu.webhook_url = server.webhook_url
        try:
            ana = emu.user("15551230001")
            await ana.send_text("hello")
            await ana.wait_for_replies(1, timeout=60)
            started = peak_rss_mb(server.pid)
            await ana.send_document(docx, "contract.docx", DOCX)
            await ana.wait_for_replies(2, timeout=120)
            await ana.send_audio(opus, voice=True)
            await ana.wait_for_replies(3, timeout=120)
            await ana.send_image(png, "image/png")
            await ana.wait_for_replies(4, timeout=120)
            peak = peak_rss_mb(server.pid)
            # meanwhile the bot kept answering webhooks: /health answers now
            await asyncio.wait_for(ana.send_text("still there?"), 60)
            await ana.wait_for_replies(5, timeout=60)
        finally:
            server.terminate()
    replies = [r.text or "" for r in ana.replies]
    assert "unpacks to more than 16 MB" in replies[1]
    assert "over 30 minutes long" in replies[2]
    assert "13000×13000 pixels" in replies[3]
    assert "still there?" in replies[4]
    print(f"bot peak RSS: {started:.0f} MB after start-up, {peak:.0f} MB after the three bombs")
    assert peak < PEAK_LIMIT_MB, f"peak RSS {peak:.0f} MB"
