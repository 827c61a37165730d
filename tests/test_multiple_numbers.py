"""Several numbers on one server: each channel its own agent, credentials, secret and webhook path."""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from sqlalchemy import select

from whatsagent import AgentOS, TurnContext
from whatsagent.channels import CloudAPI
from whatsagent.emulator import Emulator
from whatsagent.store.schema import inbox


def agent_named(name: str):
    async def agent(ctx: TurnContext) -> str:
        return f"{name} here: {ctx.text}"

    return agent


async def test_two_numbers_are_answered_by_their_own_agents_and_secrets_do_not_cross(tmp_path):
    async with (
        Emulator(phone_number_id="111", app_secret="sales-secret", access_token="sales-token") as sales_emu,
        Emulator(phone_number_id="222", app_secret="support-secret", access_token="support-token") as support_emu,
    ):

        def channel(name: str, emu: Emulator) -> CloudAPI:
            return CloudAPI(
                agent=agent_named(name),
                name=name,
                prefix=f"/{name}",
                access_token=emu.access_token,
                phone_number_id=emu.phone_number_id,
                app_secret=emu.app_secret,
                verify_token="v",
                api_base_url=emu.base_url,
            )

        agent_os = AgentOS(
            channels=[channel("sales", sales_emu), channel("support", support_emu)],
            database=f"sqlite:///{tmp_path / 'bot.db'}",
            merge_window=0,
        )
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(agent_os.get_app(), log_level="warning"))
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        try:
            sales_emu.webhook_url = f"http://127.0.0.1:{port}/sales/webhook"
            support_emu.webhook_url = f"http://127.0.0.1:{port}/support/webhook"
            # The same person writes to both numbers: two conversations, two agents.
            ana_sales = sales_emu.user("15551234567", name="Ana")
            ana_support = support_emu.user("15551234567", name="Ana")
            await ana_sales.send_text("a table for six?")
            await ana_support.send_text("my invoice is wrong")
            [sales_reply] = await ana_sales.wait_for_replies(1)
            [support_reply] = await ana_support.wait_for_replies(1)
            assert sales_reply.text == "sales here: a table for six?"
            assert support_reply.text == "support here: my invoice is wrong"

            # A webhook signed with the sales app's secret is refused on the support number's path.
            sales_emu.webhook_url = f"http://127.0.0.1:{port}/support/webhook"
            refused = await ana_sales.send_text("sneaking in")
            assert refused.status == 403
            # A message is stored before its webhook is answered: the refused one never was, so no turn
            # can answer it, now or later.
            assert agent_os.db is not None
            stored = await agent_os.db.read(lambda conn: conn.execute(select(inbox.c.provider_id)).scalars().all())
            assert refused.message_id not in stored and len(stored) == 2
            assert len(ana_support.replies) == 1 and len(ana_sales.replies) == 1
        finally:
            server.should_exit = True
            await serving
