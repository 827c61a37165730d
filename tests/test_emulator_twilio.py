"""The emulator speaks Twilio: a bot on the Twilio channel chats with the same simulated users."""

from __future__ import annotations

import aiohttp
from sqlalchemy import select

from whatsagent import Reply, TurnContext
from whatsagent.channels.twilio.client import basic_auth
from whatsagent.emulator import Emulator
from whatsagent.emulator.twilio import content_sid, sign
from whatsagent.messages import Image, TemplateButton, User
from whatsagent.messages.outbound import MediaOut, TemplateOut, TextOut
from whatsagent.store.schema import outbox
from whatsagent.testing import BotHarness


async def echo(ctx: TurnContext) -> Reply:
    return Reply(text=f"echo: {ctx.text}")


async def outbox_rows(bot: BotHarness) -> list[dict]:
    assert bot.os is not None and bot.os.db is not None

    def read(conn):
        return [dict(r._mapping) for r in conn.execute(select(outbox).order_by(outbox.c.id))]

    return await bot.os.db.read(read)


async def test_a_message_is_posted_as_a_signed_form_and_answered_through_the_messages_api(tmp_path):
    async with BotHarness(echo, tmp_path, provider="twilio") as bot:
        ana = bot.user("15551234567", name="Ana")
        delivery = await ana.send_text("hola")
        assert delivery.status == 200, delivery.body
        [reply] = await ana.wait_for_replies(1)
        assert reply.text == "echo: hola"
        await bot.idle()
        account = bot.emulator.twilio_account
        url, form, status = account.callbacks[0]
        assert url == bot.emulator.webhook_url and status == 200
        assert form["From"] == "whatsapp:+15551234567" and form["WaId"] == "15551234567"
        assert form["ProfileName"] == "Ana" and form["Body"] == "hola"
        assert form["MessageSid"].startswith("SM")
        [request] = [r for r in bot.emulator.requests if r.path.endswith("/Messages.json")]
        assert request.status == 201
        assert request.json["To"] == "whatsapp:+15551234567"
        assert request.json["From"] == account.from_number
        # The typing indicator named the inbound SID; the emulator maps it to the user's message.
        assert delivery.message_id in ana.typing


def test_the_signature_is_the_one_twilios_own_library_expects():
    from twilio.request_validator import RequestValidator

    url = "http://127.0.0.1:8000/twilio/webhook?x=1"
    params = [("Body", "hi ünicode & more"), ("From", "whatsapp:+15551234567"), ("NumMedia", "0")]
    assert RequestValidator("secret-token").validate(url, dict(params), sign("secret-token", url, params))


async def test_a_webhook_signed_with_the_wrong_token_is_refused(tmp_path):
    async with BotHarness(echo, tmp_path, provider="twilio") as bot:
        bot.emulator.twilio_account.auth_token = "not-the-bots-token"
        delivery = await bot.user("15551234567").send_text("forged")
        assert delivery.status in (401, 403)


async def test_status_callbacks_reach_the_bots_outbox(tmp_path):
    async with BotHarness(echo, tmp_path, provider="twilio") as bot:
        bot.emulator.statuses = "read"
        ana = bot.user("15551234567", name="Ana")
        await ana.send_text("hi")
        await ana.wait_for_replies(1)
        await bot.idle()
        await bot.emulator.settle()
        [row] = await outbox_rows(bot)
        assert row["provider_message_id"].startswith("SM")
        assert row["delivery"] == "read"
        statuses = [f["MessageStatus"] for _, f, _ in bot.emulator.twilio_account.callbacks if "MessageStatus" in f]
        assert statuses == ["sent", "delivered", "read"]


async def test_outside_the_window_a_free_form_reply_fails_with_63016(tmp_path):
    async with BotHarness(echo, tmp_path, provider="twilio") as bot:
        bot.emulator.statuses = True
        ana = bot.user("15551234567", name="Ana")
        await ana.send_text("hi")
        await ana.wait_for_replies(1)
        await bot.idle()
        # Refused at once by the Messages API, in Twilio's error shape.
        bot.emulator.close_window(ana, synchronous=True)
        account = bot.emulator.twilio_account
        async with aiohttp.ClientSession() as http:
            response = await http.post(
                f"{bot.emulator.base_url}/2010-04-01/Accounts/{account.account_sid}/Messages.json",
                data={"To": "whatsapp:+15551234567", "From": account.from_number, "Body": "late"},
                headers={"Authorization": basic_auth(account.account_sid, account.auth_token)},
            )
            body = await response.json()
        assert response.status == 400
        assert body["code"] == 63016
        assert body["more_info"] == "https://www.twilio.com/docs/errors/63016"
        # Accepted, then failed in a status callback: the bot's outbox records 63016.
        bot.emulator.close_window(ana)
        await bot.channel.send(User(wa_id="15551234567"), TextOut(body="are you there?"))
        await bot.emulator.settle()
        failed = [f for _, f, _ in account.callbacks if f.get("MessageStatus") == "failed"]
        assert [f["ErrorCode"] for f in failed] == ["63016"]


