"""The webhook endpoint: Meta's verification handshake, signatures, and bad input that loses nothing."""

from __future__ import annotations

import hashlib
import hmac
import json

import aiohttp
import pytest

from whatsagent import AgentOS
from whatsagent.channels import CloudAPI
from whatsagent.errors import ConfigurationError
from whatsagent.testing import APP_SECRET, VERIFY_TOKEN, BotHarness


def signed(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    # Computed here, independently of whatsagent's own signature code.
    return {
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        "Content-Type": "application/json",
    }


def text_webhook(wamid: str, body: str = "hi", wa_id: str = "15551234567") -> bytes:
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102030405060708",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15550001111",
                                    "phone_number_id": "100200300",
                                },
                                "contacts": [{"profile": {"name": "Ana"}, "wa_id": wa_id}],
                                "messages": [
                                    {
                                        "from": wa_id,
                                        "id": wamid,
                                        "timestamp": "1760000000",
                                        "type": "text",
                                        "text": {"body": body},
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
    ).encode()


def test_the_documented_signature_test_vector_verifies():
    from whatsagent.channels.cloudapi import signature

    body = b'{"object":"whatsapp_business_account","entry":[]}'
    header = "sha256=dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c633756"
    assert signature.sign("test_app_secret", body) == header
    assert signature.is_valid("test_app_secret", body, header)
    assert not signature.is_valid("another_secret", body, header)
    assert not signature.is_valid("test_app_secret", body + b" ", header)


async def test_meta_verification_challenge_is_answered_only_with_the_right_token(tmp_path, echo):
    async with BotHarness(echo, tmp_path) as bot, aiohttp.ClientSession() as http:
        url = f"{bot.url}/whatsapp/webhook"
        params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
        async with http.get(url, params=params) as r:
            assert r.status == 200
            assert await r.text() == "1158201444"
        async with http.get(url, params={**params, "hub.verify_token": "wrong"}) as r:
            assert r.status == 403
        async with http.get(url, params={**params, "hub.mode": "unsubscribe"}) as r:
            assert r.status == 403
        async with http.get(url, params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN}) as r:
            assert r.status == 400


@pytest.mark.parametrize(
    ("body", "headers", "status", "reason"),
    [
        (text_webhook("wamid.A"), {"Content-Type": "application/json"}, 401, "missing X-Hub-Signature-256"),
        (text_webhook("wamid.A"), signed(text_webhook("wamid.A"), "not-the-secret"), 403, "signature"),
        (b"", signed(b""), 400, "empty body"),
        (b"{not json", signed(b"{not json"), 400, "not JSON"),
        (b"[1, 2]", signed(b"[1, 2]"), 400, "must be a JSON object"),
        (
            b'{"object":"whatsapp_business_account","entry":{"id":"x"}}',
            signed(b'{"object":"whatsapp_business_account","entry":{"id":"x"}}'),
            400,
            "entry",
        ),
        (
            b'{"object":"whatsapp_business_account","entry":[{"id":"x","changes":[{"field":"messages","value":null}]}]}',
            signed(
                b'{"object":"whatsapp_business_account","entry":[{"id":"x","changes":[{"field":"messages","value":null}]}]}'
            ),
            400,
            "value",
        ),
    ],
    ids=["unsigned", "bad-signature", "empty", "not-json", "json-array", "entry-not-list", "value-null"],
)
async def test_bad_input_gets_a_clear_4xx_and_the_next_good_message_is_answered(
    tmp_path, echo, body, headers, status, reason
):
    async with BotHarness(echo, tmp_path) as bot, aiohttp.ClientSession() as http:
        url = f"{bot.url}/whatsapp/webhook"
        async with http.post(url, data=body, headers=headers) as r:
            assert r.status == status
            assert reason.lower() in (await r.text()).lower()
        ana = bot.user("15551234567", name="Ana")
        await ana.send_text("still there?")
        [reply] = await ana.wait_for_replies(1)
        assert reply.text == "echo: still there?"


