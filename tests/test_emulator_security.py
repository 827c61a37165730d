"""The emulator refuses what a foreign web page can send it: cross-origin or non-JSON page API calls,
foreign Host names (DNS rebinding); uploaded media come back as attachments that are never sniffed."""

from __future__ import annotations

import aiohttp

from whatsagent.emulator import Emulator
from whatsagent.emulator.security import host_allowed
from whatsagent.testing import BotHarness


async def test_a_cross_site_text_plain_post_creates_no_user_and_a_same_origin_json_one_does():
    async with Emulator() as emu, aiohttp.ClientSession(base_url=emu.base_url) as http:
        foreign = {"Origin": "https://evil.example", "Content-Type": "text/plain"}
        async with http.post("/api/users", data='{"name": "Mallory", "wa_id": "15550000666"}', headers=foreign) as r:
            assert r.status == 403
        async with http.post("/api/users", json={"name": "Mallory"}, headers={"Origin": "https://evil.example"}) as r:
            assert r.status == 403
        plain = {"Content-Type": "text/plain"}
        async with http.post("/api/users", data='{"name": "Mallory", "wa_id": "15550000666"}', headers=plain) as r:
            assert r.status == 415
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        async with http.post("/api/users/15550000666/messages", data="type=text&text=hi", headers=form) as r:
            assert r.status == 415
        assert emu.users == []
        own = {"Origin": emu.base_url}
        async with http.post("/api/users", json={"name": "Ana", "wa_id": "15551234567"}, headers=own) as r:
            assert r.status == 200
        assert [u.wa_id for u in emu.users] == ["15551234567"]


async def test_a_foreign_host_name_is_refused_even_on_loopback():
    async with Emulator() as emu, aiohttp.ClientSession(base_url=emu.base_url) as http:
        async with http.get("/api/state", headers={"Host": "rebind.evil.example"}) as r:
            assert r.status == 403
        for host in ("127.0.0.1", "localhost:8001", "[::1]:8001"):
            async with http.get("/api/state", headers={"Host": host}) as r:
                assert r.status == 200, host


def test_a_host_given_at_start_is_allowed_and_every_interface_allows_any():
    assert host_allowed("emulator.lan:8001", "emulator.lan")
    assert not host_allowed("emulator.lan:8001", "127.0.0.1")
    assert host_allowed("anything.example", "0.0.0.0")
    assert not host_allowed(None, "127.0.0.1")


async def test_an_uploaded_html_document_is_served_as_an_attachment_without_sniffing(tmp_path, echo):
    async with BotHarness(echo, tmp_path) as bot, aiohttp.ClientSession(base_url=bot.emulator.base_url) as http:
        emu = bot.emulator
        async with http.post("/api/users", json={"name": "Ana", "wa_id": "15551234567"}) as r:
            assert r.status == 200
        form = aiohttp.FormData()
        form.add_field("kind", "document")
        form.add_field("file", b"<script>alert(1)</script>", filename="invoice.html", content_type="text/html")
        async with http.post("/api/users/15551234567/messages", data=form) as r:
            assert r.status == 200, await r.text()
        [item] = emu.media._items.values()  # the one medium uploaded
        async with http.get(f"/api/media/{item.id}") as r:
            assert r.status == 200
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert r.headers["Content-Disposition"].startswith("attachment")
            assert "invoice.html" in r.headers["Content-Disposition"]
