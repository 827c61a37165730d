"""A user writes on WhatsApp through Twilio; the agent answers once, in order, through the Messages API.

The whole server runs for real (AgentOS on uvicorn, SQLite in a temporary folder) against the local fake
of Twilio, which posts signed webhooks and status callbacks and records every send.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select

from fakes.media_files import image_bytes
from fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, FakeTwilio, SentMessage
from whatsagent import AgentOS, Reply, TurnContext
from whatsagent.channels.twilio import Twilio
from whatsagent.media.store import MemoryMediaStore
from whatsagent.messages import Image
from whatsagent.messages.outbound import MediaOut, TemplateOut
from whatsagent.sender import SendPolicy
from whatsagent.store.schema import inbox, outbox
from whatsagent.testing import wait_idle
from whatsagent.window import WindowPolicy

ANA = "6285176810035"
BO = "14155550123"


class TwilioBot:
    """An agent served by AgentOS over Twilio, with `FakeTwilio` playing Twilio and its users."""

    def __init__(
        self,
        agent: Any,
        directory: Path,
        *,
        channel_options: dict[str, Any] | None = None,
        os_options: dict[str, Any] | None = None,
        **fake_options: Any,
    ) -> None:
        self.agent = agent
        self.directory = directory
        self.channel_options = channel_options or {}
        self.os_options = os_options or {}
        self.twilio = FakeTwilio(**fake_options)
        self.url = ""
        self.channel: Twilio | None = None
        self.os: AgentOS | None = None

    async def __aenter__(self) -> TwilioBot:
        await self.twilio.start()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.channel = Twilio(
            agent=self.agent,
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            from_number=FROM_NUMBER,
            api_base_url=self.twilio.base_url,
            public_url=self.url,
            **self.channel_options,
        )
        self.os = AgentOS(
            channels=[self.channel],
            database=f"sqlite:///{self.directory / 'whatsagent.db'}",
            merge_window=0.0,
            send_policy=SendPolicy(base=0.01, cap=0.05, deadline=30),
            **self.os_options,
        )
        config = uvicorn.Config(self.os.get_app(), log_level="warning", lifespan="on", access_log=False)
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.should_exit = True
        await self._task
        self._sock.close()
        await self.twilio.stop()

    async def say(self, body: str = "", *, wa_id: str = ANA, sid: str | None = None, **extra: Any) -> str:
        """The user writes; Twilio posts the signed webhook. Returns the MessageSid."""
        form = self.twilio.inbound(body, wa_id=wa_id, sid=sid, **extra)
        status = await self.twilio.post_inbound(f"{self.url}/twilio/webhook", form)
        assert status == 200, f"the bot answered the webhook with {status}"
        return form["MessageSid"]

    def replies(self, wa_id: str = ANA) -> list[SentMessage]:
        return [s for s in self.twilio.sends if s.to == f"whatsapp:+{wa_id}"]

    async def idle(self) -> None:
        """Wait until every stored message was answered and every answer sent (or parked, or failed)."""
        assert self.os is not None
        await wait_idle(self.os)

    async def wait_for_replies(self, count: int, *, wa_id: str = ANA, timeout: float = 60) -> list[SentMessage]:
        await self.twilio.wait_until(lambda: len(self.replies(wa_id)) >= count, timeout)
        return self.replies(wa_id)

    async def outbox(self) -> list[Any]:
        assert self.os is not None and self.os.db is not None
        return await self.os.db.read(lambda conn: conn.execute(select(outbox).order_by(outbox.c.id)).all())

    async def wait_for_outbox(self, predicate: Any, timeout: float = 60) -> list[Any]:
        deadline = time.monotonic() + timeout
        while True:
            rows = await self.outbox()
            if rows and predicate(rows):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"outbox never reached the expected state: {rows}")
            await asyncio.sleep(0.02)


def echo_agent() -> Any:
    seen: list[str] = []

    async def agent(ctx: TurnContext) -> str:
        seen.append(ctx.text)
        return f"echo: {ctx.text}"

    agent.seen = seen  # type: ignore[attr-defined]
    return agent


async def test_a_whatsapp_text_through_twilio_gets_the_agents_answer(tmp_path: Path) -> None:
    agent = echo_agent()
    async with TwilioBot(agent, tmp_path) as bot:
        sid = await bot.say("hello there")
        [reply] = await bot.wait_for_replies(1)
        assert reply.body == "echo: hello there"
        assert reply.get("From") == FROM_NUMBER
        assert reply.status_callback is not None
        assert reply.status_callback.startswith(f"{bot.url}/twilio/status?cb=")
        # The typing indicator was shown on the user's message while the agent thought.
        assert {"messageId": sid, "channel": "whatsapp"} in bot.twilio.typing


async def test_a_redelivered_twilio_webhook_is_answered_once(tmp_path: Path) -> None:
    agent = echo_agent()
    async with TwilioBot(agent, tmp_path) as bot:
        sid = await bot.say("only once please")
        await bot.wait_for_replies(1)
        await bot.say("only once please", sid=sid)
        await bot.say("only once please", sid=sid)
        await bot.idle()  # both redeliveries were acknowledged: had either started a turn, it has answered
        assert [r.body for r in bot.replies()] == ["echo: only once please"]
        assert agent.seen == ["only once please"]


async def test_quick_messages_are_answered_in_order_and_users_do_not_wait_for_each_other(
    tmp_path: Path,
) -> None:
    seen: list[str] = []
    release_ana = asyncio.Event()

    async def agent(ctx: TurnContext) -> str:
        seen.append(ctx.text)
        if ctx.user.wa_id == ANA and len([s for s in seen if s.startswith("ana")]) == 1:
            await asyncio.wait_for(release_ana.wait(), 120)
        return f"echo: {ctx.text}"

    async with TwilioBot(agent, tmp_path) as bot:
        await bot.say("ana 0")
        await bot.twilio.wait_until(lambda: bool(seen), 60)  # Ana's first turn is running
        for i in range(1, 4):
            await bot.say(f"ana {i}")
        await bot.say("bo 0", wa_id=BO)
        # Ana's first turn is still thinking; Bo is answered meanwhile.
        [bo] = await bot.wait_for_replies(1, wa_id=BO)
        assert bo.body == "echo: bo 0"
        assert bot.replies(ANA) == []
        release_ana.set()
        await bot.wait_for_replies(2)
        await bot.idle()
        ana_turns = [s for s in seen if s.startswith("ana")]
        assert ana_turns == ["ana 0", "ana 1\nana 2\nana 3"]
        assert [r.body for r in bot.replies()] == [f"echo: {t}" for t in ana_turns]


async def test_a_long_answer_is_split_under_twilios_1600_characters_and_sent_in_order(tmp_path: Path) -> None:
    paragraphs = [f"Paragraph {i}: " + "word " * 120 for i in range(8)]

    async def agent(ctx: TurnContext) -> str:
        return "\n\n".join(paragraphs)

    async with TwilioBot(agent, tmp_path) as bot:
        await bot.say("tell me everything")
        await bot.twilio.wait_until(lambda: any("Paragraph 7" in (s.body or "") for s in bot.twilio.sends))
        bodies = [r.body or "" for r in bot.replies()]
        assert len(bodies) >= 3
        assert all(len(b) <= 1600 for b in bodies)
        joined = "\n".join(bodies)
        assert [joined.index(f"Paragraph {i}:") for i in range(8)] == sorted(
            joined.index(f"Paragraph {i}:") for i in range(8)
        )


async def test_a_photo_reaches_the_agent_and_its_bytes_come_through_twilios_media_url(tmp_path: Path) -> None:
    holder: dict[str, Twilio] = {}
    photo = b"\xff\xd8\xff\xe0" + b"jpeg" * 500

    async def agent(ctx: TurnContext) -> str:
        [message] = ctx.messages
        assert isinstance(message, Image)
        data, mime = await holder["channel"].download(message.media, max_bytes=1_000_000)
        return f"a {mime} of {len(data)} bytes, captioned {message.media.caption!r}"

    async with TwilioBot(agent, tmp_path) as bot:
        assert bot.channel is not None
        holder["channel"] = bot.channel
        url = bot.twilio.host_media(photo, "image/jpeg")
        await bot.say("my receipt", media=[(url, "image/jpeg")])
        [reply] = await bot.wait_for_replies(1)
        assert reply.body == f"a image/jpeg of {len(photo)} bytes, captioned 'my receipt'"


async def test_media_the_agent_sends_are_fetched_by_twilio_from_a_link_or_whatsagents_signed_url(
    tmp_path: Path,
) -> None:
    store = MemoryMediaStore()
    png = image_bytes("PNG", 64, 48)
    stored = await store.put(png, "image/png")

    async def agent(ctx: TurnContext) -> Reply:  # a tool would have put the chart in the OS's media store
        return Reply(
            text="Here you go",
            messages=[MediaOut(media_type="image", stored=stored.key, caption="the chart")],
        )

    async with TwilioBot(agent, tmp_path, fetch_media=True) as bot:
        assert bot.channel is not None
        await bot.os.media_store.put(png, "image/png")
        await bot.say("send me the chart")
        text, image = await bot.wait_for_replies(2)
        assert text.body == "Here you go"
        assert image.body == "the chart"
        [url] = image.media_urls
        assert url.startswith(f"{bot.url}/twilio/media/{stored.key}?expires=")
        await bot.twilio.wait_until(lambda: bool(image.fetched_media))
        assert image.fetched_media == [(200, "image/png", png)]


async def test_rate_limits_and_outages_are_retried_honouring_retry_after(tmp_path: Path) -> None:
    agent = echo_agent()
    async with TwilioBot(agent, tmp_path) as bot:
        bot.twilio.fail_next("429", retry_after="1")
        bot.twilio.fail_next("500")
        started = time.monotonic()
        await bot.say("are you there?")
        [reply] = await bot.wait_for_replies(1)
        assert time.monotonic() - started >= 1.0
        assert reply.body == "echo: are you there?"
        assert [status for status, _ in bot.twilio.refused] == [429, 500]
        assert agent.seen == ["are you there?"]
        [row] = await bot.wait_for_outbox(lambda rows: rows[0].status == "sent")
        assert (row.attempts, row.provider_message_id) == (3, reply.sid)


async def test_outside_the_window_63016_parks_the_answer_instead_of_retrying(
    tmp_path: Path,
) -> None:
    agent = echo_agent()
    async with TwilioBot(agent, tmp_path) as bot:
        bot.twilio.fail_next("63016")
        await bot.say("hello after two days")
        # Not retried, not lost: parked until the user writes again (or a fallback template goes).
        [row] = await bot.wait_for_outbox(lambda rows: rows[0].status == "parked")
        await bot.idle()  # a retry would have put the row back in the queue, and the bot busy until sent
        assert [r.status for r in await bot.outbox()] == ["parked"]
        assert row.provider_message_id is None
        assert len(bot.twilio.refused) == 1 and bot.twilio.sends == []


async def test_outside_the_window_63016_sends_the_fallback_template_once_through_its_content_sid(
    tmp_path: Path,
) -> None:
    follow_up = "HX" + "f" * 32
    window = WindowPolicy(fallback=TemplateOut(name="follow_up", params=("Ana",)))
    async with TwilioBot(
        echo_agent(),
        tmp_path,
        channel_options={"content_sids": {"follow_up": follow_up}},
        os_options={"window": window},
    ) as bot:
        bot.twilio.fail_next("63016")
        await bot.say("hello after two days")
        [template] = await bot.wait_for_replies(1)
        assert template.get("ContentSid") == follow_up
        assert json.loads(template.get("ContentVariables") or "{}") == {"1": "Ana"}
        assert template.body is None, "outside the window Twilio wants the Content SID alone"
        await bot.idle()
        assert len(bot.replies()) == 1, "the fallback goes once, never in a loop"
        rows = await bot.outbox()
        assert [r.status for r in rows if r.turn_id is not None] == ["parked"]


async def test_status_callbacks_move_the_outbox_to_delivered_and_read(tmp_path: Path) -> None:
    agent = echo_agent()
    async with TwilioBot(agent, tmp_path, auto_status=("sent", "delivered", "read")) as bot:
        await bot.say("hi")
        [reply] = await bot.wait_for_replies(1)
        [row] = await bot.wait_for_outbox(lambda rows: rows[0].delivery == "read")
        assert row.provider_message_id == reply.sid
        # Twilio retries callbacks too: a repeated one changes nothing.
        assert await bot.twilio.post_status(reply.sid, "delivered") == 200
        [row] = await bot.outbox()
        assert row.delivery == "read"


async def test_an_undelivered_callback_records_the_failure_and_its_code(tmp_path: Path) -> None:
    agent = echo_agent()
    async with TwilioBot(agent, tmp_path) as bot:
        await bot.say("hi")
        [reply] = await bot.wait_for_replies(1)
        assert await bot.twilio.post_status(reply.sid, "undelivered", error_code=63016) == 200
        [row] = await bot.wait_for_outbox(lambda rows: rows[0].delivery == "failed")
        assert row.error_code == 63016


async def test_unsigned_webhooks_never_reach_the_agent(tmp_path: Path) -> None:
    agent = echo_agent()
    async with TwilioBot(agent, tmp_path) as bot:
        form = bot.twilio.inbound("forged")
        assert await bot.twilio.post_inbound(f"{bot.url}/twilio/webhook", form, token="not-the-token") == 403
        await bot.idle()
        rows = await bot.os.db.read(lambda conn: conn.execute(select(inbox)).all())
        assert rows == [], "a message is stored before its webhook is answered: the forged one never was"
        assert agent.seen == [] and bot.twilio.sends == []


@pytest.mark.parametrize("kind", ["location", "button"])
async def test_locations_and_button_taps_reach_the_agent_described(tmp_path: Path, kind: str) -> None:
    agent = echo_agent()
    extra: Sequence[tuple[str, str]] = (
        [("Latitude", "-6.2"), ("Longitude", "106.8"), ("Label", "Monas")]
        if kind == "location"
        else [("ButtonText", "Yes"), ("ButtonPayload", "confirm-42")]
    )
    async with TwilioBot(agent, tmp_path) as bot:
        await bot.say("Yes" if kind == "button" else "", **dict(extra))
        [reply] = await bot.wait_for_replies(1)
    expected = "latitude -6.2, longitude 106.8 (Monas)" if kind == "location" else "confirm-42"
    assert expected in (reply.body or "")
