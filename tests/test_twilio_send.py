"""What the bot posts to Twilio's Messages API, and what it makes of Twilio's answers.

Every send goes to a local fake of Twilio (tests/fakes/twilio_api.py) that records the form exactly as
posted and answers like Twilio, faults included.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, FakeTwilio
from whatsagent.channels.twilio import Twilio
from whatsagent.errors import SendError
from whatsagent.messages import Media, User
from whatsagent.messages.outbound import (
    Button,
    ButtonsOut,
    CtaUrlOut,
    LocationOut,
    MediaOut,
    ReactionOut,
    TemplateOut,
    TextOut,
)

ANA = User(wa_id="6285176810035", name="Ana")
PUBLIC = "https://bot.example.com"


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio(api_keys={"SK" + "1" * 32: "key-secret"}) as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def make_channel(twilio: FakeTwilio, **settings) -> Twilio:
    options = {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from_number": FROM_NUMBER,
        "api_base_url": twilio.base_url,
        "public_url": PUBLIC,
        "content_sids": {"order_update": "HX" + "a" * 32},
    }
    options.update(settings)
    channel = Twilio(**options)
    channel.validate()
    return channel


@pytest.fixture
async def channel(twilio: FakeTwilio, http: aiohttp.ClientSession) -> Twilio:
    channel = make_channel(twilio)
    await channel.open(http)
    return channel


async def test_a_text_reply_is_one_form_post_with_the_status_callback_carrying_the_outbox_key(
    twilio: FakeTwilio, channel: Twilio
) -> None:
    result = await channel.send(ANA, TextOut(body="Open until 8 pm ✨"), callback_data="turn-7/0")
    (sent,) = twilio.sends
    assert sent.form == [
        ("To", "whatsapp:+6285176810035"),
        ("From", FROM_NUMBER),
        ("Body", "Open until 8 pm ✨"),
        # The key comes back in the signed callback URL, base64url-encoded so nothing re-escapes it.
        ("StatusCallback", f"{PUBLIC}/twilio/status?cb=dHVybi03LzA"),
    ]
    assert sent.username == ACCOUNT_SID
    assert result.message_id == sent.sid
    assert result.recipient == "6285176810035"


async def test_sends_can_be_authenticated_with_an_api_key(twilio: FakeTwilio, http: aiohttp.ClientSession) -> None:
    channel = make_channel(twilio, api_key_sid="SK" + "1" * 32, api_key_secret="key-secret")
    await channel.open(http)
    await channel.send(ANA, TextOut(body="hi"))
    assert twilio.sends[0].username == "SK" + "1" * 32


async def test_a_medium_is_sent_by_url_with_its_caption_as_the_body(twilio: FakeTwilio, channel: Twilio) -> None:
    await channel.send(
        ANA, MediaOut(media_type="image", link="https://cdn.example.com/menu.png", caption="Today's menu")
    )
    (sent,) = twilio.sends
    assert sent.form[2:] == [
        ("Body", "Today's menu"),
        ("MediaUrl", "https://cdn.example.com/menu.png"),
        ("StatusCallback", f"{PUBLIC}/twilio/status"),
    ]


async def test_a_stored_medium_is_sent_as_a_signed_expiring_whatsagent_url(twilio: FakeTwilio, channel: Twilio) -> None:
    key = "ab" * 32
    await channel.send(ANA, MediaOut(media_type="document", stored=key))
    (url,) = twilio.sends[0].media_urls
    assert url.startswith(f"{PUBLIC}/twilio/media/{key}?expires=")
    assert "&signature=" in url


async def test_a_cloud_api_media_id_cannot_go_through_twilio(twilio: FakeTwilio, channel: Twilio) -> None:
    with pytest.raises(SendError, match="only by URL") as caught:
        await channel.send(ANA, MediaOut(media_type="image", media_id="1234567890"))
    assert not caught.value.retryable
    assert twilio.sends == []


async def test_a_template_goes_as_content_sid_and_numbered_variables_without_a_body(
    twilio: FakeTwilio, channel: Twilio
) -> None:
    await channel.send(ANA, TemplateOut(name="order_update", params=("Ana", '#42 "fragile"')))
    (sent,) = twilio.sends
    assert sent.get("ContentSid") == "HX" + "a" * 32
    assert sent.content_variables == {"1": "Ana", "2": '#42 "fragile"'}
    assert json.loads(sent.get("ContentVariables") or "") == sent.content_variables
    assert sent.body is None and sent.media_urls == []


async def test_cloud_api_shaped_template_components_map_their_body_parameters(
    twilio: FakeTwilio, channel: Twilio
) -> None:
    components = ({"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "7"}]},)
    await channel.send(ANA, TemplateOut(name="order_update", components=components))
    assert twilio.sends[0].content_variables == {"1": "Ana", "2": "7"}


async def test_a_template_without_a_content_sid_is_refused_with_what_to_configure(
    twilio: FakeTwilio, channel: Twilio
) -> None:
    with pytest.raises(SendError, match="no Content SID for template 'welcome'") as caught:
        await channel.send(ANA, TemplateOut(name="welcome"))
    assert not caught.value.retryable
    await channel.send(ANA, TemplateOut(name="HX" + "b" * 32))
    assert twilio.sends[0].content_sid == "HX" + "b" * 32
    assert twilio.sends[0].content_variables is None


async def test_a_location_is_a_persistent_action(twilio: FakeTwilio, channel: Twilio) -> None:
    await channel.send(ANA, LocationOut(latitude=-6.2, longitude=106.8, name="Our shop", address="Jl. Merdeka 1"))
    (sent,) = twilio.sends
    assert sent.get("Body") == "Our shop"
    assert sent.get("PersistentAction") == "geo:-6.2,106.8|Jl. Merdeka 1"


async def test_ad_hoc_buttons_and_links_are_sent_as_readable_text(twilio: FakeTwilio, channel: Twilio) -> None:
    await channel.send(
        ANA, ButtonsOut(body="Pick one", buttons=(Button(id="y", title="Yes"), Button(id="n", title="No")))
    )
    await channel.send(ANA, CtaUrlOut(body="Your invoice", display_text="Open", url="https://example.com/i/1"))
    assert twilio.sends[0].body == "Pick one\n\n1. Yes\n2. No"
    assert twilio.sends[1].body == "Your invoice\n\nOpen: https://example.com/i/1"


async def test_a_reaction_is_refused_for_good(twilio: FakeTwilio, channel: Twilio) -> None:
    with pytest.raises(SendError, match="reactions") as caught:
        await channel.send(ANA, ReactionOut(message_id="SM1", emoji="👍"))
    assert not caught.value.retryable


async def test_a_rate_limit_is_retryable_after_twilios_retry_after(twilio: FakeTwilio, channel: Twilio) -> None:
    twilio.fail_next("429", retry_after="7")
    with pytest.raises(SendError) as caught:
        await channel.send(ANA, TextOut(body="hi"))
    assert caught.value.retryable
    assert caught.value.retry_after == 7.0
    assert caught.value.http_status == 429
    assert caught.value.code == 20429
    await channel.send(ANA, TextOut(body="hi"))
    assert len(twilio.sends) == 1


@pytest.mark.parametrize("fault", ["500", "503"])
async def test_twilio_outages_are_retryable(twilio: FakeTwilio, channel: Twilio, fault: str) -> None:
    twilio.fail_next(fault)
    with pytest.raises(SendError) as caught:
        await channel.send(ANA, TextOut(body="hi"))
    assert caught.value.retryable
    assert caught.value.http_status == int(fault)


async def test_outside_the_window_is_a_permanent_error_with_code_63016(twilio: FakeTwilio, channel: Twilio) -> None:
    twilio.fail_next("63016")
    with pytest.raises(SendError) as caught:
        await channel.send(ANA, TextOut(body="are you still there?"))
    error = caught.value
    assert not error.retryable
    assert error.code == 63016
    assert error.retry_after is None
    assert "24-hour" in str(error)


@pytest.mark.parametrize(("fault", "words"), [("21617", "1,600"), ("21211", "not a valid"), ("20003", "credentials")])
async def test_permanent_errors_say_what_is_wrong(twilio: FakeTwilio, channel: Twilio, fault: str, words: str) -> None:
    twilio.fail_next(fault)
    with pytest.raises(SendError, match=words) as caught:
        await channel.send(ANA, TextOut(body="hi"))
    assert not caught.value.retryable
    assert caught.value.code == int(fault)


async def test_a_body_over_twilios_limit_comes_back_as_21617(twilio: FakeTwilio, channel: Twilio) -> None:
    assert Twilio.text_limit == 1600
    await channel.send(ANA, TextOut(body="x" * 1600))
    with pytest.raises(SendError) as caught:
        await channel.send(ANA, TextOut(body="x" * 1601))
    assert caught.value.code == 21617 and not caught.value.retryable


async def test_an_unreachable_twilio_is_retryable(http: aiohttp.ClientSession) -> None:
    async with FakeTwilio() as gone:
        dead = gone.base_url
    channel = Twilio(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number=FROM_NUMBER,
        api_base_url=dead,
        public_url=PUBLIC,
    )
    await channel.open(http)
    with pytest.raises(SendError, match="could not reach") as caught:
        await channel.send(ANA, TextOut(body="hi"))
    assert caught.value.retryable
    await channel.typing(ANA, "SM1")  # cosmetic: never raises


async def test_a_channel_that_is_not_open_refuses_to_send_but_retryably(twilio: FakeTwilio) -> None:
    with pytest.raises(SendError, match="not open") as caught:
        await make_channel(twilio).send(ANA, TextOut(body="hi"))
    assert caught.value.retryable


async def test_status_callbacks_can_be_turned_off_or_sent_elsewhere(
    twilio: FakeTwilio, http: aiohttp.ClientSession
) -> None:
    off = make_channel(twilio, status_callback=False)
    elsewhere = make_channel(twilio, status_callback="https://hooks.example.com/tw?x=1")
    for channel in (off, elsewhere):
        await channel.open(http)
        await channel.send(ANA, TextOut(body="hi"), callback_data="k")
    assert twilio.sends[0].status_callback is None
    assert twilio.sends[1].status_callback == "https://hooks.example.com/tw?x=1&cb=aw"


async def test_without_a_public_url_no_status_callback_is_invented(
    twilio: FakeTwilio, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    channel = make_channel(twilio, public_url=None)
    await channel.open(http)
    with caplog.at_level(logging.WARNING, "whatsagent.channels.twilio"):
        await channel.send(ANA, TextOut(body="hi"))
        await channel.send(ANA, TextOut(body="again"))
    assert [s.status_callback for s in twilio.sends] == [None, None]
    assert sum("TWILIO_PUBLIC_URL" in r.getMessage() for r in caplog.records) == 1


async def test_the_typing_indicator_names_the_users_message(twilio: FakeTwilio, channel: Twilio) -> None:
    await channel.typing(ANA, "SM0123456789abcdef0123456789abcdef")
    await channel.typing(ANA, "MM0123456789abcdef0123456789abcdef/1")
    assert twilio.typing == [
        {"messageId": "SM0123456789abcdef0123456789abcdef", "channel": "whatsapp"},
        {"messageId": "MM0123456789abcdef0123456789abcdef", "channel": "whatsapp"},
    ]


async def test_a_refused_typing_indicator_is_not_an_error(twilio: FakeTwilio, channel: Twilio) -> None:
    twilio.typing_status = 500
    await channel.typing(ANA, "SM1")
    assert len(twilio.typing) == 1


async def test_the_typing_api_lives_on_messaging_twilio_com_by_default() -> None:
    channel = Twilio(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=FROM_NUMBER)
    assert channel.api_base_url == "https://api.twilio.com"
    assert channel.messaging_base_url == "https://messaging.twilio.com"


async def test_an_inbound_medium_is_downloaded_with_basic_auth_through_the_redirect(
    twilio: FakeTwilio, channel: Twilio
) -> None:
    data = b"\xff\xd8\xff" + b"\x00" * 5000
    url = twilio.host_media(data, "image/jpeg")
    got, mime = await channel.download(Media(url=url, mime_type="image/jpeg"), max_bytes=10_000)
    assert got == data
    assert mime == "image/jpeg"
    got, mime = await channel.download(Media(url=url), max_bytes=10_000)
    assert mime == "image/jpeg"


async def test_a_medium_over_the_cap_is_refused_while_streaming(twilio: FakeTwilio, channel: Twilio) -> None:
    url = twilio.host_media(b"x" * 70_000, "video/mp4")
    with pytest.raises(SendError, match="70000 bytes") as caught:
        await channel.download(Media(url=url), max_bytes=69_999)
    assert not caught.value.retryable


async def test_a_missing_medium_is_a_permanent_download_error(twilio: FakeTwilio, channel: Twilio) -> None:
    url = twilio.host_media(b"x", "image/jpeg").rsplit("/", 1)[0] + "/ME" + "0" * 32
    with pytest.raises(SendError, match="HTTP 404") as caught:
        await channel.download(Media(url=url), max_bytes=1000)
    assert not caught.value.retryable
    with pytest.raises(SendError, match="no URL"):
        await channel.download(Media(media_id="ME1"), max_bytes=1000)