async def test_a_body_above_metas_3mb_limit_gets_413(tmp_path, echo):
    async with BotHarness(echo, tmp_path) as bot, aiohttp.ClientSession() as http:
        big = b'{"object":"whatsapp_business_account","pad":"' + b"x" * (3 * 1024 * 1024) + b'"}'
        async with http.post(f"{bot.url}/whatsapp/webhook", data=big, headers=signed(big)) as r:
            assert r.status == 413


async def test_other_products_webhooks_are_acknowledged_and_ignored(tmp_path, echo):
    async with BotHarness(echo, tmp_path) as bot, aiohttp.ClientSession() as http:
        body = b'{"object":"page","entry":[]}'
        async with http.post(f"{bot.url}/whatsapp/webhook", data=body, headers=signed(body)) as r:
            assert r.status == 200
        assert echo.seen == []


async def test_a_signed_webhook_is_accepted_and_answered(tmp_path, echo):
    async with BotHarness(echo, tmp_path) as bot, aiohttp.ClientSession() as http:
        body = text_webhook("wamid.HANDMADE1", "made by hand")
        async with http.post(f"{bot.url}/whatsapp/webhook", data=body, headers=signed(body)) as r:
            assert r.status == 200
        [reply] = await bot.user("15551234567").wait_for_replies(1)
        assert reply.text == "echo: made by hand"


async def test_the_store_failing_to_commit_answers_503_so_meta_redelivers(tmp_path, echo):
    async with BotHarness(echo, tmp_path) as bot, aiohttp.ClientSession() as http:
        from whatsagent.errors import StoreUnavailable

        inbox = bot.os.inbox
        real_accept = inbox.accept

        async def failing(events):
            raise StoreUnavailable("disk full")

        inbox.accept = failing  # type: ignore[method-assign]
        body = text_webhook("wamid.RETRYME", "please keep me")
        async with http.post(f"{bot.url}/whatsapp/webhook", data=body, headers=signed(body)) as r:
            assert r.status == 503
        inbox.accept = real_accept  # type: ignore[method-assign]
        async with http.post(f"{bot.url}/whatsapp/webhook", data=body, headers=signed(body)) as r:
            assert r.status == 200
        [reply] = await bot.user("15551234567").wait_for_replies(1)
        assert reply.text == "echo: please keep me"


def test_a_missing_setting_is_an_error_at_start_up_that_names_it(monkeypatch, echo):
    for name in ("ACCESS_TOKEN", "PHONE_NUMBER_ID", "VERIFY_TOKEN", "APP_SECRET"):
        monkeypatch.delenv(f"WHATSAPP_{name}", raising=False)
    channel = CloudAPI(agent=echo, access_token="token", phone_number_id="1")
    with pytest.raises(ConfigurationError) as info:
        AgentOS(channels=[channel], database="sqlite:///unused.db").get_app()
    assert "WHATSAPP_VERIFY_TOKEN" in str(info.value)
    assert "WHATSAPP_APP_SECRET" in str(info.value)
    assert "WHATSAPP_ACCESS_TOKEN" not in str(info.value)


def test_settings_come_from_whatsapp_environment_variables(monkeypatch, echo):
    monkeypatch.setenv("WHATSAPP_ACCESS_TOKEN", "env-token")
    monkeypatch.setenv("WHATSAPP_PHONE_NUMBER_ID", "555")
    monkeypatch.setenv("WHATSAPP_VERIFY_TOKEN", "v")
    monkeypatch.setenv("WHATSAPP_APP_SECRET", "s")
    monkeypatch.setenv("WHATSAPP_API_BASE_URL", "http://127.0.0.1:9/")
    channel = CloudAPI(agent=echo)
    channel.validate()
    assert channel.messages_url == "http://127.0.0.1:9/v25.0/555/messages"


def test_turning_signature_checks_off_is_deliberate_and_loud(monkeypatch, echo, caplog):
    monkeypatch.setenv("WHATSAPP_SKIP_SIGNATURE_VALIDATION", "true")
    channel = CloudAPI(agent=echo, access_token="t", phone_number_id="1", verify_token="v")
    channel.validate()  # no app secret needed when checks are off
    assert "SIGNATURE CHECKS ARE OFF" in caplog.text