async def test_the_messages_api_answers_with_twilios_errors(tmp_path):
    async with Emulator() as emu:
        account = emu.twilio()
        url = f"{emu.base_url}/2010-04-01/Accounts/{account.account_sid}/Messages.json"
        good = {"Authorization": basic_auth(account.account_sid, account.auth_token)}
        async with aiohttp.ClientSession() as http:
            r = await http.post(
                url, data={"To": "whatsapp:+1555", "Body": "x"}, headers={"Authorization": basic_auth("AC1", "no")}
            )
            assert r.status == 401 and (await r.json())["code"] == 20003
            r = await http.post(url, data={"To": "whatsapp:+15551234567", "From": account.from_number}, headers=good)
            assert r.status == 400 and (await r.json())["code"] == 21602
            r = await http.post(
                url, data={"To": "+15551234567", "From": account.from_number, "Body": "x"}, headers=good
            )
            assert (await r.json())["code"] == 21910
            too_long = {"To": "whatsapp:+15551234567", "From": account.from_number, "Body": "x" * 1601}
            r = await http.post(url, data=too_long, headers=good)
            assert (await r.json())["code"] == 21617
            emu.faults.fail_next(1, http_status=429, code=130429)
            r = await http.post(
                url, data={"To": "whatsapp:+15551234567", "From": account.from_number, "Body": "x"}, headers=good
            )
            assert r.status == 429 and r.headers["Retry-After"]


async def test_without_twilio_mode_the_endpoints_say_so():
    async with Emulator() as emu, aiohttp.ClientSession() as http:
        r = await http.post(f"{emu.base_url}/2010-04-01/Accounts/AC{'0' * 32}/Messages.json", data={"Body": "x"})
        assert r.status == 404 and "twilio()" in (await r.json())["message"]


async def test_media_both_ways_and_template_buttons(tmp_path):
    seen: list = []

    async def agent(ctx: TurnContext) -> Reply:
        last = ctx.messages[-1]
        seen.append(last)
        if isinstance(last, Image):
            return Reply(text=f"got a {last.media.mime_type} image")
        if isinstance(last, TemplateButton):
            return Reply(text=f"you tapped {last.text}")
        if ctx.text == "photo":
            item = emu.media.put(b"\x89PNG\r\n\x1a\nfake", "image/png", "dot.png")
            return Reply(
                messages=[MediaOut(media_type="image", link=f"{emu.base_url}/api/media/{item.id}", caption="a dot")]
            )
        return Reply(messages=[TemplateOut(name="welcome_back", params=("Ana",))])

    async with BotHarness(agent, tmp_path, provider="twilio") as bot:
        emu = bot.emulator
        ana = bot.user("15551234567", name="Ana")
        await ana.send_image(b"\xff\xd8\xff\xe0fake-jpeg", "image/jpeg", caption="look")
        [reply] = await ana.wait_for_replies(1)
        assert reply.text == "got a image/jpeg image"
        assert seen[0].media.caption == "look"

        await ana.send_text("photo")
        [_, photo] = await ana.wait_for_replies(2)
        assert photo.type == "image" and photo.text == "a dot"
        assert emu.media.get(photo.media["id"]).data.startswith(b"\x89PNG")

        await ana.send_text("remind me")
        [*_, template] = await ana.wait_for_replies(3)
        assert template.type == "template"
        assert template.text == "Hi Ana, it has been a while. Would you like to pick up where we left off?"
        sent = [r.json for r in emu.requests if r.path.endswith("/Messages.json")][-1]
        assert sent["ContentSid"] == content_sid("welcome_back", "en_US")
        await ana.tap("Yes, continue")
        [*_, answer] = await ana.wait_for_replies(4)
        assert answer.text == "you tapped Yes, continue"


def test_the_pytest_plugin_serves_a_twilio_bot(wa):
    wa.serve(echo, provider="twilio")
    chat = wa.user("Ana")
    chat.send("hi from the plugin")
    assert chat.last_reply.text == "echo: hi from the plugin"
    assert chat.typing_shown


async def test_the_emulator_command_can_start_in_twilio_mode():
    import asyncio
    import socket

    from whatsagent.emulator import run_emulator

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started: asyncio.Future[Emulator] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run_emulator("127.0.0.1", port, webhook_url="http://127.0.0.1:9/twilio/webhook", twilio=True, started=started)
    )
    try:
        emu = await asyncio.wait_for(started, 10)
        assert emu.twilio_account is not None
        account = emu.twilio_account
        async with aiohttp.ClientSession() as http:
            url = f"{emu.base_url}/2010-04-01/Accounts/{account.account_sid}/Messages.json"
            async with http.post(url, data={"To": "whatsapp:+15551234567", "Body": "hi"}) as r:
                assert r.status == 401, "the Messages API wants the account's basic auth"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
