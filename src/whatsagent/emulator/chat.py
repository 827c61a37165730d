"""The chat page: a WhatsApp-like web UI over the emulator, with live updates and a fault panel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from whatsagent.emulator.server import Emulator


class ChatPage:
    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator

    def register(self, app: web.Application) -> None:
        app.router.add_get("/", self.index)

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(text="whatsagent emulator", content_type="text/html")
