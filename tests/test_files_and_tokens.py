"""Files are the user's only, whatever the umask; the access token goes only to Meta's media hosts."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from aiohttp import web

from whatsagent.channels import CloudAPI
from whatsagent.messages import Media
from whatsagent.testing import BotHarness


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
async def test_the_database_its_wal_and_lock_and_the_media_folders_are_private_under_umask_022(tmp_path, echo):
    from fakes import media_files

    old = os.umask(0o022)
    try:
        async with BotHarness(echo, tmp_path) as bot:
            ana = bot.user("15551230001")
            await ana.send_image(media_files.image_bytes("PNG", 20, 20), "image/png")
            await ana.wait_for_replies(1)
            files = [tmp_path / n for n in ("whatsagent.db", "whatsagent.db.lock", "whatsagent.db-wal")]
            media = tmp_path / "whatsagent-media"
            folders = [media, *[p for p in media.iterdir() if p.is_dir()]]
            assert len(folders) >= 2
            assert {str(f): oct(mode(f)) for f in files if f.exists()} == {str(f): "0o600" for f in files}
            assert {str(f): oct(mode(f)) for f in folders} == {str(f): "0o700" for f in folders}
            stored = [p for p in folders[1].iterdir()]
            assert stored and all(mode(p) == 0o600 for p in stored)
    finally:
        os.umask(old)


class Hosts:
    """A fake Graph API naming a media URL on another local server; both record Authorization."""

    def __init__(self) -> None:
        self.seen: dict[str, str | None] = {}

    async def __aenter__(self) -> Hosts:
        self.cdn = await self._serve("cdn", self._file)
        self.graph = await self._serve("graph", self._info)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.cdn[0].cleanup()
        await self.graph[0].cleanup()

    async def _serve(self, name: str, handler) -> tuple[web.AppRunner, str]:
        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return runner, f"http://127.0.0.1:{port}"

    async def _info(self, request: web.Request) -> web.Response:
        self.seen["graph"] = request.headers.get("Authorization")
        return web.json_response({"url": f"{self.cdn[1]}/media/1", "mime_type": "image/png", "file_size": 3})

    async def _file(self, request: web.Request) -> web.Response:
        self.seen["cdn"] = request.headers.get("Authorization")
        return web.Response(body=b"png", content_type="image/png")


async def test_the_access_token_does_not_go_to_a_media_url_on_another_host():
    import aiohttp

    async with Hosts() as hosts, aiohttp.ClientSession() as http:
        channel = CloudAPI(
            access_token="secret-token",
            phone_number_id="1",
            verify_token="v",
            app_secret="s",
            api_base_url=hosts.graph[1],
        )
        await channel.open(http)
        data, mime = await channel.download(Media(media_id="m1"), max_bytes=1000)
    assert (data, mime) == (b"png", "image/png")
    assert hosts.seen == {"graph": "Bearer secret-token", "cdn": None}


def test_meta_media_hosts_and_the_api_base_get_the_token_and_nothing_else():
    channel = CloudAPI(access_token="t", phone_number_id="1", verify_token="v", app_secret="s")
    assert channel.token_may_go_to("https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1")
    assert channel.token_may_go_to("https://scontent.xx.fbcdn.net/v/t1/1.jpg")
    assert channel.token_may_go_to("https://graph.facebook.com/v25.0/123")
    assert not channel.token_may_go_to("http://lookaside.fbsbx.com/x")
    assert not channel.token_may_go_to("https://fbcdn.net.evil.example/x")
    assert not channel.token_may_go_to("https://evilfbcdn.net/x")
    assert not channel.token_may_go_to("http://127.0.0.1:9999/x")
    custom = CloudAPI(
        access_token="t", phone_number_id="1", verify_token="v", app_secret="s", media_hosts=("cdn.example",)
    )
    assert custom.token_may_go_to("https://cdn.example/x") and not custom.token_may_go_to(
        "https://lookaside.fbsbx.com/x"
    )
